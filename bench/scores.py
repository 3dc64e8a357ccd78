"""The scores benches judge pictures by, computed the same way for every tool and setting.

All use the original VGG19 in fp32 with zero padding and max pooling, at the picture's own size,
against the photo at that size and the painting shrunk to it (long side), bicubic:

- Gatys et al.'s own terms (CVPR 2016, eqs. 1–5), unnormalised:
      content = ½ Σ (F − P)²  at relu4_2
      style   = Σₗ ⅕ · Σ (G/Mₗ − A/M'ₗ)² / (4 Nₗ²)  at relu1_1 … relu5_1,  G = F Fᵀ
  with Nₗ channels, and Mₗ and M'ₗ the positions of the picture and the painting: the paper's
  Σ (G − A)² / (4 N² M²) where both have the same size, as there. (Until this module, the
  benches used the paper's form with the painting's A at its own size, which counted a painting
  5.6% larger than the photo, starry_night against tubingen, as if its features were stronger.)
  relu4_1's activations are the largest, so it holds about 98% of this style score.
- a normalised style score: at each of relu1_1 … relu5_1 the Gram error over the painting's
  Gram, ‖G − A‖_F / ‖A‖_F with G = F Fᵀ / (N M), the five layers weighted equally, so brush
  texture (the shallow layers) counts as much as relu4_1's large shapes. It is the score that
  moves most when a job's path changes by a rounding: golden_gate × the_scream at 384 px with
  style weight 89 and 89.125 (one thread) scored 0.234 and 0.243, relu1_1's term (colour, the
  largest) 0.452 and 0.495, the others within 2%.

Lower is better on all three.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from impasto.daemon.imaging import working_size
from impasto.protocol.messages import STYLE_LAYERS


def load(path: Path, long_side: int | None = None) -> torch.Tensor:
    """An image file as (1, 3, H, W) RGB in 0..1, its long side shrunk to `long_side` (Lanczos)."""
    picture = Image.open(path).convert("RGB")
    if long_side:
        picture = picture.resize(working_size(*picture.size, long_side), Image.LANCZOS)
    return torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1)[None].float() / 255


def _gram(features: torch.Tensor) -> torch.Tensor:
    flat = features[0].flatten(1)
    return flat @ flat.T


class Scores:
    """Every score of a picture against one photo and one painting."""

    def __init__(self, model, content: torch.Tensor, style: torch.Tensor) -> None:
        self.model = model
        self.size = content.shape[-2:]
        with torch.no_grad():
            self.content = model(content, {"relu4_2"})["relu4_2"]
            style = torch.nn.functional.interpolate(
                style, size=working_size(style.shape[-1], style.shape[-2], max(self.size))[::-1],
                mode="bicubic", antialias=True).clamp(0, 1)
            features = model(style, set(STYLE_LAYERS))
        self.grams = {k: _gram(v) for k, v in features.items()}
        self.positions = {k: v.shape[-2] * v.shape[-1] for k, v in features.items()}

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> dict[str, float]:
        """{"content", "style" (Gatys's), "normalised"} of `image`, which must have the photo's size."""
        if image.shape[-2:] != self.size:
            raise ValueError(f"picture is {tuple(image.shape[-2:])}, expected {tuple(self.size)}")
        features = self.model(image.clamp(0, 1), {"relu4_2", *STYLE_LAYERS})
        content = 0.5 * float((features["relu4_2"] - self.content).pow(2).sum())
        style = normalised = 0.0
        for layer, target in self.grams.items():
            n, m = features[layer].shape[1], features[layer].shape[2] * features[layer].shape[3]
            gram, painting = _gram(features[layer]) / m, target / self.positions[layer]
            style += 0.2 * float((gram - painting).pow(2).sum()) / (4 * n * n)
            normalised += 0.2 * float((gram - painting).norm() / painting.norm())
        return {"content": content, "style": style, "normalised": normalised}


class GatysScore(Scores):
    """Gatys et al.'s (content, style) only, for the benches that print just those two."""

    def __call__(self, image: torch.Tensor) -> tuple[float, float]:  # type: ignore[override]
        scores = super().__call__(image)
        return scores["content"], scores["style"]
