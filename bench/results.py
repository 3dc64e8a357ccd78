"""bench/RESULTS.md, the one home of every measured figure: each bench writes its own section.

A bench runs its work inside `with Results(NAME):`; what it prints there is shown as usual
and kept, and when it finishes without an error its section (machine, date, command, what it
printed) replaces the one its last run wrote. Figures are never
copied from there into code or the README: those name the bench instead.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import re
import shlex
import sys
from pathlib import Path
from types import TracebackType
from typing import TextIO

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = ("# Measured results\n\nWritten by the benches in this folder: each replaces its own section when it "
          "runs (`.venv/bin/python bench/NAME.py`). Do not edit the sections by hand.\n")


def machine() -> str:
    """The CPU, its cores and vector extensions, the memory, and torch's version when it is loaded."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    vector = next((name for flag, name in (("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX512"), ("avx2", "AVX2"))
                   if flag in flags), "")
    try:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = ""
    torch = sys.modules.get("torch")
    version = f", torch {torch.__version__}" if torch is not None else ""
    return f"{model}, {os.cpu_count()} cores{' ' + vector if vector else ''}{memory}{version}"


def device() -> str:
    """The device a daemon started here picks by itself (daemon/main.py: CUDA, else the CPU)."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def replace_section(text: str, name: str, section: str) -> str:
    """`text` (a RESULTS.md) with the section of bench `name` replaced by `section`, or appended."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{section.strip()}\n{end}\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return (text.rstrip("\n") + "\n\n" if text.strip() else HEADER + "\n") + block


class Tee:
    """A text stream that writes to `stream` and keeps a copy."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.kept: list[str] = []

    def write(self, text: str) -> int:
        self.kept.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class Results:
    """One bench run's section of RESULTS.md: what it prints within `with Results(NAME):`."""

    def __init__(self, name: str, path: Path = RESULTS) -> None:
        self.name = name
        self.path = path
        # The script that runs, not the section's name: a check may write a section of its own.
        self.command = shlex.join(["python", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]])
        self._tee = Tee(sys.stdout)
        self._redirect = contextlib.redirect_stdout(self._tee)  # type: ignore[type-var]

    def section(self) -> str:
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        where = device()  # first: it loads torch, whose version machine() then names
        body = "".join(self._tee.kept).strip("\n")
        return (f"## {self.name}\n\n{when} on {machine()}; device {where}.\n\n`{self.command}`\n\n"
                f"```\n{body}\n```")

    def save(self) -> None:
        text = self.path.read_text() if self.path.exists() else ""
        self.path.write_text(replace_section(text, self.name, self.section()))
        print(f"(written to {self.path.name}, section {self.name})", file=sys.stderr)

    def __enter__(self) -> Results:
        self._redirect.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._redirect.__exit__(kind, error, trace)
        if kind is None and "".join(self._tee.kept).strip():  # a failed run leaves the last good section
            self.save()
