"""Where the daemon listens by default, per platform, and the folders that keep it private.

- Linux and macOS: an ipc socket in a folder only this user can enter.
- Windows has no ipc transport in ZeroMQ, so loopback tcp, which every local user can reach: it
  is protected by CURVE keys the installer makes (`local_keys`), readable by this user alone.
- A Flatpak GIMP's sandbox does not share $XDG_RUNTIME_DIR but does share /tmp: `sandbox_endpoint`.
- What the installer set up (`impasto service install`) is recorded in `connection.json`, which
  the CLI and the daemon read, so that they meet the service without options.
"""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

SOCKET_NAME = "daemon.sock"
LOCAL_PORT = 5591  # loopback tcp where there is no ipc
CONNECTION_FILE = "connection.json"


def user_id() -> str:
    """Names this user's private folders: the uid, or the login name where there is none (Windows)."""
    return str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")


def runtime_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_RUNTIME_DIR/impasto`, or `/tmp/impasto-UID` where XDG_RUNTIME_DIR is unset."""
    base = (os.environ if environ is None else environ).get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base) / "impasto"
    return Path(tempfile.gettempdir()) / f"impasto-{user_id()}"


def config_dir(system: str = sys.platform, home: Path | None = None,
               environ: Mapping[str, str] | None = None) -> Path:
    """Impasto's own settings folder (keys, connection.json) on `system` (sys.platform's names)."""
    variables = os.environ if environ is None else environ
    home = home or Path.home()
    if system == "win32":
        return Path(variables.get("APPDATA") or home / "AppData" / "Roaming") / "Impasto"
    if system == "darwin":
        return home / "Library" / "Application Support" / "Impasto"
    return Path(variables.get("XDG_CONFIG_HOME") or home / ".config") / "impasto"


def platform_endpoint(system: str = sys.platform, environ: Mapping[str, str] | None = None) -> str:
    if system == "win32":
        return f"tcp://127.0.0.1:{LOCAL_PORT}"
    return f"ipc://{runtime_dir(environ) / SOCKET_NAME}"


def sandbox_endpoint() -> str:
    """An endpoint both the host and a Flatpak sandbox reach: a private folder in the shared /tmp."""
    return f"ipc:///tmp/impasto-{user_id()}/{SOCKET_NAME}"


def recorded_connection(folder: Path | None = None) -> dict:
    """What the installer recorded ({"endpoint", and for tcp "server_key", "client_key"}), or {}."""
    try:
        with open((folder or config_dir()) / CONNECTION_FILE) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def default_endpoint() -> str:
    """$IMPASTO_ENDPOINT, else the service's recorded endpoint, else the platform's."""
    recorded = recorded_connection().get("endpoint")
    return os.environ.get("IMPASTO_ENDPOINT") or (recorded if isinstance(recorded, str) else "") \
        or platform_endpoint()


def served_by_service(endpoint: str) -> bool:
    """Whether a user service (`impasto service install`) runs the daemon at `endpoint`: then a
    client waits for it (socket activation starts it on the first connection), never starts one."""
    record = recorded_connection()
    return record.get("service") is True and record.get("endpoint") == endpoint


def local_keys(endpoint: str) -> tuple[Path, Path] | None:
    """(this client's secret key file, the daemon's public key file) recorded for `endpoint`."""
    record = recorded_connection()
    if record.get("endpoint") != endpoint or not record.get("client_key") or not record.get("server_key"):
        return None
    return Path(record["client_key"]), Path(record["server_key"])


def is_loopback_tcp(endpoint: str) -> bool:
    if not endpoint.startswith("tcp://"):
        return False
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name or a wildcard: not loopback


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
