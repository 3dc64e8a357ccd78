"""Named styles the daemon can use without the client sending pixels.

Built-in presets are four public-domain paintings shipped in `paintings/` (see NOTICE) and two
textures `artwork` draws; user presets live under the XDG data dir, one folder each
(`style.png`, `preset.json`). A name is checked against protocol.presets' rule and only ever looked
up in these tables, so a client can never make the daemon read or write another path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from protocol import messages as m
from protocol.presets import NAME_RULE, is_preset_name

from . import artwork

THUMBNAIL_SIDE = 64
# Matched whole (fullmatch): with match, "$" also matched before a final newline, so "swirls\n"
# was accepted and listed as a second "swirls".


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


def default_folder() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "impasto" / "presets"


class PresetStore:
    """Built-in and user presets; safe to call from the service's two threads."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or default_folder()
        self._lock = threading.Lock()
        self._images: dict[str, tuple[float, np.ndarray]] = {}  # name -> (file mtime, pixels)

    def _user_folder(self, name: str) -> Path:
        return self.folder / name

    def names(self) -> list[str]:
        """The built-in presets, paintings first, then the user's, by name."""
        if not self.folder.is_dir():
            return list(BUILT_IN)
        user = [p.name for p in self.folder.iterdir() if is_preset_name(p.name) and (p / "style.png").is_file()]
        return [*BUILT_IN, *sorted(set(user) - set(BUILT_IN))]

    def __contains__(self, name: str) -> bool:
        if name in BUILT_IN:
            return True
        return is_preset_name(name) and (self._user_folder(name) / "style.png").is_file()

    def describe(self, name: str) -> dict:
        if name in BUILT_IN:
            preset = BUILT_IN[name]
            return {"name": name, "description": preset.description, "source": "built-in", "params": preset.params}
        info = json.loads((self._user_folder(name) / "preset.json").read_text())
        return {"name": name, "description": info.get("description", ""), "source": "user",
                "params": info.get("params", {})}

    def image(self, name: str) -> np.ndarray:
        """The preset's style image as (H, W, 3) uint8; KeyError for an unknown name."""
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
            return cached[1]
        picture = BUILT_IN[name].draw() if path is None else Image.open(path)
        pixels = np.asarray(picture.convert("RGB"))
        with self._lock:
            self._images[name] = (stamp, pixels)
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
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".adding-", dir=self.folder))
        Image.fromarray(pixels).save(staging / "style.png")
        (staging / "preset.json").write_text(json.dumps({"description": description, "params": params}))
        target = self._user_folder(name)
        with self._lock:
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
            self._images.pop(name, None)

    def remove(self, name: str) -> None:
        check_name(name)
        if name in BUILT_IN:
            raise PresetError(f"{name!r} is built in and cannot be removed")
        target = self._user_folder(name)
        if not (target / "style.png").is_file():
            raise UnknownPreset(f"no user preset named {name!r}")
        with self._lock:
            shutil.rmtree(target)
            self._images.pop(name, None)


def check_name(name: object) -> None:
    if not is_preset_name(name):
        raise PresetError(f"a preset name is {NAME_RULE}")
