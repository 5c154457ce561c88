"""The URL reader against arbitrary input: it never raises and never lets a bad URL through."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urlfleet.read.sources import InputProblem, UrlReader
from urlfleet.urls import MAX_URL_LENGTH

PIECES = st.sampled_from([
    "http://", "https://", "ftp://", "HTTP://", "//", "example.com", "bücher.example",
    "xn--bcher-kva.example", "[::1]", "[::1", "[2001:db8::1]:8080", "127.0.0.1:8701",
    "user:pass@", "@", ":", ":99999", ":0", "/", "/path", "?q=1", "#frag", "%2e%2e/", "..",
    " ", "\t", "\x00", "\u200b", "é", "\ufeff", "a" * 300, "%", "%zz", "\\", "<>", '"',
])  # fmt: skip
LINES = st.one_of(
    st.lists(PIECES, max_size=8).map("".join).map(str.encode),
    st.binary(max_size=200),
    st.text(max_size=100).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


def read(lines: list[bytes]) -> tuple[list[str], list[InputProblem]]:
    problems: list[InputProblem] = []
    data = io.BytesIO(b"\n".join(line.replace(b"\n", b"") for line in lines))
    return list(UrlReader(["-"], stdin=data, on_problem=problems.append)), problems


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINES, max_size=30))
def test_reader_never_raises_and_accepts_only_fetchable_urls(lines: list[bytes]) -> None:
    urls, problems = read(lines)
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme.lower() in ("http", "https") and parts.hostname
        assert len(url) <= MAX_URL_LENGTH and not any(ch.isspace() or ord(ch) < 32 for ch in url)
        requests.PreparedRequest().prepare_url(url, None)  # what requests would reject raises
    assert len(urls) == len(set(urls))
    assert all(problem.line >= 1 and problem.reason for problem in problems)
