"""A cache of style targets (per-layer Gram matrices), in memory and on disk.

A painting used again (a preset, or the same file twice) skips VGG19 on the style image. The key
hashes the image's pixels and every setting that shapes a target (layers, pooling, precision,
the size it is seen at, the weights' lineage), so a changed image or setting never reuses a
stale entry. Files are read back with `weights_only=True`: tensors only, never code.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import torch


def default_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "impasto" / "targets"


def image_digest(image: torch.Tensor) -> str:
    return hashlib.sha256(image.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:32]


class TargetCache:
    def __init__(self, folder: Path | None = None, entries: int = 64) -> None:
        self.folder = folder
        self.entries = entries
        self.memory: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def key(*parts: object) -> str:
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:40]

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        if key in self.memory:
            self.memory.move_to_end(key)
            self.hits += 1
            return self.memory[key]
        path = self.folder / f"{key}.pt" if self.folder else None
        if path is not None and path.is_file():
            try:
                targets = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # a torn or foreign file: recompute it
                targets = None
            if isinstance(targets, dict):
                self._remember(key, targets)
                self.hits += 1
                return targets
        self.misses += 1
        return None

    def put(self, key: str, targets: dict[str, torch.Tensor]) -> None:
        targets = {layer: gram.detach().cpu() for layer, gram in targets.items()}
        self._remember(key, targets)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = self.folder / f".{key}.{os.getpid()}.tmp"
            torch.save(targets, partial)
            partial.replace(self.folder / f"{key}.pt")  # whole or not at all

    def _remember(self, key: str, targets: dict[str, torch.Tensor]) -> None:
        self.memory[key] = targets
        while len(self.memory) > self.entries:
            self.memory.popitem(last=False)
