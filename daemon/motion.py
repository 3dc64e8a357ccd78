"""An animation frame's link to the frame before it: the optical flow between the two photos, the
previous result warped along it, and where that warp can be trusted.

After Ruder, Dosovitskiy & Brox (2016, "Artistic style transfer for videos", GCPR): a frame
starts from the previous frame's result warped into it, and a temporal term holds it there
wherever the flow is consistent. The flow is OpenCV's DIS (Kroeger et al., 2016, "Fast Optical
Flow using Dense Inverse Search"), an optional extra (`impasto[video]`): the daemon runs without
it and refuses only the frames that need it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .imaging import resize

# Ruder et al.'s consistency test (their section 3.2): a pixel whose forward and backward flows
# do not cancel within this share of their lengths (plus an absolute slack in px²) is occluded or
# disoccluded; one where the flow's gradient is large lies on a motion boundary.
CANCEL_SHARE, CANCEL_SLACK = 0.01, 0.5
BOUNDARY_SHARE, BOUNDARY_SLACK = 0.01, 0.002


FLOW_MISSING = ("animation frames need OpenCV beside the daemon: pip install 'impasto[video]' "
                "(opencv-python-headless)")


def flow_available() -> bool:
    return importlib.util.find_spec("cv2") is not None


def _cv2() -> Any:
    import cv2  # the daemon refuses a frame that needs it when it is missing (flow_available)

    return cv2


def _grey(picture: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB as the single channel DIS works on."""
    return _cv2().cvtColor(np.ascontiguousarray(picture[..., :3]), _cv2().COLOR_RGB2GRAY)


def flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32: where each pixel of `source` (uint8 RGB) moved to in `target`, in px (x, y)."""
    cv2 = _cv2()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_grey(source), _grey(target), None)


def warp(picture: np.ndarray, backward: np.ndarray, nearest: bool = False) -> np.ndarray:
    """`picture` pulled along `backward` (a flow from the frame wanted to `picture`'s frame),
    interpolated, or each pixel from its `nearest` source."""
    cv2 = _cv2()
    h, w = backward.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), axis=-1)
    where = grid + backward
    mode = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(picture, where[..., 0], where[..., 1], mode, borderMode=cv2.BORDER_REPLICATE)


def consistent(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """(H, W) bool, in the later frame: where the warp is trusted. `forward` runs from the earlier
    frame to the later, `backward` from the later to the earlier; a pixel is not trusted where the
    two do not cancel, on a motion boundary, or where it came from outside the earlier frame."""
    h, w = backward.shape[:2]
    there = warp(forward, backward)  # the forward flow at the point each pixel came from
    round_trip = ((there + backward) ** 2).sum(-1)
    lengths = (there**2).sum(-1) + (backward**2).sum(-1)
    occluded = round_trip > CANCEL_SHARE * lengths + CANCEL_SLACK
    gy_u, gx_u = np.gradient(backward[..., 0])
    gy_v, gx_v = np.gradient(backward[..., 1])
    boundary = gx_u**2 + gy_u**2 + gx_v**2 + gy_v**2 > BOUNDARY_SHARE * (backward**2).sum(-1) + BOUNDARY_SLACK
    xs = np.arange(w, dtype=np.float32)[None, :] + backward[..., 0]
    ys = np.arange(h, dtype=np.float32)[:, None] + backward[..., 1]
    outside = (xs < 0) | (xs > w - 1) | (ys < 0) | (ys > h - 1)
    return ~(occluded | boundary | outside)


def temporal_error(pictures: list[np.ndarray], photos: list[np.ndarray]) -> float:
    """How much a sequence flickers: mean |R_t − warp(R_{t−1})| in 0..255 over the pixels where the
    photos' flow is consistent, averaged over the frame pairs (the measure bench/animation.py
    prints and tests/test_animation.py holds; the photos themselves give its floor)."""
    errors = []
    for t in range(1, len(pictures)):
        forward, backward = flow(photos[t - 1], photos[t]), flow(photos[t], photos[t - 1])
        trusted = consistent(forward, backward)
        moved = warp(pictures[t - 1], backward).astype(np.float32)
        errors.append(float(np.abs(pictures[t].astype(np.float32) - moved).mean(-1)[trusted].mean()))
    return float(np.mean(errors))


@dataclass
class FrameLink:
    """The previous frame's result warped into this frame, and where it is trusted, as (1, C, H, W)
    tensors at the frame's size (RGB in 0..1; certainty 0 or 1)."""

    warped: torch.Tensor
    certainty: torch.Tensor

    @classmethod
    def between(cls, previous_photo: np.ndarray, previous_result: np.ndarray, photo: np.ndarray) -> FrameLink:
        """From uint8 (H, W, C) pixels, all three the same size."""
        forward, backward = flow(previous_photo, photo), flow(photo, previous_photo)
        # Each pixel from its nearest source: interpolating at the flow's fractions of a pixel (a
        # still background's flow is never exactly 0) blurred the strokes a little every frame,
        # and after a few dozen frames they had faded (bench/animation.py's GIFs).
        warped = warp(np.ascontiguousarray(previous_result[..., :3]), backward, nearest=True)
        certainty = consistent(forward, backward).astype(np.float32)
        return cls(torch.from_numpy(warped).permute(2, 0, 1)[None].float().div_(255),
                   torch.from_numpy(certainty)[None, None])

    def at(self, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The warped picture and its certainty at a scale's size (certainty averaged, in 0..1)."""
        if (width, height) == tuple(self.warped.shape[:-3:-1]):
            return self.warped, self.certainty
        certainty = F.interpolate(self.certainty, size=(height, width), mode="area") \
            if width <= self.certainty.shape[-1] else F.interpolate(self.certainty, size=(height, width))
        return resize(self.warped, width, height).clamp(0, 1), certainty

    def blend(self, start: torch.Tensor) -> torch.Tensor:
        """A scale's starting picture: the warped previous result where it is trusted, `start` elsewhere."""
        warped, certainty = self.at(start.shape[-1], start.shape[-2])
        certainty = certainty.to(start.device)
        return certainty * warped.to(start.device) + (1 - certainty) * start
