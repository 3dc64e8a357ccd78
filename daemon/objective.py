"""One scale's objective, summed over tiles, and the loop that descends it.

`Objective` is what the optimiser calls: it evaluates the job's weighted loss and leaves its
gradient in `image.grad`, tile by tile (one tile when the picture fits whole), with cuts that
move every iteration. `descend` runs the optimiser step by step, so the caller can report,
preview and cancel in between.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from impasto.protocol.messages import JobParams

from . import tiles
from .imaging import binomial_blur
from .lbfgs import LBFGS, OPENING_MOVE
from .losses import ContentLoss, GramStyleLoss, StyleLoss, TemporalLoss, gram_matrix, total_variation
from .model import LAYER_STRIDE

# VGG19's features of a crop at the given layers (the engine's, with its precision and cancel check).
Features = Callable[[torch.Tensor, set[str]], dict[str, torch.Tensor]]
Terms = dict[str, torch.Tensor]

# Strength s in (0, 1] multiplies the style weight by 10^(STRENGTH_DECADES·(s − 1)), a span whose
# equal steps look alike (bench/strength.py); 0 is the photo itself.
STRENGTH_DECADES = 2.25
DEFAULTS = JobParams()

# With the default layers the strength also raises the texture layers against relu4_1, from
# TEXTURE_FROM geometrically to TEXTURE_WEIGHT at 1: brushwork that grows evenly (bench/strength.py).
TEXTURE_WEIGHT = 0.3
TEXTURE_FROM = 0.25


def style_gain(strength: float) -> float:
    """What the strength multiplies the style weight by (see STRENGTH_DECADES)."""
    return 10 ** (STRENGTH_DECADES * (strength - 1.0))


def effective_weights(params: JobParams) -> tuple[float, float, float]:
    """Content, style and smoothness weights after the strength knob. Smoothing is there to tame
    the style term's artefacts, so below the default strength it weakens with it: a light
    painting keeps the photo's sharpness."""
    gain = style_gain(params.strength)
    tv_share = min(1.0, gain / style_gain(DEFAULTS.strength))
    return params.content_weight, params.style_weight * gain, params.tv_weight * tv_share


def style_layer_weights(params: JobParams) -> dict[str, float]:
    """The style layers' weights at the job's strength (see TEXTURE_WEIGHT); layers the job names
    itself are used as given."""
    if params.style_layers != DEFAULTS.style_layers:
        return params.style_layers
    share = min(1.0, max(0.0, (params.strength - TEXTURE_FROM) / (1.0 - TEXTURE_FROM)))
    return {layer: weight * (TEXTURE_WEIGHT / weight) ** share if 0 < weight < TEXTURE_WEIGHT else weight
            for layer, weight in params.style_layers.items()}


class Objective:
    """content_weight·content + style_weight·style + tv_weight·tv over the whole picture.

    In tiles, the Gram loss is the whole picture's: each evaluation first measures the picture's
    Gram, summed from its tiles' (forward only), then each tile follows that loss's slope (see
    GramStyleLoss.tile_part). The previous iteration's Gram would save the measuring pass, but
    its lag made tiled runs drift from whole ones (tests/test_tiles.py holds them together).
    """

    def __init__(self, image: torch.Tensor, features: Features, content_loss: ContentLoss,
                 style_losses: dict[str, StyleLoss], weights: tuple[float, float, float], params: JobParams,
                 counts: tuple[int, int], generator: torch.Generator, fixed_cuts: bool = False,
                 temporal: TemporalLoss | None = None, smooth: bool = False) -> None:
        self.image = image  # a leaf that requires grad
        self.height, self.width = image.shape[-2:]
        self.features = features
        self.content_loss = content_loss
        self.style_losses = style_losses
        self.content_weight, self.style_weight, self.tv_weight = weights
        self.temporal = temporal  # an animation frame's hold on the previous frame's result
        # The gradient through VGG19's stride-2 poolings carries their 2- and 4-pixel grid; a scale
        # of a few long steps (a detail scale's) painted that grid as a cross-hatch. Smoothed, the
        # steps are in a space without it, as in feature visualisation's preconditioning (Olah et
        # al., "Feature Visualization", Distill, 2017); bench/dark_areas.py.
        self.smooth = smooth
        self.params = params
        self.layer_weights = style_layer_weights(params)
        self.layer_weight_sum = sum(self.layer_weights.values()) or 1.0
        self.layers = {params.content_layer, *params.style_layers}
        self.counts = counts
        self.tiled = counts != (1, 1)
        # Cuts that move every iteration hide seams where a tile's features are not exactly the
        # picture's; with exact features (margins beyond the deepest layer's reach) and the Gram
        # loss, which is the whole picture's, they may stay, and L-BFGS then sees one objective.
        self.moving_cuts = self.tiled and not fixed_cuts
        self.generator = generator
        self.whole_picture_gram = self.tiled and params.style_loss == "gram"
        self.picture_grams: dict[str, torch.Tensor] = {}
        self.last_terms: Terms = {}
        self.grid = self._new_grid()

    def _new_grid(self) -> list[tiles.Tile]:
        return tiles.grid(self.width, self.height, self.counts, generator=self.generator if self.tiled else None)

    def _gram_loss(self, layer: str) -> GramStyleLoss:
        loss = self.style_losses[layer]
        assert isinstance(loss, GramStyleLoss)  # the whole picture's Gram is measured for the Gram loss only
        return loss

    def move_cuts(self) -> None:
        """New cuts between tiles for the next iteration (nothing to do for a whole picture)."""
        if self.moving_cuts:
            self.grid = self._new_grid()

    def total(self, terms: Terms) -> torch.Tensor:
        total = (self.content_weight * terms["content"] + self.style_weight * terms["style"]
                 + self.tv_weight * terms["tv"])
        if "temporal" in terms:
            total = total + self.params.temporal_weight * terms["temporal"]
        return total

    def __call__(self) -> torch.Tensor:
        """The loss at `image`, with its gradient in `image.grad`: the optimiser's closure."""
        self.image.grad = torch.zeros_like(self.image)
        if self.whole_picture_gram:
            with torch.no_grad():
                self.last_terms.update(self._evaluate(with_gradient=False))
            self._evaluate(with_gradient=True)
        else:
            self.last_terms.update(self._evaluate(with_gradient=True))
        if self.smooth:
            self.image.grad = binomial_blur(self.image.grad)
        return self.last_terms["total"]

    def _evaluate(self, with_gradient: bool) -> Terms:
        """The terms over the whole picture; `with_gradient`, also its gradient in image.grad."""
        totals: Terms = {}
        measuring = self.whole_picture_gram and not with_gradient
        grams: dict[str, torch.Tensor] = {}
        for tile in self.grid:
            crop = tile.cut(self.image.detach()).clone().requires_grad_(with_gradient)
            with torch.set_grad_enabled(with_gradient):
                terms = self._tile_terms(crop, tile, grams if measuring else None)
            if with_gradient:
                terms["total"].backward()
                assert self.image.grad is not None and crop.grad is not None
                tile.cut(self.image.grad).add_(crop.grad)
            for name, value in terms.items():
                totals[name] = totals[name] + value.detach() if name in totals else value.detach()
        if measuring:  # the style term from the picture's Gram
            style = torch.stack([self.layer_weights[layer] * self._gram_loss(layer).of_gram(gram)
                                 for layer, gram in grams.items()]).sum()
            totals["style"] = style / self.layer_weight_sum
            totals["total"] = self.total(totals)
            self.picture_grams.update(grams)
        return totals

    def _tile_terms(self, crop: torch.Tensor, tile: tiles.Tile, grams: dict[str, torch.Tensor] | None) -> Terms:
        """The loss's terms that this tile's core contributes to the whole picture's.

        Given `grams`, this pass measures the picture's Gram: each tile adds its share, and the
        style term is left to the caller.
        """
        features = {layer: tile.core_of(feats, LAYER_STRIDE[layer])
                    for layer, feats in self.features(crop, self.layers).items()}
        style = torch.zeros((), device=crop.device)
        for layer, loss in self.style_losses.items():
            feats = features[layer]
            stride = LAYER_STRIDE[layer]
            share = feats.shape[-2] * feats.shape[-1] / ((self.height // stride) * (self.width // stride))
            if not share:  # a core narrower than this layer's stride
                continue
            if not self.whole_picture_gram:
                style = style + self.layer_weights[layer] * loss(feats) * share
            elif grams is not None:
                gram = gram_matrix(feats) * share
                grams[layer] = grams[layer] + gram if layer in grams else gram
            else:
                part = self._gram_loss(layer).tile_part(feats, share, self.picture_grams[layer])
                style = style + self.layer_weights[layer] * part
        terms = {"content": self.content_loss(features[self.params.content_layer], tile),
                 "style": style / self.layer_weight_sum,
                 "tv": total_variation(crop, tile, self.width * self.height)}
        if self.temporal is not None:
            terms["temporal"] = self.temporal(crop, tile)
        terms["total"] = self.total(terms)
        return terms


Report = Callable[[int, dict[str, float], torch.Tensor], None]


def descend(objective: Objective, params: JobParams, iterations: int, report: Report,
            opening_move: float = OPENING_MOVE) -> torch.Tensor:
    """`iterations` optimiser steps on `objective.image`; returns the (averaged) result.

    Scales with moving cuts use Adam whatever was asked: L-BFGS's curvature estimate assumes one
    fixed objective, and moving the cuts changes it a little. After each step `report(iteration,
    losses, picture)` is called, where the job may preview or be cancelled.
    """
    image = objective.image
    use_lbfgs = params.optimizer == "lbfgs" and not objective.moving_cuts
    average = image.detach().clone()
    optimizer: LBFGS | torch.optim.Optimizer = \
        LBFGS(image, opening_move=opening_move, bounds=(0.0, 1.0)) if use_lbfgs else \
        torch.optim.Adam([image], lr=params.learning_rate, betas=(0.9, 0.99))
    decay = 0.0 if use_lbfgs else params.average_decay
    accepted_terms: Terms = {}
    for iteration in range(1, iterations + 1):
        objective.move_cuts()
        if isinstance(optimizer, LBFGS):
            optimizer.step(objective)
        else:
            objective()  # the loss, with its gradient in image.grad
            optimizer.step()
        if not (isinstance(optimizer, LBFGS) and optimizer.undone):  # else the terms are a rejected point's
            accepted_terms = dict(objective.last_terms)
        with torch.no_grad():
            if not use_lbfgs:  # L-BFGS keeps its own bounds
                image.clamp_(0, 1)
            # Bias-corrected exponential average of the iterates: early on, mostly the latest.
            # L-BFGS's latest is the point it evaluated; the one it stepped to may be worse.
            weight = (1 - decay) / (1 - decay ** iteration)
            latest = optimizer.accepted if isinstance(optimizer, LBFGS) else image.detach()
            average.mul_(1 - weight).add_(latest, alpha=weight)
        losses = {name: float(value) for name, value in accepted_terms.items()}
        if not all(math.isfinite(v) for v in losses.values()):
            raise FloatingPointError(f"the loss became {losses['total']} at iteration {iteration}")
        report(iteration, losses, average)
    return average
