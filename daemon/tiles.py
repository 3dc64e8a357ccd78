"""Cutting a picture into overlapping tiles, so that a job of any size runs in bounded memory.

A tile is a *core*, the pixels whose features its loss counts, inside a *crop*, the core plus a
margin of context that VGG19 sees so the core's features are (nearly) those of the whole
picture. The cores partition the picture, so the tiles' losses add up to the picture's loss and
their gradients to its gradient, one tile in memory at a time.

The cuts between cores move every iteration (by up to a sixteenth of a tile), so no seam stays
in one place long enough to show. Every cut and crop edge lies on a multiple of ALIGN pixels:
VGG19 sees relu5_1 at 1/16 of the picture, so a core then starts exactly on a feature, and a
core's features can be cut out of a crop's features, or placed into the whole picture's, by
integer division.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

ALIGN = 16
# Context around each core: with enough margin a core's features are the whole picture's (relu5_1
# nearly so at this margin: bench/RESULTS.md, findings), and each tile pays its margins again.
MARGIN = 64
# How far a cut moves each iteration, as a fraction of a tile. With exact features the cuts
# need not move for the Gram loss; they do for the sliced loss, whose tiles are judged apart.
JITTER = 1 / 16
UNLIMITED = 2**62  # a crop budget that every picture fits in whole
# The smallest crop budget that fits any picture: cores of at most 64 px (56 px moved by a
# sixteenth, rounded up to ALIGN) with their margins.
SMALLEST_CROP = (2 * MARGIN + 4 * ALIGN) ** 2


@dataclass(frozen=True)
class Box:
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def pixels(self) -> int:
        return (self.x1 - self.x0) * (self.y1 - self.y0)


@dataclass(frozen=True)
class Tile:
    core: Box  # in the picture's pixels
    crop: Box  # likewise; contains the core

    def cut(self, image: torch.Tensor) -> torch.Tensor:
        """The crop of an (N, C, H, W) picture."""
        return image[..., self.crop.y0:self.crop.y1, self.crop.x0:self.crop.x1]

    def core_of(self, features: torch.Tensor, stride: int) -> torch.Tensor:
        """The core's part of features computed on the crop, at a layer that sees 1/`stride`."""
        c, k = self.core, self.crop
        return features[..., (c.y0 - k.y0) // stride:(c.y1 - k.y0) // stride,
                        (c.x0 - k.x0) // stride:(c.x1 - k.x0) // stride]

    def core_in_whole(self, features: torch.Tensor, stride: int) -> torch.Tensor:
        """The core's part of features of the whole picture (a view, so it can be written)."""
        c = self.core
        return features[..., c.y0 // stride:c.y1 // stride, c.x0 // stride:c.x1 // stride]


def counts_for(width: int, height: int, max_crop_pixels: int, margin: int = MARGIN) -> tuple[int, int] | None:
    """How many tiles across and down keep every crop within `max_crop_pixels`.

    (1, 1) when the picture fits whole; None when not even the smallest tiles fit. Among the
    layouts that fit, the one that makes VGG19 see the fewest pixels in all (margins are seen
    once per tile that has them).
    """
    if width * height <= max_crop_pixels:
        return 1, 1
    best, best_cost = None, math.inf
    for across in range(1, max(1, width // ALIGN) + 1):
        crop_width = _largest_crop(width, across, margin)
        rows_fit = max_crop_pixels // crop_width
        down = next((d for d in range(1, max(1, height // ALIGN) + 1)
                     if _largest_crop(height, d, margin) <= rows_fit), None)
        if down is None:
            continue
        cost = across * crop_width * down * _largest_crop(height, down, margin)
        if cost < best_cost:
            best, best_cost = (across, down), cost
    return best


def _largest_crop(length: int, count: int, margin: int) -> int:
    """The widest crop `count` jittered cores of a `length`-pixel side can need."""
    if count == 1:
        return length
    # Each cut moves by up to JITTER of a core and then by up to half an ALIGN step to the grid,
    # so a core is at most the largest multiple of ALIGN within nominal·(1 + 2·JITTER) + ALIGN.
    core = (math.floor(length / count * (1 + 2 * JITTER) / ALIGN) + 1) * ALIGN
    margins = margin if count == 2 else 2 * margin  # two cores are both at an edge: context on one side
    return min(length, core + margins)


def _cuts(length: int, count: int, generator: torch.Generator | None) -> list[int]:
    """Edges of `count` cores along one side: 0, then aligned cuts that move, then `length`."""
    edges = [0]
    nominal = length / count
    for k in range(1, count):
        shift = 0.0
        if generator is not None:
            shift = (float(torch.rand((), generator=generator)) * 2 - 1) * JITTER * nominal
        cut = round((k * nominal + shift) / ALIGN) * ALIGN
        cut = min(max(cut, edges[-1] + ALIGN), length - ALIGN * (count - k))
        edges.append(cut)
    edges.append(length)
    return edges


def grid(width: int, height: int, counts: tuple[int, int], margin: int = MARGIN,
         generator: torch.Generator | None = None) -> list[Tile]:
    """The tiles of one iteration; cuts move with `generator`, stay evenly spaced without it."""
    across, down = counts
    if across == down == 1:
        whole = Box(0, 0, width, height)
        return [Tile(whole, whole)]
    xs, ys = _cuts(width, across, generator), _cuts(height, down, generator)
    tiles = []
    for y0, y1 in itertools.pairwise(ys):
        for x0, x1 in itertools.pairwise(xs):
            crop = Box(max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + margin), min(height, y1 + margin))
            tiles.append(Tile(Box(x0, y0, x1, y1), crop))
    return tiles
