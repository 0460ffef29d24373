"""
One request to an in-process API in a synchronous unit test, through
L{treq.testing.StubTreq} (no sockets): the shared loop of the API tests.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from twisted.trial.unittest import SynchronousTestCase

#: The host of the stub requests (the API ignores it).
BASE = "http://fireworq.test"


def stub_request(
    case: SynchronousTestCase,
    stub: Any,
    clock: Any,
    method: str,
    path: str,
    data: Optional[bytes] = None,
    **kwargs: Any,
) -> Tuple[Any, bytes]:
    """
    Send ``method path`` (``kwargs``: headers, allow_redirects, ... of
    C{stub.request}), run the clock's zero-delay calls and the stub until the
    answer is there, and return (response, body bytes).
    """
    d = stub.request(method, BASE + path, data=data, **kwargs)
    for _ in range(5):
        clock.advance(0)
        stub.flush()
    response = case.successResultOf(d)
    content_d = response.content()
    stub.flush()
    return response, case.successResultOf(content_d)
