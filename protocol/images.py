"""Pixels on the wire: an image's description in a header, its bytes in a frame of their own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import Code, ProtocolError, is_int
from .settings import MAX_SIDE


@dataclass
class Image:
    """8-bit pixels, row-major, `channels` interleaved (1 grey, 3 RGB, 4 RGBA).

    `stride` is the number of bytes from one row to the next (at least width * channels), so
    a client can send rows straight out of a buffer that pads them.
    """

    width: int
    height: int
    channels: int
    data: bytes | bytearray | memoryview
    stride: int = 0

    def __post_init__(self) -> None:
        if not self.stride:
            self.stride = self.width * self.channels

    def describe(self, frame: int) -> dict[str, int]:
        return {"width": self.width, "height": self.height, "channels": self.channels,
                "stride": self.stride, "frame": frame}

    def packed(self) -> bytes:
        """The pixels without row padding."""
        row = self.width * self.channels
        if self.stride == row:
            return bytes(self.data[: row * self.height])
        view = memoryview(self.data)
        return b"".join(view[y * self.stride: y * self.stride + row] for y in range(self.height))


def image_from(desc: Any, frames: list, what: str, max_pixels: int) -> Image:
    if not isinstance(desc, dict):
        raise ProtocolError(Code.BAD_IMAGE, f"{what}: image description must be a map")
    values = {}
    for key in ("width", "height", "channels", "stride", "frame"):
        value = desc.get(key)
        if not is_int(value):
            raise ProtocolError(Code.BAD_IMAGE, f"{what}: '{key}' must be an integer")
        values[key] = value
    width, height, channels, stride, frame = (values[k] for k in ("width", "height", "channels", "stride", "frame"))
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ProtocolError(Code.BAD_IMAGE, f"{what}: {width}x{height} is outside 1..{MAX_SIDE} per side")
    if width * height > max_pixels:
        raise ProtocolError(Code.TOO_LARGE, f"{what}: {width}x{height} is over the limit of {max_pixels} pixels")
    if channels not in (1, 3, 4):
        raise ProtocolError(Code.BAD_IMAGE, f"{what}: channels must be 1, 3 or 4, not {channels}")
    if not (width * channels <= stride <= width * channels + 4096):
        raise ProtocolError(Code.BAD_IMAGE, f"{what}: stride {stride} does not fit width {width} x {channels}")
    if not (1 <= frame < len(frames)):
        raise ProtocolError(Code.BAD_IMAGE, f"{what}: frame {frame} is missing")
    data = frames[frame]
    expected = stride * (height - 1) + width * channels
    if len(data) not in (expected, stride * height):
        raise ProtocolError(Code.BAD_IMAGE, f"{what}: {len(data)} bytes, expected {stride * height}")
    return Image(width, height, channels, data, stride)
