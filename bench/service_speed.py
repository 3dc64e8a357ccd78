"""Figures for the service: model load time, warm submit → first preview, seconds per iteration.

Starts its own daemon on a private endpoint, so it measures a cold start too, then submits
through the real client. Prints a table; asserts nothing (this is not a test).

    .venv/bin/python bench/service_speed.py [--sizes 256 512] [--iterations 10]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import start_daemon  # noqa: E402
from bench.results import Results  # noqa: E402
from impasto.daemon import artwork  # noqa: E402
from impasto.protocol import messages as m  # noqa: E402
from impasto.protocol.client import Client, new_job_id  # noqa: E402

SHARED = ROOT.parent / "shared" / "images"


def pictures(size: int) -> tuple[m.Image, m.Image, str]:
    if SHARED.is_dir():
        content = PILImage.open(SHARED / "content" / "tubingen.jpg")
        style = PILImage.open(SHARED / "style" / "starry_night.jpg")
        label = "tubingen × starry_night"
    else:
        content, style, label = artwork.landscape(1024, 768), artwork.swirls(512), "drawn landscape × swirls"
    content = content.convert("RGB")
    content.thumbnail((size, size))
    style = style.convert("RGB")
    return to_image(content), to_image(style), label


def to_image(picture: PILImage.Image) -> m.Image:
    array = np.ascontiguousarray(np.asarray(picture))
    return m.Image(array.shape[1], array.shape[0], 3, array.tobytes())


def run(client: Client, size: int, iterations: int, optimizer: str, preview_every: int = 1,
        first_scale: int = 0) -> dict[str, float]:
    """One job; s/iter is measured at one scale unless `first_scale` asks for several."""
    content, style, _ = pictures(size)
    params = m.JobParams(size=size, iterations=iterations, optimizer=optimizer, preview_every=preview_every,
                         first_scale=first_scale)
    submit = m.Submit(new_job_id(), content, [m.Style(image=style)], params)
    started = time.monotonic()
    first_preview = None
    progress_times = []
    for reply in client.run_job(submit):
        now = time.monotonic()
        if reply.type == m.PREVIEW and first_preview is None:
            first_preview = now - started
        elif reply.type == m.PROGRESS:
            progress_times.append((reply.header["iteration"], reply.header["elapsed"]))
    (i0, t0), (i1, t1) = progress_times[0], progress_times[-1]
    return {"first_preview": first_preview, "per_iteration": (t1 - t0) / (i1 - i0), "total": time.monotonic() - started}


def first_default_preview(client: Client) -> float:
    """Submit → first preview for a job left at the defaults (its previews' cadence included).

    Only the first preview is waited for; the daemon is stopped after this, job and all.
    """
    content, style, _ = pictures(384)
    submit = m.Submit(new_job_id(), content, [m.Style(image=style)], m.JobParams(size=384))
    started = time.monotonic()
    for reply in client.run_job(submit):
        if reply.type == m.PREVIEW:
            return time.monotonic() - started
    raise RuntimeError("the job sent no preview")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam"])
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="impasto-bench-"))
    started = time.monotonic()
    daemon, endpoint, hello = start_daemon(folder)
    try:
        ready = time.monotonic() - started
        load = re.search(r"loaded on .* in ([\d.]+) s", (folder / "daemon.log").read_text())
        print(f"device: {hello['device']}; pictures: {pictures(64)[2]}")
        print(f"daemon start to ready: {ready:.2f} s (VGG19 load {load.group(1) if load else '?'} s)")
        print(f"{'size':>5} {'optimizer':>9} {'s/iter':>8} {'1st preview, 1 scale':>21} "
              f"{'1st preview, from 128 px':>25}")
        with Client(endpoint) as client:
            run(client, 64, 2, "adam")  # warm-up: first-call allocations
            for size in args.sizes:
                for optimizer in args.optimizers:
                    figures = run(client, size, args.iterations, optimizer)
                    scaled = run(client, size, args.iterations, optimizer, first_scale=128)
                    print(f"{size:>5} {optimizer:>9} {figures['per_iteration']:>8.3f} "
                          f"{figures['first_preview']:>20.2f}s {scaled['first_preview']:>24.2f}s", flush=True)
            # What previews cost the loop: the same job with none, and with one every iteration.
            size = max(args.sizes)
            without = run(client, size, args.iterations, "adam", preview_every=0)["per_iteration"]
            every = run(client, size, args.iterations, "adam", preview_every=1)["per_iteration"]
            print(f"previews at {size} px, adam: {without:.3f} s/iter without, {every:.3f} with one every "
                  f"iteration ({(every / without - 1) * 100:+.1f}%)")
            print(f"first preview of a job with the default settings at 384 px: {first_default_preview(client):.2f} s")
    finally:
        daemon.terminate()
        daemon.wait(15)


if __name__ == "__main__":
    with Results("service_speed"):
        main()
