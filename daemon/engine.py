"""Neural style transfer after Gatys, Ecker & Bethge (2016, "Image Style Transfer Using
Convolutional Neural Networks", CVPR): find the image whose VGG19 features match the content
photo's at one deep layer and whose feature statistics match the painting's at several layers.

This module has no sockets: give it tensors and a JobParams, get a tensor back, with callbacks
for progress, previews and cancellation. The daemon wraps it; tests drive it directly.

What it adds to the paper, each for a reason:
- coarse to fine (`scale_sides`): the picture is first optimised small, then enlarged by about
  √2 a step, with the photo's detail that the smaller scale lacked added back, and refined;
  previews come from the first scale within a second. By default the small scales get only a
  few iterations (`coarse_iterations`) and the full size the rest: measured against the
  paper's own score, iterations spent small cost content at full size;
- every term is a *relative* error (squared distance over the target's squared norm), so the
  weights mean the same at every size and for every photo and painting, and one `strength`
  number can set the balance;
- L-BFGS of our own (lbfgs.py), one evaluation a step, by default; Adam with an exponential
  average of the iterates (Polyak averaging) for tiled scales and on request;
- a sliced-Wasserstein style loss (Heitz et al., 2021, "A Sliced Wasserstein Loss for Neural
  Texture Synthesis", CVPR) besides the Gram loss: it matches the whole distribution of each
  layer's features, not just their correlations;
- replicate padding at the first convolution (see model.py) against bright or dark borders.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from protocol.messages import JobParams

from . import tiles
from .lbfgs import LBFGS
from .model import LAYER_STRIDE, VGG19
from .targets import TargetCache, image_digest

EPS = 1e-8
# Paintings are shrunk with a triangle (bilinear, antialiased) filter, photos with bicubic.
# Bicubic's sharper painting made a worse picture by the painting's own Gram score: on
# tubingen × starry_night at 384 px (one scale, 30 L-BFGS steps), against pastiche's final,
# the Gatys style term came out 1.78× and the content term 0.96× with bicubic, 1.08× and 0.91×
# with the triangle filter.
STYLE_FILTER = "bilinear"
# strength 0.5 keeps the weights as given; each 0.1 either way multiplies style by √10.
STRENGTH_DECADES = 5.0


class JobCancelled(Exception):
    """Raised inside VGG19's pass when the job's `should_stop()` turns true."""


# --- losses ------------------------------------------------------------------------------

def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Feature correlations G = F Fᵀ / (C·H·W) for features of shape (N, C, H, W).

    Dividing by the number of positions makes G independent of the image size, so a style
    image and a content image of different sizes can be compared (Gatys et al., eq. 3).
    The product runs in the features' own precision (bf16 multiplies accumulate in fp32): in
    fp32 it would add a third to the cost of a bf16 iteration, for a difference of about 0.2%.
    """
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return (flat @ flat.transpose(1, 2)).float() / (c * h * w)


def relative_error(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (value.float() - target).pow(2).sum() / (target.pow(2).sum() + EPS)


class ContentLoss(nn.Module):
    """How far the image's features at one layer are from the photo's (Gatys et al., eq. 1).

    The target holds the whole photo's features; a tile compares its core with its part of
    them, over the whole target's norm, so the tiles' terms add up to the picture's.
    """

    def __init__(self, target: torch.Tensor, stride: int = 1) -> None:
        super().__init__()
        self.register_buffer("target", target.detach())
        self.stride = stride
        self.norm = float(target.float().pow(2).sum()) + EPS

    def forward(self, features: torch.Tensor, tile: tiles.Tile | None = None) -> torch.Tensor:
        target = self.target if tile is None else tile.core_in_whole(self.target, self.stride)
        return (features.float() - target.float()).pow(2).sum() / self.norm


class GramStyleLoss(nn.Module):
    """How far the image's Gram matrix at one layer is from the painting's (Gatys et al., eq. 4)."""

    def __init__(self, style_grams: list[tuple[torch.Tensor, float]]) -> None:
        super().__init__()
        total = sum(weight for _, weight in style_grams)
        target = sum(gram * (weight / total) for gram, weight in style_grams)
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


# --- colour ------------------------------------------------------------------------------

# BT.601 luma and colour differences: Y carries what style transfer should change when the
# photo's colours are to be kept (Gatys et al., 2016, "Preserving Color in Neural Artistic Style
# Transfer").
RGB_TO_YUV = torch.tensor([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])
YUV_TO_RGB = torch.linalg.inv(RGB_TO_YUV)


def rgb_to_yuv(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", RGB_TO_YUV.to(image), image)


def yuv_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", YUV_TO_RGB.to(image), image)


def _symmetric_power(matrix: torch.Tensor, power: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(1e-6) ** power) @ vectors.T


def match_colors(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style image recoloured so its pixels' mean and covariance are the content's.

    The affine map A(x − μₛ) + μ꜀ with A = Σ꜀^½ Σₛ^−½ (Gatys et al., 2016, colour histogram
    matching); the painting's strokes and textures stay, its palette becomes the photo's.
    """
    def stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = image[0].flatten(1).double()
        mean = pixels.mean(1, keepdim=True)
        centred = pixels - mean
        return mean, centred @ centred.T / pixels.shape[1] + 1e-5 * torch.eye(3, dtype=torch.double)

    style_mean, style_cov = stats(style)
    content_mean, content_cov = stats(content)
    transform = _symmetric_power(content_cov, 0.5) @ _symmetric_power(style_cov, -0.5)
    pixels = transform @ (style[0].flatten(1).double() - style_mean) + content_mean
    return pixels.reshape(style.shape).to(style.dtype).clamp(0, 1)


def luminance_only(style: torch.Tensor, content_luma: torch.Tensor) -> torch.Tensor:
    """The style's luma, shifted and scaled to the content's mean and spread, as a grey image."""
    luma = rgb_to_yuv(style)[:, :1]
    luma = (luma - luma.mean()) / (luma.std() + 1e-6) * content_luma.std() + content_luma.mean()
    return luma.clamp(0, 1).expand(-1, 3, -1, -1)


# --- scales and sizes --------------------------------------------------------------------

def working_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The content's size scaled so its long side is at most `long_side` (never enlarged)."""
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


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


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":  # private helpers, so looked up with a fallback
        checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(check() for check in checks if check is not None)
    return False


def use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    return bf16_supported(device)


# Peak memory of a job. One crop in the network costs BYTES_PER_PIXEL: VGG19's activations kept
# for the backward pass and their gradients (measured on the CPU at 1024×768, bf16 2160 and
# fp32 3060 bytes per pixel, plus margin). The picture being optimised is kept whole beside it:
# the image, its gradient, Adam's two moments, the average, the photo at this scale and the
# previous one, and the photo's features at the content layer (WHOLE_BYTES_PER_PIXEL).
BYTES_PER_PIXEL = {"bf16": 2600, "fp32": 3600}
WHOLE_BYTES_PER_PIXEL = {"bf16": 120, "fp32": 140}
FIXED_BYTES = 300 * 2**20
# In tiles, the sliced loss keeps about this many of the painting's positions per layer.
SLICED_POSITIONS = 512 * 512


class DoesNotFit(Exception):
    """Not even the smallest tiles of this job fit in the memory it may use."""


def tile_counts(width: int, height: int, max_crop_pixels: int) -> tuple[int, int]:
    """Tiles across and down for a picture (see tiles.counts_for); DoesNotFit when none fit."""
    counts = tiles.counts_for(width, height, max_crop_pixels)
    if counts is None:
        raise DoesNotFit(f"a {width}x{height} picture does not fit in tiles of {max_crop_pixels} pixels")
    return counts


@dataclass(frozen=True)
class MemoryPlan:
    max_crop_pixels: int  # the largest crop VGG19 may see at once
    peak_bytes: int  # what the job is expected to add to the process's memory
    counts: tuple[int, int]  # tiles across and down at the largest scale


def memory_plan(width: int, height: int, params: JobParams, device: torch.device, limit: int) -> MemoryPlan:
    """How a job on a `width`×`height` photo runs within `limit` bytes: whole, or in tiles.

    Raises DoesNotFit, with the memory the job would need at least, when it cannot.
    """
    w, h = working_size(width, height, params.size)
    precision = "bf16" if use_bf16(params.precision, device) else "fp32"
    whole = FIXED_BYTES + w * h * WHOLE_BYTES_PER_PIXEL[precision]
    room = max(0, (limit - whole) // BYTES_PER_PIXEL[precision])
    max_crop = min(room, params.tile_pixels) if params.tile_pixels else room
    counts = tiles.counts_for(w, h, max_crop)
    if counts is None:
        needed = whole + min(w * h, tiles.SMALLEST_CROP) * BYTES_PER_PIXEL[precision]
        if params.tile_pixels and params.tile_pixels < room:
            raise DoesNotFit(f"tile_pixels {params.tile_pixels} is below the smallest tile, "
                             f"{tiles.SMALLEST_CROP} pixels")
        raise DoesNotFit(f"this job would need at least {needed / 2**30:.1f} GiB and {limit / 2**30:.1f} GiB is "
                         "available: lower its size")
    # The style image is seen whole too when it fits, at the content's size times style_scale.
    crop = min(max_crop, round(w * h * max(1.0, params.style_scale) ** 2))
    return MemoryPlan(max_crop, whole + crop * BYTES_PER_PIXEL[precision], counts)


def available_bytes(device: torch.device) -> int:
    """Free memory on `device` now: the GPU's, or the system's MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2**62  # unknown: do not refuse


def effective_weights(params: JobParams) -> tuple[float, float]:
    """Content and style weights after the strength knob: only their ratio matters."""
    style_gain = 10 ** (STRENGTH_DECADES * (params.strength - 0.5))
    return params.content_weight, params.style_weight * style_gain


# --- the optimisation --------------------------------------------------------------------

@dataclass
class Progress:
    scale: int  # 1-based index of the current scale
    scales: int
    width: int  # size of the image being optimised at this scale
    height: int
    iteration: int  # 1-based, counted over the whole job
    total: int
    losses: dict[str, float]  # "content", "style", "tv", "total"
    elapsed: float  # seconds since the job started
    eta: float  # seconds left, estimated from the pace so far


ProgressCallback = Callable[[Progress], None]
PreviewCallback = Callable[[torch.Tensor, Progress], None]


class StyleTransfer:
    """Owns nothing but a loaded VGG19; each `run` is one independent job."""

    def __init__(self, model: VGG19, device: torch.device | str = "cpu", cache: TargetCache | None = None) -> None:
        self.model = model
        self.device = torch.device(device)
        self.cache = cache if cache is not None else TargetCache()  # memory only, unless given a folder
        self._digests: dict[int, str] = {}  # style image → pixel hash, for the job in progress
        self._should_stop: Callable[[], bool] = lambda: False  # the job in progress's

    def warm_up(self) -> None:
        """A tiny job, so the first real one does not pay for kernel selection and allocation.

        On the CPU the first forward and backward of a process take over a second longer than
        the next ones, whatever their size; after this, a first preview comes within a second.
        """
        image = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
        self.run(image, [(image, 1.0)], JobParams(size=64, iterations=2, preview_every=0))

    def features(self, image: torch.Tensor, layers: set[str], params: JobParams) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=use_bf16(params.precision, self.device)):
            return self.model(image.to(self.device), layers, params.pooling, edge="replicate",
                              check=self._stop_if_asked)

    def _stop_if_asked(self) -> None:
        """Called between VGG19's layers, forward and backward: a cancelled job ends within a
        layer, not at the end of an iteration that may take seconds."""
        if self._should_stop():
            raise JobCancelled

    def tiled_features(self, image: torch.Tensor, layers: set[str], params: JobParams,
                       max_crop_pixels: int) -> Iterator[tuple[tiles.Tile, dict[str, torch.Tensor]]]:
        """VGG19's features of `image`, whole when it fits in `max_crop_pixels`, else tile by tile.

        Yields each tile with its core's features at every layer; call under no_grad.
        """
        height, width = image.shape[-2:]
        for tile in tiles.grid(width, height, tile_counts(width, height, max_crop_pixels)):
            features = self.features(tile.cut(image), layers, params)
            yield tile, {layer: tile.core_of(feats, LAYER_STRIDE[layer]) for layer, feats in features.items()}

    @torch.no_grad()
    def content_target(self, content: torch.Tensor, params: JobParams, max_crop_pixels: int) -> torch.Tensor:
        """The photo's features at the content layer, put together from its tiles' cores."""
        layer, stride = params.content_layer, LAYER_STRIDE[params.content_layer]
        height, width = content.shape[-2:]
        whole: torch.Tensor | None = None
        for tile, features in self.tiled_features(content, {layer}, params, max_crop_pixels):
            core = features[layer]
            if whole is None:
                if tile.core == tile.crop:
                    return core
                whole = core.new_empty((*core.shape[:2], height // stride, width // stride))
            tile.core_in_whole(whole, stride).copy_(core)
        assert whole is not None
        return whole

    @torch.no_grad()
    def style_losses(self, styles: list[tuple[torch.Tensor, float]], params: JobParams, long_side: int,
                     generator: torch.Generator, max_crop_pixels: int = tiles.UNLIMITED) -> dict[str, nn.Module]:
        """The style term of each layer, with its targets computed once for this scale.

        Each style image is scaled so its long side is `long_side` × `style_scale`, which keeps
        brush strokes the same size relative to the picture at every scale. Targets always come
        from the whole painting, in tiles when it is too large to be seen at once.
        """
        per_layer: dict[str, list[tuple[torch.Tensor, float]]] = {layer: [] for layer in params.style_layers}
        side = max(16, round(long_side * params.style_scale))
        for image, weight in styles:
            h, w = image.shape[-2:]
            size = (max(1, round(w * side / max(w, h))), max(1, round(h * side / max(w, h))))
            if params.style_loss == "gram":
                targets = self._style_grams(image, size, params, max_crop_pixels)
            else:
                targets = self._style_samples(resize(image, *size, STYLE_FILTER), params, max_crop_pixels,
                                              generator)
            for layer, target in targets.items():
                per_layer[layer].append((target.to(self.device), weight))
        if params.style_loss == "gram":
            return {layer: GramStyleLoss(grams) for layer, grams in per_layer.items()}
        return {layer: SlicedWassersteinStyleLoss(feats, generator) for layer, feats in per_layer.items()}

    def _style_grams(self, image: torch.Tensor, size: tuple[int, int], params: JobParams,
                     max_crop_pixels: int) -> dict[str, torch.Tensor]:
        """One painting's Gram matrices at `size`, from the cache when it has seen them.

        In tiles, each core's Gram counts in proportion to its positions, which gives the Gram
        of the whole painting's features.
        """
        digest = self._digests.get(id(image)) or self._digests.setdefault(id(image), image_digest(image))
        key = self.cache.key(digest, size, sorted(params.style_layers), params.pooling,
                             use_bf16(params.precision, self.device), self.model.lineage, "replicate", STYLE_FILTER)
        grams = self.cache.get(key)
        if grams is None:
            sums: dict[str, torch.Tensor] = {}
            positions: dict[str, int] = dict.fromkeys(params.style_layers, 0)
            painting = resize(image, *size, STYLE_FILTER)
            for _, features in self.tiled_features(painting, set(params.style_layers), params, max_crop_pixels):
                for layer, feats in features.items():
                    count = feats.shape[-2] * feats.shape[-1]
                    if count:
                        gram = gram_matrix(feats.float()) * count
                        sums[layer] = sums[layer] + gram if layer in sums else gram
                        positions[layer] += count
            grams = {layer: total / positions[layer] for layer, total in sums.items()}
            self.cache.put(key, grams)
        return grams

    def _style_samples(self, image: torch.Tensor, params: JobParams, max_crop_pixels: int,
                       generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The painting's features for the sliced loss, as (1, C, 1, positions); in tiles, a sample."""
        height, width = image.shape[-2:]
        samples: dict[str, list[torch.Tensor]] = {layer: [] for layer in params.style_layers}
        for tile, features in self.tiled_features(image, set(params.style_layers), params, max_crop_pixels):
            for layer, feats in features.items():
                flat = feats.float().flatten(2)
                if tile.core != tile.crop:  # tiled: keep about SLICED_POSITIONS of the whole
                    stride = LAYER_STRIDE[layer]
                    share = SLICED_POSITIONS / max(1, (height // stride) * (width // stride))
                    keep = min(flat.shape[-1], math.ceil(flat.shape[-1] * share))
                    flat = flat[..., torch.randperm(flat.shape[-1], generator=generator)[:keep].to(flat.device)]
                samples[layer].append(flat)
        return {layer: torch.cat(parts, dim=-1)[:, :, None] for layer, parts in samples.items()}

    def run(
        self,
        content: torch.Tensor,
        styles: list[tuple[torch.Tensor, float]],
        params: JobParams,
        on_progress: ProgressCallback | None = None,
        on_preview: PreviewCallback | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        memory_limit: int | None = None,
    ) -> torch.Tensor:
        """Stylise `content` (1, 3, H, W, RGB in 0..1) and return the image at working size.

        `styles` pairs each style image (same layout) with its share of the blend. Within
        `memory_limit` bytes (None: no limit), scales too large to be seen whole run in tiles;
        so does any picture larger than `params.tile_pixels`.
        """
        started = time.monotonic()
        self._digests = {}
        self._should_stop = should_stop
        torch.manual_seed(params.seed)
        generator = torch.Generator().manual_seed(params.seed)
        width, height = working_size(content.shape[-1], content.shape[-2], params.size)
        if memory_limit is not None:
            max_crop = memory_plan(content.shape[-1], content.shape[-2], params, self.device,
                                   memory_limit).max_crop_pixels
        else:
            max_crop = params.tile_pixels or tiles.UNLIMITED
        content = content.to(self.device)

        def recolour(image: torch.Tensor) -> torch.Tensor:
            return image

        if params.keep_colors == "match":
            styles = [(match_colors(style.to(self.device), content), weight) for style, weight in styles]
        elif params.keep_colors == "luminance":
            # Optimise a grey picture against grey paintings, then give it the photo's colours back.
            content_yuv = rgb_to_yuv(resize(content, width, height))
            styles = [(luminance_only(style.to(self.device), content_yuv[:, :1]), weight) for style, weight in styles]
            content = content_yuv[:, :1].expand(-1, 3, -1, -1).contiguous()

            def recolour(image: torch.Tensor) -> torch.Tensor:  # the photo's colours, the image's luma
                h, w = image.shape[-2:]
                colour = F.interpolate(content_yuv[:, 1:], size=(h, w), mode="bilinear", align_corners=False)
                return yuv_to_rgb(torch.cat([rgb_to_yuv(image)[:, :1], colour], dim=1)).clamp(0, 1)

            if on_preview is not None:
                def show_in_colour(image: torch.Tensor, progress: Progress, show: PreviewCallback = on_preview) -> None:
                    show(recolour(image), progress)

                on_preview = show_in_colour
        sides = scale_sides(max(width, height), params.first_scale)
        sizes = [working_size(width, height, side) for side in sides]
        steps = [params.coarse_iterations or params.iterations] * (len(sizes) - 1) + [params.iterations]
        total = sum(steps)
        # The pace of an iteration grows with its pixel count; weigh the ETA accordingly.
        cost = [w * h * n for (w, h), n in zip(sizes, steps, strict=True)]
        image: torch.Tensor | None = None
        previous_content: torch.Tensor | None = None
        done = 0

        def enlarge(picture: torch.Tensor, w: int, h: int) -> torch.Tensor:
            return F.interpolate(picture, size=(h, w), mode="bicubic", align_corners=False)

        for index, (w, h) in enumerate(sizes):
            scale_content = resize(content, w, h)
            if image is None:
                image = scale_content.clone() if params.init == "content" else \
                    torch.rand(scale_content.shape, generator=generator).to(self.device)
            elif params.init == "content":
                # Enlarging blurs: give the picture back the photo's detail that the smaller scale
                # could not hold (a Laplacian pyramid's level). Without it, the full size began
                # with a blurred photo that the style term kept: on tubingen × starry_night at
                # 384 px, the final terms were 0.98× (content) and 1.02× (style) pastiche's,
                # against 0.95× and 0.95× with it.
                detail = scale_content - enlarge(previous_content, w, h)
                image = (enlarge(image, w, h) + detail).clamp(0, 1)
            else:
                image = enlarge(image, w, h).clamp(0, 1)
            previous_content = scale_content

            def report(iteration: int, losses: dict[str, float], current: torch.Tensor,
                       index: int = index, w: int = w, h: int = h, done: int = done) -> None:
                elapsed = time.monotonic() - started
                spent = sum(cost[:index]) + w * h * iteration
                remaining = sum(cost) - spent
                progress = Progress(scale=index + 1, scales=len(sizes), width=w, height=h,
                                    iteration=done + iteration, total=total, losses=losses, elapsed=elapsed,
                                    eta=elapsed / max(spent, 1) * remaining)
                if on_progress:
                    on_progress(progress)
                last_of_scale = iteration == steps[index]
                final = last_of_scale and index == len(sizes) - 1
                if on_preview and not final and params.preview_every and (
                        iteration % params.preview_every == 0 or last_of_scale):
                    on_preview(current, progress)

            image = self._optimise(image, scale_content, styles, params, steps[index], generator, report,
                                   max_crop)
            done += steps[index]
        return recolour(image.detach().clamp(0, 1))

    def _optimise(self, image: torch.Tensor, content: torch.Tensor, styles: list[tuple[torch.Tensor, float]],
                  params: JobParams, iterations: int, generator: torch.Generator,
                  report: Callable[[int, dict[str, float], torch.Tensor], None],
                  max_crop_pixels: int) -> torch.Tensor:
        """One scale: `iterations` steps from `image`; returns the (averaged) result.

        The loss and its gradient are summed over tiles (one tile when the picture fits whole),
        whose cuts move every iteration. Tiled scales use Adam whatever was asked: L-BFGS's
        curvature estimate assumes one fixed objective, and moving the cuts changes it a little.
        """
        height, width = image.shape[-2:]
        counts = tile_counts(width, height, max_crop_pixels)
        tiled = counts != (1, 1)
        content_weight, style_weight = effective_weights(params)
        content_loss = ContentLoss(self.content_target(content, params, max_crop_pixels),
                                   LAYER_STRIDE[params.content_layer])
        style_losses = self.style_losses(styles, params, max(width, height), generator, max_crop_pixels)
        layer_weight_sum = sum(params.style_layers.values()) or 1.0
        layers = {params.content_layer, *params.style_layers}
        # In tiles, the Gram loss is the whole picture's: each iteration first measures the
        # picture's Gram, summed from its tiles' (forward only), then each tile follows that loss's
        # slope (see GramStyleLoss.tile_part). Using the previous iteration's Gram instead would
        # save the measuring pass, but the lag let a tiled run drift from the whole one by 18% of
        # what the job changed, against 0.1% (512×192 in two tiles, 8 iterations a scale).
        picture_grams: dict[str, torch.Tensor] = {}
        whole_picture_gram = tiled and params.style_loss == "gram"

        def total(terms: dict[str, torch.Tensor]) -> torch.Tensor:
            return content_weight * terms["content"] + style_weight * terms["style"] + params.tv_weight * terms["tv"]

        def tile_terms(crop: torch.Tensor, tile: tiles.Tile,
                       grams: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
            """The loss's terms that this tile's core contributes to the whole picture's.

            Given `grams`, this pass measures the picture's Gram: each tile adds its share, and
            the style term is left to the caller.
            """
            features = {layer: tile.core_of(feats, LAYER_STRIDE[layer])
                        for layer, feats in self.features(crop, layers, params).items()}
            style = torch.zeros((), device=crop.device)
            for layer, loss in style_losses.items():
                feats = features[layer]
                share = feats.shape[-2] * feats.shape[-1] / ((height // LAYER_STRIDE[layer]) *
                                                              (width // LAYER_STRIDE[layer]))
                if not share:  # a core narrower than this layer's stride
                    continue
                if not whole_picture_gram:
                    style = style + params.style_layers[layer] * loss(feats) * share
                elif grams is not None:
                    gram = gram_matrix(feats) * share
                    grams[layer] = grams[layer] + gram if layer in grams else gram
                else:
                    style = style + params.style_layers[layer] * loss.tile_part(feats, share, picture_grams[layer])
            terms = {"content": content_loss(features[params.content_layer], tile),
                     "style": style / layer_weight_sum,
                     "tv": total_variation(crop, tile, width * height)}
            terms["total"] = total(terms)
            return terms

        image = image.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)

        def evaluate(grid: list[tiles.Tile], with_gradient: bool) -> dict[str, torch.Tensor]:
            """The terms over the whole picture; `with_gradient`, also its gradient in image.grad."""
            totals: dict[str, torch.Tensor] = {}
            measuring = whole_picture_gram and not with_gradient
            grams: dict[str, torch.Tensor] = {}
            for tile in grid:
                crop = tile.cut(image.detach()).clone().requires_grad_(with_gradient)
                with torch.set_grad_enabled(with_gradient):
                    terms = tile_terms(crop, tile, grams if measuring else None)
                if with_gradient:
                    terms["total"].backward()
                    tile.cut(image.grad).add_(crop.grad)
                for name, value in terms.items():
                    totals[name] = totals[name] + value.detach() if name in totals else value.detach()
            if measuring:  # the style term from the picture's Gram
                totals["style"] = sum(params.style_layers[layer] * style_losses[layer].of_gram(gram)
                                      for layer, gram in grams.items()) / layer_weight_sum
                totals["total"] = total(totals)
                picture_grams.update(grams)
            return totals

        def new_grid() -> list[tiles.Tile]:
            return tiles.grid(width, height, counts, generator=generator if tiled else None)

        use_lbfgs = params.optimizer == "lbfgs" and not tiled
        last_terms: dict[str, torch.Tensor] = {}
        grid = new_grid()

        def closure() -> torch.Tensor:
            image.grad = torch.zeros_like(image)
            if whole_picture_gram:
                with torch.no_grad():
                    last_terms.update(evaluate(grid, False))
                evaluate(grid, True)
            else:
                last_terms.update(evaluate(grid, True))
            return last_terms["total"]

        average = image.detach().clone()
        # One step per iteration, so we can report, preview and cancel in between.
        optimizer: LBFGS | torch.optim.Optimizer = LBFGS(image) if use_lbfgs else \
            torch.optim.Adam([image], lr=params.learning_rate, betas=(0.9, 0.99))
        decay = 0.0 if use_lbfgs else params.average_decay
        accepted_terms: dict[str, torch.Tensor] = {}

        for iteration in range(1, iterations + 1):
            if tiled:
                grid = new_grid()
            optimizer.step(closure)
            if not (isinstance(optimizer, LBFGS) and optimizer.undone):  # else the terms are a rejected point's
                accepted_terms = dict(last_terms)
            with torch.no_grad():
                if not use_lbfgs:
                    # L-BFGS is left unclamped: clamping would contradict the curvature it has learnt.
                    image.clamp_(0, 1)
                # Bias-corrected exponential average of the iterates: early on, mostly the latest.
                # L-BFGS's latest is the point it evaluated; the one it stepped to may be worse.
                weight = (1 - decay) / (1 - decay ** iteration)
                latest = optimizer.accepted if isinstance(optimizer, LBFGS) else image.detach()
                average.mul_(1 - weight).add_(latest, alpha=weight)
            losses_now = {name: float(value) for name, value in accepted_terms.items()}
            if not all(math.isfinite(v) for v in losses_now.values()):
                raise FloatingPointError(f"the loss became {losses_now['total']} at iteration {iteration}")
            report(iteration, losses_now, average)
        return average
