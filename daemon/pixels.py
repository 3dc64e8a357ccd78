"""Protocol images to tensors and back, without copies where numpy allows, and the last step of
a job's picture: the content's size and channels, with the mask applied."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image as PILImage

from impasto.protocol.messages import Image, Submit

from .motion import FrameLink


def to_array(image: Image) -> np.ndarray:
    """(H, W, C) uint8 view of the wire buffer, honouring its row stride."""
    buffer = np.frombuffer(image.data, dtype=np.uint8)
    if buffer.size < image.stride * image.height:  # the last row may come without its padding
        buffer = np.concatenate([buffer, np.zeros(image.stride * image.height - buffer.size, np.uint8)])
    rows = buffer[: image.stride * image.height].reshape(image.height, image.stride)
    return rows[:, : image.width * image.channels].reshape(image.height, image.width, image.channels)


def to_tensor(image: Image) -> torch.Tensor:
    """(1, 3, H, W) float RGB in 0..1; grey is repeated, alpha dropped."""
    return array_to_tensor(to_array(image))


def array_to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8 pixels (a wire image's, or a preset's) as to_tensor gives them."""
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    rgb = torch.from_numpy(np.require(array[..., :3], requirements=["C", "W"]))  # torch wants writable memory
    return rgb.permute(2, 0, 1).unsqueeze(0).float().div_(255).contiguous()


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in 0..1 to an (H, W, 3) uint8 array."""
    return rgb[0].detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def from_array(array: np.ndarray) -> Image:
    array = np.ascontiguousarray(array)
    height, width, channels = array.shape
    return Image(width, height, channels, array.data.cast("B"))


def link_of(submit: Submit) -> FrameLink | None:
    """An animation frame's link to the previous frame's result, when the job sent one."""
    if submit.previous is None or submit.previous_result is None:
        return None
    return FrameLink.between(to_array(submit.previous), to_array(submit.previous_result), to_array(submit.content))


def finish(image: torch.Tensor, submit: Submit) -> Image:
    """The engine's image as the client expects it: the content's size and channels, the mask applied.

    Outside the mask the content's own bytes are copied, so they come back exactly.
    """
    content = submit.content
    rgb = to_uint8(image)
    if rgb.shape[:2] != (content.height, content.width):
        # Enlarged as 8-bit pixels by Pillow: in float32 by torch a large preview cost more than the job.
        rgb = np.asarray(PILImage.fromarray(rgb).resize((content.width, content.height), PILImage.Resampling.BICUBIC))
    original = to_array(content)
    if submit.mask is not None:
        weight = feathered(to_array(submit.mask), submit.params.mask_feather)
        blended = rgb * weight + original[..., :3] * (1 - weight)
        rgb = np.where(weight > 0, np.round(blended), original[..., :3]).astype(np.uint8)
    if content.channels == 4:
        rgb = np.concatenate([rgb, original[..., 3:]], axis=2)
    return from_array(rgb)


def feathered(mask: np.ndarray, radius: float) -> np.ndarray:
    """The mask (H, W, 1, uint8) as weights in 0..1, softened over `radius` pixels *inside* it.

    Blurring spreads a hard edge to 0.5 at the edge itself; doubling and subtracting one moves
    that 0.5 to 0 there, so the soft band lies within the selection and every pixel outside
    keeps a weight of exactly 0.
    """
    weight = torch.from_numpy(mask.astype(np.float32) / 255).permute(2, 0, 1).unsqueeze(0)
    size = round(radius)
    if size >= 1:
        blurred = weight
        for _ in range(2):  # two box blurs: close enough to a Gaussian
            blurred = F.avg_pool2d(blurred, 2 * size + 1, stride=1, padding=size, count_include_pad=False)
        weight = torch.minimum(weight, (2 * blurred - 1).clamp(0, 1))
    return weight[0].permute(1, 2, 0).numpy()
