"""
Inspecting a queue's jobs (A5) and its failure log (A6), and pushing a
failed job again.
"""

from __future__ import annotations

from typing import Any, Optional

from fireworq.model import (
    FailedJob,
    FailureOrder,
    Job,
    JobState,
    Page,
)
from fireworq.web.cursors import decode_cursor, encode_cursor
from fireworq.history.filters import filtered_page
from fireworq.joboptions.values import add_option_fields
from fireworq.web.history import (
    as_new_job,
    keeps_history,
    kept_json,
    list_filter,
    live_state,
    now_ms,
    with_reason,
    with_state,
)
from fireworq.web.body import path_id, query_arg, query_choice, query_int, stored_json_value
from fireworq.web.errors import ApiError, bad_request, not_found
from fireworq.web.routes import app, failed_job_json, job_json, json_response

#: Default and largest ``limit`` of the list endpoints.
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


def _cursor(request: Any) -> Optional[tuple]:
    text = query_arg(request, "cursor")
    if not text:
        return None
    try:
        return decode_cursor(text)
    except ValueError as e:
        raise bad_request(f"query parameter cursor: {e}")


def _job(job: Optional[Job], queue_name: str, job_id: int) -> Job:
    if job is None:
        raise not_found(f"queue {queue_name!r} holds no job {job_id} (it may be completed)")
    return job


def _no_entry(queue_name: str, failure_id: int) -> Exception:
    """The 404 of a failure-log entry that does not exist."""
    return not_found(f"the failure log of queue {queue_name!r} holds no entry {failure_id}")


def _failed(failed: Optional[FailedJob], queue_name: str, failure_id: int) -> FailedJob:
    if failed is None:
        raise _no_entry(queue_name, failure_id)
    return failed


def _shown_failure(api: Any, found: Optional[FailedJob], queue_name: str, failure_id: int) -> dict:
    """
    A failure-log entry as GET and DELETE answer it: with why it failed in
    a queue that keeps jobs (B8); a 404 error when there is none.
    """
    failed = _failed(found, queue_name, failure_id)
    out = failed_job_json(failed)
    return with_reason(out, failed) if keeps_history(api, queue_name) else out


def _push_answer(queue_name: str, stored: Job) -> dict:
    """The push answer of a job pushed again (a failure-log entry's, a kept job's)."""
    answer = {
        "id": stored.id,
        "queue_name": queue_name,
        "category": stored.category,
        "url": stored.url,
        "payload": stored_json_value(stored.payload) if stored.payload else None,
        "run_after": 0,
        "max_retries": stored.retry_count,
        "retry_delay": stored.retry_delay,
        "timeout": stored.timeout,
    }
    return add_option_fields(answer, stored.options)


class InspectRoutes:
    """Routes that list, show and delete jobs and failure-log entries."""

    def _pushed_again(self, name: str, stored: Job) -> dict:
        """The push answer of a job pushed again; with its state in a queue that keeps finished jobs (B8)."""
        answer = _push_answer(name, stored)
        return with_state(answer, stored, now_ms(self)) if keeps_history(self, name) else answer

    def _list_jobs(self, request: Any, name: str, state: JobState) -> Any:
        limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        order = query_choice(request, "order", "desc", ("asc", "desc"))
        start = _cursor(request)
        job_filter = list_filter(request)
        d = filtered_page(
            lambda key, count: self.inspection.list_jobs(name, state, count, key, order == "desc"),
            lambda job: (job.next_try, job.id),
            lambda job: job.options,
            job_filter,
            limit,
            start,
        )

        def answer(page: Page) -> bytes:
            if keeps_history(self, name):
                jobs = [with_state(job_json(job), job, state=state.value) for job in page.items]
            else:
                jobs = [job_json(job) for job in page.items]
            return json_response(request, {"jobs": jobs, "next_cursor": encode_cursor(page.next_key)})

        d.addCallback(answer)
        return d

    @app.route("/queue/<name>/grabbed", methods=["GET"])
    def grabbed_jobs(self, request: Any, name: str) -> Any:
        return self._list_jobs(request, name, JobState.GRABBED)

    @app.route("/queue/<name>/waiting", methods=["GET"])
    def waiting_jobs(self, request: Any, name: str) -> Any:
        return self._list_jobs(request, name, JobState.WAITING)

    @app.route("/queue/<name>/deferred", methods=["GET"])
    def deferred_jobs(self, request: Any, name: str) -> Any:
        return self._list_jobs(request, name, JobState.DEFERRED)

    @app.route("/queue/<name>/job/<job_id>", methods=["GET"])
    def get_job(self, request: Any, name: str, job_id: str) -> Any:
        number = path_id(job_id, "job id")
        d = self.inspection.find_job(name, number)

        def found(job: Optional[Job]) -> Any:
            if job is not None:
                out = job_json(job)
                return json_response(request, with_state(out, job, now_ms(self)) if keeps_history(self, name) else out)
            # Finished: kept (B8) for the queue's retention, or gone.
            kept = self.inspection.find_kept(name, number)
            kept.addCallback(lambda k: json_response(request, kept_json(k)) if k is not None else _job(None, name, number))
            return kept

        d.addCallback(found)
        return d

    @app.route("/queue/<name>/completed", methods=["GET"])
    def completed_jobs(self, request: Any, name: str) -> Any:
        """The queue's kept completed jobs, newest first (job history)."""
        limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        # Newest first only: ``order`` is taken as the job lists take it, and refused unless desc.
        query_choice(request, "order", "desc", ("desc",))
        start = _cursor(request)
        d = filtered_page(
            lambda key, count: self.inspection.list_kept(name, count, key),
            lambda kept: (kept.finished_at, kept.id),
            lambda kept: kept.job.options,
            list_filter(request),
            limit,
            start,
        )
        d.addCallback(lambda page: json_response(
            request, {"jobs": [kept_json(k) for k in page.items], "next_cursor": encode_cursor(page.next_key)}
        ))
        return d

    @app.route("/queue/<name>/job/<job_id>/retry", methods=["POST"])
    def retry_job(self, request: Any, name: str, job_id: str) -> Any:
        """
        Push a kept finished job again as a new job of the same queue (its
        url, payload, settings and options; not its idempotency key); the
        kept job stays.  Answers like a push.
        """
        number = path_id(job_id, "job id")
        d = self.inspection.find_kept(name, number)

        def unfinished(job: Optional[Job]) -> Any:
            if job is None:
                raise not_found(f"queue {name!r} keeps no finished job {number}")
            # Still in the queue: nothing to run again yet (409, documented in api.md).
            raise ApiError(
                409,
                f"job {number} of queue {name!r} has not finished (it is {live_state(job, now_ms(self))}); "
                "only a kept finished job can be run again",
            )

        def push(kept: Any) -> Any:
            if kept is None:
                found = self.inspection.find_job(name, number)
                found.addCallback(unfinished)
                return found
            pushed = self.manager.push_to_queue(name, [as_new_job(kept)])
            pushed.addCallback(lambda jobs: json_response(request, self._pushed_again(name, jobs[0])))
            return pushed

        d.addCallback(push)
        return d

    @app.route("/queue/<name>/job/<job_id>", methods=["DELETE"])
    def delete_job(self, request: Any, name: str, job_id: str) -> Any:
        """
        Delete a waiting or deferred job (answers it), or cancel a grabbed
        one: its delivery is aborted by the node delivering it, and the
        answer is 202 with the job, ``"state": "grabbed"`` and
        ``"canceling": true``.
        """
        number = path_id(job_id, "job id")
        d = self.manager.cancel_job(name, number)

        def answer(job: Optional[Job]) -> bytes:
            out = job_json(_job(job, name, number))
            if keeps_history(self, name):
                with_state(out, job, now_ms(self))
            if job.status == "grabbed":
                request.setResponseCode(202)
                out["state"] = "grabbed"
                out["canceling"] = True
            return json_response(request, out)

        d.addCallback(answer)
        return d

    @app.route("/queue/<name>/failed", methods=["GET"])
    def failed_jobs(self, request: Any, name: str) -> Any:
        limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        order = FailureOrder(query_choice(request, "order", "failed", ("failed", "created")))
        start = _cursor(request)
        d = filtered_page(
            lambda key, count: self.inspection.list_failed(name, order, count, key),
            lambda failed: (failed.created_at, failed.id),
            lambda failed: failed.options,
            list_filter(request),
            limit,
            start,
        )

        def answer(page: Page) -> bytes:
            if keeps_history(self, name):
                failed_jobs = [with_reason(failed_job_json(f), f) for f in page.items]
            else:
                failed_jobs = [failed_job_json(f) for f in page.items]
            return json_response(request, {"failed_jobs": failed_jobs, "next_cursor": encode_cursor(page.next_key)})

        d.addCallback(answer)
        return d

    @app.route("/queue/<name>/failed/<failure_id>", methods=["GET"])
    def get_failed(self, request: Any, name: str, failure_id: str) -> Any:
        number = path_id(failure_id, "failure id")
        d = self.inspection.find_failed(name, number)
        d.addCallback(lambda found: json_response(request, _shown_failure(self, found, name, number)))
        return d

    @app.route("/queue/<name>/failed/<failure_id>", methods=["DELETE"])
    def delete_failed(self, request: Any, name: str, failure_id: str) -> Any:
        number = path_id(failure_id, "failure id")
        d = self.inspection.delete_failed(name, number)
        # As GET shows it.
        d.addCallback(lambda found: json_response(request, _shown_failure(self, found, name, number)))
        return d

    @app.route("/queue/<name>/failed/<failure_id>/retry", methods=["POST"])
    def retry_failed(self, request: Any, name: str, failure_id: str) -> Any:
        """
        Push a failed job again, to the same queue, with its original url,
        payload, max_retries, retry_delay and timeout, and remove the
        failure-log entry -- both in one transaction, so an entry retried
        twice at once is pushed once (the other retry answers 404).  Answers
        like a push.
        """
        number = path_id(failure_id, "failure id")
        d = self.manager.retry_failed(name, number)

        def answer(stored: Optional[Job]) -> bytes:
            if stored is None:
                raise _no_entry(name, number)
            return json_response(request, self._pushed_again(name, stored))

        d.addCallback(answer)
        return d
