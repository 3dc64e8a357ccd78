"""Named styles the daemon can use without the client sending pixels.

Built-in presets are four public-domain paintings shipped in `paintings/` (see NOTICE) and two
textures `artwork` draws; user presets live under the XDG data dir, one folder each
(`style.png`, `preset.json`). A name is checked against protocol.presets' rule and only ever looked
up in these tables, so a client can never make the daemon read or write another path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from impasto.protocol import messages as m
from impasto.protocol.presets import NAME_RULE, is_preset_name

from . import artwork

log = logging.getLogger("impasto.daemon")

THUMBNAIL_SIDE = 64
MAX_META_BYTES = 64 * 1024  # a preset.json larger than this is not one of ours
MAX_STYLE_PIXELS = m.MAX_PIXELS  # a style.png larger than a job may send is refused unread
STAGING = ".adding-"  # a preset being written; renamed into place whole
STALE_STAGING_S = 3600  # one this old was left by a daemon that died while writing it
CACHED_BYTES = 256 * 2**20  # decoded user presets kept in memory, least recently used dropped first

PAINTINGS = Path(__file__).resolve().parent / "paintings"


@dataclass(frozen=True)
class BuiltIn:
    name: str
    description: str
    draw: Callable[[], Image.Image]
    params: dict = field(default_factory=dict)  # recommended settings, as a user preset's


def painting(file: str) -> Callable[[], Image.Image]:
    return lambda: Image.open(PAINTINGS / file)


# Recommended settings chosen by eye (bench/presets_sheet.py): the_scream and shipwreck let the
# photo show through most at the default strength, so they get a little more.
BUILT_IN = {
    preset.name: preset
    for preset in (
        BuiltIn("starry_night", "Vincent van Gogh, The Starry Night (1889): swirling strokes in blue and yellow",
                painting("starry_night.jpg"), {"strength": 0.8}),
        BuiltIn("the_scream", "Edvard Munch, The Scream (1893): long wavy bands of orange and blue",
                painting("the_scream.jpg"), {"strength": 0.85}),
        BuiltIn("shipwreck", "J. M. W. Turner, The Shipwreck (1805): stormy browns, foam and sweeping brushwork",
                painting("shipwreck.jpg"), {"strength": 0.9}),
        BuiltIn("woman_with_hat", "Henri Matisse, Woman with a Hat (1905): bold patches of pure colour",
                painting("woman_with_hat.jpg"), {"strength": 0.8}),
        BuiltIn("swirls", "Night-sky swirls in blues and yellows (drawn by Impasto)", artwork.swirls),
        BuiltIn("embers", "Warm red and orange hatching (drawn by Impasto)", artwork.embers),
    )
}


class PresetError(ValueError):
    """A preset name or request the store refuses; the service answers it as a bad request."""


class UnknownPreset(PresetError):
    """No preset of that name."""


class StorageError(PresetError):
    """The presets' folder could not be written (full, read-only, not a folder)."""


class BrokenPreset(PresetError):
    """A user preset's folder that is not one the store wrote: skipped, and named in problems()."""


def read_meta(folder: Path) -> dict:
    """A user preset's preset.json, checked as an upload is: a map, a plain description, valid params."""
    path = folder / "preset.json"
    try:
        if path.stat().st_size > MAX_META_BYTES:
            raise BrokenPreset("preset.json is too large")
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BrokenPreset(f"preset.json cannot be read: {exc}") from None
    if not isinstance(meta, dict):
        raise BrokenPreset("preset.json is not a map")
    description, params = meta.get("description", ""), meta.get("params", {})
    if not isinstance(description, str) or len(description) > m.MAX_DESCRIPTION_LENGTH or not m.plain(description):
        raise BrokenPreset("preset.json's description is not short plain text")
    if not isinstance(params, dict):
        raise BrokenPreset("preset.json's params are not a map")
    try:
        m.JobParams.from_wire(params)
    except m.ProtocolError as exc:
        raise BrokenPreset(f"preset.json's params: {exc.message}") from None
    return {"description": description, "params": params}


def check_style_file(path: Path) -> None:
    """style.png opens, is a PNG of an allowed size, and its chunks are whole (no pixels decoded)."""
    try:
        with Image.open(path) as picture:
            if picture.format != "PNG" or picture.width * picture.height > MAX_STYLE_PIXELS:
                raise BrokenPreset(f"style.png is not a PNG of at most {MAX_STYLE_PIXELS} pixels")
            picture.verify()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BrokenPreset(f"style.png cannot be read: {exc}") from None


def default_folder() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "impasto" / "presets"


class PresetStore:
    """Built-in and user presets; safe to call from the service's two threads.

    A user preset is a folder of the store's own (never a link) with a style.png and preset.json
    that check out; any other is skipped, logged once and named in problems(), so one broken
    preset never breaks the others, and built-ins always work.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or default_folder()
        self._lock = threading.Lock()
        self._images: OrderedDict[str, tuple[float, np.ndarray]] = OrderedDict()  # name -> (mtime, pixels)
        self._checked: dict[str, tuple[tuple, str | None]] = {}  # name -> (files' stamps, problem or None)
        self._problems: dict[str, str] = {}
        self.cached_bytes = CACHED_BYTES
        self.sweep()

    def _user_folder(self, name: str) -> Path:
        return self.folder / name

    def _problem(self, name: str) -> str | None:
        """Why user preset `name` cannot be used, or None; checked again when its files change."""
        folder = self._user_folder(name)
        if folder.is_symlink() or not folder.is_dir():
            return "not a folder of the store's own"
        try:
            stamp = tuple((s.st_mtime_ns, s.st_size) for s in (
                (folder / "style.png").stat(), (folder / "preset.json").stat()))
        except OSError:
            return "style.png or preset.json is missing"
        cached = self._checked.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            check_style_file(folder / "style.png")
            read_meta(folder)
            problem = None
        except BrokenPreset as exc:
            problem = str(exc)
        self._checked[name] = (stamp, problem)
        return problem

    def names(self) -> list[str]:
        """The built-in presets, paintings first, then the user's that can be used, by name."""
        problems, user = {}, []
        try:
            entries = sorted(self.folder.iterdir()) if self.folder.is_dir() else []
        except OSError:
            entries = []
        for path in entries:
            if not is_preset_name(path.name) or path.name in BUILT_IN:
                continue
            problem = self._problem(path.name)
            if problem is None:
                user.append(path.name)
            else:
                problems[path.name] = problem
                if self._problems.get(path.name) != problem:
                    log.warning("user preset %s skipped: %s", path.name, problem)
        self._problems = problems
        with self._lock:  # presets deleted on disk leave memory too
            for gone in [name for name in self._images if name not in BUILT_IN and name not in user]:
                del self._images[gone]
        return [*BUILT_IN, *user]

    def problems(self) -> dict[str, str]:
        """The user presets skipped at the last listing, with why."""
        self.names()
        return dict(self._problems)

    def __contains__(self, name: str) -> bool:
        if name in BUILT_IN:
            return True
        return is_preset_name(name) and self._problem(name) is None

    def describe(self, name: str) -> dict:
        if name in BUILT_IN:
            preset = BUILT_IN[name]
            return {"name": name, "description": preset.description, "source": "built-in", "params": preset.params}
        return {"name": name, "source": "user", **read_meta(self._user_folder(name))}

    def image(self, name: str) -> np.ndarray:
        """The preset's style image as (H, W, 3) uint8; KeyError for an unknown name, BrokenPreset
        for one whose pixels cannot be read after all."""
        if name not in self:
            raise KeyError(name)
        if name in BUILT_IN:
            stamp, path = 0.0, None
        else:
            path = self._user_folder(name) / "style.png"
            stamp = path.stat().st_mtime
        with self._lock:
            cached = self._images.get(name)
            if cached is not None and cached[0] == stamp:  # a changed file is read again
                self._images.move_to_end(name)
                return cached[1]
        try:
            picture = BUILT_IN[name].draw() if path is None else Image.open(path)
            pixels = np.asarray(picture.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise BrokenPreset(f"preset {name!r}: style.png cannot be read: {exc}") from None
        with self._lock:
            self._images[name] = (stamp, pixels)
            while sum(image.nbytes for _, image in self._images.values()) > self.cached_bytes and len(self._images) > 1:
                self._images.popitem(last=False)
        return pixels

    def thumbnail(self, name: str) -> np.ndarray:
        picture = Image.fromarray(self.image(name))
        picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        return np.asarray(picture)

    def add(self, name: str, pixels: np.ndarray, description: str, params: dict) -> None:
        """Store a user preset, replacing one of the same name; written whole or not at all."""
        check_name(name)
        if name in BUILT_IN:
            raise PresetError(f"{name!r} is a built-in preset; choose another name")
        m.JobParams.from_wire(params)  # recommended parameters must be valid ones
        staging: Path | None = None
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=self.folder))
            Image.fromarray(pixels).save(staging / "style.png")
            (staging / "preset.json").write_text(json.dumps({"description": description, "params": params}))
            self._replace(name, staging)
        except OSError as exc:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            log.warning("could not store preset %s in %s: %s", name, self.folder, exc)
            raise StorageError(f"the preset could not be stored in {self.folder}: {exc.strerror or exc}") from None

    def _replace(self, name: str, staging: Path) -> None:
        """Put a written preset in place of the one of that name, if any."""
        target = self._user_folder(name)
        with self._lock:
            if target.is_symlink():
                target.unlink()  # the link goes, never what it points to
            elif target.exists():
                shutil.rmtree(target)
            staging.rename(target)
            self._images.pop(name, None)

    def sweep(self) -> None:
        """Remove what a daemon that died while adding a preset left behind."""
        with contextlib.suppress(OSError):
            for leftover in self.folder.glob(STAGING + "*"):
                if not leftover.is_symlink() and time.time() - leftover.stat().st_mtime > STALE_STAGING_S:
                    shutil.rmtree(leftover, ignore_errors=True)

    def remove(self, name: str) -> None:
        check_name(name)
        if name in BUILT_IN:
            raise PresetError(f"{name!r} is built in and cannot be removed")
        target = self._user_folder(name)
        if target.is_symlink() or not (target / "style.png").is_file():
            raise UnknownPreset(f"no user preset named {name!r}")
        with self._lock:
            shutil.rmtree(target)
            self._images.pop(name, None)


def check_name(name: object) -> None:
    if not is_preset_name(name):
        raise PresetError(f"a preset name is {NAME_RULE}")
