"""How much memory a job needs, whether it runs whole or in tiles, and in which precision."""

from __future__ import annotations

import ctypes
import gc
import time
from dataclasses import dataclass

import torch

from impasto.protocol.messages import JobParams

from . import tiles
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
# measured with a margin: bench/large_image.py); beside it, whole, are the picture and what the
# optimiser keeps of it (its gradient, average and L-BFGS's pairs), the photo, the scale's start and,
# at a detail scale, the content target (relu3_1: 256 channels at a sixteenth of the pixels). Counted
# after a tiled 24 MP job outgrew its limit (bench/full_resolution.py, section full_resolution_24mp).
BYTES_PER_PIXEL = {"bf16": 2600, "fp32": 3600}
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


def memory_plan(width: int, height: int, params: JobParams, device: torch.device, limit: int) -> MemoryPlan:
    """How a job on a `width`×`height` photo runs within `limit` bytes: whole, or in tiles.

    Raises DoesNotFit, with the memory the job would need at least, when it cannot.
    """
    # The largest scale: the working size, or the size detail is painted up to.
    w, h = painted_size(width, height, params.paint_pixels) if params.detail else \
        composed_size(width, height, params.size, params.layer_size)
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


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


GLIBC = _glibc()
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # mallopt's parameters (malloc.h)


def hold_freed_memory(hold: bool = True) -> None:
    """Keep what a job frees for its next allocations, until release_memory() at its end; call
    it before any thread starts.

    glibc gives each block over 32 MB a mapping of its own and unmaps it when freed, so every
    pass mapped VGG19's large activations afresh and faulted in each page again: at 4 MP most
    of an iteration's time went there (bench/network_cost.py). From the heap, untrimmed, they
    are reused; every thread shares that one heap, since a thread's own arena maps a large
    block whatever it is told. Trimming is off altogether (mallopt(3): a threshold of -1): the
    largest threshold mallopt takes, 2 GiB, was passed by a 4 MP scale's freed top, which went
    back to the system every pass and was faulted in again (tests/test_memory.py).
    `hold=False` puts glibc's defaults back.
    """
    if GLIBC is not None:
        GLIBC.mallopt(M_MMAP_MAX, 0 if hold else 65536)
        GLIBC.mallopt(M_TRIM_THRESHOLD, -1 if hold else 128 * 1024)
        GLIBC.mallopt(M_ARENA_MAX, 1 if hold else 0)


def trim_memory() -> None:
    """Give the system back the freed memory held now (see hold_freed_memory), between the scales
    of a job short of memory (one in tiles): a scale's blocks rarely fit the next scale's sizes,
    so kept they raised the job's peak (bench/full_resolution.py); within a scale, held blocks
    are reused pass after pass."""
    if GLIBC is not None:
        GLIBC.malloc_trim(0)


def release_memory() -> None:
    """Give a finished job's memory back, so a daemon that runs for days does not creep up.

    glibc keeps freed blocks in its arenas (all of them, see hold_freed_memory); malloc_trim
    returns them to the system. CUDA's caching allocator likewise keeps blocks until asked.
    """
    gc.collect()
    if GLIBC is not None:
        GLIBC.malloc_trim(0)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


if GLIBC is not None and hasattr(GLIBC, "mallinfo2"):
    GLIBC.mallinfo2.restype = _MallInfo2


def freed_bytes(device: torch.device) -> int:
    """What this process holds freed and untrimmed: glibc's free heap, or CUDA's cached blocks."""
    if device.type == "cuda":
        return torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if GLIBC is None or not hasattr(GLIBC, "mallinfo2"):  # glibc before 2.33
        return 0
    return int(GLIBC.mallinfo2().fordblks)


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
