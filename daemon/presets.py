"""Named styles the daemon can use without the client sending pixels.

For now the built-in ones, drawn by `artwork`; a preset name is only ever looked up in this
table, never treated as a path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from . import artwork

THUMBNAIL_SIDE = 64


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    draw: Callable[[], Image.Image]


BUILT_IN = {
    preset.name: preset
    for preset in (
        Preset("swirls", "Night-sky swirls in blues and yellows (drawn by Impasto)", artwork.swirls),
        Preset("embers", "Warm red and orange hatching (drawn by Impasto)", artwork.embers),
    )
}


def names() -> list[str]:
    return sorted(BUILT_IN)


@cache
def image(name: str) -> np.ndarray:
    """The preset's style image as an (H, W, 3) uint8 array; KeyError for an unknown name."""
    return np.asarray(BUILT_IN[name].draw().convert("RGB"))


@cache
def thumbnail(name: str) -> np.ndarray:
    picture = Image.fromarray(image(name))
    picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return np.asarray(picture)
