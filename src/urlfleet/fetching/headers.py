"""A response's header block, read as http.client reads it, at a fraction of the CPU.

http.client hands every header block to the ``email`` package's feed parser, which was built
for mail: it splits, re-joins and re-splits the text, looks for MIME parts and checks every
value for surrogates. On a CPU-bound list that is a sixth of the client's CPU. The block of
an ordinary response (``Name: value`` lines, one per field) is read here in one pass into the
same ``HTTPMessage``; anything else (folded lines, a line with no field name, a stray CR, a
block cut off before its blank line, a multipart or message type) goes to the ``email``
parser exactly as before, so every message http.client would build, defects included, is
built the same.
"""

from __future__ import annotations

import email.parser
import http.client
import re
import types
from typing import Any, BinaryIO

# A field line as the email parser takes it: a name of visible characters other than ':'.
_FIELD_LINE = re.compile(rb"[\041-\071\073-\176]+:")
_BLANK = (b"\r\n", b"\n")
_PARTED = ("multipart", "message")  # types the email parser looks for parts in


def parse_headers(fp: BinaryIO, _class: type[http.client.HTTPMessage] = http.client.HTTPMessage
                  ) -> http.client.HTTPMessage:  # fmt: skip
    """``http.client.parse_headers``: the header block at ``fp`` as an HTTPMessage."""
    lines: list[bytes] = http.client._read_headers(fp)  # type: ignore[attr-defined]
    fields = []
    if lines[-1] in _BLANK:
        for line in lines[:-1]:
            if not _FIELD_LINE.match(line) or b"\r" in line[:-2]:
                break  # the email parser's business, defects and all
            name, _, value = line.decode("iso-8859-1").partition(":")
            fields.append((name, value.lstrip(" \t").rstrip("\r\n")))
        else:
            message = _class()
            message._headers = fields  # type: ignore[attr-defined]  # what set_raw builds
            message.set_payload("")  # the parser's payload: what followed the blank line
            if message.get_content_maintype() not in _PARTED:
                return message
    text = b"".join(lines).decode("iso-8859-1")
    return email.parser.Parser(_class=_class).parsestr(text)


def _reading_headers_with(function: Any, parser: Any) -> Any:
    # http.client's own code, with its module's ``parse_headers`` name bound to ``parser``:
    # http.client offers no hook for the header parser, and a copy of its code could drift.
    namespace = {**vars(http.client), "parse_headers": parser}
    return types.FunctionType(function.__code__, namespace, function.__name__,
                              function.__defaults__, function.__closure__)  # fmt: skip


class QuickHeadersResponse(http.client.HTTPResponse):
    """http.client's response, its header block read by ``parse_headers`` above."""

    begin = _reading_headers_with(http.client.HTTPResponse.begin, parse_headers)
