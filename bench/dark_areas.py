"""Dark areas at 100%: the speckle and any regular pattern in a full-resolution result (#31).

For each photo (KDE's 2560×1600 wallpapers, as bench/full_resolution.py fetches them) the job
runs at the CLI's defaults and with `detail=0` (the composition enlarged), each in a daemon of
its own. In the photo's darkest tenth of 64×64 windows, it prints for the photo, both results
and, in its own darkest windows, the painting:
- chroma: RMS of the colour's fine band (U and V less their 3×3 mean), in 0..255 levels: the
  red and blue speckle;
- period 8 / 4 / 2: the power of the luma's fine band at that period (across or down, the larger)
  over the median of its neighbouring frequencies, summed over the windows: 1 is no pattern, a
  JPEG photo's 8×8 blocks show at 8 and 4, a stride's imprint at 4 and 2.

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


def measure(rgb: np.ndarray, cells: list[Cell]) -> tuple[float, dict[int, float]]:
    """The chroma's fine band (RMS) and the periodic peaks of the luma's fine band, over `cells`."""
    luma, u, v = yuv(rgb)
    chroma = (u - box_mean(u, 1)) ** 2 + (v - box_mean(v, 1)) ** 2
    fine = luma - box_mean(luma, 2)
    hann = np.outer(np.hanning(WINDOW), np.hanning(WINDOW))
    power = sum(np.abs(np.fft.fft2(fine[y:y + WINDOW, x:x + WINDOW] * hann)) ** 2 for y, x in cells)
    assert isinstance(power, np.ndarray)

    def peak(fy: int, fx: int) -> float:
        ring = [power[(fy + dy) % WINDOW, (fx + dx) % WINDOW] for dy in (-2, 0, 2) for dx in (-2, 0, 2)
                if (dy, dx) != (0, 0)]
        return float(power[fy, fx] / np.median(ring))

    peaks = {period: max(peak(0, WINDOW // period), peak(WINDOW // period, 0)) for period in (8, 4, 2)}
    rms = float(np.sqrt(np.mean([chroma[y:y + WINDOW, x:x + WINDOW].mean() for y, x in cells])))
    return rms, peaks


def row(name: str, what: str, rgb: np.ndarray, cells: list[Cell]) -> None:
    chroma, peaks = measure(rgb, cells)
    print(f"| {name} | {what} | {chroma:.2f} | {peaks[8]:.2f} / {peaks[4]:.2f} / {peaks[2]:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", nargs="+", default=["ColorfulCups", "Path"])
    parser.add_argument("--style", type=Path, default=SHARED / "style" / "starry_night.jpg")
    parser.add_argument("--detail", type=int, default=m.JobParams().detail)
    args = parser.parse_args()
    args.memory_limit = 0  # in_own_daemon's option: the daemon's own limit
    painting = np.asarray(PILImage.open(args.style).convert("RGB"))
    style = as_image(PILImage.open(args.style))
    print("| photo | picture | chroma fine band | period 8 / 4 / 2 |\n|---|---|---|---|")
    row(args.style.name, "the painting, its own darkest windows", painting, darkest_windows(painting))
    for name in args.photos:
        picture = PILImage.open(wallpaper(name)).convert("RGB")
        photo = np.asarray(picture)
        cells = darkest_windows(photo)
        row(name, "photo", photo, cells)
        for detail in (0, args.detail):
            result, seconds, _, _ = in_own_daemon(args, as_image(picture), style, m.JobParams(detail=detail))
            row(name, f"detail={detail} ({seconds:.0f} s)", result, cells)


if __name__ == "__main__":
    with Results("dark_areas"):
        main()
