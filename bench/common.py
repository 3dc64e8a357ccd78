"""What the benches share: a daemon of their own on a temporary endpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from impasto.protocol.client import DaemonUnavailable  # noqa: E402
from impasto.protocol.client import start_daemon as start  # noqa: E402


def start_daemon(folder: Path, *args: str) -> tuple[subprocess.Popen, str, dict]:
    """Start impasto-daemon on an ipc socket in `folder`, logging to folder/daemon.log; wait for it.

    Returns the process, its endpoint and its hello. Presets and the target cache stay in `folder`,
    so a bench starts cold and leaves nothing behind in the user's folders.
    """
    endpoint = f"ipc://{folder}/d.sock"
    command = [sys.executable, "-m", "impasto.daemon.launch", "--presets-dir", str(folder / "presets"), "--cache-dir",
               str(folder / "cache"), *args]
    try:
        process, hello = start(command, endpoint, folder / "daemon.log", 120, detach=False, cwd=ROOT)
    except DaemonUnavailable as exc:
        sys.exit(f"the daemon did not start: {exc}")
    return process, endpoint, hello


def peak_rss_gib(pid: int) -> float:
    """A process's peak resident memory so far (VmHWM), in GiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 2**30
    return float("nan")


CACHE = Path.home() / ".cache" / "impasto-bench"


def from_debian_package(package: str, path: str, cache: str = "") -> Path:
    """`path` inside Debian's `package`, fetched with apt and unpacked once into a cache folder
    (named `cache`, else as the package)."""
    folder = CACHE / (cache or package)
    found = folder / path
    if not found.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=folder, check=True)
        subprocess.run(["dpkg-deb", "-x", str(next(folder.glob(f"{package}_*.deb"))), str(folder)], check=True)
    return found
