"""
Schedule routes (B10): ``PUT/GET/DELETE /schedule/{name}``, ``GET
/schedules`` and ``POST /schedule/{name}/run`` (see docs/api.md,
Schedules).  Definitions go to the store's schedules
(L{fireworq.schedules.model.ISchedules}); firing is the
L{fireworq.schedules.scheduler.Scheduler}'s.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

import attr
from twisted.internet.defer import succeed

from fireworq.auth.access import tenant_of
from fireworq.joboptions.parse import parse_job_options
from fireworq.model import NewJob
from fireworq.names import InvalidName, check_category, check_schedule_name
from fireworq.schedules.cron import Cron, CronError
from fireworq.schedules.model import CATCH_UP_POLICIES, JOB_FIELD_ORDER, ScheduleDefinition, ScheduleRecord
from fireworq.web.body import dump_json, json_object, json_type, parse_json
from fireworq.web.errors import ApiError, bad_request, not_found
from fireworq.web.jobs import PushedJobs, parse_job
from fireworq.web.history import push_states
from fireworq.web.routes import app, json_response

#: The fields of a schedule itself; the others are the job's (A2/B7).
SCHEDULE_FIELDS = ("name", "cron", "timezone", "category", "enabled", "catch_up")

#: The job fields a schedule carries (``job_name`` is the job's ``name``).
JOB_FIELDS = (
    "url", "payload", "run_after", "max_retries", "retry_delay", "timeout",
    "job_name", "tags", "headers", "priority", "retry_backoff", "retry_max_delay",
    "retry_jitter", "success", "deadline",
)


def schedule_name(name: str) -> str:
    """``name`` if it is a valid schedule name (400 otherwise)."""
    try:
        check_schedule_name(name)
    except InvalidName as e:
        raise bad_request(str(e))
    return name


def job_values(job_text: str) -> Dict[str, Any]:
    """A schedule's job fields (JSON text as stored) as a JSON object, numbers exact."""
    value = parse_json(job_text.encode("utf-8"), "schedule's job")
    return value if isinstance(value, dict) else {}


def make_job(category: str, job_text: str, headers: Tuple[Tuple[str, str], ...] = ()) -> Tuple[NewJob, Any]:
    """
    A schedule's job as a push of its job fields (JSON text) to
    ``category`` would make it, with the delivery ``headers`` added that
    the schedule sets (after the job's own), and the push's ``finish`` (the
    queue's job defaults).
    """
    job, echo = parse_job(category, job_values(job_text), where="schedule's job: ")
    if headers:
        combined = tuple(job.options.headers or ()) + tuple(headers)
        try:
            # The stores read options back through the same checks: headers
            # that would no longer pass them (too many with ours) are left
            # as the schedule gave them.
            parse_job_options({"headers": dict(combined)})
        except ApiError:
            combined = tuple(job.options.headers or ())
        job = attr.evolve(job, options=attr.evolve(job.options, headers=combined or None))
    pushed = PushedJobs([(job, echo)])
    return job, pushed.finish


def parse_schedule(name: str, body: Dict[str, Any], allow_seconds: bool = False) -> ScheduleDefinition:
    """
    Validate a ``PUT /schedule/{name}`` body.

    @raise ApiError: 400 naming the first bad field.
    """
    given = body.get("name")
    if given is not None and given != name:
        raise bad_request("field name must be the schedule's name of the path (the job's name is job_name)")
    cron = body.get("cron")
    if cron is None or cron == "":
        raise bad_request("field cron is required")
    if not isinstance(cron, str):
        raise bad_request(f"field cron must be a string, not {json_type(cron)}")
    zone = body.get("timezone", "UTC")
    if not isinstance(zone, str):
        raise bad_request(f"field timezone must be a string, not {json_type(zone)}")
    try:
        parsed = Cron.parse(cron, zone, allow_seconds=allow_seconds)
    except CronError as e:
        field = "timezone" if "time zone" in str(e) else "cron"
        raise bad_request(f"field {field}: {e}")
    category = body.get("category")
    if category is None or category == "":
        raise bad_request("field category is required")
    if not isinstance(category, str):
        raise bad_request(f"field category must be a string, not {json_type(category)}")
    try:
        check_category(category)
    except InvalidName as e:
        raise bad_request(f"field category: {e}")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise bad_request(f"field enabled must be true or false, not {json_type(enabled)}")
    catch_up = body.get("catch_up", "none")
    if catch_up not in CATCH_UP_POLICIES:
        raise bad_request("field catch_up must be \"none\" or \"last\"")
    if "idempotency_key" in body:
        raise bad_request(
            "field idempotency_key is not allowed in a schedule (every run would repeat it); "
            "each scheduled time is pushed once anyway"
        )
    unknown = sorted(k for k in body if k not in SCHEDULE_FIELDS and k not in JOB_FIELDS)
    if unknown:
        raise bad_request(f"field {unknown[0]} is not a field of a schedule")
    if body.get("job_name") is not None:
        # Checked under its own name: the job's checks would say "field name".
        try:
            parse_job_options({"name": body["job_name"]})
        except ApiError as e:
            raise bad_request(e.message.replace("field name", "field job_name", 1))
    # A null job field is an absent one (as in a push): neither kept nor shown.
    fields = {("name" if k == "job_name" else k): body[k] for k in JOB_FIELDS if body.get(k) is not None}
    parse_job(category, fields)  # 400 naming the bad job field
    return ScheduleDefinition(
        name=name,
        cron=parsed.expression,
        category=category,
        job=dump_json(fields),
        timezone=zone,
        enabled=enabled,
        catch_up=catch_up,
    )


def _time(ms: Optional[int], zone_name: str) -> Optional[str]:
    if ms is None:
        return None
    try:
        zone: Any = Cron.parse("* * * * *", zone_name).zone
    except CronError:
        zone = timezone.utc
    # RFC 3339 with milliseconds and the zone's offset, the API's convention
    # for times (cron times are whole seconds, so always ".000").
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc).astimezone(zone)
    text = moment.isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def schedule_json(record: ScheduleRecord, next_run_at: Optional[int]) -> Dict[str, Any]:
    """A schedule as answered: the definition plus next_run_at, last_run_at and last_job."""
    out = record.definition.to_json()
    fields = job_values(record.definition.job)
    for key in sorted(fields, key=lambda k: (JOB_FIELD_ORDER.index(k) if k in JOB_FIELD_ORDER else 99, k)):
        out["job_name" if key == "name" else key] = fields[key]
    zone = record.definition.timezone
    out["next_run_at"] = _time(next_run_at, zone)
    out["last_run_at"] = _time(record.last_run_at, zone)
    out["last_job"] = (
        None if record.last_job is None else {"queue_name": record.last_job[0], "id": record.last_job[1]}
    )
    return out


class ScheduleRoutes:
    """Routes that define, show, delete and run schedules."""

    #: Set by the server tree: the L{Scheduler} (None: schedules unavailable).
    scheduler: Any = None

    def _scheduler(self) -> Any:
        if self.scheduler is None:
            raise ApiError(503, "schedules are not available on this server")
        return self.scheduler

    def _found(self, record: Optional[ScheduleRecord], name: str) -> ScheduleRecord:
        if record is None:
            raise not_found(f"schedule {name!r} is not defined")
        return record

    def _answer(self, request: Any, record: ScheduleRecord) -> bytes:
        return json_response(request, schedule_json(record, self._scheduler().next_run_at(record)))

    def _visible(self, request: Any, records: List[ScheduleRecord]) -> Any:
        """
        ``records`` as the request's token may see them: for a tenant, only
        schedules whose category is routed (or falls back) to one of its
        queues and whose last job went to one of them (a Deferred list).
        """
        token = tenant_of(request)
        if token is None or not records:
            return succeed(records)
        d = self.inspection.list_routings()

        def keep(routings: List[Any]) -> List[ScheduleRecord]:
            routed = {r.job_category: r.queue_name for r in routings}
            default = getattr(getattr(self.manager, "default_queue", None), "name", None)

            def seen(record: ScheduleRecord) -> bool:
                queue = routed.get(record.definition.category, default)
                last = record.last_job
                return queue is not None and token.sees(queue) and (last is None or token.sees(last[0]))

            return [r for r in records if seen(r)]

        d.addCallback(keep)
        return d

    @app.route("/schedules", methods=["GET"])
    def list_schedules(self, request: Any) -> Any:
        scheduler = self._scheduler()
        d = scheduler.schedules.list()
        d.addCallback(lambda records: self._visible(request, records))
        d.addCallback(lambda records: json_response(
            request, [schedule_json(r, scheduler.next_run_at(r)) for r in records]
        ))
        return d

    @app.route("/schedule/<name>", methods=["GET"])
    def get_schedule(self, request: Any, name: str) -> Any:
        d = self._scheduler().schedules.find(schedule_name(name))
        d.addCallback(lambda record: self._visible(request, [] if record is None else [record]))
        d.addCallback(lambda seen: self._answer(request, self._found(seen[0] if seen else None, name)))
        return d

    @app.route("/schedule/<name>", methods=["PUT"])
    def put_schedule(self, request: Any, name: str) -> Any:
        scheduler = self._scheduler()
        definition = parse_schedule(
            schedule_name(name), json_object(self.read_body(request)), scheduler.allow_seconds
        )
        d = scheduler.schedules.put(definition, scheduler.now_ms())

        def stored(record: ScheduleRecord) -> bytes:
            scheduler.known(record)
            return self._answer(request, record)

        d.addCallback(stored)
        return d

    @app.route("/schedule/<name>", methods=["DELETE"])
    def delete_schedule(self, request: Any, name: str) -> Any:
        scheduler = self._scheduler()
        d = scheduler.schedules.delete(schedule_name(name))

        def deleted(record: Optional[ScheduleRecord]) -> bytes:
            record = self._found(record, name)
            scheduler.forget(name)
            return json_response(request, schedule_json(record, None))

        d.addCallback(deleted)
        return d

    @app.route("/schedule/<name>/run", methods=["POST"])
    def run_schedule(self, request: Any, name: str) -> Any:
        """Push the schedule's job now (also when disabled); answers the job."""
        scheduler = self._scheduler()
        d = scheduler.schedules.find(schedule_name(name))

        def push(record: Optional[ScheduleRecord]) -> Any:
            definition = self._found(record, name).definition
            job, echo = parse_job(definition.category, job_values(definition.job), where="schedule's job: ")
            pushed = PushedJobs([(job, echo)])
            pushing = self.manager.push(definition.category, pushed.jobs, finish=pushed.finish)

            def answer(result: Tuple[str, List[Any]]) -> Any:
                queue_name, [stored] = result
                answers, _ = pushed.answers(queue_name, [stored])
                scheduler.note_run(name, queue_name, stored.id)
                noted = scheduler.schedules.set_last_job(name, queue_name, stored.id)
                # A queue that keeps finished jobs shows the job's state (B8).
                noted.addCallback(lambda _: push_states(self, queue_name, answers, [stored]))
                noted.addCallback(lambda shown: json_response(request, shown[0]))
                return noted

            pushing.addCallback(answer)
            return pushing

        d.addCallback(push)
        return d
