"""
What a queue name, a category and a worker URL may be.

Names that cannot be stored faithfully are refused rather than truncated:
the original schema keeps categories and queue names in VARCHAR(255) columns
of binary tables, so each may take at most 255 bytes of UTF-8.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from fireworq.model import NAME_MAX_BYTES

#: Bytes a worker URL may take (the ``url`` column is a BLOB).
URL_MAX_BYTES = 65535

#: Bytes a job's payload may take (the ``payload`` column is a MEDIUMBLOB).
PAYLOAD_MAX_BYTES = (1 << 24) - 1

#: Control characters: C0, DEL and C1 (U+0080-U+009F, NEL U+0085 among them).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

#: Names that a path cannot carry: browsers, proxies and most HTTP clients
#: resolve ``/queue/.`` and ``/queue/..`` as dot-segments (RFC 3986 5.2.4;
#: browsers ``%2E%2E`` as well) before sending, so such a queue, schedule or
#: category routing could never be reached.
_DOT_SEGMENTS = (".", "..")
_TABLE_UNSAFE = re.compile(r"[^0-9a-z_]")


class InvalidName(ValueError):
    """A name or URL that the server refuses, with the reason."""


def _check_text(kind: str, text: str) -> None:
    if not text:
        raise InvalidName(f"{kind} must not be empty")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidName(f"{kind} is not valid Unicode text")
    if size > NAME_MAX_BYTES:
        raise InvalidName(f"{kind} is {size} bytes long; at most {NAME_MAX_BYTES} bytes of UTF-8 are allowed")
    if _CONTROL.search(text):
        raise InvalidName(f"{kind} must not contain control characters")


def check_queue_name(name: str) -> None:
    """
    @raise InvalidName: unless ``name`` is 1-255 bytes of UTF-8 without
        control characters or ``/``, and not ``.`` or ``..``.
    """
    _check_text("queue name", name)
    if "/" in name:
        raise InvalidName("queue name must not contain '/'")
    if name in _DOT_SEGMENTS:
        raise InvalidName(
            f"queue name must not be {name!r}: clients resolve it as a path segment, "
            "so the queue could not be reached"
        )


def check_schedule_name(name: str) -> None:
    """
    @raise InvalidName: unless ``name`` is 1-255 bytes of UTF-8 without
        control characters or ``/``, and not ``.`` or ``..`` (B10).
    """
    _check_text("schedule name", name)
    if "/" in name:
        raise InvalidName("schedule name must not contain '/'")
    if name in _DOT_SEGMENTS:
        raise InvalidName(f"schedule name must not be {name!r}")


def check_category(category: str) -> None:
    """
    @raise InvalidName: unless ``category`` is 1-255 bytes of UTF-8 without
        control characters, does not start with ``/`` and is not ``.`` or
        ``..``.

    ``/`` is allowed elsewhere, and so are segments ``.`` and ``..`` between
    slashes (``x/../y``): a client reaches those by percent-encoding the dots
    (``x/%2E%2E/y``, as L{fireworq.client} does) or the slashes
    (``x%2F..%2Fy``, as browsers' ``encodeURIComponent`` does).  A whole
    category ``.`` or ``..`` has no spelling that every client keeps (browsers
    resolve ``%2E%2E`` too), and one starting with ``/`` would make ``//`` in
    ``/routing/{category}``: neither could be routed, so both are refused.
    """
    _check_text("category", category)
    if category[0] == "/":
        raise InvalidName("category must not start with '/': its routing could not be reached by a URL")
    if category in _DOT_SEGMENTS:
        raise InvalidName(
            f"category must not be {category!r}: clients resolve it as a path segment, "
            "so its routing could not be reached"
        )


def check_worker_url(url: str) -> None:
    """
    @raise InvalidName: unless ``url`` is an absolute http or https URL that
        fits the url column.
    """
    if not url:
        raise InvalidName("url must not be empty")
    try:
        size = len(url.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidName("url is not valid Unicode text")
    if size > URL_MAX_BYTES:
        raise InvalidName(f"url is {size} bytes long; at most {URL_MAX_BYTES} are allowed")
    if _CONTROL.search(url) or " " in url:
        raise InvalidName("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port
    except ValueError as e:
        raise InvalidName(f"url is not a valid URL: {e}")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidName("url must be an absolute http:// or https:// URL with a host")


def storage_key(queue_name: str) -> str:
    """
    The part of the original's table names that stands for the queue: the
    name with every character outside ``[0-9a-z_]`` replaced by ``_``
    (protocol A9).  Names with equal keys would share the original's
    tables, so with the MySQL store the server refuses to define the second
    (see L{fireworq.store.interface.IJobStore.storage_key}); the other
    stores keep every exact name apart.
    """
    return _TABLE_UNSAFE.sub("_", queue_name)
