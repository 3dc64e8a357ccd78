"""One job through the engine: its framing, colours, schedule and clock, scale by scale, with its
progress and previews reported after every iteration."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from impasto.protocol.messages import JobParams, Progress

from .colours import Styles, prepare_colours, starting_point
from .imaging import detail_kept, resize
from .losses import TemporalLoss
from .memory import crop_budget, tile_counts, trim_memory
from .motion import FrameLink
from .pace import Clock, regime
from .plan import PartOfWhole, Schedule, cut, frame
from .targets import image_digest

if TYPE_CHECKING:
    from .engine import StyleTransfer

ProgressCallback = Callable[[Progress], None]
PreviewCallback = Callable[[torch.Tensor, Progress], None]
Keep = Callable[[torch.Tensor], torch.Tensor]


def keep_all(picture: torch.Tensor) -> torch.Tensor:
    return picture


class Run:
    """A job's state while it runs; `paint()` returns the picture at the content's size.

    Given the whole picture a part (a selection) belongs to, the composing scales run on that
    whole and the part is cut from them (plan.PartOfWhole); its detail scales are its own."""

    def __init__(self, engine: StyleTransfer, content: torch.Tensor, styles: Styles, params: JobParams,
                 on_progress: ProgressCallback | None, on_preview: PreviewCallback | None,
                 memory_limit: int | None, whole: torch.Tensor | None = None, link: FrameLink | None = None) -> None:
        started = time.monotonic()
        self.engine = engine
        framing = frame(content, params)
        self.params, self.crop = framing.params, framing.crop
        width, height = framing.width, framing.height
        content, padded = framing.content, framing.content is not content
        self.max_crop = crop_budget(content.shape[-1], content.shape[-2], self.params, engine.device, memory_limit)
        device_styles = [(s.to(engine.device), w) for s, w in styles]
        self.colours = prepare_colours(content.to(engine.device), device_styles, self.params)
        size = (content.shape[-1], content.shape[-2])
        self.part = None if whole is None or padded else PartOfWhole.of(size, layer_size_of(whole, params), params)
        self.composed: torch.Tensor | None = None  # the whole's composition, when an earlier part's is kept
        if self.part is not None and whole is not None:
            width, height = self._within(whole, device_styles, size)
        else:
            self.schedule = Schedule.of(width, height, self.params, size)
        self.link: FrameLink | None = None  # an animation frame's link to the previous frame's result
        if link is not None and self.part is None and not padded:  # (a padded sliver is painted on its own)
            self.link = FrameLink(self.colours.inward(link.warped.to(engine.device)), link.certainty.to(engine.device))
            self.schedule = self.schedule.following(self.params.frame_iterations)
        self.clock = Clock(self.schedule, engine.pace, regime(self.params, engine.device), started)
        # A job whose largest scale fits whole keeps what each scale frees for the next (and the
        # service keeps it for the next job): faulted in again, it cost much of a scale's set-up.
        self.tiled = tile_counts(*self.schedule.sizes[-1], self.max_crop) != (1, 1)
        self.palette = self.colours.palette() if self.params.init == "palette" else None
        # The look's scales shrink the photo from its working size, not from its own: a large photo
        # shrunk for every small scale delays the first preview.
        self.small_content = resize(self.colours.content, width, height)
        if self.schedule.first_detail == len(self.schedule.sizes):  # no detail scales: the photo is needed small
            self.colours.content = self.small_content
        self.generator = torch.Generator().manual_seed(self.params.seed)
        self.on_progress, self.on_preview = on_progress, on_preview
        self.last_preview = started - self.params.preview_seconds  # the first preview at once, then evenly

    def _within(self, whole: torch.Tensor, styles: Styles, size: tuple[int, int]) -> tuple[int, int]:
        """Set a part up to be cut from its whole's composition (kept from an earlier part of the
        same whole, style and settings, else composed first); returns the part's working size."""
        assert self.part is not None
        whole_colours = prepare_colours(whole.to(self.engine.device), styles, self.part.params)
        self.colours.styles = whole_colours.styles  # the whole's colours, as a whole-layer run has
        self.look_content = resize(whole_colours.content, *self.part.working)
        self.schedule = self.part.schedule(size, self.params)
        self.composition_key = self.engine.compositions.key(self.look_content, self.colours.styles, self.part.params)
        first = self.schedule.first_detail
        self.composed = self.engine.compositions.get(self.composition_key) if first < len(self.schedule.sizes) \
            else None
        if self.composed is not None:  # only the part's own scales are left to paint
            self.schedule = Schedule(self.schedule.sizes[first:], self.schedule.steps[first:], 0,
                                     self.schedule.part_working)
        return self.schedule.below(self.schedule.first_detail)

    def paint(self) -> torch.Tensor:
        image: torch.Tensor | None = None
        previous: torch.Tensor | None = None
        for index, (w, h) in enumerate(self.schedule.sizes):
            detail = index >= self.schedule.first_detail
            if detail and index == self.schedule.first_detail and self.part is not None:
                image, previous = self.cut(self.composition(image)), self.small_content
            look_content = self.look_content if self.part is not None else self.small_content
            scale_content = resize(self.colours.content if detail else look_content, w, h)
            image = starting_point(image, scale_content, previous, self.params, self.generator,
                                   self.palette).to(self.engine.device)
            linked = self.link if index >= self.schedule.first_detail - 1 else None  # from the working size on
            if linked is not None:  # where the motion is known, the previous frame's result
                image = linked.blend(image)
            previous = scale_content
            if not self.schedule.steps[index]:  # the scale below, enlarged, with the photo's detail: no painting
                continue
            temporal = TemporalLoss(*linked.at(w, h)) if linked is not None else None
            if self.tiled:  # memory is short: what the scale below freed goes back first
                trim_memory()
            # A detail scale keeps what the scale below holds from where it started, and the colour
            # of what it paints smoothed, and so do its previews; the look's scales keep all they paint.
            kept = detail_kept(image, *self.schedule.below(index)) if detail else keep_all
            report = functools.partial(self.report, index, kept)
            steps = self.schedule.steps[index]
            if detail:
                image = kept(self.engine.paint_detail(image, self.colours.styles, self.params, steps, self.generator,
                                                      report, self.max_crop, temporal))
            else:
                params = self.part.params if self.part is not None else self.params
                image = self.engine.optimise(image, scale_content, self.colours.styles, params, steps,
                                             self.generator, report, self.max_crop, temporal=temporal)
        assert image is not None
        if self.part is not None and self.schedule.first_detail == len(self.schedule.sizes):
            image = self.cut(self.composition(image))
        self.clock.finished(self.max_crop, self.params)
        return self.recoloured(image.detach().clamp(0, 1))

    def composition(self, composed: torch.Tensor | None) -> torch.Tensor:
        """The whole's composition: the one kept, or the one just `composed`, kept for the next part."""
        if self.composed is not None:
            return self.composed
        assert composed is not None
        self.engine.compositions.put(self.composition_key, composed.detach())
        return composed

    def cut(self, picture: torch.Tensor) -> torch.Tensor:
        """The part's box of a picture of the whole, at the part's working size."""
        assert self.part is not None
        return cut(picture, self.part.box, *self.schedule.below(self.schedule.first_detail))

    def recoloured(self, picture: torch.Tensor, whole: bool = False) -> torch.Tensor:
        """A picture of the job's as the user sees it: its colours back, the padding cut off (and
        the part cut out of a picture of its whole)."""
        if whole and self.part is not None:
            h, w = picture.shape[-2:]
            box = self.part.box
            picture = cut(picture, box, max(1, round((box[2] - box[0]) * w)), max(1, round((box[3] - box[1]) * h)))
        rows, cols = self.crop
        return self.colours.recolour(picture)[..., rows, cols]

    def report(self, index: int, kept: Keep, iteration: int, losses: dict[str, float],
               current: torch.Tensor) -> None:
        """After each iteration: progress always, and a preview when one is due."""
        progress = self.clock.progress(index, iteration, losses)
        if self.on_progress:
            self.on_progress(progress)
        last_of_scale = iteration == self.schedule.steps[index]
        final = last_of_scale and index == len(self.schedule.sizes) - 1
        if self.on_preview and not final and self.preview_due(iteration, last_of_scale):
            self.on_preview(self.recoloured(kept(current), whole=index < self.schedule.first_detail), progress)
            self.last_preview = time.monotonic()

    def preview_due(self, iteration: int, last_of_scale: bool) -> bool:
        """Every `preview_seconds`, else every `preview_every` iterations and at the end of each scale."""
        if self.params.preview_seconds:
            return time.monotonic() - self.last_preview >= self.params.preview_seconds
        every = self.params.preview_every
        return bool(every) and (iteration % every == 0 or last_of_scale)


def layer_size_of(whole: torch.Tensor, params: JobParams) -> tuple[int, int]:
    """The whole's size in the layer's pixels (`whole` may come reduced; `layer_size` is its long side)."""
    h, w = whole.shape[-2:]
    return max(1, round(w * params.layer_size / max(w, h))), max(1, round(h * params.layer_size / max(w, h)))


# Settings a whole's composition does not depend on (its part's detail, previews, mask).
NOT_COMPOSING: dict[str, float] = {"detail": 0, "preview_every": 0, "preview_seconds": 0.0, "mask_feather": 0.0}


class Compositions:
    """The last few wholes' compositions, by what made them: a second selection in the same layer,
    with the same style and settings, is cut from the first one's instead of composing again."""

    KEPT = 4  # at the working size, a few MB each

    def __init__(self) -> None:
        self.kept: OrderedDict[str, torch.Tensor] = OrderedDict()

    def key(self, content: torch.Tensor, styles: Styles, params: JobParams) -> str:
        """The whole's pixels, the styles and every setting the composition depends on."""
        made_by = [image_digest(content), *(f"{image_digest(style)}:{share}" for style, share in styles),
                   json.dumps({**params.to_wire(), **NOT_COMPOSING}, sort_keys=True)]
        return hashlib.sha256("\n".join(made_by).encode()).hexdigest()

    def get(self, key: str) -> torch.Tensor | None:
        if key in self.kept:
            self.kept.move_to_end(key)
        return self.kept.get(key)

    def put(self, key: str, picture: torch.Tensor) -> None:
        self.kept[key] = picture
        while len(self.kept) > self.KEPT:
            self.kept.popitem(last=False)
