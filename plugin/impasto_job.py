"""The GIMP plug-in's logic that needs no GIMP: which style, which region, which settings, what to say.

It imports only `protocol` (installed beside it), so plain pytest runs it; `impasto.py` keeps
the dialog, the pixels and the layers, and asks this module everything else.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from protocol.client import Client, DaemonError, DaemonUnavailable, ensure_daemon
from protocol.endpoint import default_endpoint
from protocol.messages import DEFAULT_PRESET, Image, JobParams, Progress, Style, Submit

# name: (label, long side the picture is composed at, iterations there, iterations at each detail
# scale above it, up to the layer's own size). Every quality paints the layer's full resolution;
# they differ in how large the composition is and how much work goes into it.
QUALITIES = {
    "draft": ("Draft (fast)", 384, 40, 2),
    "normal": ("Normal", 768, 60, 4),
    "fine": ("Fine (slow)", 1280, 100, 8),
}
DEFAULT_QUALITY = "normal"
CONTEXT_FRACTION = 0.15  # context sent around a selection, as a share of its size
FEATHER_FRACTION = 0.04  # soft edge inside a selection, as a share of its size
START_WAIT_S = 90  # how long the plug-in waits for a daemon it started (loading VGG19)


class PluginError(Exception):
    """Ends the run with a message for the user."""


def load_settings(folder: str | Path) -> dict:
    """impasto.json beside the plug-in: the daemon's endpoint and the command that starts it."""
    try:
        with open(Path(folder) / "impasto.json") as f:
            settings = json.load(f)
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def knob(name: str) -> tuple[str, Any, Any, Any]:
    """A numeric JobParams field as a GIMP argument wants it: help, lowest, highest, default."""
    spec = next(f for f in fields(JobParams) if f.name == name)
    allowed = spec.metadata["allowed"]
    return spec.metadata["help"], allowed.low, allowed.high, getattr(JobParams(), name)


def endpoint_of(argument: str, settings: dict, environ: dict[str, str] | None = None) -> str:
    """The procedure's argument, else $IMPASTO_ENDPOINT, else the installer's, else the default."""
    environ = os.environ if environ is None else environ
    return argument or environ.get("IMPASTO_ENDPOINT") or settings.get("endpoint") or default_endpoint()


# --- the style -------------------------------------------------------------------------

STYLE_SOURCES = ("image", "file", "pattern", "preset")


def style_source(image_given: bool, file_path: str | None, use_pattern: bool, pattern_given: bool) -> str:
    """Which of the procedure's style arguments decides, for scripts: an open image, else a file,
    else the pattern (when `use-pattern` is on), else the preset."""
    if image_given:
        return "image"
    if file_path:
        return "file"
    if use_pattern and pattern_given:
        return "pattern"
    return "preset"


def preset_style(name: str) -> tuple[Style, str]:
    name = name.strip() or DEFAULT_PRESET
    return Style(preset=name), name


# --- the region and the job ------------------------------------------------------------

@dataclass(frozen=True)
class Region:
    """What is sent, in layer coordinates."""

    x: int
    y: int
    width: int
    height: int


def region_to_send(layer_size: tuple[int, int], selection: tuple[int, int, int, int] | None) -> Region:
    """The whole layer, or the selection's bounds (x1, y1, x2, y2, in layer coordinates) with
    CONTEXT_FRACTION of context around them, clipped to the layer."""
    width, height = layer_size
    if selection is None:
        return Region(0, 0, width, height)
    x1, y1, x2, y2 = selection
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if x2 <= x1 or y2 <= y1:
        raise PluginError("The selection does not touch the active layer.")
    pad = int(max(x2 - x1, y2 - y1) * CONTEXT_FRACTION)
    x1, y1 = max(x1 - pad, 0), max(y1 - pad, 0)
    x2, y2 = min(x2 + pad, width), min(y2 + pad, height)
    return Region(x1, y1, x2 - x1, y2 - y1)


def feather_for(region: Region, has_mask: bool) -> int:
    """The soft edge inside a selection, in pixels; none without one."""
    return max(1, round(max(region.width, region.height) * FEATHER_FRACTION)) if has_mask else 0


def job_params(quality: str, strength: float, seed: int, feather: float, layer_side: int = 0) -> JobParams:
    """The job's settings for a quality; everything not named here is the engine's default.

    `layer_side`, the long side of the layer a selection is cut from, makes the selection look
    like that part of a whole-layer run (strokes of the same size), so parts painted apart match.
    """
    _, long_side, iterations, detail = QUALITIES.get(quality, QUALITIES[DEFAULT_QUALITY])
    return JobParams(size=long_side, iterations=iterations, detail=detail, strength=strength, seed=seed,
                     preview_every=max(5, iterations // 2), mask_feather=feather, layer_size=layer_side)


def build_submit(job: str, content: Image, style: Style, params: JobParams, mask: bytes | None) -> Submit:
    width, height = content.width, content.height
    return Submit(job, content, [style], params, Image(width, height, 1, mask) if mask is not None else None)


# --- what the user reads ---------------------------------------------------------------

def progress_text(progress: Progress) -> str:
    return (f"Impasto: scale {progress.scale}/{progress.scales} ({progress.width}×{progress.height}), "
            f"iteration {progress.iteration}/{progress.total}, about {round(progress.eta)} s left")


def preview_name(count: int, iteration: int, total: int) -> str:
    return f"Impasto preview {count} (iteration {iteration}/{total})"


def duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    return f"{seconds / 60:.0f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


def estimate_text(estimate: dict | None) -> str:
    """What the dialog says before OK: the sizes the job works at and how long it should take."""
    if estimate is None:
        return "The Impasto daemon is not running: it starts with the first run (loading VGG19 takes a few seconds)."
    (width, height), (out_width, out_height) = estimate["working"], estimate["output"]
    painted = f", painted up to {out_width}×{out_height}" if (out_width, out_height) != (width, height) else ""
    return f"Composed at {width}×{height}{painted}: about {duration_text(estimate['seconds'])} on {estimate['device']}"


def forecast(endpoint: str, region: Region, params: JobParams) -> dict | None:
    """The daemon's estimate for this job, or None when no daemon answers at once."""
    try:
        with Client(endpoint, timeout=1.0) as client:
            return client.estimate(region.width, region.height, params)
    except (DaemonUnavailable, DaemonError):
        return None


# --- the daemon ------------------------------------------------------------------------

def daemon_command(settings: dict) -> list[str]:
    command = settings.get("daemon_command")
    return [str(part) for part in command] if isinstance(command, list) else []


def connect(endpoint: str, settings: dict, start: bool, on_wait: Callable[[], None] = lambda: None,
            on_start: Callable[[Path], None] = lambda log: None) -> None:
    """Make sure a daemon answers at `endpoint`, starting the configured one where allowed.

    Raises PluginError with what the user can do about it.
    """
    command = daemon_command(settings)
    found = bool(command) and (os.path.exists(command[0]) or shutil.which(command[0]) is not None)
    if start and found:
        try:
            ensure_daemon(endpoint, command, START_WAIT_S, on_wait=on_wait, on_start=on_start)
        except DaemonUnavailable as exc:
            raise PluginError(f"The Impasto daemon could not be started: {exc}") from None
        return
    try:
        with Client(endpoint, timeout=2.0) as client:
            client.hello()
        return
    except DaemonUnavailable:
        pass
    if start:
        raise PluginError(f"The Impasto daemon is not running at {endpoint}, and it cannot be started from here "
                          f"({command[0] if command else 'no daemon command configured'} not found). Run "
                          "Impasto's installer again.")
    how = f"`{shlex.join([*command, '--endpoint', endpoint])}`" if command else "Impasto's installer"
    raise PluginError(f"The Impasto daemon is not running at {endpoint}. Start it with {how}, or turn on "
                      "'Start the daemon if missing'.")
