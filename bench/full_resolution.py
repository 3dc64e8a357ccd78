"""Full resolution on real photos: time, painted detail, peak memory and the look kept.

The photos are KDE's wallpapers (Debian's plasma-workspace-wallpapers: 2560×1600 photographs,
licences in each folder's metadata.json), fetched with apt and unpacked into a cache folder on
first use. Each case runs in a daemon of its own, through the real client, at the CLI's defaults
unless told otherwise, and prints:
- seconds to the result, and to the first preview;
- detail: mean |Laplacian| of luma of the result over the photo's, both at the photo's size;
  `enlarged` is the same for `detail=0` (today's result stretched from the working size);
- the daemon's peak resident memory (VmHWM: model and Python included);
- look: how far the result, shrunk to the working size, is from the `detail=0` result shrunk
  alike (mean absolute difference, in 0..255 levels), and beside it how far that `detail=0`
  result is from the photo shrunk alike: the detail keeps the look when the first is a small
  share of the second. Several `--detail` values (the plug-in's qualities: 1, 4, 8) share one
  `detail=0` run.
Crops at 100% (photo | detail=0 | each detail) go to --out.

    .venv/bin/python bench/full_resolution.py                                  # 4 photos at 2560×1600
    .venv/bin/python bench/full_resolution.py --photos Path --scale 2.4 --memory-limit 8 \\
        --section full_resolution_24mp                       # 24 MP at the plug-in's Normal, within 8 GiB
    .venv/bin/python bench/full_resolution.py --photos Path --detail 1 4 8      # the plug-in's qualities
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import from_debian_package, peak_rss_gib, start_daemon  # noqa: E402
from bench.results import Results  # noqa: E402
from impasto.protocol import messages as m  # noqa: E402
from impasto.protocol.client import Client, new_job_id  # noqa: E402

SHARED = ROOT.parent / "shared" / "images"
PHOTOS = ("Path", "FallenLeaf", "ColorfulCups", "BytheWater")


def wallpaper(name: str) -> Path:
    """The 2560×1600 photograph of KDE's wallpaper `name`, fetched once."""
    return from_debian_package("plasma-workspace-wallpapers",
                               f"usr/share/wallpapers/{name}/contents/images/2560x1600.jpg", "wallpapers")


def as_image(picture: PILImage.Image) -> m.Image:
    array = np.ascontiguousarray(np.asarray(picture.convert("RGB")))
    return m.Image(array.shape[1], array.shape[0], 3, array.tobytes())


def as_array(image: m.Image) -> np.ndarray:
    return np.frombuffer(image.packed(), np.uint8).reshape(image.height, image.width, image.channels)[..., :3]


def fine_detail(rgb: np.ndarray) -> float:
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    laplacian = luma[1:-1, :-2] + luma[1:-1, 2:] + luma[:-2, 1:-1] + luma[2:, 1:-1] - 4 * luma[1:-1, 1:-1]
    return float(np.abs(laplacian).mean())


def stylise(endpoint: str, content: m.Image, style: m.Image, params: m.JobParams) -> tuple[np.ndarray, float, float]:
    """The result, the seconds to it and to the first preview."""
    started = time.monotonic()
    first_preview = float("nan")
    with Client(endpoint) as client:
        for reply in client.run_job(m.Submit(new_job_id(), content, [m.Style(image=style)], params)):
            if reply.type == m.PREVIEW and first_preview != first_preview:
                first_preview = time.monotonic() - started
            elif reply.type == m.RESULT:
                return as_array(reply.image), time.monotonic() - started, first_preview
    raise RuntimeError("the job ended without a result")


def in_own_daemon(args: argparse.Namespace, content: m.Image, style: m.Image,
                  params: m.JobParams) -> tuple[np.ndarray, float, float, float]:
    folder = Path(tempfile.mkdtemp(prefix="impasto-fullres-"))
    extra = ["--memory-limit", str(args.memory_limit)] if args.memory_limit else []
    daemon, endpoint, _ = start_daemon(folder, "--log-level", "warning", *extra)
    try:
        result, seconds, first = stylise(endpoint, content, style, params)
        return result, seconds, first, peak_rss_gib(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(30)


def crops(out: Path, name: str, pictures: list[np.ndarray]) -> None:
    """400×300 crops at 100% from the middle of each picture, side by side."""
    height, width = pictures[0].shape[:2]
    y, x = height // 2 - 150, width // 2 - 200
    gap = np.full((300, 8, 3), 255, np.uint8)
    strip = [part for image in pictures for part in (image[y:y + 300, x:x + 400], gap)][:-1]
    PILImage.fromarray(np.concatenate(strip, axis=1)).save(out / f"{name}.png")


def shrunk(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(PILImage.fromarray(rgb).resize(size, PILImage.LANCZOS), np.float32)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS))
    parser.add_argument("--style", type=Path, default=SHARED / "style" / "starry_night.jpg")
    parser.add_argument("--scale", type=float, default=1.0, help="enlarge each photo first (Lanczos)")
    parser.add_argument("--size", type=int, default=m.JobParams().size)
    parser.add_argument("--iterations", type=int, default=m.JobParams().iterations)
    parser.add_argument("--detail", type=int, nargs="+", default=[m.JobParams().detail])
    parser.add_argument("--memory-limit", type=float, default=0, help="GiB a job may add (the daemon's option)")
    parser.add_argument("--out", type=Path, default=Path("bench-full-resolution"))
    parser.add_argument("--section", default="full_resolution", help="RESULTS.md section to write (24 MP beside "
                        "the 4 photos, say)")
    return parser.parse_args()


def main(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    style = as_image(PILImage.open(args.style))
    print(f"{'photo':<13} {'size':>10} {'seconds':>8} {'1st prev':>8} {'detail':>7} {'enlarged':>8} "
          f"{'peak GiB':>8} {'look':>6} {'composed from photo':>19}", flush=True)
    for name in args.photos:
        picture = PILImage.open(wallpaper(name)).convert("RGB")
        if args.scale != 1:
            picture = picture.resize((round(picture.width * args.scale), round(picture.height * args.scale)),
                                     PILImage.LANCZOS)
        photo = np.asarray(picture)
        content = as_image(picture)
        base = m.JobParams(size=args.size, iterations=args.iterations)
        enlarged, _, _, _ = in_own_daemon(args, content, style, m.JobParams(**{**base.to_wire(), "detail": 0}))
        working = (round(picture.width * args.size / max(picture.size)), round(picture.height * args.size /
                                                                               max(picture.size)))
        composed = shrunk(enlarged, working)
        from_photo = np.abs(composed - shrunk(photo, working)).mean()
        pictures = [photo, enlarged]
        for detail in args.detail:
            painted, seconds, first, peak = in_own_daemon(args, content, style,
                                                          m.JobParams(**{**base.to_wire(), "detail": detail}))
            look = np.abs(shrunk(painted, working) - composed).mean()
            print(f"{name:<13} {picture.width:>5}x{picture.height:<4} {seconds:>8.1f} {first:>8.2f} "
                  f"{fine_detail(painted) / fine_detail(photo):>7.2f} "
                  f"{fine_detail(enlarged) / fine_detail(photo):>8.2f} {peak:>8.2f} {look:>6.1f} {from_photo:>19.1f}"
                  f"   detail={detail}", flush=True)
            pictures.append(painted)
        crops(args.out, name, pictures)
    print(f"crops (photo | detail=0 | detail={' | '.join(map(str, args.detail))}, 100%) in {args.out}/")


if __name__ == "__main__":
    ARGS = arguments()
    with Results(ARGS.section):
        main(ARGS)
