"""Saved bodies: every URL maps inside the save directory, to its own file, written atomically."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import sys
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urlfleet.record.saving import MAX_COMPONENT_BYTES, MAX_DIRS, SavedBody, body_path

# Written out again rather than imported, so a mistake in the module's own list can't hide here.
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {
    f"{prefix}{digit}" for prefix in ("COM", "LPT") for digit in "0123456789¹²³"
}

FILE_TAIL = re.compile(r"-[0-9a-f]{16}(\.[0-9a-z]{1,8})?$", re.IGNORECASE)

TRAVERSAL_URLS = [
    "http://example.com/../../etc/passwd",
    "http://example.com/%2e%2e/%2e%2e/etc/passwd",
    "http://example.com/%2E%2e/%2e%2E/x",
    "http://example.com/..",
    "http://example.com/./././.",
    "http://example.com/a/%2f..%2f..%2fetc",
    "http://example.com/a%2F..%2F..%2Fb",
    "http://example.com/%252e%252e/x",  # double-encoded: decoded once only
    "http://example.com/..\\..\\windows\\win.ini",
    "http://example.com/a/..%5c..%5cb",
    "http://example.com/\uff0e\uff0e/\uff0f\uff3c",  # fullwidth dots and slashes
    "http://example.com//etc/passwd",
    "http://example.com///////x",
    "http://example.com/a//b///c/",
    "http:///etc/passwd",
    "file:///etc/passwd",
    "/etc/passwd",
    "C:\\Windows\\system32\\drivers",
    "",
    "http://example.com/a%00b/c\x00d",
    "http://example.com/\x01\x1f\x7f/\r\n\t/%0a%0d",
    "http://example.com/" + "a" * 1000,
    "http://example.com/" + "é" * 300 + "/" + "字" * 200 + ".html",
    "http://example.com/" + "/".join(str(i) for i in range(60)),
    "http://example.com/CON",
    "http://example.com/con.txt",
    "http://example.com/Com1.tar.gz/lPt9",
    "http://example.com/nul/aux/prn.html",
    "http://example.com/COM%C2%B9",
    "http://example.com/trailing./spaces%20%20/dots...",
    "http://example.com/-rf/--help",
    "http://example.com/.hidden/.git/config",
    "http://example.com/a?../../x=1",
    "http://example.com/a#/../../x",
    "http://bücher.example/straße",
    "http://xn--bcher-kva.example/",
    "http://[::1]:8080/x",
    "http://[fe80::1%25eth0]/",
    "http://[::1/unclosed",
    "http://127.0.0.1:8701/ok",
    "http://user:pa%2F..%2Fss@example.com/../x",
    "http://../../x",
    "http://%2e%2e/x",
    "http://CON/x",
    "http://example.com:99999999999999999/x",
]


def check_inside(save_dir: Path, path: Path) -> None:
    """Assert that `path` is a safe, portable file path inside `save_dir`."""
    assert path.resolve().is_relative_to(save_dir.resolve())
    parts = path.relative_to(save_dir).parts
    assert len(parts) >= 2  # host directory, file name
    for part in parts:
        assert part not in ("", ".", "..")
        assert not set(part) & set('/\\\0:*?"<>|')
        assert all(unicodedata.category(ch)[0] != "C" for ch in part)  # no control characters
        assert part.partition(".")[0].rstrip(" ").upper() not in WINDOWS_DEVICES
        assert not part.startswith((".", "-")) and not part.endswith((".", " "))
        assert len(part.encode()) <= MAX_COMPONENT_BYTES
    # Only file names end like one, even case-folded, so no file can sit where a directory must.
    assert FILE_TAIL.search(parts[-1])
    assert not any(FILE_TAIL.search(part.casefold()) for part in parts[:-1])


def url_hash(url: str) -> str:
    return hashlib.sha256(url.partition("#")[0].encode()).hexdigest()[:16]


def check_distinct(paths: list[Path]) -> None:
    """Distinct files, even case-folded, and none where another path needs a directory."""
    folded = [str(p).casefold() for p in paths]
    assert len(set(folded)) == len(paths)
    directories = {str(parent).casefold() for p in paths for parent in p.parents}
    assert not directories & set(folded)


@pytest.mark.parametrize("url", TRAVERSAL_URLS)
def test_every_url_maps_inside_and_can_be_written(tmp_path: Path, url: str) -> None:
    save_dir = tmp_path / "save"
    path = body_path(save_dir, url)
    check_inside(save_dir, path)
    with SavedBody(path) as body:
        body.write(b"body")
        assert body.commit() == path
    assert path.read_bytes() == b"body"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p.resolve() for p in written] == [path.resolve()]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8701/ok", "127.0.0.1_8701/ok-{h}"),
        ("https://Example.COM:443/a/b.html?x=1", "example.com/a/b-{h}.html"),
        ("http://example.com:8080/a/", "example.com_8080/a/index-{h}"),
        ("http://example.com", "example.com/index-{h}"),
        ("http://[::1]:8080/x", "ipv6_--1_8080/x-{h}"),
        ("http://alice:s3cret@example.com/x", "example.com/x-{h}"),
        ("http://example.com/../%2e%2e/CON", "example.com/_CON-{h}"),
        ("http://example.com/a%20b/c%2Fd.JSON", "example.com/a_b/c_d-{h}.json"),
        ("http://example.com/a/b/c/d/e/f/g/h/i/j/k.txt", "example.com/a/b/c/d/e/f/g/h/k-{h}.txt"),
        ("http://example.com/x#frag", "example.com/x-{h}"),
    ],
)
def test_layout_is_host_then_path(url: str, expected: str) -> None:
    assert body_path(Path("out"), url).as_posix() == "out/" + expected.format(h=url_hash(url))


def test_fragment_is_not_part_of_the_name() -> None:
    assert body_path(Path("d"), "http://h/a#x") == body_path(Path("d"), "http://h/a")


def test_userinfo_never_reaches_the_path() -> None:
    path = body_path(Path("d"), "http://alice:s3cret@example.com/x")
    assert "alice" not in str(path) and "s3cret" not in str(path)


def test_depth_is_bounded() -> None:
    url = "http://h/" + "/".join("d" * 50 for _ in range(100))
    assert len(body_path(Path("d"), url).relative_to("d").parts) == 1 + MAX_DIRS + 1


@pytest.mark.parametrize(
    ("url", "content_type", "name"),
    [
        ("http://h/", "text/html; charset=utf-8", "index-{h}.html"),
        ("http://h/data", "application/json", "data-{h}.json"),
        ("http://h/notes", "TEXT/PLAIN", "notes-{h}.txt"),
        ("http://h/a.PHP", "text/html", "a-{h}.php"),  # the URL's own extension wins
        ("http://h/blob", "application/x-unknown", "blob-{h}"),
        ("http://h/blob", None, "blob-{h}"),
        ("http://h/a.verylongext", None, "a.verylongext-{h}"),
        ("http://h/a.tar%2Fgz", None, "a.tar_gz-{h}"),
        ("http://h/.htaccess", None, "htaccess-{h}"),
    ],
)
def test_extension(url: str, content_type: str | None, name: str) -> None:
    path = body_path(Path("d"), url, content_type=content_type)
    assert path.name == name.format(h=url_hash(url))


def _file_named_like(url: str) -> str:
    return body_path(Path("d"), url).name


COLLISION_SETS = [
    ["/a", "/a/", "/a?x=1", "/a?x=2", "/a?", "/A", "/a/b", "/a/b/", "/a/b/c", "/A/B"],
    ["/a.html", "/a_html", "/a.HTML", "/a%2Ehtml", "/a/.html"],
    ["/%2e%2e/x", "/../x", "/./x", "/x", "//x", "/%2E%2E/x", "/x/", "/x/.", "/x/.."],
    ["/" + "p" * 200 + tail for tail in ("a", "b", "a/x", "b/x", "a/x/y")],
    ["/CON", "/con", "/_CON", "/CON.txt", "/con.txt", "/CON/x"],
    ["/a b", "/a%20b", "/a_b", "/a+b", "/a%2Bb", "/a%2fb", "/a/b"],
    ["/straße", "/STRASSE", "/strasse", "/stra%C3%9Fe"],
    ["/\uff41", "/a", "/A"],  # fullwidth a
    # A directory named exactly like another URL's file must not be that file.
    ["/x", f"/{_file_named_like('http://h/x')}/y", f"/{_file_named_like('http://h/x')}/"],
    ["/ﬀ", "/x-0123456789abcd\ufb00/y", "/x-0123456789abcdff/y"],  # "ﬀ" casefolds to "ff"
]


@pytest.mark.parametrize("paths", COLLISION_SETS)
def test_naive_collisions_get_distinct_paths(tmp_path: Path, paths: list[str]) -> None:
    urls = [f"http://h{p}" for p in paths]
    files = [body_path(tmp_path, url) for url in urls]
    for path in files:
        check_inside(tmp_path, path)
    check_distinct(files)
    for index, path in enumerate(files):  # and the real file system agrees
        with SavedBody(path) as body:
            body.write(str(index).encode())
            body.commit()
    assert [p.read_bytes() for p in files] == [str(i).encode() for i in range(len(files))]


def test_hosts_differing_in_case_or_port_get_distinct_paths() -> None:
    urls = [
        "http://example.com/a",
        "http://EXAMPLE.com/a",
        "http://example.com:80/a",
        "https://example.com/a",
        "http://example.com:8080/a",
        "http://u@example.com/a",
    ]
    check_distinct([body_path(Path("d"), url) for url in urls])


# Hypothesis: arbitrary paths and queries on a few hosts; "#" is left out where a URL must be
# told apart from the others, because everything after it is a fragment and ignored by design.
NO_HASH = st.characters(exclude_characters="#")
HOSTS = ["example.com", "Example.COM", "127.0.0.1:8701", "[::1]:8080", "u:p@h", "bücher.de", ""]
URLS = st.builds(
    lambda scheme, host, path, query: f"{scheme}://{host}/{path}" + (f"?{query}" * bool(query)),
    st.sampled_from(["http", "https", "HTTP"]),
    st.sampled_from(HOSTS),
    st.text(NO_HASH),
    st.text(NO_HASH),
)


@given(url=st.one_of(URLS, st.text()))
def test_any_url_maps_inside(url: str) -> None:
    check_inside(Path("/save"), body_path(Path("/save"), url, content_type="text/html"))


@given(urls=st.lists(URLS, unique=True, max_size=40))
def test_distinct_urls_get_distinct_paths(urls: list[str]) -> None:
    check_distinct([body_path(Path("/save"), url) for url in urls])


@settings(max_examples=30)
@given(urls=st.lists(URLS, unique=True, min_size=1, max_size=10))
def test_any_urls_can_be_written_side_by_side(urls: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for index, url in enumerate(urls):
            with SavedBody(body_path(Path(tmp), url)) as body:
                body.write(str(index).encode())
                body.commit()
        bodies = {p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}
        assert bodies == {str(i).encode() for i in range(len(urls))}


# SavedBody


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_commit_writes_exact_bytes(tmp_path: Path) -> None:
    path = tmp_path / "h" / "a" / "b-0123.bin"
    with SavedBody(path) as body:
        body.write(b"hello ")
        body.write(b"\x00world")
        assert body.commit() == path
    assert path.read_bytes() == b"hello \x00world"
    assert body.bytes_written == 12
    assert files_under(tmp_path) == [path]


def test_temporary_file_is_hidden_beside_the_final_one(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    with SavedBody(path) as body:
        body.write(b"partial")
        [temp] = files_under(tmp_path)
        assert re.fullmatch(r"\.page\.html\.part-[0-9a-f]{8}", temp.name)
        assert not path.exists()
        body.commit()
    assert files_under(tmp_path) == [path]


def test_commit_replaces_an_older_body(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"old")
    with SavedBody(path) as body:
        body.write(b"new")
        assert path.read_bytes() == b"old"  # the old body stays whole until the rename
        body.commit()
    assert path.read_bytes() == b"new"


def test_leaving_without_commit_leaves_nothing(tmp_path: Path) -> None:
    with SavedBody(tmp_path / "a") as body:
        body.write(b"cut off")
    assert files_under(tmp_path) == []


def test_exception_in_block_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), SavedBody(tmp_path / "a") as body:
        body.write(b"x")
        raise RuntimeError("boom")
    assert files_under(tmp_path) == []


def test_write_error_propagates_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="No space"), SavedBody(tmp_path / "a") as body:
        body.write(b"x")
        raise OSError(28, "No space left on device")  # what a failing write raises
    assert files_under(tmp_path) == []


def test_parent_that_is_a_file_raises_oserror(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"")
    with pytest.raises(OSError), SavedBody(tmp_path / "blocker" / "sub" / "a") as body:
        body.write(b"x")
    assert files_under(tmp_path) == [tmp_path / "blocker"]


def test_rename_onto_a_directory_raises_and_removes_temp(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(OSError), SavedBody(tmp_path / "a") as body:
        body.write(b"x")
        body.commit()
    assert files_under(tmp_path) == []


def test_failed_rename_removes_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path, target: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(target))

    with SavedBody(tmp_path / "a") as body:
        body.write(b"x")
        monkeypatch.setattr(Path, "replace", refuse)
        with pytest.raises(PermissionError):
            body.commit()
    assert files_under(tmp_path) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_saved_file_mode_follows_umask(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    with SavedBody(tmp_path / "a") as body:
        body.commit()
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o666 & ~umask


def test_two_writers_of_one_path_never_mix(tmp_path: Path) -> None:
    path = tmp_path / "a"
    with SavedBody(path) as first, SavedBody(path) as second:
        for a, b in itertools.repeat((b"1" * 100, b"2" * 100), 50):
            first.write(a)
            second.write(b)
        first.commit()
        second.commit()
    assert path.read_bytes() == b"2" * 5000
    assert files_under(tmp_path) == [path]


def test_write_outside_the_block_is_refused(tmp_path: Path) -> None:
    body = SavedBody(tmp_path / "a")
    with pytest.raises(ValueError, match="not open"):
        body.write(b"x")
    with body:
        body.commit()
        with pytest.raises(ValueError, match="not open"):
            body.write(b"x")
        with pytest.raises(ValueError, match="not open"):
            body.commit()
