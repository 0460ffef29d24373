"""
Pushing jobs: ``POST /job/{category}`` (A2) and ``POST /jobs/{category}``
(B6, a batch of up to 1000 jobs stored atomically).
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from fireworq.model import Job, NewJob
from fireworq.names import PAYLOAD_MAX_BYTES, InvalidName, check_category, check_worker_url
from fireworq.web.body import dump_json, json_object, json_type, parse_json, unsigned
from fireworq.web.errors import ApiError, bad_request
from fireworq.web.routes import app, json_response

#: Most jobs one batch push may carry (B6).
MAX_BATCH = 1000


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
    Validate one pushed job.  Returns the L{NewJob} and the fields to echo in
    the answer (the original JSON payload included).

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
    return job, {"payload": payload}


def accepted(queue_name: str, job: NewJob, stored: Job, echo: Dict[str, Any]) -> Dict[str, Any]:
    """The answer for one accepted job (A2)."""
    return {
        "id": stored.id,
        "queue_name": queue_name,
        "category": job.category,
        "url": job.url,
        "payload": echo["payload"],
        "run_after": job.run_after,
        "max_retries": job.max_retries,
        "retry_delay": job.retry_delay,
        "timeout": job.timeout,
    }


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
        d = self.manager.push(category, [job])
        d.addCallback(
            lambda result: json_response(request, accepted(result[0], job, result[1][0], echo))
        )
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
        parsed: List[Tuple[NewJob, Dict[str, Any]]] = [
            parse_job(category, item, where=f"job [{index}]: ") for index, item in enumerate(body)
        ]
        d = self.manager.push(category, [job for job, _ in parsed])

        def answer(result: Tuple[str, List[Job]]) -> bytes:
            queue_name, stored = result
            return json_response(
                request,
                [accepted(queue_name, job, s, echo) for (job, echo), s in zip(parsed, stored)],
            )

        d.addCallback(answer)
        return d


