"""
The one Klein application every route module registers on, and the helpers
they share to render JSON.
"""

from __future__ import annotations

import time
from typing import Any, Dict

from klein import Klein
from werkzeug.routing import PathConverter

from fireworq.joboptions.values import add_option_fields
from fireworq.model import FailedJob, Job
from fireworq.web.body import dump_json, stored_json_value

#: The Klein application of the API.  Route modules decorate methods of
#: mixin classes with it; L{fireworq.web.app.FireworqAPI} combines them.
app = Klein()
# A category may contain "//"; never redirect to a "cleaned" path.
app.url_map.merge_slashes = False


class CategoryConverter(PathConverter):
    """
    A job category in a path: like ``path`` (slashes allowed) but matching
    any character, a leading ``/`` included, so that a category the API must
    refuse (a control character, say, or ``/job//a``) reaches the route and
    gets a 400 that says why.
    """

    regex = "(?s:.)+?"
    #: It spans path segments (werkzeug would guess otherwise: no "/" in the regex).
    part_isolating = False


app.url_map.converters["category"] = CategoryConverter


def json_response(request: Any, value: Any) -> bytes:
    """Answer with ``value`` as JSON (with a Content-Length: no chunking)."""
    body = dump_json(value).encode("utf-8")
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


def timestamp(ms: int) -> str:
    """
    An RFC 3339 time with milliseconds and the server's UTC offset at that
    moment (so daylight saving time is followed), e.g.
    ``2017-06-26T00:51:54.537+09:00`` (``Z`` for UTC).
    """
    seconds, millis = divmod(ms, 1000)
    t = time.localtime(seconds)
    text = "%04d-%02d-%02dT%02d:%02d:%02d.%03d" % (
        t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, millis,
    )
    offset = t.tm_gmtoff
    if offset == 0:
        return text + "Z"
    sign = "+" if offset > 0 else "-"
    minutes = abs(offset) // 60
    return "%s%s%02d:%02d" % (text, sign, minutes // 60, minutes % 60)


def job_json(job: Job) -> Dict[str, Any]:
    """A job in a queue, as the inspection API shows it (A5)."""
    out: Dict[str, Any] = {"id": job.id, "category": job.category, "url": job.url}
    if job.payload:
        out["payload"] = stored_json_value(job.payload)
    out.update(
        {
            "status": job.status,
            "created_at": timestamp(job.created_at),
            "next_try": timestamp(job.next_try),
            "timeout": job.timeout,
            "fail_count": job.fail_count,
            "max_retries": job.max_retries,
            "retry_delay": job.retry_delay,
        }
    )
    return add_option_fields(out, job.options)


def failed_job_json(failed: FailedJob) -> Dict[str, Any]:
    """A failure-log entry, as the failure API shows it (A6)."""
    out: Dict[str, Any] = {
        "id": failed.id,
        "job_id": failed.job_id,
        "category": failed.category,
        "url": failed.url,
    }
    if failed.payload:
        out["payload"] = stored_json_value(failed.payload)
    out.update(
        {
            "result": failed.result.to_json(),
            "fail_count": failed.fail_count,
            "failed_at": timestamp(failed.failed_at),
            "created_at": timestamp(failed.created_at),
        }
    )
    return add_option_fields(out, failed.options)
