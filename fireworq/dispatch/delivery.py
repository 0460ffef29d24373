"""
Delivering one job to its worker (A1, B3): POST the payload with treq, wait
for the whole answer within the job's timeout, and classify it as a
L{Result}.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

import attr

from twisted.internet.defer import Deferred, TimeoutError as DeferredTimeoutError
from twisted.internet.error import TimeoutError as ConnectionTimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from fireworq.dispatch.client import collect
from fireworq.dispatch.tls import certificate_refused
from fireworq.dispatch.retry import retry_after_of
from fireworq.joboptions.values import NO_OPTIONS, SUCCESS_2XX
from fireworq.model import Job, Result, ResultStatus

#: The largest worker answer read; a longer one is a failure.
MAX_RESPONSE_BYTES = 1024 * 1024

#: How much of an unusable worker answer is quoted in the result message.
QUOTED_BODY_BYTES = 4096

#: Answers up to this long are read once and remembered (L{answer_of}):
#: workers send the same few answers again and again
#: (C{{"status":"success"}}).
REMEMBERED_ANSWER_BYTES = 512

#: How many distinct short answers are remembered (then it starts over).
REMEMBERED_ANSWERS = 256


class ResponseTooLarge(Exception):
    """The worker's answer exceeded L{MAX_RESPONSE_BYTES}."""


class _CappedBody:
    """Collects a response body, refusing more than ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.chunks: List[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            # Keep what fits: the start of the answer (B8's output).
            self.chunks.append(data[: max(0, len(data) - (self.size - self.limit))])
            raise ResponseTooLarge(f"response larger than {self.limit} bytes")
        self.chunks.append(data)

    def body(self) -> bytes:
        return b"".join(self.chunks)


def _quote(body: bytes) -> str:
    text = body[:QUOTED_BODY_BYTES].decode("utf-8", "replace")
    if len(body) > QUOTED_BODY_BYTES:
        text += "…"
    return text


class _Object(dict):
    """A parsed JSON object that remembers its members in order, duplicates too."""

    pairs: List[Tuple[str, Any]]


def _object(pairs: List[Tuple[str, Any]]) -> _Object:
    value = _Object(pairs)
    value.pairs = pairs
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name!r} looking for beginning of value")


#: JSON types as Go's encoding/json names them in its errors.
_JSON_TYPES = ((bool, "bool"), (str, "string"), (int, "number"), (float, "number"), (list, "array"))


def _json_type(value: Any) -> str:
    for kind, name in _JSON_TYPES:
        if isinstance(value, kind):
            return name
    return "object"


def _member(value: _Object, name: str) -> Any:
    """
    The member ``name`` of an answer as the original's Go decoder finds it:
    keys match case-insensitively, the last match wins, and null is as if
    absent.
    """
    found = None
    for key, member in value.pairs:
        if key.casefold() == name and member is not None:
            found = member
    return found


#: Reads an answer as plain C{json.loads} does, refusing NaN and Infinity
#: as L{_classify_exactly} does.
_PLAIN_DECODER = json.JSONDecoder(parse_constant=_no_constant)

_FIELD_NAMES = ("status", "message")

#: The statuses a worker may report.
_REPORTABLE = frozenset(
    (ResultStatus.SUCCESS.value, ResultStatus.FAILURE.value, ResultStatus.PERMANENT_FAILURE.value)
)


def _plain_fields(body: bytes) -> Optional[Tuple[str, Any]]:
    """
    The status and message of an answer whose plain parse is certain to
    find what L{_member} finds: a JSON object whose ``status`` is a string
    and with no other key matching ``status`` or ``message`` (a duplicate
    key is met by the plain parse as its last value, as L{_member} does when
    that value is not null).  None for any other answer.
    """
    try:
        value = _PLAIN_DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except ValueError:
        return None
    if type(value) is not dict:
        return None
    status = value.get("status")
    if type(status) is not str:
        return None
    message = value.get("message", "")
    if message is None:
        # Maybe the last of several, after one that is not null.
        return None
    if len(value) > 1 + ("message" in value):
        for key in value:
            if key != "status" and key != "message" and key.casefold() in _FIELD_NAMES:
                return None
    return status, message


def classify(code: int, body: bytes) -> Result:
    """
    Turn a worker's HTTP answer into a L{Result}: its JSON ``status`` decides
    (A1); the HTTP status code is only recorded.

    The answer is read as the original reads it into a Go struct: a body
    that is not JSON, or JSON of the wrong shape (not an object, a status
    that is not a string) cannot be parsed; JSON ``null``, a missing or null
    status is an empty status, reported as "Invalid result status: ".

    Most answers are plain (L{_plain_fields}); the others are read member
    by member (L{_classify_exactly}), with the same outcome.
    """
    fields = _plain_fields(body)
    if fields is None:
        return _classify_exactly(code, body)
    return _result(code, body, *fields)


def _classify_exactly(code: int, body: bytes) -> Result:
    """L{classify}, every member of the answer seen as Go's decoder sees it."""
    try:
        value: Any = json.loads(body, object_pairs_hook=_object, parse_constant=_no_constant)
    except ValueError as e:
        return _unparsable(code, body, str(e))
    if value is None:
        value = _object([])
    if not isinstance(value, _Object):
        return _unparsable(
            code, body, f"cannot unmarshal {_json_type(value)} into a result object"
        )
    status = _member(value, "status")
    if status is None:
        status = ""
    elif not isinstance(status, str):
        return _unparsable(
            code,
            body,
            f"cannot unmarshal {_json_type(status)} into result field status of type string",
        )
    return _result(code, body, status, _member(value, "message"))


def _result(code: int, body: bytes, status: str, message: Any) -> Result:
    """The L{Result} of an answer whose status is ``status``."""
    if message is None:
        message = ""
    elif not isinstance(message, str):
        message = json.dumps(message)
    if status not in _REPORTABLE:
        return Result(
            ResultStatus.FAILURE.value,
            code,
            f"Invalid result status: {status}\nOriginal response body:\n{_quote(body)}",
        )
    return Result(status, code, message)


def _unparsable(code: int, body: bytes, reason: str) -> Result:
    return Result(
        ResultStatus.FAILURE.value,
        code,
        f"Cannot parse body as JSON: {reason}\nOriginal response body:\n{_quote(body)}",
    )


def _describe(failure: Failure) -> str:
    """A one-line reason, looking inside twisted.web's wrapped failures."""
    reasons = getattr(failure.value, "reasons", None) or []
    if reasons:
        return "; ".join(_describe(r) for r in reasons)
    return failure.getErrorMessage() or failure.type.__name__


def _timed_out(result: object, timeout: float) -> None:
    """Turn the cancellation of a delivery that ran out of time into a timeout."""
    raise DeferredTimeoutError(timeout, "Deferred")


class HTTPDeliverer:
    """
    Sends jobs to workers through one treq client (normally over a pooled
    L{twisted.web.client.HTTPConnectionPool}).

    @ivar http: anything with treq's C{post} that fires with an
        C{IResponse}: a L{fireworq.dispatch.client.DeliveryClient}, or
        C{treq.testing.StubTreq} in tests.
    """

    def __init__(
        self,
        http: Any,
        user_agent: str,
        clock: IReactorTime,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        pool: Any = None,
        min_idle_per_host: int = 0,
        signing: Any = None,
    ) -> None:
        self.http = http
        #: Where the queue's signer is found (B11): anything with
        #: C{signer(queue_name)} -> a L{fireworq.signing.signer.Signer} or None.
        self.signing = signing
        self.user_agent = user_agent
        self.clock = clock
        self.max_response_bytes = max_response_bytes
        self.pool = pool
        self.min_idle_per_host = min_idle_per_host
        #: Keep the first 64 KiB of each answer as the result's output
        #: (B8: set by the dispatcher while its queue keeps finished jobs).
        self.keep_output = False
        #: The hook registry (B12) -- set only on the deliverer of the
        #: internal queue ``_hooks``, whose jobs are signed with their hook's
        #: secret (L{fireworq.hooks.registry.HookRegistry.signer}).
        self.hooks: Any = None

    def resize(self, max_workers: int) -> None:
        """Keep enough idle connections for ``max_workers`` deliveries."""
        if self.pool is not None:
            self.pool.maxPersistentPerHost = max(1, self.min_idle_per_host, max_workers)

    def close(self) -> "Deferred[None]":
        """Close idle worker connections (on shutdown)."""
        if self.pool is None:
            return _fired(None)
        return self.pool.closeCachedConnections()

    def headers(self, queue_name: str, job: Job) -> dict:
        """
        The request headers of a delivery (A1 and B3), plus the job's own
        ``headers`` (B7; a job's ``User-Agent`` replaces the configured one).
        """
        headers = {
            b"Content-Type": [b"application/json"],
            b"User-Agent": [self.user_agent.encode("utf-8")],
            b"X-Fireworq-Job-Id": [str(job.id).encode("ascii")],
            b"X-Fireworq-Queue": [queue_name.encode("utf-8")],
            b"X-Fireworq-Category": [job.category.encode("utf-8")],
            b"X-Fireworq-Attempt": [str(job.attempt).encode("ascii")],
        }
        if job.options is not NO_OPTIONS and job.options.headers:
            extra = job.options.delivery_headers()
            if any(name.lower() == b"user-agent" for name in extra):
                del headers[b"User-Agent"]
            headers.update(extra)
        return headers

    def deliver(self, queue_name: str, job: Job) -> "Deferred[Result]":
        """
        POST ``job`` to its worker.  Never fails: every problem becomes a
        failure L{Result}.  The job's timeout (if any) covers the whole
        exchange, body included; when it runs out, the connection to the
        worker is aborted (it never goes back to the pool).
        """
        signing = self.signing
        if signing is not None and signing.waiting:
            # Starting: wait for the signing keys rather than send unsigned.
            waited = signing.when_loaded()
            waited.addCallback(lambda _: self.deliver(queue_name, job))
            waited.addErrback(self._failed, job, {"code": 0})
            return waited
        hooks = self.hooks
        if hooks is not None and not hooks.loaded:
            waited = hooks.when_loaded()
            waited.addCallback(lambda _: self.deliver(queue_name, job))
            waited.addErrback(self._failed, job, {"code": 0})
            return waited
        try:
            body = job.payload.encode("utf-8")
            headers = self.headers(queue_name, job)
            if hooks is not None:
                signer = hooks.signer(job)
                if signer is None:
                    return _fired(hooks.gone(job))
            else:
                signer = signing.signer(queue_name) if signing is not None else None
            if signer is not None:
                headers.update(signer.headers(job.id, body, self.clock.seconds()))
            d = self.http.post(job.url, data=body, headers=headers, allow_redirects=False)
        except Exception as e:
            return _fired(
                Result(
                    ResultStatus.INTERNAL_FAILURE.value,
                    0,
                    f"Cannot create http request: {e}",
                )
            )
        state: dict = {"code": 0}

        def read(response: Any) -> "Deferred[Result]":
            state["code"] = response.code
            state["response"] = response
            body = _CappedBody(self.max_response_bytes)
            state["body"] = body
            # Cancelled by the timeout, this aborts the connection (client.py).
            collected = collect(response, body)
            collected.addCallback(lambda _: self._judge(job, response, body.body()))
            return collected

        d.addCallback(read)
        if job.timeout > 0:
            d.addTimeout(job.timeout, self.clock, onTimeoutCancel=_timed_out)
        d.addErrback(self._failed, job, state)
        return d

    def _judge(self, job: Job, response: Any, body: bytes) -> Result:
        """
        The L{Result} of a complete answer under the job's success rule
        (B7), with the C{Retry-After} of an answer that is not a success.
        """
        result = answer_of(job.options is not NO_OPTIONS and job.options.success == SUCCESS_2XX,
                           response.code, body)
        if not result.is_success:
            result = self._with_retry_after(result, response)
        if self.keep_output:
            result = _with_output(result, body)
        return result

    def _with_retry_after(self, result: Result, response: Any) -> Result:
        """``result`` with the seconds the answer's C{Retry-After} asks for, if any."""
        values = response.headers.getRawHeaders(b"retry-after")
        if not values:
            return result
        wait = retry_after_of(values, self.clock.seconds())
        return result if wait is None else attr.evolve(result, retry_after=wait)

    def _failed(self, failure: Failure, job: Job, state: dict) -> Result:
        result = self._failure(failure, job, state)
        response = state.get("response")
        if response is not None:
            result = self._with_retry_after(result, response)
            if self.keep_output and "body" in state:
                # What arrived before the answer failed (too large, cut off).
                result = _with_output(result, state["body"].body())
        return result

    def _failure(self, failure: Failure, job: Job, state: dict) -> Result:
        code = state["code"]
        if failure.check(DeferredTimeoutError, ConnectionTimeoutError):
            return Result(
                ResultStatus.INTERNAL_FAILURE.value,
                code,
                f"Request failed: no complete answer within the timeout of {job.timeout}s",
            )
        if failure.check(ResponseTooLarge):
            return Result(
                ResultStatus.FAILURE.value, code, f"Cannot read body: {failure.getErrorMessage()}"
            )
        if code:
            return Result(ResultStatus.FAILURE.value, code, f"Cannot read body: {_describe(failure)}")
        reason = _describe(failure)
        if certificate_refused(failure):
            reason = f"the worker's TLS certificate was not accepted: {reason}"
        return Result(ResultStatus.INTERNAL_FAILURE.value, 0, f"Request failed: {reason}")


#: What short answers mean: (success rule is "2xx", code, body) -> L{Result}
#: (a pure function of the three, the same for every queue).
_ANSWERS: Dict[Tuple[bool, int, bytes], Result] = {}


def answer_of(rule_2xx: bool, code: int, body: bytes) -> Result:
    """
    What the complete answer (``code``, ``body``) says under the success
    rule (C{"2xx"} when ``rule_2xx``, else C{"status"}): L{_read_answer},
    remembered for short answers.
    """
    if len(body) > REMEMBERED_ANSWER_BYTES:
        return _read_answer(rule_2xx, code, body)
    key = (rule_2xx, code, body)
    result = _ANSWERS.get(key)
    if result is None:
        result = _read_answer(rule_2xx, code, body)
        if len(_ANSWERS) >= REMEMBERED_ANSWERS:
            _ANSWERS.clear()
        _ANSWERS[key] = result
    return result


def _read_answer(rule_2xx: bool, code: int, body: bytes) -> Result:
    """
    What a worker's complete answer says: under the success rule C{"status"}
    its JSON status (L{classify}), under C{"2xx"} its HTTP code
    (L{fireworq.dispatch.success.judge_2xx}: the outcome, when it differs
    from the stated status, in the result's C{outcome}).
    """
    if not rule_2xx:
        return classify(code, body)
    # Imported here: fireworq.dispatch.success imports this module.
    from fireworq.dispatch.success import judge_2xx

    verdict = judge_2xx(code, body)
    result = verdict.result
    if verdict.outcome != result.status:
        result = attr.evolve(result, outcome=verdict.outcome)
    return result


def _with_output(result: Result, body: bytes) -> Result:
    """``result`` with the first 64 KiB of the answer ``body`` as its output (B8)."""
    from fireworq.history.record import capture_output

    output, truncated = capture_output(body)
    return attr.evolve(result, output=output, output_truncated=truncated)


def _fired(result: Any) -> Deferred:
    d: "Deferred[Result]" = Deferred()
    d.callback(result)
    return d


def make_pool(
    reactor: Any, persistent: bool, max_per_host: int, idle_timeout: int
) -> Any:
    """
    A connection pool for one queue's deliveries: keep-alive when
    ``persistent``, keeping up to ``max_per_host`` idle connections per
    worker host, closing idle ones after ``idle_timeout`` seconds (0: never).
    Its connections do not log each start and stop: the client's endpoints
    see to that (L{fireworq.dispatch.client.QuietEndpoint}).
    """
    from twisted.web.client import HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=persistent)
    pool.maxPersistentPerHost = max(1, max_per_host)
    pool.cachedConnectionTimeout = idle_timeout if idle_timeout > 0 else 365 * 86400
    pool.retryAutomatically = False
    return pool


def make_http_client(reactor: Any, pool: Any, policy: Any = None) -> Any:
    """
    The treq client of deliveries, its connections from ``pool``, https
    certificates checked by ``policy`` (L{fireworq.dispatch.tls.https_policy}).
    """
    from fireworq.dispatch.client import DeliveryClient

    return DeliveryClient.make(reactor, pool, policy)

