"""One daemon per endpoint, and its socket file kept in place.

zmq's bind() on an ipc path silently replaces a live socket file, so a daemon holds an flock on
a file beside its socket for its lifetime (the kernel drops it if the daemon dies). A socket
file deleted under a running daemon (a cleaner of /tmp, a user) would leave it unreachable, and
a deleted folder would let a second daemon lock a new file beside it; `Keeper` notices either
within a second and binds again, or, when another daemon holds the endpoint now, ends this one.
A socket handed over by systemd (`handed_socket`) is systemd's to keep.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import TextIO

import zmq

from impasto.protocol.endpoint import ipc_path, make_private_dir

log = logging.getLogger("impasto.daemon")
CHECK_EVERY_S = 1.0


class AlreadyRunning(RuntimeError):
    """Another daemon holds the endpoint."""


def handed_socket(environ: dict[str, str] | os._Environ[str] = os.environ) -> int | None:
    """The listening socket a service manager passed (systemd's socket activation, sd_listen_fds(3)):
    its descriptor, or None when this daemon was not handed one."""
    if environ.get("LISTEN_PID") != str(os.getpid()) or environ.get("LISTEN_FDS") != "1":
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(name, None)  # meant for this process, not for any it starts
    return 3  # SD_LISTEN_FDS_START


def lock_path(socket_path: Path) -> Path:
    return socket_path.with_name(socket_path.name + ".lock")


def claim_endpoint(endpoint: str, handed: bool = False) -> TextIO | None:
    """Lock an ipc endpoint so a second daemon refuses instead of stealing the socket; returns
    the open lock file (keep it open), or None where there is no file to lock (tcp, abstract).
    A `handed` socket's file is the service manager's, live, never removed."""
    path = ipc_path(endpoint)
    if path is None:
        return None
    make_private_dir(path.parent)
    lock = open(lock_path(path), "w")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise AlreadyRunning(f"another Impasto daemon is already running at {endpoint}") from None
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    if path.exists() and not handed:
        path.unlink()  # left by a daemon that died
    return lock


def same_file(path: Path, opened: TextIO) -> bool:
    try:
        return path.stat().st_ino == os.fstat(opened.fileno()).st_ino
    except OSError:
        return False


class Keeper:
    """Called by the service's loop: False when this daemon should end. Looks at the files at
    most every CHECK_EVERY_S."""

    def __init__(self, endpoint: str, socket: zmq.Socket, lock: TextIO | None, handed: bool = False) -> None:
        self.endpoint, self.socket, self.lock = endpoint, socket, lock
        self.path = None if handed else ipc_path(endpoint)  # a handed socket's file is its manager's
        self.inode = self._inode()
        self.checked = time.monotonic()

    def _inode(self) -> int | None:
        try:
            return self.path.stat().st_ino if self.path is not None else None
        except OSError:
            return None

    def __call__(self) -> bool:
        if self.path is None or self.lock is None or time.monotonic() - self.checked < CHECK_EVERY_S:
            return True
        self.checked = time.monotonic()
        if self.inode is not None and self._inode() == self.inode:
            return True
        if not same_file(lock_path(self.path), self.lock):  # the folder or the lock went: claim anew
            try:
                self.lock.close()
                self.lock = claim_endpoint(self.endpoint)
            except (AlreadyRunning, OSError) as exc:
                log.warning("the endpoint's files were deleted and cannot be claimed again (%s): stopping", exc)
                return False
        with contextlib.suppress(zmq.ZMQError):  # zmq still counts the old listener as bound
            self.socket.unbind(self.endpoint)
        self.socket.bind(self.endpoint)
        self.inode = self._inode()
        log.warning("the socket file %s was deleted: listening there again", self.path)
        return True

    def release(self) -> None:
        """At exit: remove the socket file, if it is still this daemon's."""
        if self.path is not None and self.inode is not None and self._inode() == self.inode:
            self.path.unlink(missing_ok=True)
