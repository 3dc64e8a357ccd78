"""Neural style transfer after Gatys, Ecker & Bethge (2016, "Image Style Transfer Using
Convolutional Neural Networks", CVPR): find the image whose VGG19 features match the content
photo's at one deep layer and whose feature statistics match the painting's at several layers.

This module has no sockets: give it tensors and a JobParams, get a tensor back, with callbacks
for progress, previews and cancellation. The daemon wraps it; tests drive it directly. Its
parts: run.py (one job, scale by scale), plan.py (its scales and sizes), colours.py (its colours
and where each scale starts), pace.py (time), losses.py (the terms), objective.py (their tiled
sum and the optimiser loop), imaging.py (colour, sizes, resizing), memory.py (what fits, in
which precision), targets.py (the cache).

What it adds to the paper, each for a reason:
- coarse to fine (`scale_sides`): the picture is first optimised small, then enlarged by about
  √2 a step, with the photo's detail that the smaller scale lacked added back, and refined;
  previews come from the first scale within a second. By default the small scales get only a
  few iterations (`coarse_iterations`) and the full size the rest: measured against the
  paper's own score, iterations spent small cost content at full size;
- the picture starts from the photo moved towards the painting's colours, as far as the
  strength goes (colours.starting_point): L-BFGS moves broad colours slowly, and a dark photo's
  sky had not left the photo's darkness after the default's iterations;
- every term is a *relative* error (losses.py), so one `strength` number can set the balance;
- L-BFGS of our own (lbfgs.py), one evaluation a step, the picture kept within 0..1, by
  default; Adam with an exponential average of the iterates (Polyak averaging) for tiled
  scales and on request;
- a sliced-Wasserstein style loss (Heitz et al., 2021, "A Sliced Wasserstein Loss for Neural
  Texture Synthesis", CVPR) besides the Gram loss: it matches the whole distribution of each
  layer's features, not just their correlations;
- replicate padding at the first convolution (see model.py) against bright or dark borders.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterator

import torch

from impasto.protocol.messages import JobParams

from . import tiles
from .colours import Styles
from .imaging import STYLE_FILTER, resize
from .lbfgs import OPENING_MOVE
from .losses import ContentLoss, GramStyleLoss, SlicedWassersteinStyleLoss, StyleLoss, TemporalLoss, gram_matrix
from .memory import SLICED_POSITIONS, bf16_supported, crop_budget, tile_counts, use_bf16
from .model import LAYER_CHANNELS, LAYER_STRIDE, VGG19
from .motion import FrameLink
from .objective import DEFAULTS, Objective, Report, descend, effective_weights, style_gain
from .pace import PACE_FILE, Pace, identity, regime
from .plan import MIN_SIDE, schedule_for
from .run import Compositions, PreviewCallback, ProgressCallback, Run
from .targets import TargetCache, image_digest

# The detail scales' objective: fine texture only, at VGG19's shallow layers, with long first
# steps, since a few short ones left it almost untouched (bench/full_resolution.py).
DETAIL_STYLE_LAYERS = {"relu1_1": 0.2, "relu2_1": 1.0, "relu3_1": 1.0}
DETAIL_CONTENT_LAYER = "relu3_1"
DETAIL_STYLE_WEIGHT = 100.0  # at the default strength and style weight
DETAIL_OPENING = 32 / 255  # L-BFGS's first step on a detail scale moves the steepest pixel this far


class JobCancelled(Exception):
    """Raised inside VGG19's pass when the job's `should_stop()` turns true."""


class StyleTransfer:
    """Owns nothing but a loaded VGG19; each `run` is one independent job."""

    def __init__(self, model: VGG19, device: torch.device | str = "cpu", cache: TargetCache | None = None) -> None:
        self.model = model
        self.device = torch.device(device)
        self.cache = cache if cache is not None else TargetCache()  # memory only, unless given a folder
        self._digests: dict[int, str] = {}  # style image → pixel hash, for the job in progress
        self._should_stop: Callable[[], bool] = lambda: False  # the job in progress's
        self.pace = Pace()  # this device's, measured at warm-up and on every finished job
        # Where the pace is kept for the next daemon: beside the cached style targets, if on disk.
        self.pace_file = self.cache.folder / PACE_FILE if self.cache.folder is not None else None
        self.warmed_up = False  # the warm-up's own jobs teach the pace, but are not kept
        self.compositions = Compositions()  # wholes composed for their parts (selections)

    def warm_up(self) -> None:
        """A tiny job, so the first real one does not pay for kernel selection and allocation,
        then the smallest picture's iterations (what an iteration costs whatever its size) and a
        small job whose pace the first estimates are made from, in each precision the device has,
        and with the sliced loss (bench/time_left.py: its first job's estimate, from Gram's pace, was far off).

        On the CPU the first forward and backward of a process take over a second longer than
        the next ones, whatever their size; after this, a first preview comes within a second.
        """
        image = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
        self.run(image, [(image, 1.0)], JobParams(size=64, iterations=2, preview_every=0))
        stamps: list[float] = []
        smallest = JobParams(size=MIN_SIDE, iterations=12, first_scale=0, detail=0, preview_every=0)
        self.run(image, [(image, 1.0)], smallest, on_progress=lambda progress: stamps.append(time.monotonic()))
        steps = sorted(later - earlier for earlier, later in itertools.pairwise(stamps[1:]))
        self.pace.per_iteration = steps[len(steps) // 2]
        image = torch.rand(1, 3, 288, 384, generator=torch.Generator().manual_seed(0))  # the pace, measured
        small = JobParams(size=384, iterations=4, first_scale=0, preview_every=0)
        for precision in ("fp32", "bf16") if bf16_supported(self.device) else ("fp32",):
            self.run(image, [(image, 1.0)], dataclasses.replace(small, precision=precision))
        image = image[..., 48:240, 64:320]  # the sliced loss's pace, at a size it tells as well, for less time
        self.run(image, [(image, 1.0)], dataclasses.replace(small, size=256, style_loss="sliced"))
        self.warmed_up = True

    def estimate(self, width: int, height: int, params: JobParams, memory_limit: int | None = None,
                 whole: tuple[int, int] | None = None) -> dict:
        """How long a job would take here, from the measured pace, and the sizes it works at (for a
        part sent with its whole, `whole` is the whole's size)."""
        schedule = schedule_for(width, height, params, whole)
        max_crop = crop_budget(width, height, params, self.device, memory_limit)
        return {"seconds": self.pace.estimate(schedule, params, max_crop, regime(params, self.device)),
                "working": list(schedule.sizes[schedule.first_detail - 1]), "output": list(schedule.sizes[-1]),
                "scales": len(schedule.sizes)}

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
                     generator: torch.Generator, max_crop_pixels: int = tiles.UNLIMITED,
                     native_at_most: bool = False) -> dict[str, StyleLoss]:
        """The style term of each layer, with its targets computed once for this scale.

        Each style image is scaled so its long side is `long_side` × `style_scale`, which keeps
        brush strokes the same size relative to the picture at every scale. Targets always come
        from the whole painting, in tiles when it is too large to be seen at once.
        """
        per_layer: dict[str, list[tuple[torch.Tensor, float]]] = {layer: [] for layer in params.style_layers}
        side = max(MIN_SIDE, round(long_side * params.style_scale))
        for image, weight in styles:
            h, w = image.shape[-2:]
            if native_at_most:  # an enlarged painting's texture is a blurred one
                side = min(side, max(w, h))
            size = (max(MIN_SIDE, round(w * side / max(w, h))), max(MIN_SIDE, round(h * side / max(w, h))))
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
        grams = self.cache.get(key, set(params.style_layers))
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

    def run(self, content: torch.Tensor, styles: Styles, params: JobParams,
            on_progress: ProgressCallback | None = None, on_preview: PreviewCallback | None = None,
            should_stop: Callable[[], bool] = lambda: False, memory_limit: int | None = None,
            whole: torch.Tensor | None = None, link: FrameLink | None = None) -> torch.Tensor:
        """Stylise `content` (1, 3, H, W, RGB in 0..1) and return the image at its size.

        The picture is composed at the working size (`params.size`), then its detail is painted
        scale by scale up to the content's size (`params.detail` iterations each; with 0, the
        result is the working size's and the caller enlarges it).

        `styles` pairs each style image (same layout) with its share of the blend. Within
        `memory_limit` bytes (None: no limit), scales too large to be seen whole run in tiles;
        so does any picture larger than `params.tile_pixels`.

        `whole`: for a part of a larger picture (`params.layer_size`, `part_x`, `part_y`), that
        picture (any size down to its working size): the part is composed within it (plan.PartOfWhole).

        `link`: for an animation frame after the first, the previous frame's result warped into this
        one (motion.FrameLink): the frame starts from it at the working size and is held to it.
        """
        if params.strength == 0:  # the photo itself, exactly: nothing is painted
            return content
        self._digests = {}
        self._should_stop = should_stop
        torch.manual_seed(params.seed)
        paces = dict(self.pace.per_unit)
        result = Run(self, content, styles, params, on_progress, on_preview, memory_limit, whole, link).paint()
        if self.pace_file is not None and self.warmed_up and self.pace.per_unit != paces:  # the job taught it
            self.pace.save(self.pace_file, identity(self.device))
        return result

    def adopt_saved_pace(self) -> bool:
        """After the warm-up: the pace an earlier daemon learned here, where there is one."""
        return self.pace_file is not None and self.pace.adopt(self.pace_file, identity(self.device))

    def objective_terms(self, picture: torch.Tensor, content: torch.Tensor, styles: Styles,
                        params: JobParams) -> dict[str, float]:
        """The terms of the objective a job with `params` minimises at its working size, for
        `picture` (at that size), evaluated whole and in fp32: how benches and tests judge a
        result by the job's own measure."""
        params = dataclasses.replace(params, precision="fp32")
        objective = self._objective(picture, content, styles, params, torch.Generator().manual_seed(params.seed),
                                    tiles.UNLIMITED)
        objective()
        return {name: float(value) for name, value in objective.last_terms.items()}

    def optimise(self, image: torch.Tensor, content: torch.Tensor, styles: Styles, params: JobParams,
                  iterations: int, generator: torch.Generator, report: Report, max_crop_pixels: int,
                  detail: bool = False, temporal: TemporalLoss | None = None) -> torch.Tensor:
        """One scale: `iterations` steps from `image`; returns the (averaged) result. `temporal`: an
        animation frame's hold on the previous frame's result."""
        objective = self._objective(image, content, styles, params, generator, max_crop_pixels, detail, temporal)
        # A frame that starts from the previous frame's result starts near its end: no long first step.
        opening = DETAIL_OPENING if detail and temporal is None else OPENING_MOVE
        return descend(objective, params, iterations, report, opening)

    def _objective(self, image: torch.Tensor, content: torch.Tensor, styles: Styles, params: JobParams,
                   generator: torch.Generator, max_crop_pixels: int, detail: bool = False,
                   temporal: TemporalLoss | None = None) -> Objective:
        """A scale's objective over a copy of `image`, with its targets from `content` and `styles`."""
        height, width = image.shape[-2:]
        stride = LAYER_STRIDE[params.content_layer]
        if detail:  # its content is the picture it starts from (paint_detail)
            shape = (1, LAYER_CHANNELS[params.content_layer], height // stride, width // stride)
            content_loss = ContentLoss.of_first_picture(shape, stride)
        else:
            content_loss = ContentLoss(self.content_target(content, params, max_crop_pixels), stride)
        style_losses = self.style_losses(styles, params, max(width, height), generator, max_crop_pixels,
                                         native_at_most=detail)
        image = image.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
        return Objective(image, lambda crop, layers: self.features(crop, layers, params), content_loss,
                         style_losses, effective_weights(params), params,
                         tile_counts(width, height, max_crop_pixels), generator,
                         fixed_cuts=detail and params.style_loss == "gram", temporal=temporal, smooth=detail)

    def paint_detail(self, image: torch.Tensor, styles: Styles, params: JobParams, iterations: int,
                      generator: torch.Generator, report: Report, max_crop: int,
                      temporal: TemporalLoss | None = None) -> torch.Tensor:
        """A scale above the working size: only fine texture is repainted (see DETAIL_STEP); the
        caller keeps what the scale below holds from where it started, since the shallow layers'
        Grams (colour is in relu1_1's) would draw the whole picture towards the painting's palette."""
        settings = dataclasses.replace(params, style_layers=dict(DETAIL_STYLE_LAYERS),
                                       content_layer=DETAIL_CONTENT_LAYER,
                                       style_weight=DETAIL_STYLE_WEIGHT * params.style_weight / DEFAULTS.style_weight
                                       / style_gain(DEFAULTS.strength))
        return self.optimise(image, image, styles, settings, iterations, generator, report, max_crop, detail=True,
                             temporal=temporal)
