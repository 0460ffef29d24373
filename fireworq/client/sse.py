"""Turning httpx-sse's events into the client's L{Event}."""

from __future__ import annotations

import json
from typing import Any

from fireworq.client.models import Event


def event_of(sse: Any) -> Event:
    """An L{Event} from an ``httpx_sse.ServerSentEvent``: data decoded from JSON when it is JSON."""
    try:
        data: Any = json.loads(sse.data) if sse.data else None
    except ValueError:
        data = sse.data
    return Event(sse.event, sse.id, data, sse.retry)
