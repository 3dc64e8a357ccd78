"""A picture far larger than memory allows whole (4000×3000 by default), through a daemon of its own.

The daemon runs with `--memory-limit` (GiB a job may add), so the largest scales run in tiles.
Prints the plan (tiles per scale, predicted peak), the daemon's real peak memory (VmHWM, the
whole process: model and Python included), the time per scale, and seconds per megapixel per
iteration at the full size against a picture of up to 1 megapixel run whole, to show that the cost
grows linearly with the pixels.

../shared/images holds no 12-megapixel photo, so tubingen.jpg is enlarged to the size asked.

    .venv/bin/python bench/large_image.py                          # 4000×3000, 7 GiB for the job
    .venv/bin/python bench/large_image.py --width 2000 --height 1500 --memory-limit 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import peak_rss_gib, start_daemon  # noqa: E402
from bench.results import Results  # noqa: E402
from impasto.daemon import memory, tiles  # noqa: E402
from impasto.protocol import messages as m  # noqa: E402
from impasto.protocol.client import Client, new_job_id  # noqa: E402

SHARED = ROOT.parent / "shared" / "images"


def picture(path: Path, width: int, height: int) -> m.Image:
    array = np.asarray(PILImage.open(path).convert("RGB").resize((width, height), PILImage.BICUBIC))
    return m.Image(width, height, 3, np.ascontiguousarray(array).tobytes())


def run(client: Client, content: m.Image, style: m.Image, params: m.JobParams, out: Path | None) -> dict:
    """One job; per scale: size and the seconds from its first to its last iteration's report."""
    submit = m.Submit(new_job_id(), content, [m.Style(image=style)], params)
    started = time.monotonic()
    scales: dict[int, dict] = {}
    for reply in client.run_job(submit):
        if reply.type == m.PROGRESS:
            h = reply.header
            scale = scales.setdefault(h["scale"], {"size": (h["width"], h["height"]), "first": h["elapsed"],
                                                   "iterations": 0})
            scale["last"] = h["elapsed"]
            scale["iterations"] += 1
        elif reply.type == m.RESULT and out is not None:
            rgb = np.frombuffer(reply.image.packed(), np.uint8).reshape(reply.image.height, reply.image.width, 3)
            PILImage.fromarray(rgb).save(out)
    return {"seconds": time.monotonic() - started, "scales": scales}


def per_megapixel_iteration(scale: dict) -> float:
    """Seconds per megapixel per iteration, from the iterations after the scale's first."""
    width, height = scale["size"]
    return (scale["last"] - scale["first"]) / max(1, scale["iterations"] - 1) / (width * height / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--memory-limit", type=float, default=7.0, help="GiB a job may add (the daemon's option)")
    parser.add_argument("--iterations", type=int, default=2, help="per scale")
    parser.add_argument("--content", type=Path, default=SHARED / "content" / "tubingen.jpg")
    parser.add_argument("--style", type=Path, default=SHARED / "style" / "starry_night.jpg")
    parser.add_argument("--out", type=Path, help="save the result here")
    args = parser.parse_args()
    if not args.content.is_file() or not args.style.is_file():
        sys.exit(f"missing {args.content} or {args.style} (../shared/images holds the defaults)")

    content = picture(args.content, args.width, args.height)
    style_file = PILImage.open(args.style)
    style = picture(args.style, *style_file.size)
    # Adam throughout, as tiled scales always run it, so the whole reference compares like for like.
    params = m.JobParams(size=max(args.width, args.height), iterations=args.iterations,
                         coarse_iterations=args.iterations, optimizer="adam", preview_every=0)
    limit = int(args.memory_limit * 2**30)
    plan = memory.memory_plan(args.width, args.height, params, torch.device("cpu"), limit)
    print(f"{args.content.name} enlarged to {args.width}x{args.height} × {args.style.name}; job limit "
          f"{args.memory_limit:g} GiB; crops of at most {plan.max_crop_pixels / 1e6:.2f} MP; predicted job peak "
          f"{plan.peak_bytes / 2**30:.2f} GiB", flush=True)

    folder = Path(tempfile.mkdtemp(prefix="impasto-large-bench-"))
    daemon, endpoint, hello = start_daemon(folder, "--log-level", "warning", "--memory-limit", str(args.memory_limit))
    try:
        baseline = peak_rss_gib(daemon.pid)
        with Client(endpoint, timeout=m.PEER_TIMEOUT_S) as client:
            # The reference: the largest 4:3 picture up to 1 MP that this limit lets run whole.
            side = min(1152, int((plan.max_crop_pixels * 4 / 3) ** 0.5) // 16 * 16)
            reference = run(client, picture(args.content, side, side * 3 // 4), style,
                            m.JobParams(size=side, iterations=3, first_scale=0, optimizer="adam", preview_every=0),
                            None)
            whole_rate = per_megapixel_iteration(reference["scales"][1])
            print(f"reference: {side}x{side * 3 // 4} whole, {whole_rate:.2f} s per MP per iteration", flush=True)
            large = run(client, content, style, params, args.out)
        peak = peak_rss_gib(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(30)

    print(f"\n{'scale':>5} {'size':>11} {'tiles':>6} {'done at':>8} {'s/MP/iter':>10}")
    for index, scale in sorted(large["scales"].items()):
        width, height = scale["size"]
        counts = tiles.counts_for(width, height, plan.max_crop_pixels)
        rate = per_megapixel_iteration(scale) if scale["iterations"] > 1 else float("nan")
        print(f"{index:>5} {width:>5}x{height:<5} {counts[0] * counts[1]:>6} {scale['last']:>8.0f} {rate:>10.2f}")
    full = large["scales"][max(large["scales"])]
    print(f"\ndevice {hello['device']}; total {large['seconds']:.0f} s; daemon peak RSS {peak:.2f} GiB "
          f"(idle after start-up {baseline:.2f} GiB)")
    print(f"full size: {per_megapixel_iteration(full):.2f} s per MP per iteration, tiled, against {whole_rate:.2f} "
          f"whole ({per_megapixel_iteration(full) / whole_rate:.2f}×)")


if __name__ == "__main__":
    with Results("large_image"):
        main()
