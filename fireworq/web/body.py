"""
Reading request bodies and query parameters strictly: JSON that is not
UTF-8, not an object, or has a field of the wrong type is refused with a 400
that names the problem.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional

from fireworq.model import UINT32_MAX
from fireworq.web.errors import ApiError, bad_request


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes, what: str = "request body") -> Any:
    """
    Decode ``raw`` as one JSON value.

    @raise ApiError: 400 when it is empty, not UTF-8 or not JSON.
    """
    if not raw.strip():
        raise bad_request(f"{what} is empty; a JSON value is required")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad_request(f"{what} is not valid UTF-8 (byte {e.start})")
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as e:
        raise bad_request(f"{what} is not valid JSON: {e}")


def json_object(raw: bytes, what: str = "request body") -> Dict[str, Any]:
    """Decode ``raw`` as a JSON object (400 otherwise)."""
    value = parse_json(raw, what)
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be a JSON object, not {json_type(value)}")
    return value


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def unsigned(
    body: Mapping[str, Any],
    field: str,
    default: int = 0,
    maximum: int = UINT32_MAX,
    where: str = "",
) -> int:
    """
    Field ``field`` of ``body`` as a whole number from 0 to ``maximum``;
    ``default`` when absent or null.

    @raise ApiError: 400 naming the field otherwise.
    """
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer() and 0 <= value <= maximum:
            return int(value)
        raise bad_request(f"{where}field {field} must be a whole number, not {json_type(value)}")
    if value < 0:
        raise bad_request(f"{where}field {field} must not be negative")
    if value > maximum:
        raise bad_request(f"{where}field {field} must be at most {maximum}")
    return value


def number(body: Mapping[str, Any], field: str, maximum: float) -> float:
    """Field ``field`` as a non-negative number (0 when absent or null)."""
    value = body.get(field)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_request(f"field {field} must be a number, not {json_type(value)}")
    if value < 0:
        raise bad_request(f"field {field} must not be negative")
    if value > maximum:
        raise bad_request(f"field {field} must be at most {maximum}")
    return float(value)


def query_arg(request: Any, name: str) -> Optional[str]:
    """The query parameter ``name`` as text, or None when absent."""
    values = request.args.get(name.encode("ascii"))
    if not values:
        return None
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(f"query parameter {name} is not valid UTF-8")


def query_int(request: Any, name: str, default: int, minimum: int, maximum: int) -> int:
    """A whole-number query parameter within bounds (400 otherwise)."""
    text = query_arg(request, name)
    if text is None or text == "":
        return default
    try:
        value = int(text, 10)
    except ValueError:
        raise bad_request(f"query parameter {name} must be a whole number, not {text!r}")
    if not minimum <= value <= maximum:
        raise bad_request(f"query parameter {name} must be between {minimum} and {maximum}")
    return value


def query_choice(request: Any, name: str, default: str, choices: tuple) -> str:
    """A query parameter that must be one of ``choices`` (400 otherwise)."""
    text = query_arg(request, name)
    if text is None or text == "":
        return default
    if text not in choices:
        raise bad_request(
            f"query parameter {name} must be one of {', '.join(choices)}, not {text!r}"
        )
    return text


def path_id(text: str, what: str) -> int:
    """A positive id from a URL path segment (400 when not a number)."""
    if not text.isdigit() or len(text) > 20:
        raise bad_request(f"{what} must be a positive whole number, not {text!r}")
    value = int(text)
    if value <= 0 or value >= 2**64:
        raise bad_request(f"{what} must be a positive whole number below 2^64")
    return value


__all__ = [
    "ApiError",
    "parse_json",
    "json_object",
    "json_type",
    "unsigned",
    "number",
    "query_arg",
    "query_int",
    "query_choice",
    "path_id",
]
