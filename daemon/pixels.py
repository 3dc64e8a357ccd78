"""Protocol images to tensors and back, without copies where numpy allows."""

from __future__ import annotations

import numpy as np
import torch

from protocol.messages import Image


def to_array(image: Image) -> np.ndarray:
    """(H, W, C) uint8 view of the wire buffer, honouring its row stride."""
    buffer = np.frombuffer(image.data, dtype=np.uint8)
    if buffer.size < image.stride * image.height:  # the last row may come without its padding
        buffer = np.concatenate([buffer, np.zeros(image.stride * image.height - buffer.size, np.uint8)])
    rows = buffer[: image.stride * image.height].reshape(image.height, image.stride)
    return rows[:, : image.width * image.channels].reshape(image.height, image.width, image.channels)


def to_tensor(image: Image) -> torch.Tensor:
    """(1, 3, H, W) float RGB in 0..1; grey is repeated, alpha dropped."""
    array = to_array(image)
    if image.channels == 1:
        array = np.repeat(array, 3, axis=2)
    rgb = torch.from_numpy(np.ascontiguousarray(array[..., :3]))
    return rgb.permute(2, 0, 1).unsqueeze(0).float().div_(255).contiguous()


def alpha_of(image: Image) -> np.ndarray | None:
    return to_array(image)[..., 3].copy() if image.channels == 4 else None


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in 0..1 to an (H, W, 3) uint8 array."""
    return rgb[0].detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def from_array(array: np.ndarray) -> Image:
    array = np.ascontiguousarray(array)
    height, width, channels = array.shape
    return Image(width, height, channels, array.data.cast("B"))
