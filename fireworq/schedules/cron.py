"""
Cron expressions of schedules (B10), evaluated by the ``cronsim`` library
in an IANA time zone (``zoneinfo``).

Why cronsim (docs/schedules.md has the comparison): it is kept up
(Healthchecks.io's own evaluator), takes ``zoneinfo`` zones as they are,
and follows Debian cron's documented rules for daylight-saving changes:
a job with a fixed minute and hour whose time falls in a spring-forward
gap runs right after the gap, and one whose time falls in a repeated hour
runs once (its first occurrence); expressions with ``*`` in the minute or
hour field run at every wall-clock time that exists.

Times are integers of milliseconds since the epoch throughout; cron times
are whole seconds.

``zoneinfo`` and ``cronsim`` are imported when the first cron is parsed, so
that a server without schedules does not load them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator, List, Optional

import attr

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

#: The ``@``-aliases of the usual crons, as 5-field expressions.
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

#: Longest expression accepted, in characters.
MAX_EXPRESSION = 255


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message names the problem."""


def load_zone(name: str) -> ZoneInfo:
    """
    The IANA time zone ``name`` (``UTC``, ``Europe/Berlin``, ...).

    @raise CronError: unknown or malformed name.
    """
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise CronError(f"unknown time zone {name!r}")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin is expected)")


def _to_datetime(ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).astimezone(zone)


def _to_ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Cron:
    """
    A parsed cron expression in a time zone.

    @ivar expression: as given (an alias stays an alias).
    @ivar fields: the fields cronsim evaluates.
    """

    expression: str
    fields: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, zone_name: str = "UTC", allow_seconds: bool = False) -> "Cron":
        """
        Parse 5 fields (minute hour day-of-month month day-of-week) or an
        alias.  ``allow_seconds`` (tests only) also takes 6 fields, the first
        being seconds.

        @raise CronError: naming what is wrong.
        """
        zone = load_zone(zone_name)
        if not isinstance(expression, str):
            raise CronError("cron must be a string")
        text = " ".join(expression.split())
        if not text:
            raise CronError("cron must not be empty")
        if len(text) > MAX_EXPRESSION:
            raise CronError(f"cron is longer than {MAX_EXPRESSION} characters")
        if text.startswith("@"):
            fields = ALIASES.get(text.lower())
            if fields is None:
                raise CronError(f"unknown cron alias {text!r} (known: {', '.join(sorted(ALIASES))})")
        else:
            fields = text
            count = len(fields.split(" "))
            wanted = (5, 6) if allow_seconds else (5,)
            if count not in wanted:
                raise CronError(
                    f"cron must have 5 fields (minute hour day-of-month month day-of-week), not {count}"
                )
        from cronsim import CronSim, CronSimError

        try:
            probe = CronSim(fields, datetime(2000, 1, 1, tzinfo=zone))
            next(probe)
        except CronSimError as e:
            raise CronError(f"invalid cron expression {text!r}: {e}")
        except StopIteration:
            raise CronError(f"cron expression {text!r} never matches")
        except Exception as e:  # cronsim can raise others on odd input
            raise CronError(f"invalid cron expression {text!r}: {e}")
        return cls(text, fields, zone)

    def iterate(self, after_ms: int) -> Iterator[int]:
        """The cron's times strictly after ``after_ms``, in order (ms)."""
        from cronsim import CronSim

        for moment in CronSim(self.fields, _to_datetime(after_ms, self.zone)):
            yield _to_ms(moment)

    def next_after(self, after_ms: int) -> Optional[int]:
        """The first time strictly after ``after_ms``, or None if there is none."""
        for when in self.iterate(after_ms):
            return when
        return None

    def latest_at_or_before(self, at_ms: int, floor_ms: int) -> Optional[int]:
        """The last time in (``floor_ms``, ``at_ms``], or None."""
        from cronsim import CronSim

        start = _to_datetime(at_ms - at_ms % 1000 + 1000, self.zone)
        for moment in CronSim(self.fields, start, reverse=True):
            when = _to_ms(moment)
            if when > at_ms:
                continue
            return when if when > floor_ms else None
        return None

    def times_between(self, after_ms: int, until_ms: int, limit: int) -> List[int]:
        """The times in (``after_ms``, ``until_ms``], at most ``limit`` of them (the first ones)."""
        out: List[int] = []
        for when in self.iterate(after_ms):
            if when > until_ms or len(out) >= limit:
                break
            out.append(when)
        return out

    def local(self, ms: int) -> str:
        """``ms`` as RFC 3339 in the schedule's zone (for answers and logs)."""
        return _to_datetime(ms, self.zone).isoformat()
