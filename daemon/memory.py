"""How much memory a job needs, whether it runs whole or in tiles, and in which precision."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

import torch

from impasto.protocol.messages import JobParams

from . import allocator, tiles
from .imaging import composed_size, painted_size


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


# Peak memory of a job: a crop in the network costs BYTES_PER_PIXEL (activations and gradients,
# held, with a margin over bench/memory_per_pixel.py's figures), less on the CPU under tcmalloc,
# whose heap does not fragment as glibc's does (daemon/allocator.py); beside it, whole, are the
# picture and what the optimiser keeps of it (its gradient, average and L-BFGS's pairs), the
# photo, the scale's start and, at a detail scale, the content target (relu3_1: 256 channels at
# a sixteenth of the pixels). Counted after a tiled 24 MP job outgrew its limit
# (bench/full_resolution.py, section full_resolution_24mp).
BYTES_PER_PIXEL = {"bf16": 2600, "fp32": 3600}
TCMALLOC_BYTES_PER_PIXEL = {"bf16": 1400, "fp32": 2500}
WHOLE_BYTES_PER_PIXEL = {"bf16": 180, "fp32": 240}
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


def crop_bytes_per_pixel(precision: str, device: torch.device, tcmalloc: bool = allocator.TCMALLOC) -> int:
    """What a crop in the network costs per pixel, in `precision` on `device` (see BYTES_PER_PIXEL)."""
    return (TCMALLOC_BYTES_PER_PIXEL if device.type == "cpu" and tcmalloc else BYTES_PER_PIXEL)[precision]


def memory_plan(width: int, height: int, params: JobParams, device: torch.device, limit: int) -> MemoryPlan:
    """How a job on a `width`×`height` photo runs within `limit` bytes: whole, or in tiles.

    Raises DoesNotFit, with the memory the job would need at least, when it cannot.
    """
    # The largest scale: the working size, or the size detail is painted up to.
    w, h = painted_size(width, height, params.paint_pixels) if params.detail else \
        composed_size(width, height, params.size, params.layer_size)
    precision = "bf16" if use_bf16(params.precision, device) else "fp32"
    per_pixel = crop_bytes_per_pixel(precision, device)
    whole = FIXED_BYTES + w * h * WHOLE_BYTES_PER_PIXEL[precision]
    room = max(0, (limit - whole) // per_pixel)
    max_crop = min(room, params.tile_pixels) if params.tile_pixels else room
    counts = tiles.counts_for(w, h, max_crop)
    if counts is None:
        needed = whole + min(w * h, tiles.SMALLEST_CROP) * per_pixel
        if params.tile_pixels and params.tile_pixels < room:
            raise DoesNotFit(f"tile_pixels {params.tile_pixels} is below the smallest tile, "
                             f"{tiles.SMALLEST_CROP} pixels")
        raise DoesNotFit(f"this job would need at least {needed / 2**30:.1f} GiB and {limit / 2**30:.1f} GiB is "
                         "available: lower its size")
    # The style image is seen whole too when it fits, at the content's size times style_scale.
    crop = min(max_crop, round(w * h * max(1.0, params.style_scale) ** 2))
    return MemoryPlan(max_crop, whole + crop * per_pixel, counts)


def crop_budget(width: int, height: int, params: JobParams, device: torch.device, limit: int | None) -> int:
    """The most pixels the network may see at once for a job: what `limit` bytes allow (None: no
    limit), and never more than `params.tile_pixels` when set."""
    if limit is None:
        return params.tile_pixels or tiles.UNLIMITED
    return memory_plan(width, height, params, device, limit).max_crop_pixels


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


def hold_freed_memory(hold: bool = True) -> None:
    """Keep what a job frees for its next allocations, until release_memory() at its end; call
    it before any thread starts. Given back, VGG19's large activations were faulted in afresh
    every pass: at 4 MP most of an iteration's time (bench/network_cost.py). How is the
    allocator's business (allocator.hold_freed); `hold=False` puts its defaults back."""
    allocator.hold_freed(hold)


def trim_memory() -> None:
    """Give the system back the freed memory held now (see hold_freed_memory), between the scales
    of a job short of memory (one in tiles): a scale's blocks rarely fit the next scale's sizes,
    so kept they raised the job's peak (bench/full_resolution.py); within a scale, held blocks
    are reused pass after pass."""
    allocator.give_back()


def release_memory() -> None:
    """Give a finished job's memory back, so a daemon that runs for days does not creep up.

    The C allocator keeps freed blocks (see hold_freed_memory), and so does CUDA's caching
    allocator, until asked.
    """
    gc.collect()
    allocator.give_back()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def freed_bytes(device: torch.device) -> int:
    """What this process holds freed and untrimmed: the C allocator's, or CUDA's cached blocks."""
    if device.type == "cuda":
        return torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return allocator.freed_bytes()


class HeldMemory:
    """A finished job's memory, held for the next job for `seconds`, then given back.

    A job's first pass at each size faults its memory in, most of a 4 MP job's top scale's set-up;
    a job that finds the last one's memory held skips that (bench/network_cost.py, its second
    job). A daemon left idle still gives it all back.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.since: float | None = None  # when the last job ended, while its memory is held

    def hold(self) -> None:
        self.since = time.monotonic()
        if not self.seconds:
            self.release()

    def bytes(self, device: torch.device) -> int:
        """Memory held now, which a job may use besides what the device has free."""
        return freed_bytes(device) if self.since is not None else 0

    def due(self) -> bool:
        return self.since is not None and time.monotonic() - self.since >= self.seconds

    def release(self) -> None:
        self.since = None
        release_memory()
