"""A response's header block, read as http.client reads it, at a fraction of the CPU.

http.client hands every header block to the ``email`` package's feed parser, which was built
for mail: it splits, re-joins and re-splits the text, looks for MIME parts and checks every
value for surrogates. On a CPU-bound list that is a sixth of the client's CPU. The block of
an ordinary response (``Name: value`` lines, one per field) is read here in one pass into the
same ``HTTPMessage``; anything else (folded lines, a line with no field name, a stray CR, a
block cut off before its blank line, a multipart or message type) goes to the ``email``
parser exactly as before, so every message http.client would build, defects included, is
built the same. Such a message also answers ``get`` and ``items`` from the index made as it
was read (``FieldsMessage``), where the ``email`` code walks every field for each name asked:
http.client, urllib3 and requests ask five names of every response.
"""

from __future__ import annotations

import email.parser
import http.client
import re
import types
from collections import OrderedDict
from typing import Any, BinaryIO

from requests.structures import CaseInsensitiveDict

# A field line as the email parser takes it: a name of visible characters other than ':'.
_FIELD_LINE = re.compile(rb"[\041-\071\073-\176]+:")
_BLANK = (b"\r\n", b"\n")
_PARTED = ("multipart", "message")  # types the email parser looks for parts in
_COMPAT32 = http.client.HTTPMessage().policy  # every HTTPMessage's own (email.policy's compat32)


class FieldsMessage(http.client.HTTPMessage):
    """An HTTPMessage read from plain ``Name: value`` fields, which answers ``get``,
    ``items`` and ``in`` from ``index`` (each name's first value, by its lower case) for as
    long as its fields are the ones read.

    The ``email`` code would pass each value through the policy's ``header_fetch_parse``,
    which returns a string as it is unless it carries surrogates; values decoded from
    ISO-8859-1 never do. Any change to the fields (``replace_header``, adding, deleting, a
    new list) or to the policy sends every question back to the ``email`` code.
    """

    index: dict[str, str] | None = None
    _indexed: list[tuple[str, Any]] | None = None  # the field list the index was made from
    _count = 0

    def _fresh_index(self) -> dict[str, str] | None:
        fields: list[tuple[str, Any]] = self._headers  # type: ignore[attr-defined]
        if fields is self._indexed and len(fields) == self._count and self.policy is _COMPAT32:
            return self.index
        return None

    def get(self, name: str, failobj: Any = None) -> Any:
        index = self._fresh_index()
        if index is None:
            return super().get(name, failobj)
        return index.get(name.lower(), failobj)

    def items(self) -> list[tuple[str, Any]]:
        if self._fresh_index() is None:
            return super().items()
        return list(self._headers)  # type: ignore[attr-defined]

    def __contains__(self, name: str) -> bool:
        index = self._fresh_index()
        if index is None:
            return super().__contains__(name)
        return name.lower() in index

    def replace_header(self, _name: str, _value: Any) -> None:
        self.index = None  # the one change that keeps the list and its length
        super().replace_header(_name, _value)


def parse_headers(fp: BinaryIO, _class: type[http.client.HTTPMessage] = http.client.HTTPMessage
                  ) -> http.client.HTTPMessage:  # fmt: skip
    """``http.client.parse_headers``: the header block at ``fp`` as an HTTPMessage."""
    lines: list[bytes] = http.client._read_headers(fp)  # type: ignore[attr-defined]
    fields = []
    index: dict[str, str] = {}
    if lines[-1] in _BLANK:
        for line in lines[:-1]:
            if not _FIELD_LINE.match(line) or b"\r" in line[:-2]:
                break  # the email parser's business, defects and all
            name, _, value = line.decode("iso-8859-1").partition(":")
            value = value.lstrip(" \t").rstrip("\r\n")
            fields.append((name, value))
            index.setdefault(name.lower(), value)
        else:
            message = FieldsMessage() if _class is http.client.HTTPMessage else _class()
            message._headers = fields  # type: ignore[attr-defined]  # what set_raw builds
            message.set_payload("")  # the parser's payload: what followed the blank line
            if isinstance(message, FieldsMessage):
                message.index, message._indexed, message._count = index, fields, len(fields)
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


# requests keeps a CaseInsensitiveDict's items in ``_store`` (lower-case name -> (name, value))
# since 2012; were that to change, requests' own ways are taken below.
_STORED = type(getattr(CaseInsensitiveDict(), "_store", None)) is OrderedDict


class Headers(CaseInsensitiveDict[Any]):
    """requests' CaseInsensitiveDict, for a request's headers and a response's, less its slow
    paths: ``copy`` adds every item again, lowering and checking each name, and ``get`` and
    ``in`` raise and catch a KeyError for every name missing, as most names asked of a
    response are (Set-Cookie, ETag, Content-Encoding...). A request's headers are copied
    twice: from the session's, and by urllib3 for every send."""

    def copy(self) -> Headers:
        if not _STORED:
            return Headers(super().copy())
        copied = Headers.__new__(Headers)
        copied._store = self._store.copy()  # type: ignore[attr-defined]
        return copied

    def get(self, key: str, default: Any = None) -> Any:
        if not _STORED:
            return super().get(key, default)
        found = self._store.get(key.lower())  # type: ignore[attr-defined]
        return default if found is None else found[1]

    def __contains__(self, key: object) -> bool:
        if not _STORED:
            return super().__contains__(key)
        return key.lower() in self._store  # type: ignore[attr-defined]


def response_headers(fields: Any) -> Headers:
    """``CaseInsensitiveDict(fields)`` for urllib3's HTTPHeaderDict, as requests'
    ``build_response`` makes it (a name's values joined by ", "), in one pass."""
    if not _STORED or not hasattr(fields, "itermerged"):
        return Headers(fields)
    made = Headers.__new__(Headers)
    made._store = OrderedDict(  # type: ignore[attr-defined]
        (name.lower(), (name, value)) for name, value in fields.itermerged()
    )
    return made
