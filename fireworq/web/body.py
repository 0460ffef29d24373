"""
Reading request bodies and query parameters strictly: JSON that is not
UTF-8, not an object, or has a field of the wrong type is refused with a 400
that names the problem.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

from fireworq.model import UINT32_MAX
from fireworq.web.errors import ApiError, bad_request

#: The deepest nesting of arrays and objects a JSON body may have.  Deeper
#: values would come close to Python's recursion limit when they are encoded
#: again (for the answer, the store and the inspection API).
MAX_JSON_DEPTH = 512

#: The largest id a URL may name: ids are signed 64-bit integers in SQLite
#: and never come near this bound in MySQL.
MAX_ID = 2**63 - 1


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is too large")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels deep."""
    stack: List[Tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def parse_json(raw: bytes, what: str = "request body") -> Any:
    """
    Decode ``raw`` as one JSON value.

    @raise ApiError: 400 when it is empty, not UTF-8, not JSON, holds
        C{NaN}, C{Infinity} or a number too large for a double, or nests
        deeper than L{MAX_JSON_DEPTH} levels.
    """
    if not raw.strip():
        raise bad_request(f"{what} is empty; a JSON value is required")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad_request(f"{what} is not valid UTF-8 (byte {e.start})")
    if text.startswith("\ufeff"):
        text = text[1:]
    too_deep = f"{what} is nested too deeply (at most {MAX_JSON_DEPTH} levels of arrays and objects)"
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise bad_request(too_deep)
    except ValueError as e:
        raise bad_request(f"{what} is not valid JSON: {e}")
    # Only a body with enough brackets can be too deep: skip the walk otherwise.
    if isinstance(value, (dict, list)) and raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
        if _deeper_than(value, MAX_JSON_DEPTH):
            raise bad_request(too_deep)
    return value


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
    if len(values) > 1:
        raise bad_request(f"query parameter {name} is given more than once")
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(f"query parameter {name} is not valid UTF-8")


def query_int(request: Any, name: str, default: int, minimum: int, maximum: int) -> int:
    """
    A whole-number query parameter within bounds (400 otherwise);
    ``default`` when absent or empty (as the original server does).
    """
    text = query_arg(request, name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()):
        raise bad_request(f"query parameter {name} must be a whole number, not {text[:40]!r}")
    if len(text) > 20 or not minimum <= int(text, 10) <= maximum:
        raise bad_request(f"query parameter {name} must be between {minimum} and {maximum}")
    return int(text, 10)


def query_choice(request: Any, name: str, default: str, choices: tuple) -> str:
    """
    A query parameter that must be one of ``choices`` (400 otherwise);
    ``default`` when absent or empty (as the original server does).
    """
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
    if not (text.isascii() and text.isdigit()):
        raise bad_request(f"{what} must be a positive whole number, not {text[:40]!r}")
    if len(text) > 20 or not 0 < int(text) <= MAX_ID:
        raise bad_request(f"{what} must be a positive whole number up to {MAX_ID}")
    return int(text)


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
    "MAX_JSON_DEPTH",
    "MAX_ID",
]
