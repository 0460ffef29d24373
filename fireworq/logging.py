"""
JSON-lines logs (A8): the queue log (one line per job event), the access log
(one line per API request) and the error log (the server's own messages).

Each log goes to a file named in the configuration, or to standard output
(queue, access) or standard error (error).  L{LogFiles.reopen} reopens every
file, for log rotation on ``SIGUSR1``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import IO, Any, Callable, Dict, List, Optional, Sequence

from twisted.internet.interfaces import IReactorTime
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from twisted.python.failure import Failure
from zope.interface import implementer

from fireworq.events import IQueueEvents
from fireworq.model import Completion, CompletionKind, Job
from fireworq.timers import Periodic

#: Level names of the configuration, lowest first, with their rank.
LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3, "fatal": 4}

_TWISTED_LEVELS = {
    LogLevel.debug: "debug",
    LogLevel.info: "info",
    LogLevel.warn: "warn",
    LogLevel.error: "error",
    LogLevel.critical: "fatal",
}


_log = Logger()


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return int(time.time() * 1000)


def _report_to_stderr(message: str) -> None:
    """Write ``message`` to the process's original standard error, if it can."""
    stream = sys.__stderr__
    if stream is None:
        return
    try:
        stream.write(f"fireworq: {message}\n")
        stream.flush()
    except (OSError, ValueError):
        pass


class LogFile:
    """
    A log destination: a file opened for appending, or (when ``path`` is
    empty) a duplicate of the process's standard output or error, taken when
    the file is first used (so after twistd has daemonized and redirected
    ``sys.stdout``).  Lines are buffered; L{LogFiles} flushes them
    periodically.

    Writing never raises: a log that cannot be opened or written (its
    directory removed, the disk full) drops its lines, tells ``report``
    once (until it works again, when it tells that too), and tries to open
    the file again at most every L{retry_interval} seconds.
    """

    #: Seconds between attempts to open a file that could not be opened.
    retry_interval = 1.0

    def __init__(
        self,
        path: str,
        fd: int,
        report: Callable[[str], None] = _report_to_stderr,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.fd = fd
        self._file: Optional[IO[str]] = None
        self._report = report
        self._now = now
        self._retry_at = 0.0
        #: Whether the last attempt to open, write or flush failed.
        self.failing = False

    @property
    def name(self) -> str:
        """The path, or the standard stream, for messages."""
        return self.path or ("standard error" if self.fd == 2 else "standard output")

    def _open(self) -> IO[str]:
        if self.path:
            return open(self.path, "a", encoding="utf-8", buffering=65536)
        return open(os.dup(self.fd), "w", encoding="utf-8", buffering=65536)

    def _failed(self, doing: str, error: BaseException) -> None:
        if self.failing:
            return
        # Set first: the report may log, and so write to this very file.
        self.failing = True
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        self._report(
            f"cannot {doing} the log file {self.name}: {reason}; "
            "its lines are dropped until it can be written again"
        )

    def _recovered(self) -> None:
        if self.failing:
            self.failing = False
            self._report(f"the log file {self.name} can be written again")

    def _ensure_open(self) -> Optional[IO[str]]:
        if self._file is None:
            if self._now() < self._retry_at:
                return None
            try:
                self._file = self._open()
            except (OSError, ValueError) as e:
                self._retry_at = self._now() + self.retry_interval
                self._failed("open", e)
                return None
        return self._file

    def reopen(self) -> None:
        """Close and open the file again (after it was rotated)."""
        if not self.path and self._file is not None:
            self.flush()
            return
        try:
            new = self._open()
        except (OSError, ValueError) as e:
            if self._file is None:
                self._retry_at = self._now() + self.retry_interval
                self._failed("open", e)
            else:  # keep writing to the file opened before
                reason = getattr(e, "strerror", None) or str(e)
                self._report(
                    f"cannot reopen the log file {self.name}: {reason}; "
                    "still writing to the file opened before"
                )
            return
        old, self._file = self._file, new
        if old is not None:
            try:
                old.close()
            except (OSError, ValueError):
                pass
        self._recovered()

    def write_line(self, line: str) -> None:
        """Append one line (or drop it, when the file cannot be written)."""
        output = self._ensure_open()
        if output is None:
            return
        try:
            output.write(line + "\n")
        except (OSError, ValueError) as e:
            self._failed("write", e)

    def flush(self) -> None:
        """Push buffered lines to the operating system."""
        if self._file is None:
            return
        try:
            self._file.flush()
        except (OSError, ValueError) as e:
            self._failed("write", e)
        else:
            self._recovered()

    def discard(self) -> None:
        """
        Drop the buffered lines and close: the file's descriptor is pointed
        at the null device first, so that the buffer goes nowhere.  For a
        start-up failure, whose one-line message must be all that standard
        error shows.
        """
        if self._file is None:
            return
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, self._file.fileno())
            finally:
                os.close(null)
            self._file.close()
        except (OSError, ValueError):
            pass
        self._file = None

    def close(self) -> None:
        """Flush and close."""
        if self._file is not None:
            self.flush()
            try:
                self._file.close()
            except (OSError, ValueError):
                pass
            self._file = None


class LogFiles:
    """
    All log files of the process: flushed periodically, reopened together.

    A file that cannot be written is reported once through ``report``; by
    default to the error log (the L{Logger} of this module) and, for the
    error log itself (which cannot carry its own trouble), to the process's
    original standard error.
    """

    def __init__(
        self,
        clock: IReactorTime,
        flush_interval: float = 0.2,
        report: Optional[Callable[[LogFile, str], None]] = None,
    ) -> None:
        self._files: List[LogFile] = []
        self._flusher = Periodic(flush_interval, self.flush, clock=clock, now=False, name="log flush")
        self._report = report if report is not None else self._default_report
        #: The file of the error log, once L{open_error_log} opened it.
        self.error_log: Optional[LogFile] = None

    def _default_report(self, log_file: LogFile, message: str) -> None:
        if log_file is self.error_log or self.error_log is None or self.error_log.failing:
            _report_to_stderr(message)
        else:
            _log.error("{problem}", problem=message)

    def open(self, path: str, fd: int) -> LogFile:
        """The log file of ``path`` (or of standard stream ``fd`` when empty)."""
        for existing in self._files:
            if existing.path == path and (path or existing.fd == fd):
                return existing
        log_file = LogFile(path, fd, report=lambda message: self._report(log_file, message))
        self._files.append(log_file)
        return log_file

    def open_error_log(self, path: str) -> LogFile:
        """The error log's file (standard error when ``path`` is empty)."""
        self.error_log = self.open(path, 2)
        return self.error_log

    def start(self) -> None:
        """Begin periodic flushing."""
        if not self._flusher.running:
            self._flusher.startService()

    def flush(self) -> None:
        """Flush every file."""
        for log_file in self._files:
            log_file.flush()

    def discard_standard_streams(self) -> None:
        """Drop what is buffered for standard output and error; flush the files."""
        for log_file in self._files:
            if log_file.path:
                log_file.flush()
            else:
                log_file.discard()

    def reopen(self) -> None:
        """Reopen every file (SIGUSR1)."""
        for log_file in self._files:
            log_file.reopen()

    def close(self) -> None:
        """Stop flushing and close every file."""
        if self._flusher.running:
            self._flusher.stopService()
        for log_file in self._files:
            log_file.close()


def log_failure(logger: Logger, format: str, **fields: Any) -> Callable[[Failure], None]:
    """
    An errback that logs the failure it gets through ``logger`` as
    ``format`` (a L{twisted.logger} format string, filled from ``fields``)
    with its traceback, and swallows it::

        d.addErrback(log_failure(self._log, "Cannot stop queue {queue}", queue=name))

    (``d.addErrback(self._log.failure, "...")`` would pass the failure as
    the format string and lose both the message and the traceback.)
    """

    def errback(failure: Failure) -> None:
        logger.failure(format, failure, **fields)

    return errback


#: One encoder for every line: json.dumps with these options would build a
#: new one for each.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dumps(record: Dict[str, Any]) -> str:
    return _ENCODER.encode(record)


@implementer(IQueueEvents)
class QueueLog:
    """The queue log: push, pop, complete and retry lines (A8)."""

    def __init__(
        self,
        output: LogFile,
        tag: str,
        level: str,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._output = output
        self._tag = tag
        self._rank = LEVELS[level]
        self._now = clock

    def _line(
        self,
        level: str,
        action: str,
        queue_name: str,
        job: Job,
        status: str,
        fail_count: int,
        message: str,
    ) -> None:
        now = self._now()
        self._output.write_line(
            _dumps(
                {
                    "level": level,
                    "time": now,
                    "tag": self._tag,
                    "action": action,
                    "queue": queue_name,
                    "category": job.category,
                    "id": job.id,
                    "status": status,
                    "created_at": job.created_at,
                    "elapsed": now - job.created_at,
                    "url": job.url,
                    "payload": job.payload,
                    "next_try": job.next_try,
                    "retry_count": job.retry_count,
                    "retry_delay": job.retry_delay,
                    "fail_count": fail_count,
                    "timeout": job.timeout,
                    "message": message,
                }
            )
        )

    def pushed(self, queue_name: str, jobs: Sequence[Job]) -> None:
        if self._rank > LEVELS["info"]:
            return
        for job in jobs:
            # "claimed", as the original logs every push, even when this node
            # stored the job grabbed to deliver it at once.
            self._line("info", "push", queue_name, job, "claimed", job.fail_count, "New job accepted")

    def popped(self, queue_name: str, jobs: Sequence[Job]) -> None:
        if self._rank > LEVELS["debug"]:
            return
        for job in jobs:
            self._line("debug", "pop", queue_name, job, job.status, job.fail_count, "A job grabbed")

    def expired(self, queue_name: str, jobs: Sequence[Job]) -> None:
        """Jobs written to the failure log past their deadline (B7): action ``expire``."""
        if self._rank > LEVELS["info"]:
            return
        for job in jobs:
            self._line("info", "expire", queue_name, job, "expired", job.fail_count, "Deadline passed")

    def finished(self, queue_name: str, completion: Completion, duration: float) -> None:
        if self._rank > LEVELS["info"]:
            return
        job = completion.job
        if completion.kind is CompletionKind.SUCCESS:
            action, status, fail_count = "complete", "completed", job.fail_count
        elif completion.kind is CompletionKind.FAIL:
            action, status, fail_count = "complete", "failed", job.fail_count + 1
        else:
            action, status, fail_count = "retry", "failed", job.fail_count + 1
        self._line("info", action, queue_name, job, status, fail_count, completion.result.message)


@implementer(ILogObserver)
class ErrorLogObserver:
    """The error log: Twisted log events at or above a level, as JSON lines."""

    def __init__(self, output: LogFile, level: str, tag: str = "fireworq.error") -> None:
        self._output = output
        self._rank = LEVELS[level]
        self._tag = tag

    def __call__(self, event: Dict[str, Any]) -> None:
        level = _TWISTED_LEVELS.get(event.get("log_level", LogLevel.info), "info")
        if LEVELS[level] < self._rank:
            return
        try:
            message = formatEvent(event)
        except Exception:  # formatting must never break logging
            message = repr(event.get("log_format"))
        record: Dict[str, Any] = {
            "level": level,
            "time": int(event.get("log_time", time.time()) * 1000),
            "tag": self._tag,
            "message": message,
        }
        namespace = event.get("log_namespace")
        if namespace:
            record["namespace"] = namespace
        failure = event.get("log_failure")
        if failure is not None:
            try:
                record["traceback"] = failure.getTraceback()
            except Exception:
                record["traceback"] = repr(failure)
        self._output.write_line(_dumps(record))
        if LEVELS[level] >= LEVELS["error"]:
            self._output.flush()


class AccessLog:
    """The access log: one line per API request."""

    def __init__(self, output: LogFile, tag: str) -> None:
        self._output = output
        self._tag = tag

    def request(self, request: Any) -> None:
        """Write the line of a finished ``request`` (a twisted.web request)."""
        started = getattr(request, "started", None)
        elapsed = (time.time() - started) * 1000 if started else 0.0
        client = request.getClientAddress()
        self._output.write_line(
            _dumps(
                {
                    "level": "info",
                    "time": now_ms(),
                    "tag": self._tag,
                    "method": _text(request.method),
                    "uri": _text(request.uri),
                    "proto": _text(request.clientproto),
                    "status": request.code,
                    "size": request.sentLength,
                    "elapsed": round(elapsed, 3),
                    "remote_addr": getattr(client, "host", ""),
                    "user_agent": _text(request.getHeader(b"user-agent") or b""),
                }
            )
        )


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)

