"""
A throwaway three-node MariaDB Galera cluster on loopback for the tests.

Each node is a L{GaleraNode}: a L{tests.support.mariadb.MariaDBServer} (same
start-up, connections, stop / kill / restart, same test account) with the
wsrep options added -- its own data directory, SQL port and unix socket,
group-communication port, IST port and SST port, all on 127.0.0.1.  The
first node bootstraps the cluster (``--wsrep-new-cluster``) from a data
directory made by ``mariadb-install-db``; the others start empty and receive
a full state transfer (SST, method C{rsync}: needs only rsync, which the
``mariadb-server`` package already depends on; ``mariabackup`` would need
another package and is slower on tiny data directories).  A node that was
killed or stopped rejoins with an incremental transfer (IST) when it is
started again.

Under root the nodes run as the ``mysql`` account (as a packaged server
does; the SST scripts refuse nothing then), with their directories given to
it.  ``tests/support/ensure-galera`` installs Debian's ``galera-4`` when the
provider library is missing; without it L{GaleraUnavailable} says how to get
it (the Galera tests fail rather than skip: CI must run them).

Blocking calls are fine here, as in L{tests.support.mariadb}: this runs in
test set-up and tear-down (or in a thread, C{deferToThread(node.kill)}).
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from typing import List, Optional, Sequence

import pymysql

from tests.support.mariadb import (
    MariaDBServer,
    MariaDBUnavailable,
    TestDatabase,
    _die_with_parent,
    find_mariadbd,
    free_port,
    started_once,
    unique_database_name,
)

#: Where Debian's galera-4 puts the provider (first found is used).
PROVIDER_PATHS = (
    "/usr/lib/galera/libgalera_smm.so",
    "/usr/lib/libgalera_smm.so",
    "/usr/lib64/galera-4/libgalera_smm.so",
    "/usr/lib/galera-4/libgalera_smm.so",
)

#: The state transfer method for a joiner: a local rsync daemon.
SST_METHOD = "rsync"

#: The account the nodes run as when the tests run as root.
NODE_USER = "mysql"


class GaleraUnavailable(MariaDBUnavailable):
    """The Galera provider (or a server to load it) is missing; the message says how to fix it."""


def find_provider() -> Optional[str]:
    """The path of ``libgalera_smm.so``, or None."""
    for path in PROVIDER_PATHS:
        if os.path.exists(path):
            return path
    return None


class GaleraNode(MariaDBServer):
    """
    One node of a L{GaleraCluster}; see the module docstring.

    @param cluster: the cluster it belongs to (for the addresses of the
        other nodes).
    @param index: 0 for the node that bootstraps the cluster.
    """

    def __init__(self, cluster: "GaleraCluster", index: int, base_dir: str) -> None:
        # Not durable (no fsync per commit): a node is only ever killed as a
        # process, never as a machine, so the OS keeps what it wrote, and
        # the cluster holds every commit on the other nodes anyway.
        super().__init__(durable=False, base_dir=base_dir)
        self.cluster = cluster
        self.index = index
        self.name = f"node{index + 1}"
        #: The group communication (gcomm) port.
        self.group_port = free_port()
        #: Incremental state transfers to this node arrive here.
        self.ist_port = free_port()
        #: Full state transfers (rsync daemon) to this node arrive here.
        self.sst_port = free_port()
        #: True when the next start must bootstrap a new cluster.
        self.bootstrap = index == 0
        #: ``uuid:seqno`` the data directory holds, found before a restart.
        self.start_position: Optional[str] = None

    # -- MariaDBServer hooks ------------------------------------------------------

    def run_as(self) -> str:
        return NODE_USER

    def _server_args(self) -> List[str]:
        provider = self.cluster.provider
        addresses = ",".join(f"127.0.0.1:{node.group_port}" for node in self.cluster.nodes)
        options = "; ".join([
            f"gmcast.listen_addr=tcp://127.0.0.1:{self.group_port}",
            f"ist.recv_addr=127.0.0.1:{self.ist_port}",
            # A killed node is evicted after 3 s of silence (production
            # defaults: evs.suspect_timeout 5 s, evs.inactive_timeout 15 s).
            "evs.suspect_timeout=PT3S",
            "evs.inactive_timeout=PT6S",
            "evs.inactive_check_period=PT1S",
            "evs.keepalive_period=PT0.5S",
            "gcache.size=32M",
            "pc.wait_prim_timeout=PT30S",
        ])
        args = super()._server_args() + [
            "--wsrep-on=ON",
            f"--wsrep-provider={provider}",
            f"--wsrep-cluster-name={self.cluster.name}",
            f"--wsrep-cluster-address=gcomm://{addresses}",
            f"--wsrep-node-name={self.name}",
            f"--wsrep-node-address=127.0.0.1:{self.group_port}",
            f"--wsrep-node-incoming-address=127.0.0.1:{self.port}",
            f"--wsrep-sst-receive-address=127.0.0.1:{self.sst_port}",
            f"--wsrep-sst-method={SST_METHOD}",
            f"--wsrep-provider-options={options}",
            "--wsrep-slave-threads=2",
            "--binlog-format=ROW",
            "--default-storage-engine=InnoDB",
            "--innodb-autoinc-lock-mode=2",
            # Galera needs a primary key in every table: refuse any table
            # without one, so that the tests catch a schema that lacks it.
            "--innodb-force-primary-key=ON",
        ]
        if self.bootstrap:
            args.append("--wsrep-new-cluster")
        if self.start_position:
            args.append(f"--wsrep-start-position={self.start_position}")
        return args

    def _initialise(self) -> None:
        os.makedirs(self.datadir, exist_ok=True)
        os.makedirs(self.tmpdir, exist_ok=True)
        _give_to(self.base_dir, self.run_as())
        if self.index == 0:
            try:
                super()._initialise()
            except MariaDBUnavailable as e:
                # The directory goes at exit: keep the log in the message.
                try:
                    with open(os.path.join(self.base_dir, "install-db.log"), errors="replace") as f:
                        tail = "".join(f.readlines()[-20:])
                except OSError:
                    tail = "(no log)"
                raise GaleraUnavailable(f"{e}:\n{tail}")
        # Joiners start empty: the SST fills their data directory.
        _give_to(self.base_dir, self.run_as())

    def _setup_account(self) -> None:
        if self.index == 0:
            super()._setup_account()  # replicated to the joiners

    def start(self, timeout: float = 120.0) -> None:
        """
        Start the node (join or bootstrap) and wait until it is synced.  A
        node started again (after L{kill} or L{stop}) first recovers the
        position its data directory holds, as the packaged service does
        (``galera_recovery``), so that it rejoins with an incremental
        transfer (IST) from a donor's write-set cache: a full transfer by
        rsync would block writes on the donor node while it copies.
        """
        if self._initialised and not self.running:
            self.start_position = self._recover_position()
        super().start(timeout)
        self.bootstrap = False  # a restart joins the cluster
        if not self.wait_synced(timeout):
            raise GaleraUnavailable(f"{self.name} did not reach Synced:\n{self.log_tail()}")

    def _recover_position(self) -> Optional[str]:
        """``mariadbd --wsrep-recover``: the ``uuid:seqno`` of the data directory, or None."""
        binary = find_mariadbd()
        assert binary is not None
        log_path = os.path.join(self.base_dir, "recover.log")
        if self.port is None:
            self.port = free_port()
        saved, self.start_position = self.start_position, None
        try:
            command = [binary] + self._server_args() + ["--wsrep-recover", f"--log-error={log_path}"]
        finally:
            self.start_position = saved
        subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120, preexec_fn=_die_with_parent)
        try:
            with open(log_path, errors="replace") as f:
                found = re.findall(r"Recovered position: ([0-9a-f-]{36}:-?\d+)", f.read())
        except OSError:
            return None
        if not found or found[-1].endswith(":-1"):
            return None
        return found[-1]

    def isolate(self, isolated: bool = True) -> None:
        """
        Cut the node off from the others (``gmcast.isolate``), as a network
        partition would: it becomes non-primary and refuses queries (1047),
        while its process and its clients' connections stay up.  C{False}
        heals the partition: the node rejoins (IST) and syncs.
        """
        conn = self.admin_connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    f"SET GLOBAL wsrep_provider_options = 'gmcast.isolate={1 if isolated else 0}'"
                )
        finally:
            conn.close()

    # -- state --------------------------------------------------------------------

    def status(self, name: str) -> Optional[str]:
        """A ``wsrep_%`` status variable of the node (None when it does not answer)."""
        try:
            rows = self.execute("SHOW STATUS LIKE %s", (name,))
        except pymysql.MySQLError:
            return None
        return rows[0][1] if rows else None

    def wait_synced(self, timeout: float = 60.0) -> bool:
        """Wait until the node is Synced and ready; return whether it is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if self.status("wsrep_local_state_comment") == "Synced" and self.status("wsrep_ready") == "ON":
                return True
            time.sleep(0.1)
        return False


def _give_to(path: str, user: str) -> None:
    """Make ``path`` and everything under it belong to ``user`` (when root)."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


class GaleraCluster:
    """
    A cluster of L{GaleraNode}s on loopback, started by L{start} and torn
    down by L{cleanup}.

    @param size: how many nodes (three: a majority survives one loss).
    """

    def __init__(self, size: int = 3) -> None:
        if find_mariadbd() is None:
            raise GaleraUnavailable(
                "mariadbd is not installed; run tests/support/ensure-mariadb and tests/support/ensure-galera"
            )
        provider = find_provider()
        if provider is None:
            raise GaleraUnavailable(
                "the Galera provider libgalera_smm.so is not installed; run tests/support/ensure-galera "
                "(installs Debian's galera-4)"
            )
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(NODE_USER)
            except KeyError:
                raise GaleraUnavailable(f"the {NODE_USER!r} account is missing; install mariadb-server")
        self.provider = provider
        self.base_dir = tempfile.mkdtemp(prefix="fwq-galera-")
        os.chmod(self.base_dir, 0o755)
        self.name = os.path.basename(self.base_dir)
        self.nodes: List[GaleraNode] = [
            GaleraNode(self, i, os.path.join(self.base_dir, f"node{i + 1}")) for i in range(size)
        ]
        for node in self.nodes:
            os.makedirs(node.base_dir)

    def start(self) -> None:
        """Bootstrap the first node, then join the others one by one."""
        for node in self.nodes:
            node.start()

    @property
    def size(self) -> int:
        """How many nodes are Synced right now (as seen by a live node)."""
        for node in self.nodes:
            if node.running:
                value = node.status("wsrep_cluster_size")
                if value is not None:
                    return int(value)
        return 0

    def wait_size(self, size: int, timeout: float = 30.0) -> bool:
        """Wait until the live nodes see a cluster of ``size``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.size == size:
                return True
            time.sleep(0.1)
        return False

    def live_node(self) -> GaleraNode:
        """A running node (the first found)."""
        for node in self.nodes:
            if node.running:
                return node
        raise GaleraUnavailable("no node of the cluster is running")

    def fresh_database(self, prefix: str = "fwq") -> TestDatabase:
        """A new database (replicated to every node); its C{server} is a live node."""
        node = self.live_node()
        name = unique_database_name(prefix)
        node.create_database(name)
        return TestDatabase(node, name)

    def dsns(self, database: str, params: str = "") -> List[str]:
        """The DSN of ``database`` on each node, in node order."""
        return [node.dsn(database, params) for node in self.nodes]

    def cleanup(self) -> None:
        """Kill every node and delete the directories."""
        try:
            for node in self.nodes:
                try:
                    node.kill()
                except Exception:
                    pass
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tails(self, lines: int = 15) -> str:
        """The end of every node's error log, for failure messages."""
        return "\n".join(f"--- {node.name}\n{node.log_tail(lines)}" for node in self.nodes)


@started_once
def shared_cluster() -> GaleraCluster:
    """
    The cluster the Galera tests of this process share, started on first use
    (three nodes) and torn down at exit.  Tests that kill a node restart it
    (L{GaleraNode.start}) in their cleanup, so the next test finds three.

    @raise GaleraUnavailable: when Galera cannot be had (every later call
        raises the same error at once).
    """
    cluster = GaleraCluster()
    atexit.register(cluster.cleanup)
    try:
        cluster.start()
    except MariaDBUnavailable as e:
        raise GaleraUnavailable(f"{e}\n{cluster.log_tails()}")
    return cluster


def restore(cluster: GaleraCluster, nodes: Sequence[GaleraNode] = ()) -> None:
    """Start again the ``nodes`` (default: all) that are not running, and wait for the full cluster."""
    for node in nodes or cluster.nodes:
        if not node.running:
            node.start()
    cluster.wait_size(len(cluster.nodes))
