"""Dark areas at 100%: the speckle and any regular pattern in a full-resolution result (#31).

For each photo (KDE's 2560×1600 wallpapers, as bench/full_resolution.py fetches them) the job
runs at the CLI's defaults and with `detail=0` (the composition enlarged), each in a daemon of
its own. In the photo's darkest tenth of 64×64 windows, it prints for the photo, both results
and, in its own darkest windows, the painting:
- chroma: RMS of the colour's fine band (U and V less their 3×3 mean), in 0..255 levels: the
  red and blue speckle;
- grid: the luma's power along the axes over its power off them, at periods of 2.5 to 8 px,
  summed over the windows: an isotropic texture (brushwork) is near 1, a grid on the pixels'
  axes (the cross-hatch, a pooling's imprint, an enlargement's) more. A period-peak measure
  (power at 8, 4 and 2 px over neighbouring frequencies) missed the cross-hatch seen by eye:
  its energy is spread over periods of 3 to 7 px, along the axes.
Then it saves, for each photo, the three dark windows where the result speckles most at 100%.

    .venv/bin/python bench/dark_areas.py
    .venv/bin/python bench/dark_areas.py --photos Path --detail 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.full_resolution import SHARED, as_image, in_own_daemon, wallpaper  # noqa: E402
from bench.results import Results  # noqa: E402
from impasto.protocol import messages as m  # noqa: E402

WINDOW = 64
Cell = tuple[int, int]


def yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgb = rgb.astype(np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    return luma, (rgb[..., 2] - luma) * 0.492, (rgb[..., 0] - luma) * 0.877


def box_mean(plane: np.ndarray, radius: int) -> np.ndarray:
    """The mean over a (2r+1)² box around each pixel, edges replicated (summed-area table)."""
    side = 2 * radius + 1
    table = np.pad(np.pad(plane, radius, mode="edge").cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return (table[side:, side:] - table[:-side, side:] - table[side:, :-side] + table[:-side, :-side]) / side**2


def darkest_windows(rgb: np.ndarray, share: float = 0.1) -> list[Cell]:
    luma = yuv(rgb)[0]
    cells = [(y, x) for y in range(0, luma.shape[0] - WINDOW + 1, WINDOW)
             for x in range(0, luma.shape[1] - WINDOW + 1, WINDOW)]
    means = np.array([luma[y:y + WINDOW, x:x + WINDOW].mean() for y, x in cells])
    return [cells[i] for i in np.argsort(means)[:max(8, int(len(cells) * share))]]


def grid_share(luma: np.ndarray, cells: list[Cell]) -> float:
    """Power along the axes over power off them, at periods of 2.5 to 8 px, summed over `cells`."""
    frequency = np.fft.fftfreq(WINDOW) * WINDOW
    fy, fx = np.meshgrid(frequency, frequency, indexing="ij")
    ring = (np.hypot(fy, fx) >= WINDOW / 8) & (np.hypot(fy, fx) <= WINDOW / 2.5)
    axes = ring & ((np.abs(fy) <= 1) | (np.abs(fx) <= 1))
    hann = np.outer(np.hanning(WINDOW), np.hanning(WINDOW))
    power = sum(np.abs(np.fft.fft2((luma[y:y + WINDOW, x:x + WINDOW] - luma[y:y + WINDOW, x:x + WINDOW].mean())
                                   * hann)) ** 2 for y, x in cells)
    assert isinstance(power, np.ndarray)
    return float(power[axes].mean() / power[ring & ~axes].mean())


def speckle(rgb: np.ndarray) -> np.ndarray:
    """Each pixel's colour less its 3×3 mean, squared (U and V summed)."""
    _, u, v = yuv(rgb)
    return (u - box_mean(u, 1)) ** 2 + (v - box_mean(v, 1)) ** 2


def measure(rgb: np.ndarray, cells: list[Cell]) -> tuple[float, float]:
    """The chroma's fine band (RMS) and the luma's grid share, over `cells`."""
    chroma = speckle(rgb)
    rms = float(np.sqrt(np.mean([chroma[y:y + WINDOW, x:x + WINDOW].mean() for y, x in cells])))
    return rms, grid_share(yuv(rgb)[0], cells)


def row(name: str, what: str, rgb: np.ndarray, cells: list[Cell]) -> None:
    chroma, grid = measure(rgb, cells)
    print(f"| {name} | {what} | {chroma:.2f} | {grid:.2f} |", flush=True)


def crops(out: Path, name: str, cells: list[Cell], pictures: list[np.ndarray]) -> None:
    """The three dark windows where the last picture speckles most, at 100%, side by side: one
    row a window, one column a picture."""
    chroma = speckle(pictures[-1])
    worst = sorted(cells, key=lambda cell: -chroma[cell[0]:cell[0] + WINDOW, cell[1]:cell[1] + WINDOW].mean())[:3]
    gap = 4
    sheet = np.full((3 * (WINDOW + gap), len(pictures) * (WINDOW + gap), 3), 255, np.uint8)
    for i, (y, x) in enumerate(worst):
        for j, picture in enumerate(pictures):
            top, left = i * (WINDOW + gap), j * (WINDOW + gap)
            sheet[top:top + WINDOW, left:left + WINDOW] = picture[y:y + WINDOW, x:x + WINDOW]
    out.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(sheet).save(out / f"{name}.png")
    print(f"crops of {name} (photo | detail=0 | result; windows at y, x {worst}): {out / name}.png", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", nargs="+", default=["ColorfulCups", "Path"])
    parser.add_argument("--style", type=Path, default=SHARED / "style" / "starry_night.jpg")
    parser.add_argument("--detail", type=int, default=m.JobParams().detail)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-dark-areas"), help="where the crops go")
    args = parser.parse_args()
    args.memory_limit = 0  # in_own_daemon's option: the daemon's own limit
    painting = np.asarray(PILImage.open(args.style).convert("RGB"))
    style = as_image(PILImage.open(args.style))
    print("| photo | picture | chroma fine band | grid |\n|---|---|---|---|")
    row(args.style.name, "the painting, its own darkest windows", painting, darkest_windows(painting))
    for name in args.photos:
        picture = PILImage.open(wallpaper(name)).convert("RGB")
        photo = np.asarray(picture)
        cells = darkest_windows(photo)
        row(name, "photo", photo, cells)
        results = []
        for detail in (0, args.detail):
            result, seconds, _, _ = in_own_daemon(args, as_image(picture), style, m.JobParams(detail=detail))
            row(name, f"detail={detail} ({seconds:.0f} s)", result, cells)
            results.append(result)
        crops(args.out, name, cells, [photo, *results])


if __name__ == "__main__":
    with Results("dark_areas"):
        main()
