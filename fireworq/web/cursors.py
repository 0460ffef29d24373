"""
The opaque ``next_cursor`` strings of the API's lists (jobs, kept jobs,
the failure log): a page key, (time in ms, id), as base64 of
``"<time>,<id>"`` -- the form the original server uses.
"""

from __future__ import annotations

import base64
import binascii
from typing import Optional

from fireworq.model import PageKey


def encode_cursor(key: Optional[PageKey]) -> str:
    """
    Make the opaque ``next_cursor`` string of a page key: base64 of
    ``"<time>,<id>"``, the form the original server uses, or ``""`` at the end.
    """
    if key is None:
        return ""
    return base64.b64encode(f"{key[0]},{key[1]}".encode("ascii")).decode("ascii")


def decode_cursor(cursor: str) -> PageKey:
    """
    Read a cursor made by L{encode_cursor}.

    @raise ValueError: when the cursor is not one of ours.
    """
    try:
        text = base64.b64decode(cursor.encode("ascii"), validate=True).decode("ascii")
        first, second = text.split(",", 1)
        key = (int(first), int(second))
    except (ValueError, UnicodeError, binascii.Error):
        raise ValueError("cursor is not a value returned as next_cursor")
    if key[0] < 0 or key[1] < 0:
        raise ValueError("cursor is not a value returned as next_cursor")
    return key
