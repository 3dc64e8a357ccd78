"""A job's schedule before any optimisation: the size it is composed at, its scales and their
iterations.

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
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from impasto.protocol.messages import JobParams

from .imaging import composed_size, painted_size, resize, scale_sides, working_size

# The shortest side VGG19 is given. Its fourth pooling needs at least 2 pixels, so 16 px of
# picture, or max pooling fails ("Output size is too small") before relu5_1. A thinner
# photo is padded (replicating its edges) to this, and smaller scales are skipped; a thinner
# painting is stretched to it (its statistics, not its shape, are what the style term uses).
MIN_SIDE = 16
DETAIL_STEP = 2.0
# The top scale, the photo's own size, holds three quarters of the detail scales' pixels and gets
# this share of their iterations, rounded: half the time, alike crops (bench/full_resolution.py).
# With one iteration a scale (the plug-in's Draft) it gets none: the scale below, enlarged, with
# the photo's own detail added back, at about half a Normal's time (bench/first_estimate.py).
TOP_SHARE = 0.5


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
    # A part composed within its whole (see PartOfWhole): the scales up to first_detail are the
    # whole's, and the part's working size, cut from them, is what the first detail scale enlarges.
    part_working: tuple[int, int] | None = None

    def below(self, index: int) -> tuple[int, int]:
        """The size of the picture a scale starts from (the scale before, or the part's cut)."""
        if index == self.first_detail and self.part_working is not None:
            return self.part_working
        return self.sizes[index - 1]

    def following(self, iterations: int) -> Schedule:
        """An animation frame's after the first: `iterations` at the working size, where it starts
        from the previous frame's result; the quick smaller scales still compose what that result
        cannot give (what the previous frame did not show)."""
        steps = list(self.steps)
        steps[self.first_detail - 1] = iterations
        return dataclasses.replace(self, steps=steps)

    @classmethod
    def of(cls, width: int, height: int, params: JobParams, output: tuple[int, int] | None = None) -> Schedule:
        """Scales up to `width`×`height` (the working size), then, given a larger `output`, detail
        scales up to it."""
        sizes = [working_size(width, height, side) for side in scale_sides(max(width, height), params.first_scale)]
        sizes = [size for size in sizes[:-1] if min(size) >= MIN_SIDE] + sizes[-1:]
        steps = [params.coarse_iterations or params.iterations] * (len(sizes) - 1) + [params.iterations]
        first_detail = len(sizes)
        if output is not None:
            output = painted_size(*output, params.paint_pixels)
        if output is not None and params.detail and max(output) > max(width, height):
            sides = [max(output)]
            while sides[-1] / DETAIL_STEP > max(width, height):
                sides.append(round(sides[-1] / DETAIL_STEP))
            sizes += [working_size(*output, side) for side in sides[::-1]]
            steps += [params.detail] * (len(sides) - 1) + [round(params.detail * TOP_SHARE)]
        return cls(sizes, steps, first_detail)


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
    # The painting is scaled with the picture it is seen beside: not with the padding.
    params = dataclasses.replace(params, style_scale=params.style_scale * max(width, height) / max(padded.shape[-2:]))
    return Framing(padded, padded.shape[-1], padded.shape[-2], crop, params)


def schedule_for(width: int, height: int, params: JobParams, whole: tuple[int, int] | None = None) -> Schedule:
    """The scales a job on a `width`×`height` content runs (as StyleTransfer.run frames it); for a
    part sent with its whole, `whole` is the whole's size."""
    w, h = composed_size(width, height, params.size, params.layer_size)
    part = PartOfWhole.of((width, height), whole, params) if whole else None
    params = as_part_of_whole(params, max(width, height))
    if part is not None:
        return part.schedule((width, height), params)
    if min(w, h) < MIN_SIDE:  # padded: every scale has the padded working size
        w, h = max(w, MIN_SIDE), max(h, MIN_SIDE)
        return Schedule.of(w, h, params, (w, h))
    return Schedule.of(w, h, params, (width, height))


@dataclass
class PartOfWhole:
    """A part (a selection) composed within its whole, so it looks as that part of a whole-layer run:
    the style term's statistics are the whole picture's, not the part's alone (alone, a dark part
    was painted brighter, a sky's swirls turned to dabs: bench/selection_look.py). The whole is
    composed at its working size as a whole-layer job would be; the part's box is cut from that, and
    the part's own detail scales paint up from there."""

    size: tuple[int, int]  # the whole's size, in the layer's pixels
    working: tuple[int, int]  # the whole's working size
    box: tuple[float, float, float, float]  # the part's left, top, right, bottom, as fractions of the whole
    params: JobParams  # the whole's settings: as given, with no part adjustments

    @classmethod
    def of(cls, part: tuple[int, int], whole: tuple[int, int], params: JobParams) -> PartOfWhole | None:
        """For a `part`-sized content at (part_x, part_y) of a `whole`-sized picture; None where a
        part cannot be cut (one of them thinner than VGG19 takes at its working size)."""
        (width, height), (whole_w, whole_h) = part, whole
        working = composed_size(whole_w, whole_h, params.size)
        part_working = composed_size(width, height, params.size, max(whole))
        if min(*working, *part_working) < MIN_SIDE:
            return None
        left, top = min(params.part_x, whole_w - 1) / whole_w, min(params.part_y, whole_h - 1) / whole_h
        box = (left, top, min(1.0, left + width / whole_w), min(1.0, top + height / whole_h))
        return cls(whole, working, box, dataclasses.replace(params, layer_size=0, part_x=0, part_y=0))

    def schedule(self, part: tuple[int, int], params: JobParams) -> Schedule:
        """The whole's composing scales, then the part's detail scales (`params`: the part's)."""
        look = Schedule.of(*self.working, self.params)
        part_working = composed_size(*part, params.size, max(self.size))
        detail = Schedule.of(*part_working, params, part)
        first = detail.first_detail
        return Schedule(look.sizes + detail.sizes[first:], look.steps + detail.steps[first:], len(look.sizes),
                        part_working)


def cut(picture: torch.Tensor, box: tuple[float, float, float, float], width: int, height: int) -> torch.Tensor:
    """The `box` (fractions of the picture) of `picture`, as a `width`×`height` picture."""
    h, w = picture.shape[-2:]
    left, top, right, bottom = box
    x0, y0 = min(int(left * w), w - 1), min(int(top * h), h - 1)
    x1, y1 = max(x0 + 1, min(w, math.ceil(right * w))), max(y0 + 1, min(h, math.ceil(bottom * h)))
    return resize(picture[..., y0:y1, x0:x1], width, height)
