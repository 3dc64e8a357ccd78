"""Where the daemon listens by default: an ipc socket in a folder only this user can enter."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

SOCKET_NAME = "daemon.sock"


def runtime_dir() -> Path:
    """`$XDG_RUNTIME_DIR/impasto`, or `/tmp/impasto-UID` where XDG_RUNTIME_DIR is unset."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base) / "impasto"
    return Path(tempfile.gettempdir()) / f"impasto-{os.getuid()}"


def default_endpoint() -> str:
    return f"ipc://{runtime_dir() / SOCKET_NAME}"


def ipc_path(endpoint: str) -> Path | None:
    """The socket file of an `ipc://` endpoint; None for other transports and for a Linux
    abstract socket (`ipc://@name`), which has no file."""
    if not endpoint.startswith("ipc://") or endpoint.startswith("ipc://@"):
        return None
    return Path(endpoint[len("ipc://"):])


def make_private_dir(path: Path) -> None:
    """Create `path` as 0700, or check that an existing one is ours and closed to others.

    Another user who could enter the folder could connect to the socket and read pictures. An
    existing folder is never changed: `ipc:///some/shared/x.sock` once turned a 1777 folder into
    0700 for good (as root, `ipc:///tmp/x.sock` would have done it to /tmp).
    """
    try:
        path.mkdir(mode=0o700, parents=True)
        return
    except FileExistsError:
        pass
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a folder, or belongs to another user; refusing to put the daemon's "
                              "socket there")
    if info.st_mode & 0o077:
        raise PermissionError(f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):o}); the daemon's "
                              "socket needs a folder only you can enter: choose another endpoint")


def check_socket_folder(path: Path) -> None:
    """Refuse to talk through a socket folder that another user owns or may write to.

    Where XDG_RUNTIME_DIR is unset the default folder is under /tmp, where anyone may create it
    first and listen there for our pictures. A folder that does not exist yet is fine: nothing
    listens in it.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise PermissionError(f"{path} belongs to another user or is open to others; refusing to use a daemon "
                              "socket there")
