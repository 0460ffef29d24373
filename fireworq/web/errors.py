"""
Errors the API answers with: a status code and a JSON body
``{"error": <reason phrase>, "message": <what is wrong>}``.  Nothing else
reaches a client: unexpected exceptions become a 500 with a generic message
(the traceback goes to the error log only).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any


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


def error_body(code: int, message: str) -> bytes:
    """The JSON body of an error answer."""
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = "Error"
    return json.dumps({"error": reason, "message": message}).encode("utf-8")


def write_error(request: Any, code: int, message: str) -> bytes:
    """Set the status and content type of ``request``; return the body."""
    body = error_body(code, message)
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body
