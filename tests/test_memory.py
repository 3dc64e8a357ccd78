"""The daemon's hold on freed memory (daemon/memory.py), in a process of its own: mallopt's
settings are the whole process's."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
from impasto.daemon.memory import hold_freed_memory, trim_memory
hold_freed_memory(True)
import torch

def resident_gib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 2**20

block = torch.ones(int(2.25 * 2**30) // 4)  # over the 2 GiB mallopt's largest threshold allows
del block
held = resident_gib()
trim_memory()
print(held, resident_gib())
"""


def test_a_freed_block_over_two_gib_is_held_until_trimmed() -> None:
    """A 4 MP scale frees blocks of over 2 GiB every pass; given back each time, the next pass
    faulted them in again."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    held, trimmed = map(float, done.stdout.split())
    assert held > 2.2  # GiB: the freed block is still the process's
    assert trimmed < held - 2.0  # and trim_memory gives it back
