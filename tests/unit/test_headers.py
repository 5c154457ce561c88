"""urlfleet's header reader builds the HTTPMessage http.client builds, for any header block."""

from __future__ import annotations

import email.policy
import http.client
import io
import random

import pytest

from urlfleet.fetching.headers import QuickHeadersResponse, parse_headers

BLOCKS = [
    b"Content-Type: text/html\r\nContent-Length: 5\r\n\r\n",
    b"A: 1\nB:2\n\n",  # bare LF, no space after the colon
    b"Set-Cookie: a=1\r\nset-cookie: b=2\r\nSET-COOKIE: c=3\r\n\r\n",
    b"Empty:\r\nSpaces:   \t  padded \t \r\n\r\n",
    b"Folded: one\r\n two\r\n\tthree\r\nNext: x\r\n\r\n",  # obsolete line folding
    b" Leading: continuation first\r\nA: b\r\n\r\n",
    b"No colon here\r\nA: b\r\n\r\n",  # the body starts early, with a defect
    b": no name\r\nA: b\r\n\r\n",
    b"Bad Name: has a space\r\n\r\n",
    b"From nobody Mon Jan  1 00:00:00 2001\r\nA: b\r\n\r\n",
    b"From: someone\r\n\r\n",
    b"Stray: a\rb\r\nC: d\r\n\r\n",  # a lone CR splits the line for the email parser
    b"Latin: caf\xe9 \xff\r\n\r\n",
    b"N\xe4me: non-ASCII name\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"A: b\r\n",  # cut off: no blank line before the end
    b"",
    b"\r\n",
    b"X: " + b"v" * 5000 + b"\r\n\r\n",
]


def _both(block: bytes) -> tuple[http.client.HTTPMessage, http.client.HTTPMessage]:
    return http.client.parse_headers(io.BytesIO(block)), parse_headers(io.BytesIO(block))


ASKED = ["content-length", "Content-Type", "SET-COOKIE", "a", "B", "spaces", "latin", "nope", ""]


def _facts(message: http.client.HTTPMessage) -> tuple[object, ...]:
    payload = message.get_payload()
    return (
        isinstance(message, http.client.HTTPMessage),
        message.items(),
        message.keys(),
        message.values(),
        [type(defect) for defect in message.defects],
        [_facts(part) for part in payload] if isinstance(payload, list) else payload,
        message.get_content_type(),
        message.get_all("set-cookie"),
        [(message.get(name), message.get(name, "-"), message[name]) for name in ASKED],
        [name in message for name in ASKED],
        str(message),
    )


@pytest.mark.parametrize("block", BLOCKS)
def test_every_header_block_reads_as_http_client_reads_it(block: bytes) -> None:
    theirs, ours = _both(block)
    assert _facts(ours) == _facts(theirs)


def test_random_header_blocks_read_as_http_client_reads_them() -> None:
    pieces = [b"A", b"b-C", b":", b": ", b" ", b"\t", b"\r", b"\n", b"\r\n", b"x", b"\xe9"]
    pieces.append(b"From ")
    rng = random.Random(7)
    for _ in range(3000):
        block = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 14))) + b"\r\n\r\n"
        theirs, ours = _both(block)
        assert _facts(ours) == _facts(theirs), block


def test_the_rest_of_the_stream_is_left_for_the_body() -> None:
    stream = io.BytesIO(b"A: b\r\n\r\nthe body")
    parse_headers(stream)
    assert stream.read() == b"the body"


def test_a_response_reads_its_status_headers_and_body() -> None:
    class Socket:
        def makefile(self, mode: str) -> io.BytesIO:
            raw = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-A: 1\r\nX-A: 2\r\n\r\nbodyrest"
            return io.BytesIO(raw)

    response = QuickHeadersResponse(Socket(), method="GET")  # type: ignore[arg-type]
    response.begin()
    assert (response.status, response.length, response.chunked) == (200, 4, False)
    assert response.headers.get_all("x-a") == ["1", "2"]
    assert response.read() == b"body"


def test_an_ordinary_block_is_read_without_the_email_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the email parser was asked")

    monkeypatch.setattr("email.parser.Parser.parsestr", refuse)
    message = parse_headers(io.BytesIO(b'Content-Type: text/html\r\nETag: "x"\r\n\r\n'))
    assert message.items() == [("Content-Type", "text/html"), ("ETag", '"x"')]


CHANGES = [
    lambda m: m.replace_header("A", "changed"),
    lambda m: m.__setitem__("A", "added"),
    lambda m: m.__delitem__("a"),
    lambda m: m.add_header("Content-Type", "text/plain", charset="utf-8"),
    lambda m: m.set_param("charset", "latin-1"),
    lambda m: m.set_type("multipart/mixed"),
    lambda m: m.set_boundary("b"),
    lambda m: m.set_raw("A", "raw"),
    lambda m: m._headers.insert(0, ("A", "first")),  # type: ignore[attr-defined]
    lambda m: setattr(m, "policy", email.policy.HTTP),
]


@pytest.mark.parametrize("change", range(len(CHANGES)))
def test_a_changed_message_answers_as_http_clients_would(change: int) -> None:
    # Every question is asked once first: answers given from the index before a change
    # must not outlive it.
    block = b"A: 1\r\nContent-Type: text/html; charset=x; boundary=y\r\nA: 2\r\n\r\n"
    theirs, ours = _both(block)
    assert _facts(ours) == _facts(theirs)
    for message in (theirs, ours):
        try:
            CHANGES[change](message)
        except Exception as exc:  # noqa: BLE001 - a change the email code refuses: alike
            message.refused = type(exc)  # type: ignore[attr-defined]
    assert getattr(ours, "refused", None) == getattr(theirs, "refused", None)
    assert _facts(ours) == _facts(theirs)


def test_request_headers_copy_as_requests_copies_them() -> None:
    from requests.structures import CaseInsensitiveDict

    from urlfleet.fetching.headers import Headers

    ours, theirs = Headers(), CaseInsensitiveDict[str]()
    for made in (ours, theirs):
        made.update({"Accept": "*/*", "X-Two": "a", "x-TWO": "b", "User-Agent": "u"})
    copied = ours.copy()
    assert isinstance(copied, CaseInsensitiveDict)
    assert list(copied.items()) == list(theirs.copy().items())
    assert copied["x-two"] == "b" and copied == theirs
    copied["Accept"] = "text/html"
    del copied["user-agent"]
    assert list(ours.items()) == list(theirs.items())  # the copy is its own


@pytest.mark.parametrize(
    "fields",
    [[], [("A", "1")], [("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("X", ""), ("x-Y", "3")]],
)
def test_response_headers_are_the_dict_requests_builds(fields: list[tuple[str, str]]) -> None:
    from requests.structures import CaseInsensitiveDict
    from urllib3 import HTTPHeaderDict

    from urlfleet.fetching.headers import response_headers

    raw = HTTPHeaderDict()
    for name, value in fields:
        raw.add(name, value)
    ours, theirs = response_headers(raw), CaseInsensitiveDict(raw)
    assert isinstance(ours, CaseInsensitiveDict)
    assert list(ours.items()) == list(theirs.items())
    assert list(ours.lower_items()) == list(theirs.lower_items())
    for name in ("A", "a", "SET-COOKIE", "x-y", "X", "missing", ""):
        assert ours.get(name) == theirs.get(name)
        assert ours.get(name, "-") == theirs.get(name, "-")
        assert (name in ours) == (name in theirs)
    for refused in (None, 1):  # not a name: the same error as requests'
        with pytest.raises(AttributeError):
            ours.get(refused)  # type: ignore[arg-type]
        with pytest.raises(AttributeError):
            refused in ours  # noqa: B015
    assert response_headers({"A": "1"}) == CaseInsensitiveDict({"A": "1"})  # any mapping
