"""
The lock file that keeps two processes off one sqlite database: an
exclusive C{flock} on C{<path>.lock}, holding the holder's pid for the
message another process gets.
"""

from __future__ import annotations

import errno
import fcntl
import os

from fireworq.store.interface import StoreUnavailable


class DatabaseInUse(StoreUnavailable):
    """Another process holds the database file's lock."""


def lock_database(path: str) -> int:
    """
    Take the exclusive lock of the database file ``path`` and write this
    process's pid into the lock file.

    @return: the lock file's descriptor; pass it to L{unlock_database}.
    @raise DatabaseInUse: another process holds the lock.
    @raise StoreUnavailable: the lock file cannot be opened or locked.
    """
    lock_path = path + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StoreUnavailable(f"cannot open the lock file {lock_path}: {e.strerror}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = ""
        try:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
        except OSError:
            pass
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DatabaseInUse(
                f"another fireworq process uses {path}"
                + (f" (pid {holder})" if holder else "")
                + f"; its lock file is {lock_path}"
            )
        raise StoreUnavailable(f"cannot lock {lock_path}: {e.strerror}")
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def unlock_database(fd: int) -> None:
    """Release the lock taken by L{lock_database} (closing its file)."""
    os.close(fd)  # releases the flock
