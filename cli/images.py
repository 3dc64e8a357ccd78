"""Image files to protocol images and back (Pillow and numpy; no torch).

Files come from anywhere, so reading is careful: the camera's orientation is applied, 16-bit
greys are scaled rather than clipped, a palette's transparency is kept where alpha is, and an
animated file says it uses its first frame. Anything Pillow cannot read, or refuses as a
decompression bomb, is an ImageError with a sentence for the user. Writing is checked before a
job starts (a known format that can hold the picture) and done atomically, so a finished job is
never lost to a bad `-o`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

from impasto.protocol import messages as m

# Formats that cannot hold an alpha channel, by Pillow's format name.
NO_ALPHA = {"JPEG", "BMP", "PPM", "EPS", "PCX"}


class ImageError(ValueError):
    """A file that cannot be used, with the reason in words."""


def open_picture(path: Path) -> PILImage.Image:
    """The file's first frame, loaded, upright as the camera meant it; its size is checked
    against the protocol's limit before any pixel is decoded."""
    if path.exists() and not path.is_file():  # a FIFO would block forever, a folder says nothing
        raise ImageError(f"{path} is not a regular file")
    try:
        with warnings.catch_warnings():  # a large picture is refused below, in words
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            picture = PILImage.open(path)
        problem = m.too_large(picture.width, picture.height, str(path))
        if problem is not None:
            raise ImageError(problem)
        frames = getattr(picture, "n_frames", 1)
        picture.load()
        upright = ImageOps.exif_transpose(picture) or picture
    except ImageError:
        raise
    except PILImage.DecompressionBombError:
        raise ImageError(f"{path} is too large to open safely: Impasto takes images of up to "
                         f"{m.MAX_PIXELS / 1e6:.1f} MP") from None
    except Exception as exc:  # damaged files: OSError, ValueError, SyntaxError, TypeError, KeyError… (fuzzed)
        raise ImageError(f"cannot read {path}: {exc or type(exc).__name__}") from None
    if frames > 1:
        print(f"impasto: {path.name} has {frames} frames; using the first", file=sys.stderr)
    return upright


def eight_bit(picture: PILImage.Image) -> PILImage.Image:
    """16- and 32-bit greys scaled to 8 bits (Pillow's convert would clip them at 255)."""
    if picture.mode not in ("I", "I;16", "I;16B", "I;16L", "F"):
        return picture
    values = np.asarray(picture, dtype=np.float64)
    top = 65535.0 if values.max(initial=0) > 255 else 255.0
    return PILImage.fromarray(np.clip(values / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")


def load_image(path: Path, keep_alpha: bool = False) -> m.Image:
    picture = open_picture(path)
    try:
        picture = eight_bit(picture)
        has_alpha = picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info)
        array = np.asarray(picture.convert("RGBA" if keep_alpha and has_alpha else "RGB"))
    except Exception as exc:  # a file that opened but whose pixels do not convert
        raise ImageError(f"cannot read {path}: {exc or type(exc).__name__}") from None
    return array_to_image(array)


def array_to_image(array: np.ndarray) -> m.Image:
    array = np.ascontiguousarray(array)
    height, width, channels = array.shape
    return m.Image(width, height, channels, array.tobytes())


def output_format(path: Path, channels: int) -> str:
    """Pillow's format for writing `path`, checked before any work is done."""
    extension = path.suffix.lower()
    if not extension:
        raise ImageError(f"{path} has no extension: name the format, e.g. {path.name}.png")
    image_format = PILImage.registered_extensions().get(extension)
    if image_format is None or image_format not in PILImage.SAVE:
        raise ImageError(f"cannot write {extension} files: use .png, .jpg, .tif or .webp")
    if channels == 4 and image_format in NO_ALPHA:
        raise ImageError(f"the photo has transparency, which {extension} cannot hold: use .png, .tif or .webp")
    folder = path.parent if str(path.parent) else Path(".")
    if folder.exists() and not os.access(folder, os.W_OK):
        raise ImageError(f"cannot write into {folder}")
    return image_format


def check_output(path: Path, channels: int, photo: Path | None = None) -> None:
    """`output_format`, and that `path` can be a new file: not a folder, not the photo itself, in a
    folder that is one (or can be made) and that this user may write."""
    if path.is_dir():
        raise ImageError(f"{path} is a folder: name a file in it, e.g. {path / 'out.png'}")
    if photo is not None and path.exists() and path.resolve() == photo.resolve():
        raise ImageError(f"{path} is the photo itself: choose another name, so that the photo is kept")
    output_format(path, channels)
    folder = path.parent if str(path.parent) else Path(".")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ImageError(f"cannot write {path}: {folder} is not a folder")


def check_frames(folder: Path) -> None:
    """The previews' folder, made now, so a bad --frames is said before the work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(f"cannot keep previews in {folder}: {exc.strerror or exc}") from None


def save_result(image: m.Image, path: Path) -> Path:
    """Write a finished job's result to `path`, or, when that fails (a full disk, a folder that
    went away), to a file of its own in the temporary folder: a result is never lost. Returns
    where it is; OSError only when neither could be written."""
    try:
        save_image(image, path)
        return path
    except OSError as exc:
        print(f"impasto: could not write {path}: {exc.strerror or exc}", file=sys.stderr)
    descriptor, kept = tempfile.mkstemp(prefix="impasto-result-", suffix=".png")
    os.close(descriptor)
    save_image(image, Path(kept))
    return Path(kept)


def save_image(image: m.Image, path: Path) -> None:
    """Write `image` whole or not at all: to a temporary file beside `path`, then renamed."""
    row = np.frombuffer(image.packed(), dtype=np.uint8)
    array = row.reshape(image.height, image.width, image.channels)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[image.channels]
    image_format = output_format(path, image.channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            PILImage.fromarray(array.squeeze(2) if image.channels == 1 else array, mode).save(file, image_format)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)  # as an ordinary file would be, not mkstemp's 0600
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def load_mask(path: Path, content: m.Image) -> m.Image:
    """A grey image the content's size: white is stylised, black kept, grey blended."""
    picture = eight_bit(open_picture(path))
    if picture.size != (content.width, content.height):
        raise ImageError(f"the mask is {picture.size[0]}x{picture.size[1]}, the photo "
                         f"{content.width}x{content.height}: they must match")
    return array_to_image(np.asarray(picture.convert("L"))[..., None])
