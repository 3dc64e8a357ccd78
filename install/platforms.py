"""Where GIMP 3 keeps its profiles and its Python on each platform, as the installer needs to know.

Linux is run for real (GIMP from the distribution, and Flatpak emulated with bubblewrap); macOS and
Windows follow GIMP's documented layouts and are not yet run there. Tests inject the platform.
Standard library only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

FLATPAK_ID = "org.gimp.GIMP"
FLATPAK_PYTHON = ["flatpak", "run", "--command=python3", FLATPAK_ID]
# Where GIMP 3's own interpreter files name its Python (`python3=/usr/bin/python3`).
LINUX_INTERPRETER_FILES = ("/usr/lib/*/gimp/3.0/interpreters/*.interp", "/usr/lib/gimp/3.0/interpreters/*.interp",
                           "/usr/local/lib/*/gimp/3.0/interpreters/*.interp",
                           "/usr/local/lib/gimp/3.0/interpreters/*.interp")
MAC_BUNDLE = Path("/Applications/GIMP.app/Contents")


@dataclass(frozen=True)
class Platform:
    """One platform's layout, for one user. `system` uses sys.platform's names."""

    system: str = sys.platform
    home: Path = field(default_factory=Path.home)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def windows(self) -> bool:
        return self.system == "win32"

    @property
    def mac(self) -> bool:
        return self.system == "darwin"

    def profile_bases(self) -> list[Path]:
        """Folders holding GIMP 3's profile folders (3.0, 3.2, …)."""
        if self.windows:
            return [Path(self.environ.get("APPDATA") or self.home / "AppData" / "Roaming") / "GIMP"]
        if self.mac:
            return [self.home / "Library" / "Application Support" / "GIMP"]
        return [self.home / ".config" / "GIMP", self.flatpak_config() / "GIMP"]

    def flatpak_config(self) -> Path:
        return self.home / ".var" / "app" / FLATPAK_ID / "config"

    def is_flatpak(self, profile: Path) -> bool:
        return not (self.windows or self.mac) and self.flatpak_config() in profile.parents

    def interpreter_files(self) -> tuple[str, ...]:
        """Glob patterns of GIMP's interpreters/*.interp files, which name the Python it runs plug-ins with."""
        if self.windows:
            bases = [self.environ.get("ProgramFiles", r"C:\Program Files"),
                     str(Path(self.environ.get("LOCALAPPDATA") or self.home / "AppData" / "Local") / "Programs")]
            return tuple(str(Path(base) / "GIMP 3" / "lib" / "gimp" / "3.0" / "interpreters" / "*.interp")
                         for base in bases)
        if self.mac:
            return (str(MAC_BUNDLE / "Resources" / "lib" / "gimp" / "3.0" / "interpreters" / "*.interp"),)
        return LINUX_INTERPRETER_FILES

    def fallback_pythons(self) -> list[list[str]]:
        """Pythons to try when no interpreter file names one (each is checked to load GIMP's bindings)."""
        if self.windows:
            return []  # GIMP's installer always writes its interpreter file there
        if self.mac:
            return [[str(MAC_BUNDLE / "MacOS" / "python3")]]
        return [["/usr/bin/python3"]]

    def is_absolute(self, program: str) -> bool:
        return PureWindowsPath(program).is_absolute() if self.windows else program.startswith("/")

    def daemon_script(self) -> str:
        return "impasto-daemon.exe" if self.windows else "impasto-daemon"
