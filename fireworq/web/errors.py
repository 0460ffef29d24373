"""
Errors the API answers with: a status code and a JSON body
``{"error": <reason phrase>, "message": <what is wrong>}``.  Nothing else
reaches a client: unexpected exceptions become a 500 with a generic message
(the traceback goes to the error log only).
"""

from __future__ import annotations

import json
from typing import Any, Dict


class ApiError(Exception):
    """An answer other than 200, with a message that names the problem."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bad_request(message: str) -> ApiError:
    """400: the request is malformed; ``message`` names the field."""
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    """404: the named thing does not exist."""
    return ApiError(404, message)


#: The reason phrase of every status the API answers with, written once so
#: that the status line and the JSON body's ``error`` agree on every Python
#: version (``http.HTTPStatus`` renamed 413, 414, 416 and 422 in Python 3.13,
#: and Twisted's own table has no 422 or 431).  The wording is the one
#: clients of this server have always seen.
PHRASES: Dict[int, str] = {
    200: "OK",
    201: "Created",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Requested Range Not Satisfiable",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


#: Compact JSON, as L{fireworq.web.body.dump_json} writes every other answer
#: (that module imports this one, so the encoder is made here too).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def phrase(code: int) -> str:
    """The reason phrase of ``code`` (``Error`` for a code not in L{PHRASES})."""
    return PHRASES.get(code, "Error")


def error_body(code: int, message: str) -> bytes:
    """The JSON body of an error answer: compact, like every other answer."""
    return _ENCODER.encode({"error": phrase(code), "message": message}).encode("utf-8")


def write_error(request: Any, code: int, message: str) -> bytes:
    """Set the status, its phrase and the content type of ``request``; return the body."""
    body = error_body(code, message)
    request.setResponseCode(code, phrase(code).encode("ascii"))
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body
