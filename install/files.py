"""Writing and removing the installer's own files: never through a link, never what is not ours."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """`path` as a new file of ours: a link or file already there is replaced, never written through."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    with open(descriptor, "wb") as file:
        file.write(data)
    path.chmod(mode)  # whatever the umask


def remove_ours(path: Path) -> None:
    """Remove one thing the installer made: a link only as a link, a folder whole."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
