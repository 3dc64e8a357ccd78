"""A job's colours: what it optimises against (the photo, the paintings, or their luminance),
how its pictures get their colour back, and where each scale's picture starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from impasto.protocol.messages import JobParams

from .imaging import (
    Palette,
    blended_palette,
    enlarge,
    in_palette,
    luminance_only,
    match_colors,
    palette_of,
    rgb_to_yuv,
    yuv_to_rgb,
)

Styles = list[tuple[torch.Tensor, float]]


@dataclass
class Colours:
    """How a job treats colour: what it optimises against, and how its pictures get their colour back."""

    content: torch.Tensor
    styles: Styles
    recolour: Callable[[torch.Tensor], torch.Tensor]
    inward: Callable[[torch.Tensor], torch.Tensor] = lambda x: x  # a picture the user sees, as optimised

    def palette(self) -> Palette:
        """The paintings' palette, their pixels pooled by their shares in the blend."""
        return blended_palette([(palette_of(style), share) for style, share in self.styles])


def prepare_colours(content: torch.Tensor, styles: Styles, params: JobParams) -> Colours:
    """`keep_colors`: none, the painting recoloured to the photo's palette, or luminance only."""
    if params.keep_colors == "match":
        return Colours(content, [(match_colors(style, content), weight) for style, weight in styles], lambda x: x)
    if params.keep_colors != "luminance":
        return Colours(content, styles, lambda x: x)
    # Optimise a grey picture against grey paintings, then give it the photo's colours back.
    content_yuv = rgb_to_yuv(content)
    grey_styles = [(luminance_only(style, content_yuv[:, :1]), weight) for style, weight in styles]

    def recolour(image: torch.Tensor) -> torch.Tensor:  # the photo's colours, the image's luma
        h, w = image.shape[-2:]
        colour = F.interpolate(content_yuv[:, 1:], size=(h, w), mode="bilinear", align_corners=False,
                               antialias=True)
        return yuv_to_rgb(torch.cat([rgb_to_yuv(image)[:, :1], colour], dim=1)).clamp(0, 1)

    def grey(image: torch.Tensor) -> torch.Tensor:
        return rgb_to_yuv(image)[:, :1].expand(-1, 3, -1, -1).contiguous()

    return Colours(grey(content), grey_styles, recolour, grey)


def starting_point(image: torch.Tensor | None, scale_content: torch.Tensor, previous_content: torch.Tensor | None,
                   params: JobParams, generator: torch.Generator, palette: Palette | None) -> torch.Tensor:
    """Where a scale starts: at the first, the photo moved towards the paintings' palette as far
    as the strength goes (L-BFGS moves broad colours slowly; bench/strength.py keeps the slider's
    steps even), or the photo, or noise; after, the previous result enlarged."""
    if image is None:
        if params.init == "noise":
            return torch.rand(scale_content.shape, generator=generator)
        if params.init == "content" or palette is None:
            return scale_content.clone()
        moved = in_palette(scale_content, palette)
        return (scale_content + params.strength * (moved - scale_content)).clamp(0, 1)
    h, w = scale_content.shape[-2:]
    if params.init == "noise" or previous_content is None:
        return enlarge(image, w, h).clamp(0, 1)
    # Enlarging blurs: give back the photo's detail that the smaller scale could not hold (a
    # Laplacian pyramid's level), or the style term keeps the blur.
    detail = scale_content - enlarge(previous_content, w, h)
    return (enlarge(image, w, h) + detail).clamp(0, 1)
