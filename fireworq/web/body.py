"""
Reading request bodies and query parameters strictly: JSON that is not
UTF-8, not an object, or has a field of the wrong type is refused with a 400
that names the problem.

JSON numbers are kept exactly as written: a number that a Python C{int} or
C{float} would not reproduce character for character (C{1e400},
C{0.10000000000000000001}, C{1E5}, an integer of thousands of digits) is
read as a L{JsonNumber} holding its text, and L{dump_json} writes it back
unchanged.  So a payload is stored and delivered with its numbers as sent,
and the validators can quote the number the client wrote.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from fireworq.model import UINT32_MAX
from fireworq.web.errors import ApiError, bad_request

#: The deepest nesting of arrays and objects a JSON body may have.  Deeper
#: values would come close to Python's recursion limit when they are encoded
#: again (for the answer, the store and the inspection API).
MAX_JSON_DEPTH = 512

#: The largest id a URL may name: ids are signed 64-bit integers in SQLite
#: and never come near this bound in MySQL.
MAX_ID = 2**63 - 1


#: Integer literals longer than this are kept as text (L{JsonNumber}) rather
#: than converted: Python refuses to convert more than 4300 digits, and the
#: conversion costs quadratic time well before that.
LONG_INTEGER = 300


class JsonNumber:
    """
    A JSON number kept as its literal text, because no C{int} or C{float}
    would write it back the same: too large or too precise for a double,
    written with an exponent or trailing zeros, C{-0}, or an integer of more
    than L{LONG_INTEGER} characters.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"JsonNumber({shown(self)})"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _exact_float(text: str) -> Union[float, JsonNumber]:
    value = float(text)
    return value if repr(value) == text else JsonNumber(text)


def _exact_int(text: str) -> Union[int, JsonNumber]:
    if len(text) > LONG_INTEGER or text == "-0":
        return JsonNumber(text)
    return int(text)


#: Reads integers as C{int} (C speed): right for every integer literal but
#: C{-0} and those of L{LONG_INTEGER} characters or more.
_FAST_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_exact_float)

#: Reads every integer literal through L{_exact_int}, a Python call each.
_EXACT_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_float=_exact_float, parse_int=_exact_int
)

#: A C{-0} that may be an integer literal (not C{-0.5}, C{-0e1} or the
#: C{-01} of a date); inside a string it only costs the slower parse.
_MINUS_ZERO = re.compile(r"-0(?![0-9.eE])")

_DIGITS = "0123456789"


def _may_hold_long_integer(text: str) -> bool:
    """
    Whether ``text`` has a run of L{LONG_INTEGER} or more digits, which an
    integer kept as a L{JsonNumber} needs.  Such a run covers one of every
    L{LONG_INTEGER}th character, so only the runs through those are measured.
    """
    step = LONG_INTEGER
    for at in range(step - 1, len(text), step):
        if text[at] in _DIGITS:
            before = text[max(0, at - step + 1) : at]
            after = text[at + 1 : at + step]
            digits_before = len(before) - len(before.rstrip(_DIGITS))
            digits_after = len(after) - len(after.lstrip(_DIGITS))
            if digits_before + 1 + digits_after >= step:
                return True
    return False


def _needs_exact_integers(text: str) -> bool:
    """Whether ``text`` may hold an integer literal that C{int} would not keep."""
    return ("-0" in text and _MINUS_ZERO.search(text) is not None) or _may_hold_long_integer(text)


def _loads(text: str) -> Any:
    """
    ``text`` as one JSON value, numbers kept exact: as L{_EXACT_DECODER}
    reads it, but through L{_FAST_DECODER} when no integer literal needs
    L{_exact_int} (every integer beyond Python's digit limit is long, so the
    fast parse never meets that limit).
    """
    if text.startswith("\ufeff"):
        # As json.loads refuses it.
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    if _needs_exact_integers(text):
        return _EXACT_DECODER.decode(text)
    return _FAST_DECODER.decode(text)


class _HasJsonNumber(Exception):
    """Raised out of C{json.dumps} when a value holds a L{JsonNumber}."""


def _no_default(value: Any) -> Any:
    if isinstance(value, JsonNumber):
        raise _HasJsonNumber()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dump_json(value: Any) -> str:
    """
    ``value`` as compact JSON text (not ASCII-escaped), L{JsonNumber}s
    written as their text.
    """
    try:
        return _dumps(value)
    except _HasJsonNumber:
        parts: List[str] = []
        _encode(value, parts, 2)
        return "".join(parts)


#: The encoder of L{dump_json}, made once: C{json.dumps} with options makes
#: a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_no_default)

#: ``value`` as compact JSON text; L{_HasJsonNumber} when it holds a L{JsonNumber}.
_dumps = _ENCODER.encode


def _encode(value: Any, out: List[str], tries: int) -> None:
    """
    The slow path of L{dump_json}, for values holding a L{JsonNumber}.  The
    items of the top ``tries`` levels (the jobs of a list, the fields of a
    job) are first given to the C encoder, so that only the parts that hold
    a L{JsonNumber} are encoded here.
    """
    if isinstance(value, str):
        out.append(encode_basestring(value))
    elif isinstance(value, JsonNumber):
        out.append(value.text)
    elif isinstance(value, (dict, list, tuple)):
        is_dict = isinstance(value, dict)
        out.append("{" if is_dict else "[")
        items = value.items() if is_dict else enumerate(value)
        for index, (key, item) in enumerate(items):
            if index:
                out.append(",")
            if is_dict:
                out.append(encode_basestring(key if isinstance(key, str) else json.dumps(key)))
                out.append(":")
            if tries > 0:
                try:
                    out.append(_dumps(item))
                    continue
                except _HasJsonNumber:
                    pass
            _encode(item, out, tries - 1)
        out.append("}" if is_dict else "]")
    else:
        out.append(_dumps(value))


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
    Decode ``raw`` as one JSON value, numbers kept exact (L{JsonNumber}).

    @raise ApiError: 400 when it is empty, not UTF-8, not JSON, holds
        C{NaN} or C{Infinity} (not JSON), or nests deeper than
        L{MAX_JSON_DEPTH} levels.
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
        value = _loads(text)
    except RecursionError:
        raise bad_request(too_deep)
    except ValueError as e:
        raise bad_request(f"{what} is not valid JSON: {e}")
    # Only a body with enough brackets can be too deep: skip the walk otherwise.
    if isinstance(value, (dict, list)) and raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
        if _deeper_than(value, MAX_JSON_DEPTH):
            raise bad_request(too_deep)
    return value


def stored_json_value(text: str) -> Any:
    """
    How the inspection API shows a stored payload: valid JSON text is shown
    as that JSON value (numbers exactly as stored), anything else -- and
    JSON nested deeper than L{MAX_JSON_DEPTH} levels -- as a string.
    """
    try:
        value = _loads(text)
    except (ValueError, RecursionError):
        return text
    if isinstance(value, (dict, list)) and text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        if _deeper_than(value, MAX_JSON_DEPTH):
            return text
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
    if isinstance(value, (int, float, JsonNumber)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def shown(value: Any) -> str:
    """A number (or path segment) as the client wrote it, shortened for a message."""
    if isinstance(value, JsonNumber):
        text = value.text
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    if len(text) > 40:
        return f"{text[:20]}… ({len(text)} characters)"
    return text


def _exact(value: Union[int, float, JsonNumber]) -> Decimal:
    """The exact value of a JSON number, whatever its size."""
    if not isinstance(value, JsonNumber):
        return Decimal(value)
    try:
        return Decimal(value.text)
    except InvalidOperation:
        # An exponent beyond what Decimal holds: the value is astronomically
        # large or small (or zero).
        mantissa, _, exponent = value.text.lower().partition("e")
        if not mantissa.strip("-+0."):
            return Decimal(0)
        sign = "-" if mantissa.startswith("-") else ""
        return Decimal(f"{sign}1e-999999" if exponent.startswith("-") else f"{sign}1e999999")


def _plain(number: Union[int, float]) -> str:
    """``number`` for a message: 1000000 rather than 1000000.0."""
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return str(number)


def unsigned(
    body: Mapping[str, Any],
    field: str,
    default: int = 0,
    maximum: int = UINT32_MAX,
    where: str = "",
    unit: str = "",
) -> int:
    """
    Field ``field`` of ``body`` as a whole number from 0 to ``maximum``;
    ``default`` when absent or null.  A number with a fraction or exponent
    whose value is whole (C{2.0}, C{1e3}) is accepted as that integer.
    ``unit`` (say C{"seconds"}) is named in the message for a fraction.

    @raise ApiError: 400 naming the field and the value otherwise.
    """
    value = body.get(field)
    if value is None:
        return default
    if type(value) is int and 0 <= value <= maximum:
        return value
    whole = f"a whole number of {unit}" if unit else "a whole number"
    if isinstance(value, bool) or not isinstance(value, (int, float, JsonNumber)):
        raise bad_request(f"{where}field {field} must be {whole}, not {json_type(value)}")
    exact = _exact(value)
    if exact < 0:
        raise bad_request(f"{where}field {field} must not be negative, got {shown(value)}")
    if exact != exact.to_integral_value():
        raise bad_request(f"{where}field {field} must be {whole}, got {shown(value)}")
    if exact > maximum:
        raise bad_request(f"{where}field {field} must be at most {maximum}, got {shown(value)}")
    return int(exact)


def number(body: Mapping[str, Any], field: str, maximum: float, minimum: float = 0.0) -> float:
    """
    Field ``field`` as a number: 0 (also when absent or null), or from
    ``minimum`` to ``maximum``.

    @raise ApiError: 400 naming the field and the value otherwise.
    """
    value = body.get(field)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float, JsonNumber)):
        raise bad_request(f"field {field} must be a number, not {json_type(value)}")
    exact = _exact(value)
    if exact < 0:
        raise bad_request(f"field {field} must not be negative, got {shown(value)}")
    if exact > Decimal(maximum):
        raise bad_request(f"field {field} must be at most {_plain(maximum)}, got {shown(value)}")
    if exact == 0:
        return 0.0
    if exact < Decimal(str(minimum)):
        raise bad_request(
            f"field {field} must be 0 or at least {_plain(minimum)}, got {shown(value)}"
        )
    return float(value) if isinstance(value, (int, float)) else float(exact)


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
    """
    An id from a URL path segment: a whole number from 0 to L{MAX_ID} (an id
    that is not stored is then a 404).  400 when it is not a whole number,
    negative or beyond L{MAX_ID}.
    """
    if text.isascii() and text.isdigit():
        digits = text.lstrip("0") or "0"
        if len(digits) <= 19 and int(digits) <= MAX_ID:
            return int(digits)
        raise bad_request(f"{what} must be at most {MAX_ID}, got {shown(text)}")
    if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
        raise bad_request(f"{what} must not be negative, got {shown(text)}")
    raise bad_request(f"{what} must be a whole number, not {text[:40]!r}")


__all__ = [
    "ApiError",
    "JsonNumber",
    "dump_json",
    "parse_json",
    "stored_json_value",
    "json_object",
    "json_type",
    "unsigned",
    "number",
    "shown",
    "query_arg",
    "query_int",
    "query_choice",
    "path_id",
    "MAX_JSON_DEPTH",
    "MAX_ID",
]
