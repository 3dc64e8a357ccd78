"""GIMP's own Python: finding it, and giving it pyzmq and msgpack where it lacks them.
Standard library only, so any python3 can run it."""

from __future__ import annotations

import glob
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .platforms import FLATPAK_PYTHON, Platform

Say = Callable[[str], None]  # where the installer reports what it does
# What a GIMP plug-in's Python must do: load GIMP 3's bindings through PyGObject.
LOADS_GIMP = "import gi; gi.require_version('Gimp', '3.0')"


def has_messaging(python: list[str], extra_path: Path | None = None) -> bool:
    """Whether `python` can use pyzmq and msgpack (really: an empty folder named zmq would import)."""
    code = "import sys\n" + (f"sys.path.insert(0, {str(extra_path)!r})\n" if extra_path else "") + \
        "import zmq, msgpack; zmq.zmq_version(); msgpack.packb(1)"
    return run_python(python, code) is not None


def run_python(python: list[str], code: str) -> str | None:
    """What `code` prints when `python` runs it, or None when it fails."""
    try:
        done = subprocess.run([*python, "-c", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@dataclass
class GimpPython:
    command: list[str]
    why: str  # how it was found, for the report
    executable: str = ""  # its own path, for the plug-in's first line ("" for the Flatpak's)
    version: str = ""  # e.g. "3.13"
    tag: str = ""  # e.g. "cp313", its ABI
    platform: str = ""  # e.g. "linux-x86_64"


def interpreter_files_python(platform: Platform) -> tuple[list[str], str] | None:
    """The python3 that GIMP's interpreters/*.interp files name (`python3=/usr/bin/python3`)."""
    for path in sorted(p for pattern in platform.interpreter_files() for p in glob.glob(pattern)):
        try:
            lines = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, program = line.strip().partition("=")
            if name in ("python3", "python") and platform.is_absolute(program):
                return [program], f"named by {path}"
    return None


def candidates(given: str, platform: Platform, profile: Path) -> list[tuple[list[str], str]]:
    """The Pythons that may be GIMP's for `profile`, most likely first, each with how it was found."""
    if given:
        return [(shlex.split(given, posix=not platform.windows), "given with --gimp-python")]
    if platform.is_flatpak(profile):
        return [(FLATPAK_PYTHON, "the GIMP Flatpak's own")]
    named = interpreter_files_python(platform)
    on_path = shutil.which("python3")
    return ([named] if named else []) + [(python, "GIMP's usual one") for python in platform.fallback_pythons()] + \
        ([([on_path], "python3 on PATH")] if on_path else [])


def find_gimp_python(given: str, platform: Platform, profile: Path, say: Say) -> GimpPython | None:
    """GIMP's own Python for `profile`, checked to load GIMP's bindings; None (said why) if none does."""
    report = "import sys, sysconfig; print(sys.executable, '%d.%d' % sys.version_info[:2], " \
             "sys.implementation.cache_tag.replace('cpython-', 'cp'), sysconfig.get_platform())"
    for command, why in candidates(given, platform, profile):
        found = run_python(command, f"{LOADS_GIMP}; {report}")
        if found:
            executable, version, tag, where = found.split()[-4:]
            first = shutil.which("python3")
            # A venv's python3 is a link to a base Python, so its path proves nothing: ask it.
            if first and not given and run_python([first], LOADS_GIMP) is None:
                its_version = run_python([first], "import sys; print('%d.%d' % sys.version_info[:2])") or "?"
                say(f"  note: python3 on PATH ({first}, Python {its_version}) is not GIMP's Python; the plug-in "
                    "names GIMP's in its first line")
            return GimpPython(command, why, executable if command != FLATPAK_PYTHON else "", version, tag, where)
        about = run_python(command, "import sys; print(sys.executable, '%d.%d' % sys.version_info[:2])")
        say(f"  not GIMP's Python: {shlex.join(command)} ({about or 'does not run'}, {why}) cannot load GIMP 3's "
            "bindings (gi, Gimp 3.0)")
    say("  COULD NOT find GIMP's Python: none of the above loads GIMP 3's bindings. Give the Python GIMP runs "
        "plug-ins with: --gimp-python /path/to/python3")
    return None


def vendor_wheels(python: GimpPython, vendor: Path) -> str:
    """Install pyzmq and msgpack for `python` into `vendor`: with its own pip, else with this
    one's, for its version, ABI and platform. Returns pip's complaint, or ""."""
    shutil.rmtree(vendor, ignore_errors=True)
    packages = ["pyzmq", "msgpack"]
    own = subprocess.run([*python.command, "-m", "pip", "install", "--quiet", "--target", str(vendor), *packages],
                         capture_output=True, text=True)
    if own.returncode == 0:
        return ""
    arch = python.platform.split("-", 1)[-1]
    platforms = [f"manylinux_2_28_{arch}", f"manylinux2014_{arch}", f"manylinux_2_17_{arch}"] \
        if python.platform.startswith("linux") else [python.platform.replace("-", "_").replace(".", "_")]
    wanted = ["--python-version", python.version, "--implementation", "cp", "--abi", python.tag,
              "--only-binary=:all:", *(option for p in platforms for option in ("--platform", p))]
    ours = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(vendor), *wanted,
                           *packages], capture_output=True, text=True)
    return "" if ours.returncode == 0 else (ours.stderr or own.stderr).strip()
