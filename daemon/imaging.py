"""Pictures as tensors: colour spaces and colour transfer, working sizes, the scales of a job, resizing."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

# Paintings are shrunk with a triangle (bilinear, antialiased) filter, photos with bicubic: a
# bicubic painting scored worse by its own Gram term (bench/RESULTS.md, findings).
STYLE_FILTER = "bilinear"


# BT.601 luma and colour differences: Y carries what style transfer should change when the
# photo's colours are to be kept (Gatys et al., 2016, "Preserving Color in Neural Artistic Style
# Transfer").
RGB_TO_YUV = torch.tensor([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])
YUV_TO_RGB = torch.linalg.inv(RGB_TO_YUV)


def rgb_to_yuv(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", RGB_TO_YUV.to(image), image)


def yuv_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", YUV_TO_RGB.to(image), image)


def binomial_blur(picture: torch.Tensor) -> torch.Tensor:
    """Each channel of (N, C, H, W) under a 3×3 binomial filter ([1, 2, 1]/4 each way), edges
    replicated: nothing is left at a period of 2 pixels, half at 4. Two 2×2 means make it: a
    grouped convolution took an unfolded copy nine times the picture's size (at 24 MP, GBs)."""
    padded = F.pad(picture, (1, 1, 1, 1), mode="replicate")
    return F.avg_pool2d(F.avg_pool2d(padded, 2, stride=1), 2, stride=1)


def smooth_colour(start: torch.Tensor, painted: torch.Tensor) -> torch.Tensor:
    """`painted` with what it changed from `start` kept in luma and smoothed in colour (U and V
    under two binomial filters): a detail scale's fine colour is beyond the painting's own (a
    JPEG's colour is at half resolution) and showed as red and blue speckle in dark areas
    (bench/dark_areas.py)."""
    colour = torch.einsum("ij,njhw->nihw", RGB_TO_YUV[1:].to(painted), painted - start)  # U and V of the change
    smoothing = binomial_blur(binomial_blur(colour)) - colour  # one picture at a time: they are large at 24 MP
    return (painted + torch.einsum("ij,njhw->nihw", YUV_TO_RGB[:, 1:].to(painted), smoothing)).clamp_(0, 1)


def _symmetric_power(matrix: torch.Tensor, power: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(1e-6) ** power) @ vectors.T


# A picture's palette: its pixels' mean (3×1) and covariance (3×3), in float64.
Palette = tuple[torch.Tensor, torch.Tensor]


def palette_of(image: torch.Tensor) -> Palette:
    """`image`'s palette, from at most about a million of its pixels on a regular grid (a 24 MP
    painting's whole would take 0.6 GB in float64)."""
    step = math.ceil(math.sqrt(image.shape[-2] * image.shape[-1] / 2**20))
    pixels = image[0, :, ::step, ::step].flatten(1).double()
    mean = pixels.mean(1, keepdim=True)
    centred = pixels - mean
    identity = torch.eye(3, dtype=torch.double, device=pixels.device)
    return mean, centred @ centred.T / pixels.shape[1] + 1e-5 * identity


def blended_palette(palettes: list[tuple[Palette, float]]) -> Palette:
    """The palette of the paintings' pixels pooled, each painting counting by its share."""
    total = sum(share for _, share in palettes) or 1.0
    mean = torch.stack([share * m for (m, _), share in palettes]).sum(0) / total
    second = torch.stack([share * (c + m @ m.T) for (m, c), share in palettes]).sum(0) / total  # E[x xᵀ]
    return mean, second - mean @ mean.T


def in_palette(image: torch.Tensor, palette: Palette) -> torch.Tensor:
    """`image` recoloured so its pixels' mean and covariance are `palette`'s.

    The affine map A(x − μ) + μₚ with A = Σₚ^½ Σ^−½ (Gatys et al., 2016, "Preserving Color in
    Neural Artistic Style Transfer", colour histogram matching); the image's shapes and
    textures stay, its palette becomes the other's.
    """
    mean, cov = palette_of(image)
    target_mean, target_cov = (part.to(mean.device) for part in palette)
    transform = _symmetric_power(target_cov, 0.5) @ _symmetric_power(cov, -0.5)
    pixels = transform @ (image[0].flatten(1).double() - mean) + target_mean
    return pixels.reshape(image.shape).to(image.dtype).clamp(0, 1)


def match_colors(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style image in the content's palette: its strokes and textures stay."""
    return in_palette(style, palette_of(content))


def luminance_only(style: torch.Tensor, content_luma: torch.Tensor) -> torch.Tensor:
    """The style's luma, shifted and scaled to the content's mean and spread, as a grey image."""
    luma = rgb_to_yuv(style)[:, :1]
    luma = (luma - luma.mean()) / (luma.std() + 1e-6) * content_luma.std() + content_luma.mean()
    return luma.clamp(0, 1).expand(-1, 3, -1, -1)


def working_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The content's size scaled so its long side is at most `long_side` (never enlarged)."""
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def composed_size(width: int, height: int, size: int, whole_side: int = 0) -> tuple[int, int]:
    """The size a picture is composed at: its long side at most `size`; for a part of a larger
    picture (long side `whole_side`), its share of that picture's composed size."""
    long_side = max(width, height)
    factor = min(1.0, size / max(long_side, whole_side))
    return working_size(width, height, max(1, round(long_side * factor)))


def painted_size(width: int, height: int, pixels: int) -> tuple[int, int]:
    """The size a picture's detail is painted up to: its own, or at most `pixels` (0: no cap)."""
    if not pixels or width * height <= pixels:
        return width, height
    return working_size(width, height, max(1, math.floor(max(width, height) * math.sqrt(pixels / (width * height)))))


def scale_sides(long_side: int, first: int) -> list[int]:
    """Long sides from `first` up to `long_side`, about √2 apart; one scale when `first` is 0."""
    sides = [long_side]
    while first and sides[-1] / math.sqrt(2) >= first:
        sides.append(round(sides[-1] / math.sqrt(2)))
    return sides[::-1]


def resize(image: torch.Tensor, width: int, height: int, mode: str = "bicubic") -> torch.Tensor:
    """Resize (N, 3, H, W) with antialiasing, so shrinking does not alias."""
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(image, size=(height, width), mode=mode, align_corners=False,
                         antialias=True).clamp(0, 1)


def low_band_of(reference: torch.Tensor, width: int, height: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function giving a picture of `reference`'s size `reference`'s coarse band (what a
    `width`×`height` picture can hold) under its own finer detail; `reference`'s band is taken once."""
    h, w = reference.shape[-2:]

    def low(image: torch.Tensor) -> torch.Tensor:
        return enlarge(resize(image, width, height), w, h)

    coarse = low(reference)
    return lambda picture: (picture - low(picture) + coarse).clamp(0, 1)


def detail_kept(start: torch.Tensor, width: int, height: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """What a detail scale that started at `start` keeps of a picture it painted: the coarse band
    `start` holds at `width`×`height`, and the painted change's colour smoothed (smooth_colour)."""
    low = low_band_of(start, width, height)
    return lambda picture: low(smooth_colour(start, picture))


def enlarge(picture: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bicubic enlargement to the next scale, unclamped (the caller clamps what it builds)."""
    return F.interpolate(picture, size=(height, width), mode="bicubic", align_corners=False)
