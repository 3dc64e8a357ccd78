"""Neural style transfer after Gatys, Ecker & Bethge (2016, "Image Style Transfer Using
Convolutional Neural Networks", CVPR): find the image whose VGG19 features match the content
photo's at one deep layer and whose feature statistics match the painting's at several layers.

This module has no sockets: give it tensors and a JobParams, get a tensor back, with callbacks
for progress, previews and cancellation. The daemon wraps it; tests drive it directly.

What it adds to the paper, each for a reason:
- coarse to fine (`Scales`): the picture is first optimised small, where iterations are cheap
  and large structures settle, then enlarged by about √2 a step and refined; previews come from
  the first scale within a second;
- every term is a *relative* error (squared distance over the target's squared norm), so the
  weights mean the same at every size and for every photo and painting, and one `strength`
  number can set the balance;
- Adam with an exponential average of the iterates (Polyak averaging), which removes the
  optimiser's jitter from what the user sees;
- a sliced-Wasserstein style loss (Heitz et al., 2021, "A Sliced Wasserstein Loss for Neural
  Texture Synthesis", CVPR) besides the Gram loss: it matches the whole distribution of each
  layer's features, not just their correlations;
- replicate padding at the first convolution (see model.py) against bright or dark borders.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from protocol.messages import JobParams

from .model import VGG19
from .targets import TargetCache, image_digest

EPS = 1e-8
# strength 0.5 keeps the weights as given; each 0.1 either way multiplies style by √10.
STRENGTH_DECADES = 5.0


class JobCancelled(Exception):
    """Raised inside the loop when `should_stop()` turns true."""


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
    """How far the image's features at one layer are from the photo's (Gatys et al., eq. 1)."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target.detach().float())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return relative_error(features, self.target)


class GramStyleLoss(nn.Module):
    """How far the image's Gram matrix at one layer is from the painting's (Gatys et al., eq. 4)."""

    def __init__(self, style_grams: list[tuple[torch.Tensor, float]]) -> None:
        super().__init__()
        total = sum(weight for _, weight in style_grams)
        target = sum(gram * (weight / total) for gram, weight in style_grams)
        self.register_buffer("target", target.detach())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return relative_error(gram_matrix(features), self.target)


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


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (0..1 units): penalises speckle."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.float().pow(2).mean() + dy.float().pow(2).mean()


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


def resize(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize (N, 3, H, W) with antialiasing, so shrinking a photo does not alias."""
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(image, size=(height, width), mode="bicubic", align_corners=False,
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


# Peak memory of a job grows with the pixels of its largest scale: VGG19's activations kept for
# the backward pass, their gradients, the style image's features. Measured on the CPU at
# 1024×768 (bf16 2160, fp32 3060 bytes per pixel, with the style at the same size), plus margin.
BYTES_PER_PIXEL = {"bf16": 2600, "fp32": 3600}
FIXED_BYTES = 300 * 2**20


def predicted_peak_bytes(width: int, height: int, params: JobParams, device: torch.device) -> int:
    """What a job on a `width`×`height` content is expected to add to the daemon's memory."""
    w, h = working_size(width, height, params.size)
    precision = "bf16" if use_bf16(params.precision, device) else "fp32"
    return int(w * h * max(1.0, params.style_scale) ** 2 * BYTES_PER_PIXEL[precision]) + FIXED_BYTES


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
            return self.model(image.to(self.device), layers, params.pooling, edge="replicate")

    @torch.no_grad()
    def style_losses(self, styles: list[tuple[torch.Tensor, float]], params: JobParams, long_side: int,
                     generator: torch.Generator) -> dict[str, nn.Module]:
        """The style term of each layer, with its targets computed once for this scale.

        Each style image is scaled so its long side is `long_side` × `style_scale`, which keeps
        brush strokes the same size relative to the picture at every scale.
        """
        per_layer: dict[str, list[tuple[torch.Tensor, float]]] = {layer: [] for layer in params.style_layers}
        side = max(16, round(long_side * params.style_scale))
        for image, weight in styles:
            h, w = image.shape[-2:]
            size = (max(1, round(w * side / max(w, h))), max(1, round(h * side / max(w, h))))
            if params.style_loss == "gram":
                for layer, gram in self._style_grams(image, size, params).items():
                    per_layer[layer].append((gram.to(self.device), weight))
            else:
                features = self.features(resize(image, *size), set(params.style_layers), params)
                for layer, feats in features.items():
                    per_layer[layer].append((feats.float(), weight))
        if params.style_loss == "gram":
            return {layer: GramStyleLoss(grams) for layer, grams in per_layer.items()}
        return {layer: SlicedWassersteinStyleLoss(feats, generator) for layer, feats in per_layer.items()}

    def _style_grams(self, image: torch.Tensor, size: tuple[int, int], params: JobParams) -> dict[str, torch.Tensor]:
        """One painting's Gram matrices at `size`, from the cache when it has seen them."""
        digest = self._digests.get(id(image)) or self._digests.setdefault(id(image), image_digest(image))
        key = self.cache.key(digest, size, sorted(params.style_layers), params.pooling,
                             use_bf16(params.precision, self.device), self.model.lineage, "replicate")
        grams = self.cache.get(key)
        if grams is None:
            features = self.features(resize(image, *size), set(params.style_layers), params)
            grams = {layer: gram_matrix(feats.float()) for layer, feats in features.items()}
            self.cache.put(key, grams)
        return grams

    def run(
        self,
        content: torch.Tensor,
        styles: list[tuple[torch.Tensor, float]],
        params: JobParams,
        on_progress: ProgressCallback | None = None,
        on_preview: PreviewCallback | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> torch.Tensor:
        """Stylise `content` (1, 3, H, W, RGB in 0..1) and return the image at working size.

        `styles` pairs each style image (same layout) with its share of the blend.
        """
        started = time.monotonic()
        self._digests = {}
        torch.manual_seed(params.seed)
        generator = torch.Generator().manual_seed(params.seed)
        content = content.to(self.device)
        width, height = working_size(content.shape[-1], content.shape[-2], params.size)
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
        total = params.iterations * len(sizes)
        # The pace of an iteration grows with its pixel count; weigh the ETA accordingly.
        cost = [w * h for w, h in sizes]
        image: torch.Tensor | None = None
        done = 0
        for index, (w, h) in enumerate(sizes):
            scale_content = resize(content, w, h)
            if image is None:
                image = scale_content.clone() if params.init == "content" else \
                    torch.rand(scale_content.shape, generator=generator).to(self.device)
            else:
                image = F.interpolate(image, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)

            def report(iteration: int, losses: dict[str, float], current: torch.Tensor,
                       index: int = index, w: int = w, h: int = h, done: int = done) -> None:
                elapsed = time.monotonic() - started
                spent = sum(cost[:index]) * params.iterations + cost[index] * iteration
                remaining = sum(cost) * params.iterations - spent
                progress = Progress(scale=index + 1, scales=len(sizes), width=w, height=h,
                                    iteration=done + iteration, total=total, losses=losses, elapsed=elapsed,
                                    eta=elapsed / max(spent, 1) * remaining)
                if on_progress:
                    on_progress(progress)
                last_of_scale = iteration == params.iterations
                final = last_of_scale and index == len(sizes) - 1
                if on_preview and not final and params.preview_every and (
                        iteration % params.preview_every == 0 or last_of_scale):
                    on_preview(current, progress)

            image = self._optimise(image, scale_content, styles, params, generator, report, should_stop)
            done += params.iterations
        return recolour(image.detach().clamp(0, 1))

    def _optimise(self, image: torch.Tensor, content: torch.Tensor, styles: list[tuple[torch.Tensor, float]],
                  params: JobParams, generator: torch.Generator,
                  report: Callable[[int, dict[str, float], torch.Tensor], None],
                  should_stop: Callable[[], bool]) -> torch.Tensor:
        """One scale: `params.iterations` steps from `image`; returns the (averaged) result."""
        content_weight, style_weight = effective_weights(params)
        with torch.no_grad():
            content_target = self.features(content, {params.content_layer}, params)[params.content_layer]
        content_loss = ContentLoss(content_target)
        style_losses = self.style_losses(styles, params, max(content.shape[-2:]), generator)
        layer_weight_sum = sum(params.style_layers.values()) or 1.0
        layers = {params.content_layer, *params.style_layers}

        image = image.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)

        def losses() -> dict[str, torch.Tensor]:
            features = self.features(image, layers, params)
            style = sum(params.style_layers[layer] * loss(features[layer]) for layer, loss in style_losses.items())
            terms = {"content": content_loss(features[params.content_layer]),
                     "style": style / layer_weight_sum,
                     "tv": total_variation(image)}
            terms["total"] = (content_weight * terms["content"] + style_weight * terms["style"]
                              + params.tv_weight * terms["tv"])
            return terms

        last_terms: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            # L-BFGS's first step (1/|g|₁) and its tolerances assume a loss near 1.
            loss_scale = 1.0 / max(float(losses()["total"]), 1e-12)

        def closure() -> torch.Tensor:
            if should_stop():
                raise JobCancelled
            optimizer.zero_grad(set_to_none=True)
            terms = losses()
            objective = terms["total"] * loss_scale
            objective.backward()
            last_terms.update(terms)
            return objective

        average = image.detach().clone()
        if params.optimizer == "lbfgs":
            # One L-BFGS iteration per step() so we can report, preview and cancel in between.
            # No line search: with max_iter=1 torch would allow it a single evaluation.
            optimizer: torch.optim.Optimizer = torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=50)
        else:
            optimizer = torch.optim.Adam([image], lr=params.learning_rate, betas=(0.9, 0.99))
        decay = params.average_decay if params.optimizer == "adam" else 0.0

        for iteration in range(1, params.iterations + 1):
            optimizer.step(closure)
            with torch.no_grad():
                if params.optimizer == "adam":
                    # L-BFGS is left unclamped: clamping would contradict the curvature it has learnt.
                    image.clamp_(0, 1)
                # Bias-corrected exponential average of the iterates: early on, mostly the latest.
                weight = (1 - decay) / (1 - decay ** iteration)
                average.mul_(1 - weight).add_(image.detach(), alpha=weight)
            losses_now = {name: float(value.detach()) for name, value in last_terms.items()}
            if not all(math.isfinite(v) for v in losses_now.values()):
                raise FloatingPointError(f"the loss became {losses_now['total']} at iteration {iteration}")
            report(iteration, losses_now, average)
        return average
