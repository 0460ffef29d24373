"""
Unit tests of start-up failures of L{FireworqService} in process: an
address that cannot be listened on, a pid file that cannot be written.
Each stops start-up with one line naming the setting and exit status 2
(L{StartupFailed} in daemon mode), never a traceback.
"""

from __future__ import annotations

import io
import os
import socket
import sys

from twisted.internet import reactor
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from fireworq.config import load
from fireworq.server import FireworqService, StartupFailed, Stores
from fireworq.store.memory import MemoryJobStore, MemoryRepository
from fireworq.tap import Options, makeService


class StartupFailureTests(TestCase):
    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "__stderr__", self.stderr)
        self.busy = socket.socket()
        self.addCleanup(self.busy.close)
        self.busy.bind(("127.0.0.1", 0))
        self.busy.listen(1)
        self.busy_port = self.busy.getsockname()[1]
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)

    def service(self, daemon: bool = False, **settings: str) -> FireworqService:
        settings.setdefault("driver", "in-memory")
        settings.setdefault("error_log", os.path.join(self.dir, "error.log"))
        config = load(settings, environ={})
        service = FireworqService(
            config, reactor=reactor, stores=Stores(MemoryJobStore(), MemoryRepository()), daemon=daemon
        )
        self.addCleanup(service.log_files.close)
        return service

    def assertOneLine(self, name: str, words: str) -> None:
        lines = self.stderr.getvalue().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith(f"fireworq: invalid setting {name}="), lines[0])
        self.assertIn(words, lines[0])

    def test_busy_port_exits_2_with_one_line(self):
        service = self.service(bind=f"127.0.0.1:{self.busy_port}")
        with self.assertRaises(SystemExit) as caught:
            service.privilegedStartService()
        self.assertEqual(caught.exception.code, 2)
        self.assertOneLine("bind", "(--bind / FIREWORQ_BIND): cannot listen: Address already in use")

    def test_busy_port_when_started_without_privileged_start(self):
        service = self.service(bind=f"127.0.0.1:{self.busy_port}")
        with self.assertRaises(SystemExit):
            service.startService()
        self.assertOneLine("bind", "cannot listen")

    def test_busy_port_in_daemon_mode_raises_for_twistd(self):
        service = self.service(daemon=True, bind=f"127.0.0.1:{self.busy_port}")
        with capturedLogs() as events:
            with self.assertRaises(StartupFailed) as caught:
                service.privilegedStartService()
        # twistd's parent prints the start of the message: the essentials first.
        self.assertTrue(str(caught.exception).startswith(f"bind='127.0.0.1:{self.busy_port}': cannot listen"))
        self.assertEqual(self.stderr.getvalue(), "")
        critical = [formatEvent(e) for e in events if e["log_level"].name == "critical"]
        self.assertEqual(len(critical), 1, critical)
        self.assertIn("invalid setting bind=", critical[0])

    def test_pid_file_that_cannot_be_written(self):
        pid = os.path.join(self.dir, "gone", "x.pid")
        service = self.service(bind="127.0.0.1:0", pid=pid)
        service.privilegedStartService()
        # The tree is stopped as a whole (its API listener among its children).
        self.addCleanup(service.stopService)
        with self.assertRaises(SystemExit) as caught:
            service.startService()
        self.assertEqual(caught.exception.code, 2)
        self.assertOneLine("pid", "cannot write the pid file: No such file or directory")

    def test_make_service_knows_daemon_mode(self):
        from twisted.scripts.twistd import ServerOptions

        for args, daemon in ((["-n"], False), ([], True)):
            twistd = ServerOptions()
            twistd.parseOptions(args + ["fireworq", "--driver=in-memory", "--bind=127.0.0.1:0"])
            service = makeService(twistd.subOptions)
            self.addCleanup(service.log_files.close)
            self.assertIs(service.daemon, daemon)
        options = Options()
        options.parseOptions(["--driver=in-memory"])
        service = makeService(options)
        self.addCleanup(service.log_files.close)
        self.assertFalse(service.daemon)


class DiscardBufferedLinesTests(TestCase):
    """
    Bug 9 of issue 11: log lines buffered for a standard stream are
    discarded on a start-up failure, so that the interpreter does not write
    them out at exit after the one-line error (Python 3.13 does).
    """

    def test_buffered_standard_stream_lines_go_nowhere(self):
        from fireworq.logging import LogFiles

        read, write = os.pipe()
        self.addCleanup(os.close, read)
        files = LogFiles(reactor)
        stream = files.open("", write)  # a duplicate of ``write``, like standard error
        path = os.path.abspath(self.mktemp())
        on_disk = files.open(path, 1)
        stream.write_line("buffered, for the pipe")
        on_disk.write_line("buffered, for the file")
        files.discard_standard_streams()
        with open(path) as f:
            self.assertEqual(f.read(), "buffered, for the file\n")
        files.close()  # would flush what was not discarded
        os.close(write)
        self.assertEqual(os.read(read, 1000), b"")  # every write end closed, nothing written
