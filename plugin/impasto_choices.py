"""The GIMP plug-in's choices, made without GIMP: which style, which region, which settings, and
what the user reads. It imports only `protocol` (installed beside it), so plain pytest runs it;
`impasto_gimp.py` keeps the dialog, the pixels and the layers, and `impasto_daemon.py` the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from impasto.protocol.errors import is_number
from impasto.protocol.messages import DEFAULT_PRESET, Image, JobParams, PresetInfo, Progress, Style, Submit
from impasto.protocol.presets import NAME_RULE, is_preset_name
from impasto.protocol.progress import Parts

# name: (label, iterations at each detail scale above the composition; the layer's own size gets
# half, a Draft none: plan.TOP_SHARE). Every quality composes the same picture, since its size and
# iterations change the look (bench/same_look.py); a Draft shows Fine's look.
QUALITIES = {
    "draft": ("Draft (fast)", 1),
    "normal": ("Normal", 4),
    "fine": ("Fine (slow)", 8),
}
DEFAULT_QUALITY = "normal"
# name: (label, the most pixels the detail is painted at; 0: the layer's own size). On a slow
# machine a large photo's look comes quickly at a cap, and its full size can follow.
PAINT_SIZES = {
    "full": ("Full resolution", 0),
    "4mp": ("At most 4 MP (quicker)", 4_000_000),
    "1mp": ("At most 1 MP (quickest)", 1_000_000),
}
DEFAULT_PAINT_SIZE = "full"
KEEP_COLORS = {"none": "Painting's colours", "luminance": "Photo's colours (luminance)",
               "match": "Photo's colours (matched palette)"}
BRUSH_SIZES = (0.25, 4.0)  # the dialog's range for JobParams.style_scale
SEEDS = (0, 2**31 - 1)  # the dialog's range for JobParams.seed (a GIMP int argument)
CONTEXT_FRACTION = 0.15  # context sent around a selection, as a share of its size
FEATHER_FRACTION = 0.04  # soft edge inside a selection, as a share of its size


class PluginError(Exception):
    """Ends the run with a message for the user."""


def knob(name: str) -> tuple[str, Any, Any, Any]:
    """A numeric JobParams field as a GIMP argument wants it: help, lowest, highest, default."""
    spec = next(f for f in fields(JobParams) if f.name == name)
    allowed = spec.metadata["allowed"]
    return spec.metadata["help"], allowed.low, allowed.high, getattr(JobParams(), name)


# --- the style -------------------------------------------------------------------------

# The "Style from" choice: it alone decides which style argument is read, in the dialog and for
# scripts alike (the other style arguments are ignored).
STYLE_SOURCES = {"preset": "Preset", "file": "Image file", "image": "Open image", "pattern": "GIMP pattern"}
DEFAULT_STYLE_SOURCE = "preset"


def check_style_source(source: str, given: bool) -> str:
    """The source to use; PluginError when its argument is missing (a script's mistake)."""
    if source not in STYLE_SOURCES:
        raise PluginError(f"Unknown style source {source!r}: use one of {', '.join(STYLE_SOURCES)}.")
    if not given and source != "preset":
        argument = {"file": "style-file", "image": "style-image", "pattern": "style-pattern"}[source]
        raise PluginError(f"Style from '{STYLE_SOURCES[source]}' needs a {argument}: choose one.")
    return source


def preset_style(name: str) -> tuple[Style, str]:
    name = name.strip() or DEFAULT_PRESET
    return Style(preset=name), name


def recommended(info: PresetInfo) -> dict[str, Any]:
    """The dialog settings a preset recommends (strength, keep-colors, brush-size), valid ones only."""
    settings: dict[str, Any] = {}
    params = info.params
    if is_number(params.get("strength")) and 0 <= params["strength"] <= 1:
        settings["strength"] = float(params["strength"])
    if params.get("keep_colors") in KEEP_COLORS:
        settings["keep-colors"] = params["keep_colors"]
    if is_number(params.get("style_scale")) and BRUSH_SIZES[0] <= params["style_scale"] <= BRUSH_SIZES[1]:
        settings["brush-size"] = float(params["style_scale"])
    return settings


def thumbnail_rgb(image: Image) -> tuple[int, int, bytes]:
    """A thumbnail as packed RGB rows (what a GdkPixbuf wants), whatever its channels."""
    data = image.packed()
    if image.channels == 3:
        return image.width, image.height, bytes(data)
    pixels = range(image.width * image.height)
    if image.channels == 1:
        return image.width, image.height, bytes(v for i in pixels for v in (data[i],) * 3)
    return image.width, image.height, bytes(v for i in pixels for v in data[4 * i:4 * i + 3])


# --- the region and the job ------------------------------------------------------------

@dataclass(frozen=True)
class Region:
    """What is sent, in layer coordinates."""

    x: int
    y: int
    width: int
    height: int


def region_to_send(layer_size: tuple[int, int], selection: tuple[int, int, int, int] | None,
                   context: bool = True) -> Region:
    """The whole layer, or the selection's bounds (x1, y1, x2, y2, in layer coordinates) with
    CONTEXT_FRACTION of context around them (when `context`), clipped to the layer."""
    width, height = layer_size
    if selection is None:
        return Region(0, 0, width, height)
    x1, y1, x2, y2 = selection
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if x2 <= x1 or y2 <= y1:
        raise PluginError("The selection does not touch the selected layer.")
    pad = int(max(x2 - x1, y2 - y1) * CONTEXT_FRACTION) if context else 0
    x1, y1 = max(x1 - pad, 0), max(y1 - pad, 0)
    x2, y2 = min(x2 + pad, width), min(y2 + pad, height)
    return Region(x1, y1, x2 - x1, y2 - y1)


def feather_for(region: Region, has_mask: bool) -> int:
    """The soft edge inside a selection, in pixels; none without one."""
    return max(1, round(max(region.width, region.height) * FEATHER_FRACTION)) if has_mask else 0


def job_params(quality: str, strength: float, seed: int, feather: float, layer_side: int = 0,
               keep_colors: str = "none", brush_size: float = 1.0, paint_size: str = DEFAULT_PAINT_SIZE) -> JobParams:
    """The job's settings for a quality; everything not named here is the engine's default.

    `layer_side`, the long side of the layer a selection is cut from, makes the selection look
    like that part of a whole-layer run (strokes of the same size), so parts painted apart match.
    """
    _, detail = QUALITIES.get(quality, QUALITIES[DEFAULT_QUALITY])
    _, paint_pixels = PAINT_SIZES.get(paint_size, PAINT_SIZES[DEFAULT_PAINT_SIZE])
    return JobParams(detail=detail, strength=strength, seed=seed,
                     preview_every=max(5, JobParams().iterations // 2), mask_feather=feather, layer_size=layer_side,
                     keep_colors=keep_colors if keep_colors in KEEP_COLORS else "none", style_scale=brush_size,
                     paint_pixels=paint_pixels)


MIN_COMPOSED_SIDE = 64  # a far smaller layer than the others is composed at this: its strokes are larger


def composed_side(layer_side: int, largest_side: int) -> int:
    """The long side a layer is composed at in a run over several layers: its share of the default,
    as the largest layer's, so strokes have one size across them."""
    return max(MIN_COMPOSED_SIDE, round(JobParams().size * layer_side / max(1, largest_side)))


# The dialog's preview: the layer at this long side, composed as a Draft is, in a few seconds
# on a 2-core CPU (bench/preview_speed.py); strokes keep their size relative to the picture.
PREVIEW_SIDE = 192
PREVIEW_ITERATIONS = 30
PREVIEW_FIRST_SCALE = 96


def preview_params(strength: float, seed: int, keep_colors: str, brush_size: float, feather: float) -> JobParams:
    """The dialog preview's settings: the run's look, small and quick (no detail scales)."""
    params = job_params("draft", strength, seed, feather, 0, keep_colors, brush_size)
    return replace(params, size=PREVIEW_SIDE, iterations=PREVIEW_ITERATIONS, first_scale=PREVIEW_FIRST_SCALE,
                   detail=0, preview_every=0)


def preview_interval(seconds: float | None) -> float:
    """Seconds between previews for a job expected to take `seconds`: about a dozen, evenly in
    time, and none closer than 2 s (a large preview costs the daemon most of a second)."""
    return min(max((seconds or 0.0) / 12, 2.0), 60.0)


def build_submit(job: str, content: Image, style: Style, params: JobParams, mask: bytes | None,
                 whole: Image | None = None, previous: tuple[Image, Image] | None = None) -> Submit:
    """`previous`: an animation frame's previous photo and result."""
    width, height = content.width, content.height
    before, result = previous if previous is not None else (None, None)
    return Submit(job, content, [style], params, Image(width, height, 1, mask) if mask is not None else None,
                  whole, before, result)


# --- what the user reads ---------------------------------------------------------------

def progress_text(progress: Progress, since: float = 0.0, parts: Parts | None = None) -> str:
    """The run window's line for `progress`, `since` seconds after it came: the time left counts
    down between progress reports (one iteration of a large scale can take many seconds). Over
    several layers, it says which and the time left for all."""
    where = f"{parts.kind} {parts.index + 1} of {parts.count}: " if parts and parts.count > 1 else ""
    left = parts.left(progress, since) if parts else max(0.0, progress.eta - since)
    text = (f"{where}iteration {progress.iteration}/{progress.total}, scale {progress.scale}/{progress.scales} "
            f"({progress.width}×{progress.height}): about {duration_text(left)} left")
    return text[:1].upper() + text[1:]


def check_frames(sizes: list[tuple[int, int]], selected: bool) -> None:
    """Animation frames are stylised whole and must share one size (the motion between them is
    measured pixel for pixel); PluginError otherwise."""
    if selected:
        raise PluginError("Animation frames are stylised whole: remove the selection (Select > None) first.")
    if len(set(sizes)) > 1:
        raise PluginError("Animation frames must all be the same size: "
                          + ", ".join(f"{w}×{h}" for w, h in sorted(set(sizes))[:4]) + ".")


def preview_name(progress: Progress | None) -> str:
    """A kept preview's layer name, in the words and numbers of the progress shown with it."""
    if progress is None:
        return "Impasto preview"
    return f"Impasto preview: iteration {progress.iteration}/{progress.total}, scale {progress.scale}/{progress.scales}"


def display_name(name: str) -> str:
    """A preset's name as the gallery shows it: "woman_with_hat" is "Woman with hat" (words, which
    wrap between them, not inside an identifier)."""
    words = name.replace("_", " ").replace("-", " ").split()
    return " ".join(words)[:1].upper() + " ".join(words)[1:] if words else name


def preset_name(name: str) -> str:
    """A name for a new preset, as the daemon will take it (lowercase, '-' for spaces); PluginError if none."""
    cleaned = "-".join(name.strip().lower().split())
    if not is_preset_name(cleaned):
        raise PluginError(f"{name!r} cannot name a preset: use {NAME_RULE} (spaces become '-', capitals "
                          "lowercase).")
    return cleaned


def duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    return f"{seconds / 60:.0f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


def estimate_text(estimate: dict | None, absent: str, other_sizes: dict[str, dict | None] | None = None,
                  layers: int = 1) -> str:
    """What the dialog says before OK: the sizes the job works at and how long it should take, or
    `absent` when no daemon answered (impasto_daemon.Daemon.absent_text); then the time at each
    of `other_sizes` (PAINT_SIZES' names) that paints another size. Over several `layers`: the top
    one's sizes, and the time for all of them at its pace (frames that follow one another take less)."""
    if estimate is None:
        return absent
    if layers > 1:
        times: dict[str, dict | None] = {name: dict(other, seconds=other["seconds"] * layers)
                                         for name, other in (other_sizes or {}).items() if other}
        text = estimate_text(dict(estimate, seconds=estimate["seconds"] * layers), absent, times)
        return text.replace(" on ", f" for the {layers} layers on ", 1)
    (width, height), (out_width, out_height) = estimate["working"], estimate["output"]
    painted = f", painted up to {out_width}×{out_height}" if (out_width, out_height) != (width, height) else ""
    labels = {name: label.split(" (")[0] for name, (label, _) in PAINT_SIZES.items()}
    others = [f"{labels[name][:1].lower()}{labels[name][1:]}: {duration_text(other['seconds'])}"
              for name, other in (other_sizes or {}).items() if other and other["output"] != estimate["output"]]
    return (f"Composed at {width}×{height} in every quality{painted}: about {duration_text(estimate['seconds'])} "
            f"on {estimate['device']}" + (f" ({'; '.join(others)})" if others else ""))


# --- the dialog's last choices ---------------------------------------------------------

# Kept by the plug-in at OK, since GIMP keeps a run's values only when the run succeeds: a run
# cancelled midway forgot the style and quality just chosen. Objects are kept by name: the
# style file by URI, the pattern by its name (an open image has no lasting name: not kept).
REMEMBERED: dict[str, type] = {
    "style-source": str, "style-preset": str, "style-file": str, "style-pattern": str, "strength": float,
    "keep-colors": str, "brush-size": float, "quality": str, "paint-size": str, "seed": int, "keep-previews": bool,
    "start-daemon": bool, "animation": bool,
}


def remembered(saved: object) -> dict[str, Any]:
    """The saved choices that still make sense: a file from an older plug-in, or edited by hand,
    may hold anything, and whatever does not fit is left to GIMP's own last values."""
    if not isinstance(saved, dict):
        return {}
    _, strength_low, strength_high, _ = knob("strength")
    fits = {"style-source": lambda v: v in STYLE_SOURCES, "keep-colors": lambda v: v in KEEP_COLORS,
            "quality": lambda v: v in QUALITIES, "paint-size": lambda v: v in PAINT_SIZES,
            "strength": lambda v: strength_low <= v <= strength_high,
            "brush-size": lambda v: BRUSH_SIZES[0] <= v <= BRUSH_SIZES[1], "seed": lambda v: SEEDS[0] <= v <= SEEDS[1],
            "style-preset": is_preset_name}
    kept = {}
    for key, kind in REMEMBERED.items():
        value = saved.get(key)
        if kind is float and is_number(value):
            value = float(value)
        if type(value) is kind and fits.get(key, lambda v: True)(value):
            kept[key] = value
    return kept
