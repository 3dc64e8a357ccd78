"""Pictures the project draws itself: the demo's landscape and the built-in style textures.

They need no files, so the demo and the built-in presets work on a fresh clone, and they are
ours to ship. Everything is seeded, so the same call draws the same picture.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def landscape(width: int = 384, height: int = 288, seed: int = 7) -> Image.Image:
    """A drawn landscape: sky, sun, ranges of hills, a lake with reflections, a few trees."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    sky = (1 - y) * np.array([70, 130, 210]) + y * np.array([250, 210, 160])
    canvas = np.broadcast_to(sky, (height, width, 3)).copy()
    picture = Image.fromarray(canvas.astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    sun_x, sun_y, sun_r = width * 0.72, height * 0.28, height * 0.09
    draw.ellipse([sun_x - sun_r, sun_y - sun_r, sun_x + sun_r, sun_y + sun_r], fill=(255, 236, 170))
    horizon = int(height * 0.62)
    xs = np.arange(width)
    ranges = [((95, 110, 150), 0.38, 0.10), ((60, 105, 80), 0.48, 0.08), ((40, 80, 45), 0.56, 0.05)]
    for colour, base, amplitude in ranges:
        phases = rng.uniform(0, 2 * math.pi, 3)
        waves = (np.sin(xs / width * math.pi * f + p) / f for f, p in zip((2, 5, 11), phases, strict=True))
        ridge = base + amplitude * sum(waves)
        outline = [(int(x), int(r * height)) for x, r in zip(xs, ridge, strict=True)]
        draw.polygon([*outline, (width, horizon), (0, horizon)], fill=colour)
    # The lake mirrors what stands above the horizon, darker and rippled.
    above = np.asarray(picture)[horizon - (height - horizon): horizon][::-1].astype(np.float32)
    ripple = (np.sin(np.arange(above.shape[0])[:, None] * 0.9 + xs[None, :] * 0.05) * 3).astype(int)
    rows = np.clip(np.arange(above.shape[0])[:, None] + ripple, 0, above.shape[0] - 1)
    lake = above[rows, xs[None, :]] * 0.75 + np.array([10, 25, 45])
    array = np.asarray(picture).copy()
    array[horizon:horizon + lake.shape[0]] = np.clip(lake, 0, 255).astype(np.uint8)
    picture = Image.fromarray(array)
    draw = ImageDraw.Draw(picture)
    for _ in range(7):
        x = rng.uniform(0.05, 0.35) * width
        base_y = horizon + rng.uniform(0.0, 0.03) * height
        tree_h = rng.uniform(0.12, 0.22) * height
        draw.rectangle([x - 2, base_y - tree_h * 0.3, x + 2, base_y], fill=(70, 45, 30))
        draw.polygon([(x, base_y - tree_h), (x - tree_h * 0.25, base_y - tree_h * 0.25),
                      (x + tree_h * 0.25, base_y - tree_h * 0.25)], fill=(25, 70, 35))
    return picture


def _strokes(width: int, height: int, palette: list[tuple[int, int, int]],
             angle_at: Callable[[float, float], float], count: int,
             length: float, thickness: tuple[int, int], background: tuple[int, int, int],
             rng: np.random.Generator) -> Image.Image:
    """Short curved brush strokes that follow the flow field `angle_at(x, y)`."""
    picture = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(picture)
    for _ in range(count):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        base = np.array(palette[rng.integers(len(palette))], dtype=float)
        colour = tuple(int(c) for c in np.clip(base + rng.normal(0, 12, 3), 0, 255))
        points = [(x, y)]
        for _ in range(int(length)):
            angle = angle_at(x, y)
            x, y = x + math.cos(angle) * 2, y + math.sin(angle) * 2
            points.append((x, y))
        draw.line(points, fill=colour, width=int(rng.integers(*thickness)), joint="curve")
    return picture.filter(ImageFilter.SMOOTH)


def swirls(size: int = 256, seed: int = 3) -> Image.Image:
    """Night-sky swirls in blues and yellows: thick strokes curling around a few eddies."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, size, (5, 2))
    spins = rng.choice([-1.0, 1.0], 5)

    def angle_at(x: float, y: float) -> float:
        vx = vy = 0.0
        for (cx, cy), spin in zip(centres, spins, strict=True):
            dx, dy = x - cx, y - cy
            weight = math.exp(-(dx * dx + dy * dy) / (2 * (size * 0.22) ** 2))
            vx, vy = vx - spin * dy * weight, vy + spin * dx * weight
        return math.atan2(vy, vx + 0.3)

    palette = [(30, 50, 120), (50, 90, 170), (90, 140, 200), (230, 200, 80), (250, 235, 150), (20, 30, 70)]
    return _strokes(size, size, palette, angle_at, count=size * 6, length=size / 20, thickness=(3, 7),
                    background=(25, 40, 90), rng=rng)


def embers(size: int = 256, seed: int = 5) -> Image.Image:
    """Warm diagonal hatching in reds, oranges and ochres, like a quick expressionist sketch."""
    rng = np.random.default_rng(seed)

    def angle_at(x: float, y: float) -> float:
        return -0.9 + 0.5 * math.sin(x / size * 6) + 0.3 * math.cos(y / size * 9)

    palette = [(180, 40, 30), (230, 110, 40), (240, 180, 70), (90, 30, 40), (250, 220, 170)]
    return _strokes(size, size, palette, angle_at, count=size * 5, length=size / 28, thickness=(2, 6),
                    background=(120, 40, 35), rng=rng)
