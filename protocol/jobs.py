"""What a job is, as a client asks for it: its content, styles, settings, mask and whole picture,
and what a forecast is asked about. Carried by the messages in messages.py."""

from __future__ import annotations

from dataclasses import dataclass

from .images import Image
from .settings import JobParams


@dataclass
class Style:
    """One style: pixels or a preset name, with its share of the blend."""

    weight: float = 1.0
    image: Image | None = None
    preset: str | None = None


@dataclass
class Submit:
    job: str
    content: Image
    styles: list[Style]
    params: JobParams
    mask: Image | None = None
    # For a part of a larger picture (a selection): that whole picture, reduced to about its
    # working size; the part is cut from the whole's composition so it looks as the whole would
    # (params.layer_size, part_x and part_y place it).
    whole: Image | None = None
    # For an animation frame after the first: the previous frame's photo and its result, both the
    # content's size. The daemon warps that result along the motion between the two photos, starts
    # from it, and holds the frame to it where the motion is known (params.temporal_weight).
    previous: Image | None = None
    previous_result: Image | None = None


@dataclass
class Estimate:
    """How long a job on a `width`×`height` content with `params` would take on the daemon's device."""

    width: int
    height: int
    params: JobParams
    whole: tuple[int, int] | None = None  # the size of the whole sent with a part (Submit.whole)
