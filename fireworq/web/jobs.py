"""
Pushing jobs: ``POST /job/{category}`` (A2) and ``POST /jobs/{category}``
(B6, a batch of up to 1000 jobs stored atomically), with the job options
of B7: validated here (L{fireworq.joboptions.parse}), merged with the
queue's job defaults once the push is routed (L{PushedJobs.finish}), and
shown in the answer.  A job with an idempotency key hands the store its
answer (without ``id`` and ``queue_name``); a push of a key already used
is answered with that stored answer and ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import attr
from twisted.internet.defer import Deferred

from fireworq.auth.access import tenant_finish
from fireworq.joboptions.parse import parse_job_options, with_idempotency_header
from fireworq.joboptions.values import (
    NO_OPTIONS,
    add_option_fields,
    apply_queue_defaults,
    given_fields,
)
from fireworq.model import Job, NewJob, QueueDefinition, Replay
from fireworq.names import PAYLOAD_MAX_BYTES, InvalidName, check_category, check_worker_url
from fireworq.web.body import dump_json, json_object, json_type, parse_json, stored_json_value, unsigned
from fireworq.web.errors import ApiError, bad_request
from fireworq.web.history import push_states
from fireworq.web.routes import app, json_response

#: Most jobs one batch push may carry (B6).
MAX_BATCH = 1000

#: The header of an answer replayed for an idempotency key (B7).
REPLAYED_HEADER = b"Idempotent-Replayed"


def decode_payload(value: Any, where: str = "") -> str:
    """
    The delivery body of a pushed ``payload`` (A2): a JSON string is sent as
    its raw text, null or absent as nothing, anything else as its compact
    JSON text, numbers exactly as written (L{fireworq.web.body.JsonNumber}).
    """
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    else:
        text = dump_json(value)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise bad_request(f"{where}field payload contains text that is not valid Unicode")
    if size > PAYLOAD_MAX_BYTES:
        raise ApiError(
            413, f"{where}field payload is {size} bytes; a job's payload may take at most {PAYLOAD_MAX_BYTES} bytes"
        )
    return text


def parse_job(category: str, body: Any, where: str = "") -> Tuple[NewJob, Dict[str, Any]]:
    """
    Validate one pushed job, its B7 options included.  Returns the
    L{NewJob} and the fields to echo in the answer: the original JSON
    payload, and under ``"body"`` the pushed object itself, whose Part A
    fields a queue default does not replace (L{given_fields}, read only
    when the queue has defaults).

    @raise ApiError: 400 naming the first bad field.
    """
    if not isinstance(body, dict):
        raise bad_request(f"{where}job must be a JSON object, not {json_type(body)}")
    url = body.get("url")
    if url is None or url == "":
        raise bad_request(f"{where}field url is required")
    if not isinstance(url, str):
        raise bad_request(f"{where}field url must be a string, not {json_type(url)}")
    try:
        check_worker_url(url)
    except InvalidName as e:
        raise bad_request(f"{where}field {e}")
    payload = body.get("payload")
    job = NewJob(
        category=category,
        url=url,
        payload=decode_payload(payload, where),
        run_after=unsigned(body, "run_after", where=where, unit="seconds"),
        max_retries=unsigned(body, "max_retries", where=where),
        retry_delay=unsigned(body, "retry_delay", where=where, unit="seconds"),
        timeout=unsigned(body, "timeout", where=where, unit="seconds"),
    )
    options = parse_job_options(body, where, run_after=job.run_after)
    if options is not NO_OPTIONS:
        job = attr.evolve(job, options=options)
    return job, {"payload": payload, "body": body}


def answer_fields(job: NewJob, echo: Dict[str, Any]) -> Dict[str, Any]:
    """The fields of a push answer after ``id`` and ``queue_name``: Part A's, then the job's options."""
    return add_option_fields(
        {
            "category": job.category,
            "url": job.url,
            "payload": echo["payload"],
            "run_after": job.run_after,
            "max_retries": job.max_retries,
            "retry_delay": job.retry_delay,
            "timeout": job.timeout,
        },
        job.options,
    )


def accepted(queue_name: str, job: NewJob, stored: Job, echo: Dict[str, Any]) -> Dict[str, Any]:
    """The answer for one accepted job (A2, plus its B7 options)."""
    answer: Dict[str, Any] = {"id": stored.id, "queue_name": queue_name}
    answer.update(answer_fields(job, echo))
    return answer


def replayed(queue_name: str, replay: Replay) -> Dict[str, Any]:
    """The answer of a push whose idempotency key was used: the first push's answer."""
    answer: Dict[str, Any] = {"id": replay.job_id, "queue_name": queue_name}
    stored = stored_json_value(replay.answer)
    if isinstance(stored, dict):
        stored.pop("id", None)
        stored.pop("queue_name", None)
        answer.update(stored)
    return answer


class PushedJobs:
    """
    The jobs of one push request between validation and the answer: once
    the push is routed, L{finish} merges each job with its queue's job
    defaults and gives the answers the store keeps with idempotency keys;
    L{answers} then builds the response from the stored jobs or replays.
    """

    def __init__(self, parsed: Sequence[Tuple[NewJob, Dict[str, Any]]]) -> None:
        self.parsed = list(parsed)

    @property
    def jobs(self) -> List[NewJob]:
        return [job for job, _ in self.parsed]

    def finish(
        self, definition: Optional[QueueDefinition], jobs: Sequence[NewJob]
    ) -> Tuple[List[NewJob], Optional[List[Optional[str]]]]:
        """
        The jobs as the queue ``definition`` stores them (its job defaults
        filled in where a push left a field out), and the answer text of
        each job with an idempotency key (None for the others; None
        altogether when no job has a key).
        """
        if definition is not None and not definition.defaults.is_empty:
            merged = []
            for job, echo in self.parsed:
                job, options = apply_queue_defaults(
                    job, job.options, definition.defaults, given_fields(echo["body"])
                )
                merged.append((attr.evolve(job, options=options), echo))
            self.parsed = merged
        answers: Optional[List[Optional[str]]] = None
        if all(job.options is NO_OPTIONS for job, _ in self.parsed):
            # No job of a Part A push has a key (the usual case: no more work).
            return self.jobs, None
        for index, (job, echo) in enumerate(self.parsed):
            if job.options.idempotency_key is not None:
                if answers is None:
                    answers = [None] * len(self.parsed)
                answers[index] = dump_json(answer_fields(job, echo))
        return self.jobs, answers

    def answers(self, queue_name: str, stored: Sequence[Union[Job, Replay]]) -> Tuple[List[Dict[str, Any]], int]:
        """The answer of every job, and how many of them were replayed."""
        out = []
        replays = 0
        for (job, echo), result in zip(self.parsed, stored):
            if isinstance(result, Replay):
                replays += 1
                out.append(replayed(queue_name, result))
            else:
                out.append(accepted(queue_name, job, result, echo))
        return out, replays


def respond(request: Any, shown: Any, single: bool) -> Any:
    """
    Answer a push with its shown answers (L{push_states}: the list, or a
    Deferred of it when a replayed job's state had to be looked up): the
    one job's object for a single push, the array for a batch.
    """
    if isinstance(shown, Deferred):
        return shown.addCallback(lambda answers: respond(request, answers, single))
    return json_response(request, shown[0] if single else shown)


def _category(category: str) -> str:
    try:
        check_category(category)
    except InvalidName as e:
        raise bad_request(str(e))
    return category


class JobRoutes:
    """Routes that push jobs."""

    @app.route("/job/<category:category>", methods=["POST"])
    def push_job(self, request: Any, category: str) -> Any:
        category = _category(category)
        job, echo = parse_job(category, json_object(self.read_body(request)))
        header = request.requestHeaders.getRawHeaders(b"Idempotency-Key")
        if header is not None:
            job = attr.evolve(job, options=with_idempotency_header(job.options, header))
        pushed = PushedJobs([(job, echo)])
        # A tenant token's push is refused (404) unless routed to one of its queues.
        d = self.manager.push(category, pushed.jobs, finish=tenant_finish(request, category, pushed.finish))

        def answer(result: Tuple[str, List[Union[Job, Replay]]]) -> Any:
            out, replays = pushed.answers(*result)
            if replays:
                request.setHeader(REPLAYED_HEADER, b"true")
            # A queue that keeps finished jobs shows their state (B8).
            return respond(request, push_states(self, result[0], out, result[1]), single=True)

        d.addCallback(answer)
        return d

    @app.route("/jobs/<category:category>", methods=["POST"])
    def push_jobs(self, request: Any, category: str) -> Any:
        category = _category(category)
        body = parse_json(self.read_body(request))
        if not isinstance(body, list):
            raise bad_request(f"request body must be a JSON array of jobs, not {json_type(body)}")
        if not body:
            raise bad_request("request body must hold at least one job")
        if len(body) > MAX_BATCH:
            raise bad_request(f"a batch may hold at most {MAX_BATCH} jobs, not {len(body)}")
        # A batch's elements carry their own keys: the header is refused.
        with_idempotency_header(NO_OPTIONS, request.requestHeaders.getRawHeaders(b"Idempotency-Key"), batch=True)
        pushed = PushedJobs(
            [parse_job(category, item, where=f"job [{index}]: ") for index, item in enumerate(body)]
        )
        d = self.manager.push(category, pushed.jobs, finish=tenant_finish(request, category, pushed.finish))

        def answer(result: Tuple[str, List[Union[Job, Replay]]]) -> Any:
            out, replays = pushed.answers(*result)
            if replays == len(out):
                # Every job's key was used: the push stored nothing.
                request.setHeader(REPLAYED_HEADER, b"true")
            return respond(request, push_states(self, result[0], out, result[1]), single=False)

        d.addCallback(answer)
        return d


