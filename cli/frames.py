"""Animation frames in and out for `impasto animate`: a folder of pictures, picture files, an
animated GIF or WebP (Pillow), or a video file (PyAV, the optional extra `impasto[video]`).
No torch here."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from impasto.protocol import messages as m

from .images import ImageError, array_to_image, load_image, output_format

VIDEO_EXTENSIONS = {".avi", ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".ogv"}
PICTURE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"}
DEFAULT_FRAME_MS = 100  # pictures carry no timing: 10 frames a second
VIDEO_MISSING = "video files need PyAV: pip install 'impasto[video]'"


@dataclass
class Frames:
    """An animation's frames: their names (a folder of results names its files so), times on screen
    and size, and `read()`, which yields their pixels in order, anew on every pass, so that a long
    video is never all in memory."""

    names: list[str]
    durations: list[int]  # ms
    size: tuple[int, int]
    read: Callable[[], Iterator[m.Image]]

    def __len__(self) -> int:
        return len(self.names)


def _natural(path: Path) -> list[Any]:
    """frame2 before frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _rgb(array: np.ndarray) -> m.Image:
    return array_to_image(np.ascontiguousarray(array[..., :3]))


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise ImageError(VIDEO_MISSING) from None
    return av


def _numbered(count: int) -> list[str]:
    return [f"frame-{index:05d}.png" for index in range(1, count + 1)]


def video_frames(path: Path) -> Frames:
    av = _av()

    def read() -> Iterator[m.Image]:
        try:
            with av.open(str(path)) as container:
                for picture in container.decode(container.streams.video[0]):
                    yield _rgb(picture.to_ndarray(format="rgb24"))
        except (OSError, ValueError, IndexError, av.FFmpegError) as exc:
            raise ImageError(f"cannot read the video {path}: {exc}") from None

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(1000, DEFAULT_FRAME_MS)
            size = (stream.codec_context.width, stream.codec_context.height)
    except (OSError, ValueError, IndexError, av.FFmpegError) as exc:
        raise ImageError(f"cannot read the video {path}: {exc}") from None
    count = sum(1 for _ in read())  # decoded once to count: containers' own counts are often wrong
    return Frames(_numbered(count), [max(1, round(1000 / float(rate)))] * count, size, read)


def animated_frames(path: Path) -> Frames | None:
    """An animated GIF or WebP's frames, with their timings; None for a still picture."""
    try:
        with PILImage.open(path) as picture:
            count = getattr(picture, "n_frames", 1)
            if count <= 1:
                return None
            durations = []
            for index in range(count):
                picture.seek(index)
                durations.append(int(picture.info.get("duration") or DEFAULT_FRAME_MS))
            size = picture.size
    except Exception as exc:  # a damaged file: Pillow raises many types
        raise ImageError(f"cannot read {path}: {exc or type(exc).__name__}") from None

    def read() -> Iterator[m.Image]:
        with PILImage.open(path) as picture:
            for index in range(count):
                picture.seek(index)
                yield _rgb(np.asarray(picture.convert("RGB")))

    return Frames(_numbered(count), durations, size, read)


def picture_frames(paths: list[Path]) -> Frames:
    """Picture files, one a frame, in the order given; all must be one size."""
    sizes = []
    for path in paths:
        try:
            with PILImage.open(path) as picture:
                sizes.append(picture.size)
        except Exception as exc:
            raise ImageError(f"cannot read {path}: {exc or type(exc).__name__}") from None
    if len(set(sizes)) > 1:
        raise ImageError("the frames differ in size: " + ", ".join(f"{w}x{h}" for w, h in sorted(set(sizes))[:4]))
    return Frames([path.with_suffix(".png").name for path in paths], [DEFAULT_FRAME_MS] * len(paths), sizes[0],
                  lambda: (_rgb(_array(load_image(path))) for path in paths))


def read_frames(inputs: list[Path]) -> Frames:
    """The frames, in order: a folder's pictures in natural order, the files given in their order,
    or one animated picture's or video's frames."""
    if len(inputs) == 1 and inputs[0].is_dir():
        files = sorted((p for p in inputs[0].iterdir() if p.suffix.lower() in PICTURE_EXTENSIONS), key=_natural)
        if not files:
            raise ImageError(f"{inputs[0]} holds no pictures")
        inputs = files
    if len(inputs) == 1 and inputs[0].suffix.lower() in VIDEO_EXTENSIONS:
        frames = video_frames(inputs[0])
    else:
        frames = (animated_frames(inputs[0]) if len(inputs) == 1 else None) or picture_frames(inputs)
    if not len(frames):
        raise ImageError("no frames to stylise")
    return frames


def _array(image: m.Image) -> np.ndarray:
    return np.frombuffer(image.packed(), np.uint8).reshape(image.height, image.width, image.channels)


def output_kind(path: Path) -> str:
    """'folder', 'animated' (GIF, WebP) or 'video', checked before any work."""
    extension = path.suffix.lower()
    if path.is_dir() or not extension:
        return "folder"
    if extension in VIDEO_EXTENSIONS:
        _av()
        return "video"
    if extension in {".gif", ".webp"}:
        output_format(path, 3)
        return "animated"
    raise ImageError(f"cannot write an animation as {extension}: name a folder, a .gif, a .webp or a video "
                     f"({', '.join(sorted(VIDEO_EXTENSIONS))})")


def load_frame(path: Path) -> np.ndarray:
    return _array(load_image(path))


def write_animated(frames: Iterable[np.ndarray], durations: list[int], path: Path) -> None:
    """An animated GIF or WebP that loops, each frame for its own time, written whole or not at all."""
    pictures = (PILImage.fromarray(frame) for frame in frames)
    first = next(pictures)
    partial = path.with_name(f".{path.name}.partial")
    options: dict[str, Any] = {"lossless": True} if path.suffix.lower() == ".webp" else {"optimize": False}
    first.save(partial, output_format(path, 3), save_all=True, append_images=pictures, duration=durations, loop=0,
               **options)
    partial.replace(path)


def write_video(frames: Iterable[np.ndarray], durations: list[int], path: Path) -> None:
    """A video at the frames' mean rate (H.264 where the container takes it, else MPEG-4 Part 2),
    written whole or not at all."""
    av = _av()
    rate = Fraction(round(1000 / (sum(durations) / len(durations)) * 1000), 1000)
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    with av.open(str(partial), "w") as container:
        codec = "libvpx-vp9" if path.suffix.lower() == ".webm" else \
            "h264" if "h264" in av.codecs_available and path.suffix.lower() in {".mp4", ".mkv", ".mov"} else "mpeg4"
        stream = container.add_stream(codec, rate=rate)
        stream.pix_fmt = "yuv420p"
        pictures = iter(frames)
        first = next(pictures)
        stream.height, stream.width = first.shape[0] // 2 * 2, first.shape[1] // 2 * 2  # yuv420p: even sides
        for frame in itertools.chain([first], pictures):
            even = np.ascontiguousarray(frame[: stream.height, : stream.width, :3])
            for packet in stream.encode(av.VideoFrame.from_ndarray(even, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.replace(path)
