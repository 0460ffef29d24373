"""
Unit tests of the logs' robustness: a log file that cannot be opened or
written never breaks a push or a delivery, an event observer that raises
does not keep the event from the others, and failures are logged with
their message and traceback (L{log_failure}).
"""

from __future__ import annotations

import ast
import errno
import io
import json
import os
import sys
from typing import Any, Dict, List

from twisted.internet.defer import fail
from twisted.logger import Logger, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from fireworq.events import EventFanout
from fireworq.logging import ErrorLogObserver, LogFile, LogFiles, QueueLog, log_failure
from tests import test_dispatcher, test_web

FIREWORQ = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fireworq")


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class BrokenFile:
    """A file object whose writes and flushes fail like a full disk."""

    def __init__(self) -> None:
        self.closed = False

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        self.closed = True


def failures(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The captured events that carry a failure."""
    return [e for e in events if e.get("log_failure") is not None]


class LogFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.reports: List[str] = []
        self.clock = FakeClock()

    def log_file(self, path: str) -> LogFile:
        log_file = LogFile(path, 1, report=self.reports.append, now=self.clock)
        self.addCleanup(log_file.close)
        return log_file

    def test_unopenable_file_drops_lines_and_reports_once(self):
        path = os.path.join(self.dir, "gone", "q.log")
        log_file = self.log_file(path)
        for i in range(100):
            log_file.write_line(f"line {i}")
            log_file.flush()
        self.assertEqual(len(self.reports), 1, self.reports)
        self.assertIn(path, self.reports[0])
        self.assertIn("No such file or directory", self.reports[0])
        self.assertTrue(log_file.failing)

    def test_unopenable_file_is_retried_and_recovers(self):
        directory = os.path.join(self.dir, "later")
        path = os.path.join(directory, "q.log")
        log_file = self.log_file(path)
        log_file.write_line("dropped")
        os.makedirs(directory)
        log_file.write_line("dropped too: no new attempt within the retry interval")
        self.clock.now += LogFile.retry_interval
        log_file.write_line("kept")
        log_file.flush()
        with open(path, encoding="utf-8") as f:
            self.assertEqual(f.read(), "kept\n")
        self.assertFalse(log_file.failing)
        self.assertEqual(len(self.reports), 2, self.reports)
        self.assertIn("can be written again", self.reports[1])

    def test_write_and_flush_failures_are_reported_once(self):
        log_file = self.log_file(os.path.join(self.dir, "q.log"))
        log_file._file = BrokenFile()
        for i in range(10):
            log_file.write_line(f"line {i}")
            log_file.flush()
        self.assertEqual(len(self.reports), 1, self.reports)
        self.assertIn("No space left on device", self.reports[0])

    def test_failed_reopen_keeps_the_old_file(self):
        directory = os.path.join(self.dir, "rotated")
        os.makedirs(directory)
        path = os.path.join(directory, "q.log")
        log_file = self.log_file(path)
        log_file.write_line("one")
        log_file.flush()
        os.rename(path, os.path.join(self.dir, "q.log.1"))
        os.rmdir(directory)
        log_file.reopen()  # must not raise
        log_file.write_line("two")
        log_file.flush()
        with open(os.path.join(self.dir, "q.log.1"), encoding="utf-8") as f:
            self.assertEqual(f.read(), "one\ntwo\n")
        self.assertEqual(len(self.reports), 1, self.reports)
        self.assertIn("cannot reopen", self.reports[0])
        self.assertIn("still writing to the file opened before", self.reports[0])
        self.assertFalse(log_file.failing)


class LogFilesReportTests(SynchronousTestCase):
    """Where the one report about a broken log file goes."""

    def setUp(self) -> None:
        from twisted.internet.task import Clock

        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.stderr = io.StringIO()
        self.patch(sys, "__stderr__", self.stderr)
        self.files = LogFiles(Clock())
        self.addCleanup(self.files.close)

    def test_broken_queue_log_is_reported_to_the_error_log(self):
        self.files.open_error_log(os.path.join(self.dir, "error.log"))
        queue_log = self.files.open(os.path.join(self.dir, "missing", "q.log"), 1)
        with capturedLogs() as events:
            queue_log.write_line("x")
            queue_log.write_line("y")
        errors = [formatEvent(e) for e in events]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("q.log", errors[0])
        self.assertEqual(self.stderr.getvalue(), "")

    def test_broken_error_log_is_reported_to_standard_error(self):
        error_log = self.files.open_error_log(os.path.join(self.dir, "missing", "e.log"))
        with capturedLogs() as events:
            error_log.write_line("x")
            error_log.write_line("y")
        self.assertEqual(events, [])
        lines = self.stderr.getvalue().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("fireworq: cannot open the log file "), lines)
        self.assertIn("e.log", lines[0])

    def test_error_observer_survives_a_broken_error_log(self):
        error_log = self.files.open_error_log(os.path.join(self.dir, "missing", "e.log"))
        observer = ErrorLogObserver(error_log, "info")
        Logger(observer=observer).failure("boom", Failure(ZeroDivisionError()))
        observer({"log_format": "plain", "log_level": None})
        self.assertEqual(len(self.stderr.getvalue().splitlines()), 1)


class RaisingObserver:
    """An event observer that fails on every event."""

    def pushed(self, queue_name, jobs):
        raise RuntimeError("observer broke")

    popped = finished = pushed


class RecordingObserver:
    def __init__(self) -> None:
        self.events: List[str] = []

    def pushed(self, queue_name, jobs):
        self.events.append("pushed")

    def popped(self, queue_name, jobs):
        self.events.append("popped")

    def finished(self, queue_name, completion, duration):
        self.events.append("finished")


class EventFanoutTests(SynchronousTestCase):
    def test_a_raising_observer_does_not_stop_the_others(self):
        after = RecordingObserver()
        clock = FakeClock()
        fanout = EventFanout([RaisingObserver(), after], now=clock)
        with capturedLogs() as events:
            fanout.pushed("q", [])
            fanout.popped("q", [])
            fanout.finished("q", None, 0.0)
        self.assertEqual(after.events, ["pushed", "popped", "finished"])
        self.flushLoggedErrors(RuntimeError)
        logged = failures(events)
        self.assertEqual(len(logged), 1)
        self.assertEqual(
            formatEvent(logged[0]), "Event observer RaisingObserver failed on pushed of queue q"
        )
        self.assertIsInstance(logged[0]["log_failure"].value, RuntimeError)

    def test_repeated_failures_are_logged_at_intervals_with_a_count(self):
        clock = FakeClock()
        fanout = EventFanout([RaisingObserver()], now=clock)
        with capturedLogs() as events:
            for _ in range(5):
                fanout.pushed("q", [])
            clock.now += EventFanout.report_interval
            fanout.pushed("q", [])
        self.flushLoggedErrors(RuntimeError)
        logged = [formatEvent(e) for e in failures(events)]
        self.assertEqual(len(logged), 2, logged)
        self.assertIn("4 more failures", logged[1])


class BrokenQueueLogPushTests(test_web.APITestCase):
    """A queue log that cannot be opened: pushes still answer and deliver."""

    def test_push_is_answered_and_delivered(self):
        reports: List[str] = []
        broken = LogFile("/nonexistent/fireworq-test/q.log", 1, report=reports.append)
        self.events.add(QueueLog(broken, "fireworq.queue", "debug"))
        code, body = self.call("POST", "/job/c", {"url": "http://w/x"})
        self.assertEqual(code, 200, body)
        self.assertIn(body["id"], self.deliverer.pending)
        self.assertEqual(len(reports), 1)

    def test_raising_observer_does_not_break_a_push(self):
        self.events.observers.insert(0, RaisingObserver())
        with capturedLogs() as events:
            code, body = self.call("POST", "/job/c", {"url": "http://w/x"})
        self.assertEqual(code, 200, body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len(failures(events)), 1)
        self.assertIn(body["id"], self.deliverer.pending)


class LogFailureTests(SynchronousTestCase):
    def test_errback_logs_message_fields_and_traceback(self):
        log = Logger(namespace="test")
        with capturedLogs() as events:
            d = fail(ZeroDivisionError("nope"))
            d.addErrback(log_failure(log, "Cannot stop queue {queue}", queue="q1"))
        self.assertIsNone(self.successResultOf(d))
        self.flushLoggedErrors(ZeroDivisionError)
        self.assertEqual(len(events), 1)
        self.assertEqual(formatEvent(events[0]), "Cannot stop queue q1")
        self.assertIsInstance(events[0]["log_failure"].value, ZeroDivisionError)

    def test_error_log_line_has_message_and_traceback(self):
        lines: List[str] = []

        class Lines:
            def write_line(self, line):
                lines.append(line)

            def flush(self):
                pass

        d = fail(ZeroDivisionError("nope"))
        d.addErrback(log_failure(Logger(observer=ErrorLogObserver(Lines(), "info")), "Closing {what}", what="x"))
        record = json.loads(lines[0])
        self.assertEqual(record["message"], "Closing x")
        self.assertIn("ZeroDivisionError: nope", record["traceback"])

    def test_no_errback_passes_a_bound_failure_method(self):
        """``d.addErrback(log.failure, "text")`` makes the failure the format string."""
        offenders = []
        for root, _, names in os.walk(FIREWORQ):
            for name in names:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read(), path)
                for node in ast.walk(tree):
                    if (
                        isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("addErrback", "addBoth", "addCallbacks", "addCallback")
                        and any(
                            isinstance(arg, ast.Attribute) and arg.attr == "failure"
                            for arg in node.args
                        )
                    ):
                        offenders.append(f"{os.path.relpath(path, FIREWORQ)}:{node.lineno}")
        self.assertEqual(offenders, [])


class CallSiteTests(SynchronousTestCase):
    """Real errbacks log a formatted message with the failure."""

    # The store, clock and dispatcher of the dispatcher tests (not their tests).
    setUp = test_dispatcher.DispatcherTests.setUp
    make = test_dispatcher.DispatcherTests.make

    def test_dispatcher_stop_failure(self):
        dispatcher = self.make()
        dispatcher.startService()
        self.clock.advance(0)
        dispatcher.lease.stop = lambda: fail(RuntimeError("lease store gone"))
        with capturedLogs() as events:
            d = dispatcher.stopService()
            self.clock.advance(10)
        self.successResultOf(d)
        self.flushLoggedErrors(RuntimeError)
        logged = failures(events)
        self.assertEqual([formatEvent(e) for e in logged], ["Error while stopping queue q"])
        self.assertIsInstance(logged[0]["log_failure"].value, RuntimeError)

    def test_manager_watcher_failure(self):
        from fireworq.manager import QueueManager
        from fireworq.pushing import PushBatcher
        from fireworq.store.memory import MemoryRepository

        manager = QueueManager(
            self.store,
            MemoryRepository(),
            PushBatcher(self.store, self.clock),
            lambda definition: None,
            EventFanout(),
            self.stats,
            self.clock,
        )

        def refresh():
            raise RuntimeError("repository broke")

        manager.refresh = refresh
        with capturedLogs() as events:
            manager.startService()
        self.flushLoggedErrors(RuntimeError)
        logged = failures(events)
        # Issue 11: periodic work (timers.Periodic) logs a failed call and goes
        # on, where the bare LoopingCall stopped for good.
        self.assertEqual(
            [formatEvent(e) for e in logged],
            ["Periodic work the configuration watcher failed; it runs again in 1.0s"],
        )
        self.assertTrue(manager._watcher.running)
        manager.stopService()
