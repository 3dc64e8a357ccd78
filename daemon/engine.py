"""Neural style transfer after Gatys, Ecker & Bethge (2016, "Image Style Transfer Using
Convolutional Neural Networks", CVPR): find the image whose VGG19 features match the content
photo's at one deep layer and whose feature correlations (Gram matrices) match the painting's at
several layers.

This module has no sockets: give it tensors and a JobParams, get a tensor back, with callbacks
for progress, previews and cancellation. The daemon wraps it; tests drive it directly.

Loss terms are means (not sums) over feature elements, and Gram matrices are divided by the
number of elements of the features, as in Johnson's neural-style (the classic Caffe-VGG19 set-up
these weights come from): the terms then do not grow with the image, so the weights mean the
same thing at every size.
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


class JobCancelled(Exception):
    """Raised inside the loop when `should_stop()` turns true."""


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Feature correlations G = F Fᵀ / (C·H·W) for features of shape (N, C, H, W).

    Dividing by the number of positions makes G independent of the image size, so a style
    image and a content image of different sizes can be compared (Gatys et al., eq. 3); the
    extra 1/C evens out the layers, whose widths run from 64 to 512 channels.
    """
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def mean_squared_error(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (value - target).pow(2).mean()


class ContentLoss(nn.Module):
    """How far the image's features at one layer are from the photo's (Gatys et al., eq. 1)."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target.detach())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return mean_squared_error(features, self.target)


class StyleLoss(nn.Module):
    """How far the image's Gram matrix at one layer is from the painting's (Gatys et al., eq. 4)."""

    def __init__(self, target_gram: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target_gram.detach())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return mean_squared_error(gram_matrix(features), self.target)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels, in 0..255 units: penalises speckle."""
    image = image * 255
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


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


def working_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The content's size scaled so its long side is at most `long_side` (never enlarged)."""
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize (N, 3, H, W) with antialiasing, so shrinking a photo does not alias."""
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(image, size=(height, width), mode="bicubic", align_corners=False,
                         antialias=True).clamp(0, 1)


class StyleTransfer:
    """Owns nothing but a loaded VGG19; each `run` is one independent job."""

    def __init__(self, model: VGG19, device: torch.device | str = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)

    def _features(self, image: torch.Tensor, layers: set[str], pooling: str) -> dict[str, torch.Tensor]:
        return self.model(image.to(self.device), layers, pooling)

    @torch.no_grad()
    def style_targets(self, styles: list[tuple[torch.Tensor, float]], params: JobParams,
                      long_side: int) -> dict[str, torch.Tensor]:
        """Blend of the styles' Gram matrices per layer, computed once per job.

        Each style image is scaled so its long side matches the output's, which keeps brush
        strokes at a similar size relative to the picture.
        """
        total_weight = sum(weight for _, weight in styles)
        targets: dict[str, torch.Tensor] = {}
        for image, weight in styles:
            h, w = image.shape[-2:]
            sw, sh = working_size(w, h, long_side) if max(w, h) > long_side else (w, h)
            features = self._features(resize(image, sw, sh), set(params.style_layers), params.pooling)
            for layer, feats in features.items():
                gram = gram_matrix(feats) * (weight / total_weight)
                targets[layer] = targets[layer] + gram if layer in targets else gram
        return targets

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
        torch.manual_seed(params.seed)
        generator = torch.Generator().manual_seed(params.seed)
        width, height = working_size(content.shape[-1], content.shape[-2], params.size)
        content = resize(content.to(self.device), width, height)

        with torch.no_grad():
            content_target = self._features(content, {params.content_layer}, params.pooling)[params.content_layer]
        content_loss = ContentLoss(content_target)
        style_losses = {layer: StyleLoss(gram)
                        for layer, gram in self.style_targets(styles, params, max(width, height)).items()}
        layer_weight_sum = sum(params.style_layers.values()) or 1.0
        layers = {params.content_layer, *params.style_layers}

        if params.init == "content":
            image = content.clone(memory_format=torch.contiguous_format)
        else:
            image = torch.rand(content.shape, generator=generator).to(self.device)
        image.requires_grad_(True)

        def losses() -> dict[str, torch.Tensor]:
            features = self._features(image, layers, params.pooling)
            style = sum(params.style_layers[layer] * loss(features[layer]) for layer, loss in style_losses.items())
            terms = {
                "content": content_loss(features[params.content_layer]),
                "style": style / layer_weight_sum,
                "tv": total_variation(image),
            }
            terms["total"] = (params.content_weight * terms["content"] + params.style_weight * terms["style"]
                              + params.tv_weight * terms["tv"])
            return terms

        last_terms: dict[str, torch.Tensor] = {}
        # L-BFGS's first step (1/|g|₁) and its tolerances assume a loss near 1, so the objective
        # is divided by its starting value; Adam is indifferent to the scale.
        with torch.no_grad():
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

        if params.optimizer == "lbfgs":
            # One L-BFGS iteration per step() so we can report, preview and cancel in between.
            # No line search: with max_iter=1 torch would allow it a single evaluation.
            optimizer: torch.optim.Optimizer = torch.optim.LBFGS(
                [image], lr=1.0, max_iter=1, history_size=50)
        else:
            optimizer = torch.optim.Adam([image], lr=params.learning_rate)

        for iteration in range(1, params.iterations + 1):
            optimizer.step(closure)
            if params.optimizer == "adam":
                # L-BFGS is left unclamped: clamping would contradict the curvature it has learnt.
                with torch.no_grad():
                    image.clamp_(0, 1)
            if on_progress or on_preview:
                elapsed = time.monotonic() - started
                progress = Progress(
                    scale=1, scales=1, width=width, height=height, iteration=iteration, total=params.iterations,
                    losses={name: float(value.detach()) for name, value in last_terms.items()},
                    elapsed=elapsed, eta=elapsed / iteration * (params.iterations - iteration))
                if not all(math.isfinite(v) for v in progress.losses.values()):
                    raise FloatingPointError(f"the loss became {progress.losses['total']} at iteration {iteration}")
                if on_progress:
                    on_progress(progress)
                if on_preview and params.preview_every and iteration % params.preview_every == 0 \
                        and iteration < params.iterations:
                    on_preview(image.detach(), progress)
        return image.detach().clamp(0, 1)
