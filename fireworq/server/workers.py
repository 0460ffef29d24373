"""
Several server processes on one host (setting ``workers``): every core of
the host serves the API and dispatches queues.

One Python process uses one core (the reactor and the GIL), so
``twistd fireworq --workers N`` starts a supervisor instead of a
server: it reserves the listening port, then runs N ordinary server
processes (children of a L{ProcessMonitor}, restarted when one dies) that
each listen on the same port with ``SO_REUSEPORT``.  The kernel spreads
incoming connections over them.

Each child is a node of its own (its own node id, lease keeper and pools,
against the same MySQL database), so the MySQL lease balancer spreads the
queues over the children exactly as it spreads them over hosts.  A push
that lands on a child that does not hold its queue's lease is stored as
waiting; to keep it from waiting for the lease holder's next poll, the
child wakes its siblings: every child listens on a unix datagram socket in
a directory the supervisor made, and a datagram naming the queue makes the
holder poll at once (L{Siblings}).  That is one datagram per sibling per
reactor turn (at most one every 2 ms under a stream of pushes), not a
polling timer.

Only the MySQL store can be shared by processes: the sqlite and in-memory
stores belong to one process, and L{fireworq.config.load} refuses
``workers`` > 1 for them with one line.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Set

import attr
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from fireworq.config import ENV_PREFIX, SETTINGS, Config

#: Environment of a child: the directory of the siblings' sockets, and its slot.
GROUP_ENV = "_FIREWORQ_WORKER_GROUP"
INDEX_ENV = "_FIREWORQ_WORKER_INDEX"
#: The supervisor's process id, which a child follows (L{follow_supervisor}).
SUPERVISOR_ENV = "_FIREWORQ_SUPERVISOR"

_PR_SET_PDEATHSIG = 1


def follow_supervisor(environ: Optional[Dict[str, str]] = None) -> None:
    """
    In a child: get SIGTERM (a graceful stop) when the supervisor dies,
    even by SIGKILL (Linux ``PR_SET_PDEATHSIG``), so that no server process
    is left behind; stop at once if it is already gone.
    """
    environ = os.environ if environ is None else environ
    supervisor = environ.get(SUPERVISOR_ENV)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):  # not Linux: the supervisor's stop is the only way
        pass
    if supervisor and os.getppid() != int(supervisor):
        os.kill(os.getpid(), signal.SIGTERM)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Slot:
    """This process's place among the server processes of its host."""

    group: str
    index: int
    count: int

    def socket_path(self, index: int) -> str:
        """The wake-up socket of sibling ``index``."""
        return os.path.join(self.group, f"{index}.sock")


def slot_from_environment(config: Config, environ: Optional[Dict[str, str]] = None) -> Optional[Slot]:
    """This process's L{Slot} when a supervisor started it, else None."""
    environ = os.environ if environ is None else environ
    group = environ.get(GROUP_ENV)
    if not group or config.workers < 2:
        return None
    return Slot(group, int(environ.get(INDEX_ENV, "0")), config.workers)


def reuseport_socket(host: str, port: int, listen: bool) -> socket.socket:
    """
    A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (listening
    when ``listen``), so that the processes of one host share the port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(1024)
            sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


@implementer(IStreamServerEndpoint)
class ReusePortEndpoint:
    """Listens on ``host:port`` beside the sibling processes (``SO_REUSEPORT``)."""

    def __init__(self, reactor: Any, host: str, port: int) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port

    def listen(self, factory: Any) -> "Deferred[IListeningPort]":
        from twisted.internet.defer import fail
        from twisted.internet.error import CannotListenError

        try:
            sock = reuseport_socket(self.host, self.port, listen=True)
        except OSError as e:
            return fail(CannotListenError(self.host, self.port, e))
        try:
            port = self.reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
        finally:
            sock.close()  # the reactor has its own duplicate of the descriptor
        return succeed(port)


class _WakeReceiver(DatagramProtocol):
    def __init__(self, on_wake: Callable[[str], None]) -> None:
        self.on_wake = on_wake

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        for name in data.decode("utf-8", "replace").split("\n"):
            if name:
                self.on_wake(name)


class Siblings:
    """
    The local wake-up between the server processes of one host: L{wake}
    tells every sibling that a queue has new due jobs; a sibling holding
    the queue's lease polls it at once (``on_wake``).  Wake-ups are sent
    together, one datagram per sibling: at the end of the reactor turn, or
    under a stream of pushes at most every L{MIN_GAP} seconds (each
    datagram costs both processes a system call and the holder a poll,
    and one poll grabs every job due by then).
    """

    _log = Logger()

    #: Seconds between two datagrams to the siblings.
    MIN_GAP = 0.002

    def __init__(self, slot: Slot, reactor: Any, on_wake: Callable[[str], None]) -> None:
        self.slot = slot
        self.reactor = reactor
        self.on_wake = on_wake
        self._pending: Set[str] = set()
        self._flush_call: Any = None
        self._last_flush = float("-inf")
        self._port: Any = None
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._out.setblocking(False)
        self._targets: List[str] = [slot.socket_path(i) for i in range(slot.count) if i != slot.index]

    def start(self) -> None:
        """Listen on this process's wake-up socket; stop when the supervisor dies."""
        follow_supervisor()
        path = self.slot.socket_path(self.slot.index)
        try:
            os.unlink(path)  # left by a predecessor in this slot
        except FileNotFoundError:
            pass
        self._port = self.reactor.listenUNIXDatagram(path, _WakeReceiver(self.on_wake))

    def stop(self) -> Any:
        """Stop listening."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        port, self._port = self._port, None
        self._out.close()
        if port is None:
            return None
        d = port.stopListening()
        try:
            os.unlink(self.slot.socket_path(self.slot.index))
            if str(os.getppid()) != os.environ.get(SUPERVISOR_ENV):
                os.rmdir(self.slot.group)  # the supervisor is gone: the last child out tidies up
        except OSError:  # gone already, or siblings' sockets still there
            pass
        return d

    def wake(self, queue_name: str) -> None:
        """Tell the siblings (at the end of this reactor turn) that ``queue_name`` has due jobs."""
        self._pending.add(queue_name)
        if self._flush_call is None or not self._flush_call.active():
            wait = self._last_flush + self.MIN_GAP - self.reactor.seconds()
            self._flush_call = self.reactor.callLater(max(0.0, wait), self._flush)

    def _flush(self) -> None:
        self._last_flush = self.reactor.seconds()
        data = "\n".join(sorted(self._pending)).encode("utf-8")
        self._pending.clear()
        for target in self._targets:
            try:
                self._out.sendto(data, target)
            except OSError as e:
                # A sibling restarting (no socket) or too busy to read
                # (full buffer): its next poll finds the jobs.
                if e.errno not in (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN, errno.ENOBUFS):
                    self._log.warn("Cannot wake sibling {target}: {error}", target=target, error=e)


def child_environment(config: Config, slot: Slot, port: int) -> Dict[str, str]:
    """
    The environment of child ``slot.index``: every setting as its
    ``FIREWORQ_*`` variable (secrets stay out of the command line), the
    real port, no pid file (the supervisor writes it), and the slot.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for setting in SETTINGS:
        env[setting.env] = config.raw.get(setting.name, setting.default)
    host = f"[{config.bind_host}]" if ":" in config.bind_host else config.bind_host
    env[ENV_PREFIX + "BIND"] = f"{host}:{port}"
    env[ENV_PREFIX + "PID"] = ""
    env[GROUP_ENV] = slot.group
    env[INDEX_ENV] = str(slot.index)
    env[SUPERVISOR_ENV] = str(os.getpid())
    return env


class Supervisor(MultiService):
    """
    ``twistd fireworq --workers N``: reserves the port, runs N server
    processes on it (restarting any that dies), writes the pid file, passes
    SIGUSR1 (reopen logs) on to them, and stops them all (SIGTERM, then
    SIGKILL after ``shutdown_timeout`` + 10 s).
    """

    _log = Logger()

    def __init__(self, config: Config, reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self.reserved: Optional[socket.socket] = None
        self.group = ""
        from twisted.runner.procmon import ProcessMonitor  # only the supervisor needs it

        self.monitor = ProcessMonitor(reactor=reactor)
        self.monitor.killTime = config.shutdown_timeout + 10
        self.monitor.setServiceParent(self)

    @property
    def port(self) -> int:
        """The port the children listen on."""
        assert self.reserved is not None
        return self.reserved.getsockname()[1]

    def reserve(self) -> None:
        """
        Bind the port (not listening: connections go to the children only),
        so that a port in use stops start-up here, and port 0 becomes one
        port for all children.
        """
        try:
            self.reserved = reuseport_socket(self.config.bind_host, self.config.bind_port, listen=False)
        except OSError as e:
            sys.stderr.write(f"fireworq: invalid setting bind={self.config.raw.get('bind', '')!r}: "
                             f"cannot listen: {e.strerror or e}\n")
            sys.stderr.flush()
            raise SystemExit(2)

    def privilegedStartService(self) -> None:
        if self.group:
            return
        if self.reserved is None:
            self.reserve()
        self.group = tempfile.mkdtemp(prefix="fireworq-workers-")
        command = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                   "--pidfile=", "-n", "fireworq"]
        for index in range(self.config.workers):
            slot = Slot(self.group, index, self.config.workers)
            self.monitor.addProcess(f"worker-{index}", command,
                                    env=child_environment(self.config, slot, self.port))
        super().privilegedStartService()

    def startService(self) -> None:
        self.privilegedStartService()  # once; twistd calls it first
        super().startService()
        self._forward_sigusr1()
        if self.config.pid:
            with open(self.config.pid, "w") as f:
                f.write(f"{os.getpid()}\n")
        self._log.info("Fireworq supervisor: {count} server processes on port {port}",
                       count=self.config.workers, port=self.port)

    def _forward_sigusr1(self) -> None:
        """SIGUSR1 (reopen the log files, after a rotation) goes on to every child."""

        def forward() -> None:
            for protocol in list(self.monitor.protocols.values()):
                try:
                    protocol.transport.signalProcess(signal.SIGUSR1)
                except Exception:  # exited meanwhile
                    pass

        try:
            signal.signal(signal.SIGUSR1, lambda signum, frame: self.reactor.callFromThread(forward))
        except (ValueError, AttributeError):  # not the main thread, or no SIGUSR1
            pass

    def stopService(self) -> "Deferred[None]":
        super().stopService()  # SIGTERM to every child (ProcessMonitor)
        d = self._children_gone(self.config.shutdown_timeout + 15)

        def cleanup(result: Any) -> Any:
            if self.reserved is not None:
                self.reserved.close()
            shutil.rmtree(self.group, ignore_errors=True)
            if self.config.pid:
                try:
                    os.remove(self.config.pid)
                except OSError:
                    pass
            return result

        return d.addBoth(cleanup)

    def _children_gone(self, timeout: float) -> "Deferred[None]":
        """Fires once every child has exited (or after ``timeout``): the supervisor exits last."""
        from twisted.internet.task import deferLater

        deadline = self.reactor.seconds() + timeout

        def check(_: object = None) -> Any:
            if not self.monitor.protocols or self.reactor.seconds() > deadline:
                return None
            return deferLater(self.reactor, 0.1, lambda: None).addCallback(check)

        return succeed(None).addCallback(check)
