"""
What the API answers, in bytes and in words, to a request it answers
without routing it: the whole HTTP/1.1 error answer written straight to a
connection (L{raw_answer}, L{raw_error}), and why Twisted's parser refused a
request line or header line (L{request_line_problem}, L{header_problem}),
or a request target carries a byte it may not (L{RAW_BYTE},
L{raw_byte_problem}).  Pure functions; the channel
(L{fireworq.web.channel}), the connection cap
(L{fireworq.web.connection_cap}) and the request's URL check
(L{fireworq.web.request}) use them.
"""

from __future__ import annotations

import re
from typing import Tuple

from fireworq.web.errors import error_body, phrase


def raw_error(code: int, message: str, headers: Tuple[Tuple[bytes, bytes], ...] = ()) -> bytes:
    """
    A whole HTTP/1.1 error answer with a JSON body, for answering on a
    connection that has no request object to answer through; it asks the
    client to close (the server closes the connection after it).
    """
    return raw_answer(code, error_body(code, message), headers)


def raw_answer(code: int, body: bytes, headers: Tuple[Tuple[bytes, bytes], ...] = ()) -> bytes:
    """L{raw_error} with its JSON ``body`` made already."""
    lines = [
        b"HTTP/1.1 %d %s" % (code, phrase(code).encode("ascii")),
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
        b"Connection: close",
    ]
    lines.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


#: A byte a request target may not carry raw: anything outside printable
#: ASCII.  Twisted's parser refuses most of them, but not 0x7f-0xb0 (it
#: compares with 176, meant as octal), so requests are checked again.
RAW_BYTE = re.compile(rb"[^\x21-\x7e]")


def raw_byte_problem(byte: int) -> str:
    """The refusal of a request target carrying ``byte`` raw."""
    return (
        f"the URL contains the raw byte 0x{byte:02x}; "
        "characters outside printable ASCII must be percent-encoded (UTF-8)"
    )


def request_line_problem(line: bytes) -> str:
    """
    Why Twisted's parser refused the request line ``line``, in words (the
    rules of C{twisted.web.http._parseRequestLine}).
    """
    parts = line.split(b" ")
    if len(parts) != 3:
        return "the request line must be a method, a target and HTTP/1.1 separated by single spaces"
    method, target, version = parts
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        return "only HTTP/1.0 and HTTP/1.1 requests are understood"
    raw = RAW_BYTE.search(target)
    if raw is not None:
        return raw_byte_problem(raw.group()[0])
    if not target:
        return "the request line has an empty target"
    return "the request method is not a valid token"


def header_problem(line: bytes) -> str:
    """Why Twisted's parser refused the header line ``line``, in words."""
    name, colon, value = line.partition(b":")
    value = value.strip(b" \t")
    if colon and name.strip().lower() == b"content-length" and not value.isdigit():
        shown = value[:40].decode("latin-1")
        return f"the Content-Length header must be a whole number of bytes, not {shown!r}"
    if colon and name.strip().lower() == b"transfer-encoding":
        return "Transfer-Encoding must be chunked (or identity), and not sent with Content-Length"
    return (
        "a header line is malformed (a field needs a name, a colon and a value without NUL, "
        "CR or LF), or Content-Length and Transfer-Encoding disagree"
    )
