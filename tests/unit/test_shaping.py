"""Request shaping: the options that say how to ask (method, body, cookies, proxy, HEAD) and
which answers count (ok statuses, accepted media types), parsed and checked; the shared jar."""

from __future__ import annotations

import argparse
import threading
from http.cookiejar import MozillaCookieJar
from pathlib import Path

import pytest
import requests

from urlfleet.cli import EXIT_USAGE, build_parser, main
from urlfleet.cli.options import config_from
from urlfleet.config import FetchConfig, status_ranges
from urlfleet.errors import InputError
from urlfleet.fetching.cookies import SharedCookieJar, load_jar, new_jar, save_jar
from urlfleet.fetching.failures import ERROR_KINDS
from urlfleet.fetching.fetcher import Fetcher
from urlfleet.fetching.mediatypes import accepts, media_patterns, shown
from urlfleet.loopback.spec import RequestRecord

Capsys = pytest.CaptureFixture[str]


def parsed(*options: str) -> argparse.Namespace:
    return build_parser().parse_args(["fetch", *options])


def config_of(*options: str) -> FetchConfig:
    return config_from(parsed(*options))


def refused(*options: str) -> str:
    with pytest.raises(InputError) as error:
        config_of(*options)
    message = str(error.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- method and body


def test_the_defaults_ask_as_before() -> None:
    config = config_of()
    assert (config.method, config.data, config.head) == ("GET", None, False)
    assert config.ok_status == ((200, 299),) and config.accept_type == ()
    assert dict(config.cookies) == {} and dict(config.proxies) == {}


def test_method_is_upper_cased_and_data_makes_a_post_as_curl() -> None:
    assert config_of("-X", "put").method == "PUT"
    posted = config_of("--data", "a=1&b=2")
    assert (posted.method, posted.data) == ("POST", b"a=1&b=2")
    assert config_of("-X", "PATCH", "--data", "x").method == "PATCH"


def test_data_from_a_file_is_sent_as_its_bytes(tmp_path: Path) -> None:
    body = tmp_path / "body.bin"
    body.write_bytes(b"\x00line 1\r\nline 2\n")
    assert config_of("--data", f"@{body}").data == b"\x00line 1\r\nline 2\n"
    assert config_of("--data-file", str(body)).data == b"\x00line 1\r\nline 2\n"


@pytest.mark.parametrize("option", ["--data", "--data-file"])
def test_an_unreadable_body_file_is_named(tmp_path: Path, option: str) -> None:
    missing = tmp_path / "nope.json"
    value = f"@{missing}" if option == "--data" else str(missing)
    assert refused(option, value) == f"{option} {missing}: cannot read (No such file or directory)"


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["-X", "GET /x"], "-X/--method wants a method name"),
        (["--data", "x", "--data-file", "f"], "--data and --data-file cannot go together"),
        (["--head", "--data", "x"], "--head cannot go with --data or -X"),
        (["--head", "-X", "PUT"], "--head cannot go with --data or -X"),
    ],
)
def test_bad_method_and_body_options(options: list[str], says: str) -> None:
    assert says in refused(*options)


def test_head_alone_and_with_get_or_head() -> None:
    assert config_of("--head").head
    assert config_of("--head", "-X", "HEAD").method == "HEAD"


def test_the_library_checks_the_same_rules() -> None:
    assert FetchConfig(method="delete", data="é").data == "é".encode()
    assert FetchConfig(method="delete").method == "DELETE"
    with pytest.raises(ValueError, match="head cannot go with method"):
        FetchConfig(head=True, method="PUT")
    with pytest.raises(ValueError, match="bad method"):
        FetchConfig(method="GE T")


# --------------------------------------------------------------------------- cookies, proxy


def test_cookies_repeat_and_pair_up_in_one_option() -> None:
    config = config_of("--cookie", "a=1; b=2", "--cookie", "c=3;")
    assert dict(config.cookies) == {"a": "1", "b": "2", "c": "3"}


@pytest.mark.parametrize("bad", ["novalue", "=x", "a=1; secret-token"])
def test_a_bad_cookie_is_refused_without_showing_it(bad: str) -> None:
    message = refused("--cookie", bad)
    assert "--cookie wants 'name=value'" in message and "secret" not in message


def test_a_proxy_serves_both_schemes() -> None:
    config = config_of("--proxy", "http://127.0.0.1:3128")
    assert dict(config.proxies) == {"http": "http://127.0.0.1:3128",
                                    "https": "http://127.0.0.1:3128"}  # fmt: skip


@pytest.mark.parametrize("bad", ["ftp://proxy:21", "127.0.0.1:3128", "socks4://p:1080", "http://"])
def test_a_proxy_of_another_scheme_is_refused(bad: str) -> None:
    assert refused("--proxy", bad).startswith("bad option: --proxy: ")


def test_a_socks_proxy_needs_pysocks_and_says_so() -> None:
    try:
        import socks  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        assert "PySocks" in refused("--proxy", "socks5h://127.0.0.1:1080")
    else:
        assert config_of("--proxy", "socks5h://127.0.0.1:1080").proxies["https"]


# --------------------------------------------------------------------------- ok statuses


def test_ok_status_ranges_and_codes() -> None:
    assert config_of("--ok-status", "200-299,403,429").ok_status == (
        (200, 299), (403, 403), (429, 429),
    )  # fmt: skip
    assert status_ranges([404, (200, 204)]) == ((404, 404), (200, 204))


@pytest.mark.parametrize("bad", ["", "abc", "299-200", "99", "600", "200-", "2xx", "200,,404"])
def test_a_bad_ok_status_list_is_one_line_naming_the_option(bad: str) -> None:
    assert refused("--ok-status", bad).startswith("bad option: --ok-status: ")


def fetcher_for(**options: object) -> Fetcher:
    return Fetcher(FetchConfig(**options))  # type: ignore[arg-type]


def test_counts_as_ok_follows_ok_status_but_not_for_robots_or_sitemaps() -> None:
    with fetcher_for(ok_status="200-299,404,429") as fetcher:
        job, results = fetcher.new_job(0, "http://a.test/x"), fetcher.results
        assert [results.counts_as_ok(s, job) for s in (200, 299, 404, 429, 403, 500)] == [
            True, True, True, True, False, False,
        ]  # fmt: skip
        assert not results.retries_status(429, job)  # an ok 429 is final
        assert results.retries_status(503, job)
        job.robots_for = "a.test"
        assert not results.counts_as_ok(404, job) and results.retries_status(429, job)


# --------------------------------------------------------------------------- media types


def test_accept_type_patterns_repeat_split_and_lower_case() -> None:
    config = config_of("--accept-type", "text/HTML,text/*", "--accept-type", "application/*+xml")
    assert config.accept_type == ("text/html", "text/*", "application/*+xml")


@pytest.mark.parametrize("bad", ["text", "text/", "/html", "text/html; q=1", "a/b/c", ""])
def test_a_bad_accept_type_is_refused(bad: str) -> None:
    assert refused("--accept-type", bad).startswith("bad option: --accept-type: ")


@pytest.mark.parametrize(
    ("patterns", "content_type", "accepted"),
    [
        (["text/html"], "text/html", True),
        (["text/html"], "TEXT/HTML; charset=UTF-8", True),
        (["text/html"], "text/htmlx", False),
        (["text/*"], "text/plain", True),
        (["text/*"], "texts/plain", False),
        (["application/*+xml"], "application/rss+xml", True),
        (["application/*+xml"], "application/xml", False),
        (["application/*+xml"], "application/json", False),
        (["*/*"], "image/png", True),
        (["*/*"], None, False),  # a missing Content-Type matches nothing
        (["*/*"], "  ; charset=utf-8", False),
        (["image/*", "text/html"], "text/html", True),
        (["t*/html"], "text/x/html", False),  # "*" never crosses the slash
    ],
)
def test_accepts(patterns: list[str], content_type: str | None, accepted: bool) -> None:
    assert accepts(media_patterns(patterns), content_type) is accepted


def test_a_skipped_response_names_its_media_type_briefly() -> None:
    assert shown("Text/HTML; charset=utf-8") == "text/html"
    assert shown(None) == "(none)" and len(shown("a/" + "b" * 500)) == 100
    assert "skipped" in ERROR_KINDS


# --------------------------------------------------------------------------- the cookie jar


def test_the_shared_jar_can_be_walked_while_cookies_are_stored() -> None:
    # CookieJar walks its dicts live: storing a cookie for a new domain mid-walk raises.
    jar = new_jar({"a": "1"})
    for i, _ in enumerate(jar):
        jar.set("n", str(i), domain=f"host{i}.test", path="/")
    assert len(list(jar)) == 2


def test_threads_storing_and_walking_the_shared_jar_meet_no_error() -> None:
    jar, errors = SharedCookieJar(), []

    def store(prefix: str) -> None:
        for i in range(300):
            jar.set("c", "v", domain=f"{prefix}{i}.test", path="/")

    def walk() -> None:
        try:
            for _ in range(300):
                requests.cookies.merge_cookies(requests.cookies.RequestsCookieJar(), jar)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=store, args=(p,)) for p in "abc"]
    threads += [threading.Thread(target=walk) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(jar) == 900


def test_a_jar_round_trips_through_cookies_txt_session_cookies_too(tmp_path: Path) -> None:
    path = tmp_path / "cookies.txt"
    jar = new_jar({"everywhere": "1"})  # given for every URL: not written, not a host's
    jar.set("sid", "abc", domain="127.0.0.1", path="/")  # a session cookie (no expiry)
    jar.set("old", "x", domain="127.0.0.1", path="/", expires=1)  # expired long ago
    save_jar(jar, path)
    assert path.read_text().startswith("# Netscape HTTP Cookie File")
    again = load_jar(path)
    assert {(c.name, c.value, c.domain) for c in again} == {("sid", "abc", "127.0.0.1")}
    assert load_jar(tmp_path / "not-yet.txt", {"k": "v"}).get("k") == "v"


def test_a_curl_cookie_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "curl.txt"
    path.write_text("# Netscape HTTP Cookie File\n"
                    "#HttpOnly_.example.com\tTRUE\t/\tFALSE\t0\tsid\tabc\n"
                    "example.org\tFALSE\t/app\tTRUE\t4102444800\tlang\ten\n")  # fmt: skip
    cookies = {c.name: c for c in load_jar(path)}
    assert cookies["sid"].domain == ".example.com" and cookies["lang"].secure


@pytest.mark.parametrize(
    "text", ["not a cookie file\n", "# Netscape HTTP Cookie File\nonly\tthree\tfields\n"]
)
def test_a_bad_cookie_file_is_one_line_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(InputError) as error:
        load_jar(path)
    message = str(error.value)
    assert message.startswith(f"--cookie-jar {path}: not a Netscape cookies.txt")
    assert "\n" not in message and "three" not in message


def test_a_bad_cookie_jar_stops_the_cli_before_any_output(tmp_path: Path, capsys: Capsys) -> None:
    jar, out = tmp_path / "bad.txt", tmp_path / "out.jsonl"
    jar.write_text("garbage\n")
    listed = tmp_path / "urls.txt"
    listed.write_text("http://127.0.0.1:9/x\n")
    code = main(["fetch", str(listed), "--cookie-jar", str(jar), "-o", str(out), "--no-progress"])
    assert code == EXIT_USAGE and not out.exists()
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: --cookie-jar {jar}: not a Netscape cookies.txt "
                                        "(it starts '# Netscape HTTP Cookie File', then 7 "
                                        "tab-separated fields a line)"]  # fmt: skip


def test_mozilla_jar_of_ours_is_what_python_reads(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    jar = SharedCookieJar()
    jar.set("k", "v", domain=".a.test", path="/")
    save_jar(jar, path)
    plain = MozillaCookieJar(str(path))
    plain.load(ignore_discard=True)
    assert [(c.name, c.domain) for c in plain] == [("k", ".a.test")]


# --------------------------------------------------------------------------- loopback records


def test_a_request_record_keeps_its_body_and_old_json_still_reads() -> None:
    record = RequestRecord("127.0.0.1:1", "PUT", "/echo", 1.0, 2.0, 200, {}, 3, body="\xff")
    assert RequestRecord.from_json(record.to_json()) == record
    old = {k: v for k, v in record.to_json().items() if k != "body"}
    assert RequestRecord.from_json(old).body == ""
