"""Animation frames on real footage: flicker and time, coherent against independent frames.

The footage is OpenCV's sample video vtest.avi (pedestrians, a fixed camera; Debian's opencv-doc,
fetched with apt and unpacked into a cache folder on first use). Its first frames are stylised
through a daemon of the bench's own at the CLI's defaults, once with each frame following the one
before (as `impasto animate`) and once independently (`--independent`), and it prints:
- seconds a frame: the first, and the mean of the others;
- temporal error: mean |R_t − warp(R_{t−1})| in 0..255 over the pixels where the photos' flow is
  consistent (forward and backward flows agree, off motion boundaries; daemon/motion.py), averaged
  over the frame pairs, for the coherent results, the independent ones and the photo frames
  themselves (what the flow cannot explain: noise, light, warping error).
Both results go to --out as GIFs, to be watched.

    .venv/bin/python bench/animation.py                       # 48 frames of vtest.avi
    .venv/bin/python bench/animation.py --frames 12 --size 256 --section animation_quick
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import from_debian_package, start_daemon  # noqa: E402
from bench.results import Results  # noqa: E402
from impasto.cli.frames import video_frames, write_animated  # noqa: E402
from impasto.daemon.motion import temporal_error  # noqa: E402
from impasto.protocol import messages as m  # noqa: E402
from impasto.protocol.client import Client, new_job_id  # noqa: E402


def footage() -> Path:
    """OpenCV's vtest.avi, fetched once."""
    return from_debian_package("opencv-doc", "usr/share/doc/opencv-doc/examples/data/vtest.avi")


def as_array(image: m.Image) -> np.ndarray:
    return np.frombuffer(image.packed(), np.uint8).reshape(image.height, image.width, image.channels)[..., :3].copy()


def as_image(array: np.ndarray) -> m.Image:
    array = np.ascontiguousarray(array)
    return m.Image(array.shape[1], array.shape[0], 3, array.tobytes())


def stylise(endpoint: str, photos: list[np.ndarray], params: m.JobParams,
            coherent: bool) -> tuple[list[np.ndarray], list[float]]:
    results: list[np.ndarray] = []
    seconds = []
    with Client(endpoint) as client:
        for index, photo in enumerate(photos):
            link = {"previous": as_image(photos[index - 1]), "previous_result": as_image(results[-1])} \
                if coherent and index else {}
            submit = m.Submit(new_job_id(), as_image(photo), [m.Style(preset=m.DEFAULT_PRESET)], params, **link)
            started = time.monotonic()
            for reply in client.run_job(submit):
                if reply.type == m.RESULT and reply.image is not None:
                    results.append(as_array(reply.image))
            seconds.append(time.monotonic() - started)
            print(f"  frame {index + 1}/{len(photos)}: {seconds[-1]:.1f} s", file=sys.stderr, flush=True)
    return results, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=m.JobParams().size)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench-animation")
    parser.add_argument("--section", default="animation")
    parser.add_argument("--runs", nargs="+", choices=("coherent", "independent"), default=["coherent", "independent"])
    args = parser.parse_args()
    frames = video_frames(footage())
    photos = [as_array(image) for image in itertools.islice(frames.read(), args.frames)]
    params = m.JobParams(size=args.size, preview_every=0)
    args.out.mkdir(parents=True, exist_ok=True)
    with Results(args.section):
        height, width = photos[0].shape[:2]
        print(f"vtest.avi, first {len(photos)} frames, {width}x{height}; starry_night at the CLI's defaults "
              f"(size {params.size}, iterations {params.iterations}, frame_iterations {params.frame_iterations}, "
              f"detail {params.detail}, temporal_weight {params.temporal_weight:g})\n")
        print("| run | first frame s | later frames s (mean) | temporal error |")
        print("|---|---|---|---|")
        print(f"| photo frames | | | {temporal_error(photos, photos):.2f} |")
        for name in args.runs:
            coherent = name == "coherent"
            folder = Path(tempfile.mkdtemp(prefix="impasto-animation-"))
            daemon, endpoint, _ = start_daemon(folder, "--log-level", "warning")
            try:
                results, seconds = stylise(endpoint, photos, params, coherent)
            finally:
                daemon.terminate()
                daemon.wait(30)
            write_animated(results, frames.durations[: len(results)], args.out / f"{name}.gif")
            print(f"| {name} | {seconds[0]:.1f} | {np.mean(seconds[1:]):.1f} | {temporal_error(results, photos):.2f} |",
                  flush=True)
        print(f"\nGIFs in {args.out}")


if __name__ == "__main__":
    main()
