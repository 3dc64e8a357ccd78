"""Image files to protocol images and back (Pillow and numpy; no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from protocol import messages as m


def load_image(path: Path, keep_alpha: bool = False) -> m.Image:
    picture = PILImage.open(path)
    mode = "RGBA" if keep_alpha and picture.mode in ("RGBA", "LA", "PA") else "RGB"
    array = np.asarray(picture.convert(mode))
    return array_to_image(array)


def array_to_image(array: np.ndarray) -> m.Image:
    array = np.ascontiguousarray(array)
    height, width, channels = array.shape
    return m.Image(width, height, channels, array.tobytes())


def save_image(image: m.Image, path: Path) -> None:
    row = np.frombuffer(image.packed(), dtype=np.uint8)
    array = row.reshape(image.height, image.width, image.channels)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[image.channels]
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(array.squeeze(2) if image.channels == 1 else array, mode).save(path)


def load_mask(path: Path, content: m.Image) -> m.Image:
    """A grey image the content's size: white is stylised, black kept, grey blended."""
    picture = PILImage.open(path)
    if picture.size != (content.width, content.height):
        raise ValueError(f"the mask is {picture.size[0]}x{picture.size[1]}, the photo "
                         f"{content.width}x{content.height}: they must match")
    return array_to_image(np.asarray(picture.convert("L"))[..., None])
