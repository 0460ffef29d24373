"""
The API of the server described once, for both clients: each method of
L{Endpoints} builds a L{Call <fireworq.client.call.Call>} (what to send,
whether it may be repeated, how to read the answer) and hands it to
``self._send``, which the synchronous client performs at once and the
asyncio client returns as a coroutine.  Bodies and paths are made by
L{fireworq.client.encoding}, answers read by L{fireworq.client.replies}.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

from fireworq.client.call import Call
from fireworq.client.encoding import (
    all_keyed,
    category_path,
    encode_json,
    job_body,
    job_object,
    list_params,
    seconds,
    segment,
)
from fireworq.client.models import FailedJob, Job, Node, Queue, Routing
from fireworq.client.replies import (
    read_count,
    read_data,
    read_list_of,
    read_one,
    read_page,
    read_pushed,
    read_pushed_list,
)

#: The states of ``GET /queue/{q}/{state}`` (A5).
JOB_STATES = ("waiting", "deferred", "grabbed")


class Endpoints:
    """
    Every endpoint of the API, once.  Subclasses define ``_send(call)``.
    Methods marked "(B7)" … "(B14)" need a server that has that feature
    (see docs/client.md); older servers answer them 404 or 405.
    """

    def _send(self, call: Call) -> Any:  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    # -- A7, B5: the server ------------------------------------------------

    def version(self) -> Any:
        """``GET /version``: the server's version text."""
        return self._send(Call("GET", "/version", lambda r: str(r.data).strip(), idempotent=True, text=True))

    def settings(self) -> Any:
        """``GET /settings``: the effective configuration (secrets masked)."""
        return self._send(Call("GET", "/settings", read_data, idempotent=True))

    def stats(self) -> Any:
        """``GET /stats``: statistics of the server process."""
        return self._send(Call("GET", "/stats", read_data, idempotent=True))

    def health(self) -> Any:
        """
        ``GET /health``: ``{"status": "ok", …}``, or the 503 answer's body
        (``status`` ``unavailable`` or ``starting``) without raising.
        """
        return self._send(Call("GET", "/health", read_data, accept=(503,)))

    def metrics(self) -> Any:
        """``GET /metrics``: the Prometheus text."""
        return self._send(Call("GET", "/metrics", lambda r: r.data, idempotent=True, text=True))

    # -- A2, B6, B7: pushing -----------------------------------------------

    def push(
        self,
        category: str,
        url: str,
        payload: Any = None,
        *,
        run_after: Any = None,
        max_retries: Optional[int] = None,
        retry_delay: Any = None,
        timeout: Any = None,
        name: Optional[str] = None,
        tags: Optional[Mapping[str, str]] = None,
        headers: Optional[Mapping[str, str]] = None,
        priority: Optional[int] = None,
        retry_backoff: Optional[float] = None,
        retry_max_delay: Any = None,
        retry_jitter: Optional[bool] = None,
        success: Optional[str] = None,
        deadline: Any = None,
        idempotency_key: Optional[str] = None,
        **fields: Any,
    ) -> Any:
        """
        ``POST /job/{category}``: push one job; answers a L{PushedJob}.

        Durations are whole seconds (an int or a ``timedelta``).  The B7
        options (``name`` … ``deadline``) are sent as given; a server
        without them ignores them.  ``idempotency_key`` is sent as the
        ``Idempotency-Key`` header: the push is then repeated after a 503
        or a lost answer (a B7 server stores it once), and
        ``PushedJob.replayed`` tells when the server answered an earlier
        push.  Without a key a push is never repeated.  Other keyword
        ``fields`` are passed through as job fields.
        """
        options = dict(
            run_after=run_after, max_retries=max_retries, retry_delay=retry_delay, timeout=timeout,
            name=name, tags=tags, headers=headers, priority=priority, retry_backoff=retry_backoff,
            retry_max_delay=retry_max_delay, retry_jitter=retry_jitter, success=success,
            deadline=deadline,
        )
        options.update(fields)
        extra_headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
        return self._send(
            Call(
                "POST",
                "/job/" + category_path(category),
                read_pushed,
                body=encode_json(job_body(url, payload, options)),
                headers=extra_headers,
                idempotent=idempotency_key is not None,
            )
        )

    def push_batch(self, category: str, jobs: Sequence[Any]) -> Any:
        """
        ``POST /jobs/{category}``: push up to 1000 jobs (mappings or
        L{JobSpec}) in one request, stored all or none; answers the list of
        L{PushedJob}.  L{push_many} splits any number of jobs into such
        batches.  Repeated after a 503 only when every job carries an
        ``idempotency_key``.
        """
        objects = [job_object(job) for job in jobs]
        return self._send(self._batch_call(category, encode_json(objects), all_keyed(objects)))

    def _batch_call(self, category: str, body: bytes, idempotent: bool, keep: bool = True) -> Call:
        read = read_pushed_list if keep else read_count
        return Call("POST", "/jobs/" + category_path(category), read, body=body, idempotent=idempotent)

    # -- A3: queues ----------------------------------------------------------

    def queues(self) -> Any:
        """``GET /queues``: every L{Queue} definition."""
        return self._send(Call("GET", "/queues", read_list_of(Queue), idempotent=True))

    def queue(self, name: str) -> Any:
        """``GET /queue/{name}``: one L{Queue}; L{NotFound} when undefined."""
        return self._send(Call("GET", "/queue/" + segment(name), read_one(Queue), idempotent=True))

    def put_queue(self, name: str, **definition: Any) -> Any:
        """
        ``PUT /queue/{name}``: create or replace a queue.  ``definition``:
        ``polling_interval``, ``max_workers``, ``max_dispatches_per_second``,
        ``max_burst_size`` and, on newer servers, job defaults (B7),
        ``retention`` (B8), ``signing`` (B11).  None values are left out.
        """
        body = {k: seconds(v, k) for k, v in definition.items() if v is not None}
        return self._send(
            Call("PUT", "/queue/" + segment(name), read_one(Queue), body=encode_json(body), idempotent=True)
        )

    def delete_queue(self, name: str) -> Any:
        """``DELETE /queue/{name}``: answers the deleted L{Queue}."""
        return self._send(Call("DELETE", "/queue/" + segment(name), read_one(Queue), idempotent=True))

    def queue_node(self, name: str) -> Any:
        """``GET /queue/{name}/node``: the L{Node} dispatching the queue; L{NotFound} when none."""
        return self._send(Call("GET", f"/queue/{segment(name)}/node", read_one(Node), idempotent=True))

    def queue_stats(self, name: str) -> Any:
        """``GET /queue/{name}/stats``: the queue's counters (a dict)."""
        return self._send(Call("GET", f"/queue/{segment(name)}/stats", read_data, idempotent=True))

    def queues_stats(self) -> Any:
        """``GET /queues/stats``: ``{queue name: counters}``."""
        return self._send(Call("GET", "/queues/stats", read_data, idempotent=True))

    # -- B9: queue control -----------------------------------------------------

    def pause(self, name: str) -> Any:
        """(B9) ``POST /queue/{name}/pause``: answers the L{Queue}."""
        return self._send(Call("POST", f"/queue/{segment(name)}/pause", read_one(Queue), idempotent=True))

    def resume(self, name: str) -> Any:
        """(B9) ``POST /queue/{name}/resume``: answers the L{Queue}."""
        return self._send(Call("POST", f"/queue/{segment(name)}/resume", read_one(Queue), idempotent=True))

    def purge(self, name: str) -> Any:
        """(B9) ``POST /queue/{name}/purge``: delete waiting and deferred jobs; answers how many."""
        return self._send(
            Call("POST", f"/queue/{segment(name)}/purge", lambda r: int(r.data.get("purged", 0)), idempotent=True)
        )

    # -- A4: routings -----------------------------------------------------------

    def routings(self) -> Any:
        """``GET /routings``: every L{Routing}."""
        return self._send(Call("GET", "/routings", read_list_of(Routing), idempotent=True))

    def routing(self, category: str) -> Any:
        """``GET /routing/{category}``: one L{Routing}."""
        return self._send(Call("GET", "/routing/" + category_path(category), read_one(Routing), idempotent=True))

    def put_routing(self, category: str, queue_name: str) -> Any:
        """``PUT /routing/{category}``: send jobs of ``category`` to ``queue_name``."""
        return self._send(
            Call(
                "PUT", "/routing/" + category_path(category), read_one(Routing),
                body=encode_json({"queue_name": queue_name}), idempotent=True,
            )
        )

    def delete_routing(self, category: str) -> Any:
        """``DELETE /routing/{category}``: answers the deleted L{Routing}."""
        return self._send(Call("DELETE", "/routing/" + category_path(category), read_one(Routing), idempotent=True))

    # -- A5, B8, B9: jobs in a queue -------------------------------------------

    def list_jobs(
        self, queue: str, state: str = "waiting", *, limit: Optional[int] = None, order: Optional[str] = None,
        cursor: Optional[str] = None, name: Optional[str] = None, tags: Any = None,
    ) -> Any:
        """
        ``GET /queue/{q}/{state}`` (``waiting``, ``deferred``, ``grabbed``):
        one L{Page} of L{Job}s.  ``iter_jobs`` walks every page.
        ``name``/``tags`` filters need a B8 server.
        """
        if state not in JOB_STATES:
            raise ValueError(f"state must be one of {', '.join(JOB_STATES)}, not {state!r}")
        return self._send(
            Call(
                "GET", f"/queue/{segment(queue)}/{state}", read_page("jobs", Job),
                params=list_params(limit, order, cursor, name, tags), idempotent=True,
            )
        )

    def list_completed(
        self, queue: str, *, limit: Optional[int] = None, cursor: Optional[str] = None,
        name: Optional[str] = None, tags: Any = None,
    ) -> Any:
        """(B8) ``GET /queue/{q}/completed``: one L{Page} of kept completed L{Job}s, newest first."""
        return self._send(
            Call(
                "GET", f"/queue/{segment(queue)}/completed", read_page("jobs", Job),
                params=list_params(limit, None, cursor, name, tags), idempotent=True,
            )
        )

    def job(self, queue: str, job_id: int) -> Any:
        """``GET /queue/{q}/job/{id}``: one L{Job}; L{NotFound} when absent (e.g. completed)."""
        return self._send(Call("GET", f"/queue/{segment(queue)}/job/{segment(job_id)}", read_one(Job), idempotent=True))

    def delete_job(self, queue: str, job_id: int) -> Any:
        """
        ``DELETE /queue/{q}/job/{id}``: remove a job; answers it as it was.
        On a B9 server a grabbed job is canceled instead (``canceling`` in
        ``extra``).  Repeated after a lost answer, the repeat may get 404.
        """
        return self._send(
            Call("DELETE", f"/queue/{segment(queue)}/job/{segment(job_id)}", read_one(Job), idempotent=True)
        )

    def cancel_job(self, queue: str, job_id: int) -> Any:
        """
        Stop a job: ``DELETE /queue/{q}/job/{id}`` under the name that says
        what it does to a job being delivered.  A waiting or deferred job is
        deleted (answer 200); a grabbed one is canceled (answer 202, the
        L{Job}'s ``canceling`` is True): its delivery is aborted within a
        second and the job is neither retried nor written to the failure log.
        """
        return self.delete_job(queue, job_id)

    def retry_job(self, queue: str, job_id: int) -> Any:
        """(B8) ``POST /queue/{q}/job/{id}/retry``: push a kept finished job again; answers a L{PushedJob}."""
        return self._send(Call("POST", f"/queue/{segment(queue)}/job/{segment(job_id)}/retry", read_pushed))

    # -- A6: the failure log -----------------------------------------------------

    def list_failed(
        self, queue: str, *, limit: Optional[int] = None, order: Optional[str] = None,
        cursor: Optional[str] = None, name: Optional[str] = None, tags: Any = None,
    ) -> Any:
        """
        ``GET /queue/{q}/failed``: one L{Page} of L{FailedJob}s; ``order``
        ``failed`` (default) or ``created``.  ``iter_failed`` walks every page.
        """
        return self._send(
            Call(
                "GET", f"/queue/{segment(queue)}/failed", read_page("failed_jobs", FailedJob),
                params=list_params(limit, order, cursor, name, tags), idempotent=True,
            )
        )

    def failed_job(self, queue: str, failure_id: int) -> Any:
        """``GET /queue/{q}/failed/{id}``: one L{FailedJob}."""
        return self._send(
            Call("GET", f"/queue/{segment(queue)}/failed/{segment(failure_id)}", read_one(FailedJob), idempotent=True)
        )

    def delete_failed(self, queue: str, failure_id: int) -> Any:
        """``DELETE /queue/{q}/failed/{id}``: remove an entry; answers it."""
        return self._send(
            Call("DELETE", f"/queue/{segment(queue)}/failed/{segment(failure_id)}", read_one(FailedJob), idempotent=True)
        )

    def retry_failed(self, queue: str, failure_id: int) -> Any:
        """
        ``POST /queue/{q}/failed/{id}/retry``: push the failed job again and
        remove the entry (one transaction); answers the new L{PushedJob}.
        Never repeated by the client (a repeat after a lost answer would be
        a 404, not a second job, but the caller should know).
        """
        return self._send(Call("POST", f"/queue/{segment(queue)}/failed/{segment(failure_id)}/retry", read_pushed))

    # -- B10: schedules ---------------------------------------------------------

    def schedules(self) -> Any:
        """(B10) ``GET /schedules``: every schedule (dicts)."""
        return self._send(Call("GET", "/schedules", read_data, idempotent=True))

    def schedule(self, name: str) -> Any:
        """(B10) ``GET /schedule/{name}``: the definition plus ``next_run_at``, ``last_run_at``, ``last_job``."""
        return self._send(Call("GET", "/schedule/" + segment(name), read_data, idempotent=True))

    def put_schedule(
        self, name: str, *, cron: str, category: str, url: str, payload: Any = None,
        timezone: Optional[str] = None, enabled: Optional[bool] = None, catch_up: Optional[str] = None,
        job_name: Optional[str] = None, **job_fields: Any,
    ) -> Any:
        """
        (B10) ``PUT /schedule/{name}``: push a job of ``category`` to
        ``url`` at every time of ``cron``.  ``job_fields`` are A2/B7 job
        fields at the same level (the job's name is ``job_name``).
        """
        body = job_body(url, payload, dict(
            cron=cron, category=category, timezone=timezone, enabled=enabled, catch_up=catch_up,
            job_name=job_name, **job_fields,
        ))
        return self._send(Call("PUT", "/schedule/" + segment(name), read_data, body=encode_json(body), idempotent=True))

    def delete_schedule(self, name: str) -> Any:
        """(B10) ``DELETE /schedule/{name}``."""
        return self._send(Call("DELETE", "/schedule/" + segment(name), read_data, idempotent=True))

    def run_schedule(self, name: str) -> Any:
        """(B10) ``POST /schedule/{name}/run``: push the schedule's job now; answers a L{PushedJob}."""
        return self._send(Call("POST", f"/schedule/{segment(name)}/run", read_pushed))

    # -- B11: signing keys ------------------------------------------------------

    def signing_key(self, queue: str) -> Any:
        """(B11) ``GET /queue/{q}/signing-key``: ``{"current", "previous", "previous_expires_at"}``."""
        return self._send(Call("GET", f"/queue/{segment(queue)}/signing-key", read_data, idempotent=True))

    def rotate_signing_key(self, queue: str) -> Any:
        """(B11) ``POST /queue/{q}/signing-key/rotate``: a new current secret; answers as L{signing_key}."""
        return self._send(Call("POST", f"/queue/{segment(queue)}/signing-key/rotate", read_data))

    # -- B12: event hooks -------------------------------------------------------

    def hooks(self) -> Any:
        """(B12) ``GET /hooks``: every hook (dicts; secrets not shown)."""
        return self._send(Call("GET", "/hooks", read_data, idempotent=True))

    def hook(self, name: str) -> Any:
        """(B12) ``GET /hook/{name}``."""
        return self._send(Call("GET", "/hook/" + segment(name), read_data, idempotent=True))

    def put_hook(
        self, name: str, *, url: str, events: Sequence[str], queues: Optional[str] = None,
        secret: Optional[str] = None, **fields: Any,
    ) -> Any:
        """
        (B12) ``PUT /hook/{name}``: POST the ``events`` (``job.pushed``,
        ``job.completed``, …) of queues matching the glob ``queues`` to
        ``url``, signed with ``secret`` (made by the server when None and
        shown in this answer only).
        """
        body = job_body(url, None, dict(events=list(events), queues=queues, secret=secret, **fields))
        return self._send(Call("PUT", "/hook/" + segment(name), read_data, body=encode_json(body), idempotent=True))

    def delete_hook(self, name: str) -> Any:
        """(B12) ``DELETE /hook/{name}``."""
        return self._send(Call("DELETE", "/hook/" + segment(name), read_data, idempotent=True))

    # -- B14: tokens ------------------------------------------------------------

    def tokens(self) -> Any:
        """(B14) ``GET /tokens``: every token without its secret."""
        return self._send(Call("GET", "/tokens", read_data, idempotent=True))

    def token(self, token_id: Union[str, int]) -> Any:
        """(B14) ``GET /token/{id}``."""
        return self._send(Call("GET", "/token/" + segment(token_id), read_data, idempotent=True))

    def create_token(
        self, name: str, scopes: Sequence[str], *, queues: Optional[str] = None,
        rate: Optional[float] = None, burst: Optional[int] = None, **fields: Any,
    ) -> Any:
        """
        (B14) ``POST /tokens``: a token with ``scopes`` (``push``, ``read``,
        ``admin``), optionally limited to queues matching ``queues`` and to
        ``rate`` requests per second; the answer's ``token`` is shown only here.
        """
        body = job_body(None, None, dict(name=name, scopes=list(scopes), queues=queues, rate=rate, burst=burst, **fields))
        return self._send(Call("POST", "/tokens", read_data, body=encode_json(body)))

    def delete_token(self, token_id: Union[str, int]) -> Any:
        """(B14) ``DELETE /token/{id}``: revoke a token."""
        return self._send(Call("DELETE", "/token/" + segment(token_id), read_data, idempotent=True))

    def revoke_token(self, token_id: Union[str, int]) -> Any:
        """``DELETE /token/{id}`` (the same as L{delete_token}): answers the revoked token."""
        return self.delete_token(token_id)

    def whoami(self) -> Any:
        """``GET /whoami``: the client's own token (``id``, ``name``, ``scopes``, ``queues``, …) without its secret."""
        return self._send(Call("GET", "/whoami", read_data, idempotent=True))
