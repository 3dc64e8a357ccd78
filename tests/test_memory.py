"""The daemon's hold on freed memory (daemon/memory.py): within a job, in a process of its own
(mallopt's settings are the whole process's), and between jobs, in a real daemon."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from impasto.daemon import allocator
from impasto.protocol import messages as m
from impasto.protocol.client import Client

from .conftest import DaemonProcess, make_submit, replies_of

PROBE = """
from impasto.daemon.memory import HeldMemory, freed_bytes, hold_freed_memory, trim_memory
hold_freed_memory(True)
import torch

def resident_gib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 2**20

block = torch.ones(int(2.25 * 2**30) // 4)  # over the 2 GiB mallopt's largest threshold allows
del block
held, freed = resident_gib(), freed_bytes(torch.device("cpu")) / 2**30
trim_memory()
trimmed = resident_gib()
block = torch.ones(2**30 // 4)
del block
HeldMemory(0).hold()  # held for no time: given back at once
print(held, freed, trimmed, resident_gib())
"""


def environment_for(name: str) -> dict[str, str]:
    """The environment a daemon under the allocator `name` runs in (tcmalloc where installed)."""
    if name == "glibc":
        return {**os.environ, allocator.CHOICE: "system"}
    environment = allocator.tcmalloc_environment(dict(os.environ))
    if environment is None:
        pytest.skip("tcmalloc is not installed here (install/tcmalloc.sh installs it where apt can)")
    return environment


@pytest.mark.parametrize("name", ["glibc", "tcmalloc"])
def test_a_freed_block_over_two_gib_is_held_until_trimmed(name) -> None:
    """A 4 MP scale frees blocks of over 2 GiB every pass; given back each time, the next pass
    faulted them in again. Under either allocator the daemon may run on."""
    probe = f"from impasto.daemon import allocator\nassert allocator.name() == {name!r}\n{PROBE}"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True,
                          env=environment_for(name))
    held, freed, trimmed, released = map(float, done.stdout.split())
    assert held > 2.2 and freed > 2.2  # GiB: the freed block is still the process's, and counted
    assert trimmed < held - 2.0  # trim_memory gives it back
    assert released < trimmed + 0.5  # and so does a hold of no time


@pytest.mark.parametrize("name", ["glibc", "tcmalloc"])
def test_a_daemon_holds_a_jobs_memory_for_the_next_and_gives_it_back_once_idle(tmp_path, monkeypatch, content_image,
                                                                               style_image, name) -> None:
    """Started as the CLI and the plug-in start it, the daemon restarts itself under tcmalloc
    (keeping its PID) where it is installed, and IMPASTO_ALLOCATOR=system keeps glibc's malloc;
    under either it holds a job's memory for the next, then gives it back."""
    environment_for(name)  # skips where tcmalloc is not installed
    if name == "glibc":
        monkeypatch.setenv(allocator.CHOICE, "system")
    else:
        monkeypatch.delenv(allocator.CHOICE, raising=False)
    daemon = DaemonProcess(f"ipc://{tmp_path}/d.sock", tmp_path / "daemon.log", "--hold-memory", "2")
    try:
        maps = Path(f"/proc/{daemon.process.pid}/maps").read_text()
        assert ("libtcmalloc" in maps) == (name == "tcmalloc")
        assert f"memory from {name}" in daemon.log.read_text()
        with Client(daemon.endpoint) as client:
            for seed in (1, 2):  # the second job starts within the hold
                replies = replies_of(client, make_submit(content_image, style_image, size=32, iterations=2,
                                                         seed=seed))
                assert replies[-1].type == m.RESULT
            log = daemon.log.read_text()
            assert "memory held since the last job given back" not in log
            deadline = time.monotonic() + 15
            while "memory held since the last job given back" not in log and time.monotonic() < deadline:
                time.sleep(0.2)
                log = daemon.log.read_text()
            assert log.count("memory held since the last job given back") == 1
            replies = replies_of(client, make_submit(content_image, style_image, size=32, iterations=2))
            assert replies[-1].type == m.RESULT  # and it goes on working
    finally:
        daemon.stop()

