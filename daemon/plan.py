"""A job's plan before any optimisation: its scales and their sizes, and how it treats colour.

The picture is composed at the working size (`size`) from a few smaller scales, about √2 apart.
Above the working size, detail scales follow, DETAIL_STEP apart up to the photo's own size,
with the photo's detail that the smaller scale lacked added back, and each repaints only fine
texture (the style term at VGG19's shallow layers, against the painting at most at its own
resolution, since an enlarged painting's texture is a blurred one; a content term holds each
scale's starting picture, and what the scale below holds is kept from where the scale started),
so the composition and the look stay the working size's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from protocol.messages import JobParams, Progress

from . import tiles
from .imaging import (
    Palette,
    blended_palette,
    composed_size,
    enlarge,
    in_palette,
    luminance_only,
    match_colors,
    palette_of,
    resize,
    rgb_to_yuv,
    scale_sides,
    working_size,
    yuv_to_rgb,
)

# The shortest side VGG19 is given. Its fourth pooling needs at least 2 pixels, so 16 px of
# picture, or max pooling fails ("Output size is too small") before relu5_1. A thinner
# photo is padded (replicating its edges) to this, and smaller scales are skipped; a thinner
# painting is stretched to it (its statistics, not its shape, are what the style term uses).
MIN_SIDE = 16
DETAIL_STEP = 2.0
# The top scale, the photo's own size, holds three quarters of the detail scales' pixels and gets
# this share of their iterations. On the 1280×800 Path photo (384 px working size), half (2 of
# 4) took its time from 10.5 s to 6.6 s, the fine detail from 1.39× the photo's to 1.11×, and the
# crops look alike; VGG19 only to relu2_1 there instead saved 8% of its time.
TOP_SHARE = 0.5
# A detail iteration's cost per pixel, relative to a whole VGG19 pass: forward and backward to
# relu3_1 took 1.38 s/MP at 512×320 and 1.95 s/MP at 1280×800 against 2.44 and 3.24 for the
# whole pass (bf16, 2-core AVX512-BF16 CPU): a third of the multiply-adds, but the full-size,
# 64-channel first layers are bound by memory.
DETAIL_COST = 0.6
# A pixel's cost grows with the picture, as its activations outgrow the caches: 2.44 s/MP at
# 0.16 MP, 3.24 s/MP at 1 MP (same pass as above), about (megapixels)^0.15.
PACE_EXPONENT = 0.15
PACE_TRUST = 0.2  # share of a job's work after which its own pace alone gives the time left

Styles = list[tuple[torch.Tensor, float]]


@dataclass
class Colours:
    """How a job treats colour: what it optimises against, and how its pictures get their colour back."""

    content: torch.Tensor
    styles: Styles
    recolour: Callable[[torch.Tensor], torch.Tensor]

    def palette(self) -> Palette:
        """The paintings' palette, their pixels pooled by their shares in the blend."""
        return blended_palette([(palette_of(style), share) for style, share in self.styles])


def prepare_colours(content: torch.Tensor, styles: Styles, params: JobParams, width: int, height: int) -> Colours:
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

    return Colours(content_yuv[:, :1].expand(-1, 3, -1, -1).contiguous(), grey_styles, recolour)


def pad_to_min_side(content: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """`content` at its working size, its edges replicated so neither side is under MIN_SIDE.

    Returns it and where the picture starts in it (left, top); unchanged when no side is short.
    """
    pad_x, pad_y = max(0, MIN_SIDE - width), max(0, MIN_SIDE - height)
    if not (pad_x or pad_y):
        return content, (0, 0)
    left, top = pad_x // 2, pad_y // 2
    padded = F.pad(resize(content, width, height), (left, pad_x - left, top, pad_y - top), mode="replicate")
    return padded, (left, top)


def as_part_of_whole(params: JobParams, long_side: int) -> JobParams:
    """The settings for a part (a selection) of a picture whose long side is `params.layer_size`:
    the painting scaled, and the first scale placed, as for the whole, so strokes have the whole's
    size and two parts painted apart match."""
    ratio = params.layer_size / long_side
    if ratio <= 1:
        return params
    first_scale = max(1, round(params.first_scale / ratio)) if params.first_scale else 0
    return dataclasses.replace(params, style_scale=params.style_scale * ratio, first_scale=first_scale)


@dataclass
class Schedule:
    """The scales of a job, small to large, the iterations at each, and where detail scales begin."""

    sizes: list[tuple[int, int]]
    steps: list[int]
    first_detail: int  # index of the first scale above the working size (len(sizes) when none)

    @classmethod
    def of(cls, width: int, height: int, params: JobParams, output: tuple[int, int] | None = None) -> Schedule:
        """Scales up to `width`×`height` (the working size), then, given a larger `output`, detail
        scales up to it."""
        sizes = [working_size(width, height, side) for side in scale_sides(max(width, height), params.first_scale)]
        sizes = [size for size in sizes[:-1] if min(size) >= MIN_SIDE] + sizes[-1:]
        steps = [params.coarse_iterations or params.iterations] * (len(sizes) - 1) + [params.iterations]
        first_detail = len(sizes)
        if output is not None and params.detail and max(output) > max(width, height):
            sides = [max(output)]
            while sides[-1] / DETAIL_STEP > max(width, height):
                sides.append(round(sides[-1] / DETAIL_STEP))
            sizes += [working_size(*output, side) for side in sides[::-1]]
            steps += [params.detail] * (len(sides) - 1) + [max(1, round(params.detail * TOP_SHARE))]
        return cls(sizes, steps, first_detail)

    def cost(self) -> list[float]:
        """Each scale's work: pixel-iterations of a whole VGG19 pass, a pixel costing more in a
        larger picture (PACE_EXPONENT) and less at a detail scale (DETAIL_COST)."""
        return [w * h * (w * h / 1e6) ** PACE_EXPONENT * n * (DETAIL_COST if index >= self.first_detail else 1.0)
                for index, ((w, h), n) in enumerate(zip(self.sizes, self.steps, strict=True))]

    def tiled_cost(self, max_crop_pixels: int, measuring_pass: bool) -> float:
        """`cost()` with what tiles add: the margins every crop sees again, and for the Gram loss
        the forward pass that measures the picture's Gram first (a third more)."""
        total = 0.0
        for (w, h), cost in zip(self.sizes, self.cost(), strict=True):
            counts = tiles.counts_for(w, h, max_crop_pixels) or (1, 1)
            if counts != (1, 1):
                seen = sum(tile.crop.pixels for tile in tiles.grid(w, h, counts)) / (w * h)
                cost *= seen * (4 / 3 if measuring_pass else 1.0)
            total += cost
        return total

    def setup_cost(self) -> float:
        """The work each scale does before its first iteration, in the same units: the photo's
        and the painting's forward passes for the targets, each a third of a forward+backward."""
        return sum(2 / 3 * cost / steps for cost, steps in zip(self.cost(), self.steps, strict=True))

    def spent(self, index: int, iteration: int) -> float:
        """The work done after `iteration` steps of scale `index`, in cost() units."""
        cost = self.cost()
        return sum(cost[:index]) + cost[index] * iteration / self.steps[index]

    def progress(self, index: int, iteration: int, losses: dict[str, float], elapsed: float,
                 pace: float) -> Progress:
        """Where the job stands after `iteration` steps of scale `index`; the time left is the
        work left at `pace` seconds per unit."""
        w, h = self.sizes[index]
        left = sum(self.cost()) - self.spent(index, iteration)
        return Progress(scale=index + 1, scales=len(self.sizes), width=w, height=h,
                        iteration=sum(self.steps[:index]) + iteration, total=sum(self.steps), losses=losses,
                        elapsed=elapsed, eta=left * pace)


def blended_pace(prior: float | None, seconds: float, work: float, total: float, so_far: float) -> float:
    """Seconds per unit of work for the time left: the job's own pace since its first iteration
    (`seconds` for `work`), trusted more as it covers more of the job (fully from PACE_TRUST of
    it), and until then the daemon's measured pace (`prior`). The job's pace alone, counting
    its set-up, made the first time-left 1.7-4.6× too long. `so_far`, the pace counting the
    set-up, serves when there is nothing else (the first iteration of an engine never warmed up)."""
    if work <= 0:
        return prior or so_far
    own = seconds / work
    if prior is None:
        return own
    trust = min(1.0, work / (PACE_TRUST * total))
    return trust * own + (1 - trust) * prior


# The first scale starts from the photo recoloured to the paintings' palette (init "palette"),
# as far as the strength goes (a quarter of the way at 0.25, the whole way at 1), so a light
# painting starts near the photo and each step of the slider moves the colours alike. L-BFGS
# moves a picture's broad colours slowly: from the night photo (hoovertowernight ×
# escher_sphere, 384 px, the defaults) the job's own objective was 2.05 after the 60 full-size
# iterations and still falling (1.02 after 180), and 60 iterations from pastiche's lighter
# result reached 1.09. Started in Escher's palette, 60 iterations reach 1.10 (content 0.61,
# style 0.016 against 0.68 and 0.043), and Gatys's style score goes from 1.60× pastiche's to
# 1.23× (1.26× at the default strength's 0.8 of the way). The whole way from the default strength
# up (0.31 of it at 0.25) made the slider's last quarter its faintest step on 9 of 12 pairs
# (7.3-11.6 levels on six; bench/strength.py, 256 px) and put 4 pairs' steps over 2× apart (3.32×
# at worst), against one pair (2.01×) with the strength's share.
def starting_point(image: torch.Tensor | None, scale_content: torch.Tensor, previous_content: torch.Tensor | None,
                   params: JobParams, generator: torch.Generator, palette: Palette | None) -> torch.Tensor:
    """Where a scale starts: at the first, the photo (in the paintings' palette as far as the
    strength goes, see above) or noise; after, the previous result enlarged."""
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
    # Enlarging blurs: give the picture back the photo's detail that the smaller scale could
    # not hold (a Laplacian pyramid's level). Without it, the full size began with a blurred
    # photo that the style term kept: on tubingen × starry_night at 384 px, the final terms
    # were 0.98× (content) and 1.02× (style) pastiche's, against 0.95× and 0.95× with it.
    detail = scale_content - enlarge(previous_content, w, h)
    return (enlarge(image, w, h) + detail).clamp(0, 1)


def preview_due(params: JobParams, iteration: int, last_of_scale: bool, last_preview: list[float]) -> bool:
    """Whether a preview goes out now: every `preview_seconds`, else every `preview_every` iterations
    and at the end of each scale."""
    if params.preview_seconds:
        return time.monotonic() - last_preview[0] >= params.preview_seconds
    return bool(params.preview_every) and (iteration % params.preview_every == 0 or last_of_scale)


@dataclass
class Framing:
    """A job's photo as it runs: its own size, or, when thinner than MIN_SIDE at its working size,
    that size padded; `crop` is the photo's part of every picture the job makes."""

    content: torch.Tensor
    width: int  # the working size
    height: int
    crop: tuple[slice, slice]
    params: JobParams  # as run: a part's settings adjusted to its whole


def frame(content: torch.Tensor, params: JobParams) -> Framing:
    width, height = composed_size(content.shape[-1], content.shape[-2], params.size, params.layer_size)
    params = as_part_of_whole(params, max(content.shape[-2:]))
    padded, (left, top) = pad_to_min_side(content, width, height)
    if padded is content:
        return Framing(content, width, height, (slice(None), slice(None)), params)
    crop = (slice(top, top + height), slice(left, left + width))
    return Framing(padded, padded.shape[-1], padded.shape[-2], crop, params)


def schedule_for(width: int, height: int, params: JobParams) -> Schedule:
    """The scales a job on a `width`×`height` content runs (as StyleTransfer.run frames it)."""
    w, h = composed_size(width, height, params.size, params.layer_size)
    params = as_part_of_whole(params, max(width, height))
    if min(w, h) < MIN_SIDE:  # padded: every scale has the padded working size
        w, h = max(w, MIN_SIDE), max(h, MIN_SIDE)
        return Schedule.of(w, h, params, (w, h))
    return Schedule.of(w, h, params, (width, height))
