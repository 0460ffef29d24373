"""
A Python client of Fireworq (protocol B16): L{Client} (synchronous) and
L{AsyncClient} (asyncio) over the whole HTTP API, typed errors, batch
pushes of any size, iterators over cursor pages, live events, and helpers
for workers (L{WebhookVerifier}, L{parse_delivery}).

It does not import Twisted: a program that only pushes jobs needs httpx
and attrs, nothing of the server.  See docs/client.md.

    from fireworq.client import Client

    with Client("http://127.0.0.1:8080") as fq:
        job = fq.push("mail/welcome", "http://127.0.0.1:3000/work", {"user": 42}, max_retries=3)
"""

from fireworq.client.aio import AsyncClient
from fireworq.client.encoding import MAX_BATCH, JobSpec
from fireworq.client.errors import (
    APIError,
    BadRequest,
    BatchError,
    Conflict,
    FireworqError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    NotImplementedByServer,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    SignatureError,
    TransportError,
    Unauthorized,
    UnexpectedAnswer,
)
from fireworq.client.models import (
    BatchFailure,
    BatchResult,
    Event,
    FailedJob,
    FailureResult,
    Job,
    Node,
    Page,
    PushedJob,
    Queue,
    Routing,
)
from fireworq.client.retry import NO_RETRY, RetryPolicy
from fireworq.client.sync import Client
from fireworq.client.worker import Delivery, WebhookVerifier, parse_delivery

__all__ = [
    "APIError", "AsyncClient", "BadRequest", "BatchError", "BatchFailure", "BatchResult", "Client",
    "Conflict", "Delivery", "Event", "FailedJob", "FailureResult", "FireworqError", "Forbidden", "Job",
    "JobSpec", "MAX_BATCH", "MethodNotAllowed", "NO_RETRY", "Node", "NotFound", "NotImplementedByServer",
    "Page", "PayloadTooLarge", "PushedJob", "Queue", "RateLimited", "RetryPolicy", "Routing",
    "ServerError", "ServiceUnavailable", "SignatureError", "TransportError", "Unauthorized", "UnexpectedAnswer",
    "WebhookVerifier", "parse_delivery",
]
