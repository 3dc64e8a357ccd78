"""The terms of the objective, each a small module: content, Gram style, sliced style, smoothness.

Every term is a *relative* error (squared distance over the target's squared norm), so the
weights mean the same at every size and for every photo and painting, and one `strength`
number can set the balance. A term given a tile counts only that tile's core, over the whole
picture's norm, so the tiles' terms add up to the picture's (see tiles.py).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import tiles

EPS = 1e-8


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Feature correlations G = F Fᵀ / (C·H·W) for features of shape (N, C, H, W).

    Dividing by the number of positions makes G independent of the image size, so a style
    image and a content image of different sizes can be compared (Gatys et al., eq. 3).
    The product runs in the features' own precision (bf16 multiplies accumulate in fp32): fp32
    would cost much more for a tiny difference.
    """
    n, c, h, w = features.shape
    positions = features.permute(0, 2, 3, 1)  # positions first: a view of VGG19's channels-last features
    if n == 1:  # its gradient is a view too; stacking several pictures' Grams copies theirs
        gram = _Gram.apply(positions.reshape(h * w, c))[None]
    else:
        gram = torch.stack([_Gram.apply(picture.reshape(h * w, c)) for picture in positions])
    return gram.float() / (c * h * w)


class _Gram(torch.autograd.Function):
    """XᵀX of positions X (P, C), whose gradient X(D + Dᵀ) is one (P, C) product. On the CPU this
    runs several times faster than autograd's own two products, one of them (C, P) shaped, and
    than a batched product (bench/network_cost.py)."""

    @staticmethod
    def forward(ctx: Any, positions: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(positions)
        return positions.t() @ positions

    @staticmethod
    def backward(ctx: Any, slope: torch.Tensor) -> torch.Tensor:
        (positions,) = ctx.saved_tensors
        return positions @ (slope + slope.t()).to(positions.dtype)


def squared_norm(tensor: torch.Tensor) -> float:
    """Σx², summed in fp32 without an fp32 copy of `tensor` (at 24 MP a content target's would be
    1.5 GB, taken while a tile's features are held)."""
    return float(torch.linalg.vector_norm(tensor, dtype=torch.float32)) ** 2 + EPS


def relative_error(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (value.float() - target).pow(2).sum() / (target.pow(2).sum() + EPS)


class ContentLoss(nn.Module):
    """How far the image's features at one layer are from the photo's (Gatys et al., eq. 1).

    The target holds the whole photo's features; a tile compares its core with its part of
    them, over the whole target's norm, so the tiles' terms add up to the picture's.
    """

    target: torch.Tensor  # a buffer: moves with the module

    def __init__(self, target: torch.Tensor, stride: int = 1) -> None:
        super().__init__()
        self.register_buffer("target", target.detach())  # the features' precision: bf16 halves it
        self.stride = stride
        self.norm = squared_norm(target)
        self.unset: tuple[int, ...] = ()  # the shape of a target still to be taken (see of_first_picture)
        self.untaken = 0  # and its positions not yet taken

    @classmethod
    def of_first_picture(cls, shape: tuple[int, int, int, int], stride: int) -> ContentLoss:
        """A loss held to the features (of `shape`) of the first picture it is given, tile by
        tile: a detail scale's target is its starting picture, which its first evaluation sees,
        so taking them there saves a pass of VGG19 at the scale's size (bench/network_cost.py)."""
        loss = cls(torch.empty(0), stride)
        loss.unset, loss.untaken = shape, shape[-2] * shape[-1]
        return loss

    def forward(self, features: torch.Tensor, tile: tiles.Tile | None = None) -> torch.Tensor:
        if self.unset:  # taken in the features' precision
            self.target, self.unset = features.new_empty(self.unset), ()
        target = self.target if tile is None else tile.core_in_whole(self.target, self.stride)
        if self.untaken > 0:  # the first picture: its features are the target, and the loss is 0
            target.copy_(features.detach())
            self.untaken -= features.shape[-2] * features.shape[-1]
            if self.untaken <= 0:
                self.norm = squared_norm(self.target)
            return torch.zeros((), device=features.device)
        return (features.float() - target.float()).pow(2).sum() / self.norm


class GramStyleLoss(nn.Module):
    """How far the image's Gram matrix at one layer is from the painting's (Gatys et al., eq. 4)."""

    target: torch.Tensor

    def __init__(self, style_grams: list[tuple[torch.Tensor, float]]) -> None:
        super().__init__()
        total = sum(weight for _, weight in style_grams)
        target = torch.stack([gram * (weight / total) for gram, weight in style_grams]).sum(0)
        self.register_buffer("target", target.detach())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.of_gram(gram_matrix(features))

    def of_gram(self, gram: torch.Tensor) -> torch.Tensor:
        return relative_error(gram, self.target)

    def tile_part(self, features: torch.Tensor, share: float, picture_gram: torch.Tensor) -> torch.Tensor:
        """A tile's stand-in for this loss, whose gradient is the whole picture's loss gradient.

        The picture's Gram is its tiles' Grams weighted by their `share` of the positions, so with
        the slope dL/dG taken at `picture_gram` and held fixed, ⟨slope, share·G_tile⟩ has the
        picture's gradient on this tile's features. Its value means nothing; `of_gram` gives the
        loss.
        """
        slope = 2 * (picture_gram - self.target) / (self.target.pow(2).sum() + EPS)
        return (slope * gram_matrix(features).float()).sum() * share


class SlicedWassersteinStyleLoss(nn.Module):
    """Distance between the distributions of image and painting features, along random directions.

    Projected on a direction, each distribution becomes a list of numbers, and the optimal
    transport between two such lists pairs them in sorted order (Heitz et al., 2021). The
    painting's sorted projections are resampled to the image's number of positions, so sizes
    need not match; directions are redrawn every step. Blends of several styles mix their
    samples in proportion to the weights.
    """

    style: torch.Tensor

    def __init__(self, style_features: list[tuple[torch.Tensor, float]], generator: torch.Generator) -> None:
        super().__init__()
        total = sum(weight for _, weight in style_features)
        samples = []
        for feats, weight in style_features:
            flat = feats[0].flatten(1).float()  # (C, positions)
            count = max(1, round(flat.shape[1] * weight / total * len(style_features)))
            index = torch.randint(flat.shape[1], (count,), generator=generator).to(flat.device)
            samples.append(flat[:, index] if len(style_features) > 1 else flat)
        self.register_buffer("style", torch.cat(samples, dim=1))
        self.generator = generator
        self.scale = self.style.pow(2).mean() + EPS

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        flat = features[0].flatten(1).float()
        channels, positions = flat.shape
        directions = torch.randn(channels, channels, generator=self.generator).to(flat.device)
        directions = directions / directions.norm(dim=0, keepdim=True)
        image = (directions.T @ flat).sort(dim=1).values
        style = (directions.T @ self.style).sort(dim=1).values
        if style.shape[1] != positions:
            style = F.interpolate(style[None], size=positions, mode="linear", align_corners=True)[0]
        return (image - style).pow(2).mean() / self.scale


def total_variation(image: torch.Tensor, tile: tiles.Tile | None = None, pixels: int = 0) -> torch.Tensor:
    """Squared differences between neighbouring pixels (0..1 units) per value: penalises speckle.

    For a tile's crop, only the differences that start in its core count, and they are divided
    by the whole picture's `pixels`, so the tiles' terms add up to the picture's.
    """
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    if tile is not None:
        rows = slice(tile.core.y0 - tile.crop.y0, tile.core.y1 - tile.crop.y0)
        cols = slice(tile.core.x0 - tile.crop.x0, tile.core.x1 - tile.crop.x0)
        dx, dy = dx[..., rows, cols], dy[..., rows, cols]
    values = image.shape[-3] * (pixels or image.shape[-2] * image.shape[-1])
    return (dx.float().pow(2).sum() + dy.float().pow(2).sum()) / values


class TemporalLoss(nn.Module):
    """How far an animation frame's picture is from the previous frame's result warped into it,
    where that warp is trusted (Ruder et al., 2016, eq. 3): the mean squared difference (0..1
    units) over the trusted values, so its weight means the same at every size."""

    target: torch.Tensor
    certainty: torch.Tensor

    def __init__(self, target: torch.Tensor, certainty: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target.detach())
        self.register_buffer("certainty", certainty.detach())
        self.norm = float(certainty.sum()) * target.shape[-3] + EPS

    def forward(self, picture: torch.Tensor, tile: tiles.Tile | None = None) -> torch.Tensor:
        target, certainty = self.target, self.certainty
        if tile is not None:
            picture = tile.core_of(picture, 1)
            target, certainty = tile.core_in_whole(target, 1), tile.core_in_whole(certainty, 1)
        return (certainty * (picture.float() - target).pow(2)).sum() / self.norm


StyleLoss = GramStyleLoss | SlicedWassersteinStyleLoss
