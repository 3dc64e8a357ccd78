"""A cache of style targets (per-layer Gram matrices), in memory and on disk.

A painting used again (a preset, or the same file twice) skips VGG19 on the style image. The key
hashes the image's pixels and every setting that shapes a target (layers, pooling, precision,
the size it is seen at, the weights' lineage), so a changed image or setting never reuses a
stale entry. Files are read back with `weights_only=True`: tensors only, never code.

The cache is an optimisation and never the reason a job fails: a folder that cannot be written
(read-only, full) only costs the speed-up, a file that loads but is not a set of finite square
Gram matrices for the layers asked is deleted and recomputed, and the folder is kept under
`max_bytes` by deleting the least recently used files.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path

import torch

from .model import LAYER_CHANNELS

log = logging.getLogger("impasto.daemon")

MAX_BYTES = 2**30  # the disk cache's default bound
# Targets kept in memory, least recently used dropped first; the disk keeps the rest. A bound by
# count let a daemon serving mixed jobs keep growing (bench/soak.py).
MEMORY_BYTES = 64 * 2**20
# A painting's Gram entries stay within about 1e5 (white, black, noise and the built-in paintings,
# Caffe weights); far beyond this a cached entry is a poison that would overflow the loss.
MAX_GRAM = 1e8
STALE_TMP_S = 3600  # a partial file this old was left by a daemon that died while writing


def size_of(targets: dict[str, torch.Tensor]) -> int:
    return sum(target.element_size() * target.nelement() for target in targets.values())


def default_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "impasto" / "targets"


def image_digest(image: torch.Tensor) -> str:
    # Hashed in place: a copy (tobytes) of a huge painting held Python's lock, and stalled the socket thread.
    return hashlib.sha256(image.detach().cpu().contiguous().numpy().data.cast("B")).hexdigest()[:32]


class TargetCache:
    def __init__(self, folder: Path | None = None, memory_bytes: int = MEMORY_BYTES,
                 max_bytes: int = MAX_BYTES) -> None:
        self.folder = folder
        self.memory_bytes = memory_bytes
        self.max_bytes = max_bytes
        self.memory: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
        self.hits = self.misses = 0
        self._sweep_partials()

    @staticmethod
    def key(*parts: object) -> str:
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:40]

    def get(self, key: str, layers: set[str] | None = None) -> dict[str, torch.Tensor] | None:
        """The targets stored under `key` (for exactly `layers`, when given), or None."""
        if key in self.memory:
            self.memory.move_to_end(key)
            self.hits += 1
            return self.memory[key]
        targets = self._load(key, layers)
        if targets is None:
            self.misses += 1
            return None
        self._remember(key, targets)
        self.hits += 1
        return targets

    def _load(self, key: str, layers: set[str] | None) -> dict[str, torch.Tensor] | None:
        path = self.folder / f"{key}.pt" if self.folder else None
        if path is None or not path.is_file():
            return None
        try:
            targets = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a torn or foreign file
            targets = None
        if not valid_targets(targets, layers):
            log.warning("dropping a bad style-target cache entry %s", path.name)
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # recently used: kept longest
        return targets

    def put(self, key: str, targets: dict[str, torch.Tensor]) -> None:
        targets = {layer: gram.detach().cpu() for layer, gram in targets.items()}
        self._remember(key, targets)
        if self.folder is None:
            return
        partial = self.folder / f".{key}.{os.getpid()}.tmp"
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # which paintings were used is private
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
            with open(os.open(partial, flags, 0o600), "wb") as file:
                torch.save(targets, file)
            partial.replace(self.folder / f"{key}.pt")  # whole or not at all
            self._bound()
        except (OSError, RuntimeError) as exc:  # read-only, full (torch says RuntimeError), gone
            log.warning("could not cache style targets in %s: %s", self.folder, str(exc).splitlines()[0])
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)

    def _remember(self, key: str, targets: dict[str, torch.Tensor]) -> None:
        self.memory[key] = targets
        while len(self.memory) > 1 and sum(map(size_of, self.memory.values())) > self.memory_bytes:
            self.memory.popitem(last=False)

    def _bound(self) -> None:
        """Delete the least recently used files until the folder holds at most max_bytes."""
        assert self.folder is not None
        files = sorted(((f.stat().st_mtime, f.stat().st_size, f) for f in self.folder.glob("*.pt")),
                       key=lambda entry: entry[0])
        total = sum(size for _, size, _ in files)
        for _, size, path in files:
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size

    def _sweep_partials(self) -> None:
        if self.folder is None:
            return
        try:
            for partial in self.folder.glob(".*.tmp"):
                if time.time() - partial.stat().st_mtime > STALE_TMP_S:
                    partial.unlink(missing_ok=True)
        except OSError:
            pass


def valid_targets(targets: object, layers: set[str] | None) -> bool:
    """A map of VGG19 layer names (`layers`, when given) to Gram matrices a painting can give:
    (1, C, C) for the layer's C channels, finite, and within MAX_GRAM."""
    if not isinstance(targets, dict) or not targets:
        return False
    if layers is not None and set(targets) != layers:
        return False
    for layer, gram in targets.items():
        channels = LAYER_CHANNELS.get(layer) if isinstance(layer, str) else None
        if not (channels and isinstance(gram, torch.Tensor) and gram.shape == (1, channels, channels)
                and gram.is_floating_point() and bool(torch.isfinite(gram).all())
                and float(gram.abs().max()) <= MAX_GRAM):
            return False
    return True
