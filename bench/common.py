"""What the benches share: a daemon of their own on a temporary endpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol.client import DaemonUnavailable, wait_for_daemon  # noqa: E402


def start_daemon(folder: Path, *args: str) -> tuple[subprocess.Popen, str, dict]:
    """Start impasto-daemon on an ipc socket in `folder`, logging to folder/daemon.log; wait for it.

    Returns the process, its endpoint and its hello. Presets and the target cache stay in `folder`,
    so a bench starts cold and leaves nothing behind in the user's folders.
    """
    endpoint = f"ipc://{folder}/d.sock"
    log = folder / "daemon.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "daemon.main", "--endpoint", endpoint, "--presets-dir", str(folder / "presets"),
         "--cache-dir", str(folder / "cache"), *args], stderr=open(log, "wb"), cwd=ROOT)  # noqa: SIM115
    try:
        hello = wait_for_daemon(endpoint, 120, still_starting=lambda: process.poll() is None)
    except DaemonUnavailable:
        process.kill()
        sys.exit(f"the daemon did not start:\n{log.read_text()}")
    return process, endpoint, hello
