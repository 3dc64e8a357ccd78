"""How true the time left is: for jobs of several sizes on a warm daemon, what the first progress
reading (and later ones) predicted for the whole job, against what it took.

    .venv/bin/python bench/time_left.py --sides 384 768 1280

Each job is tubingen × starry_night at the plug-in's Normal quality (768 px composition, 60
iterations, detail 4), the photo shrunk to the side given. A prediction is `elapsed + eta` at a
reading; its error is prediction / actual - 1 (the issue's goal: within ±30% from the first).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, start_daemon
from PIL import Image
from results import Results

from protocol import messages as m
from protocol.client import Client, new_job_id

PHOTO = ROOT.parent / "shared" / "images" / "content" / "tubingen.jpg"


def run(endpoint: str, side: int) -> tuple[list[tuple[float, float, float]], float]:
    """The readings (fraction done, seconds since submit, eta) and the total seconds."""
    photo = Image.open(PHOTO).convert("RGB")
    photo.thumbnail((side, side))
    array = np.ascontiguousarray(np.asarray(photo))
    content = m.Image(array.shape[1], array.shape[0], 3, array.tobytes())
    params = m.JobParams(size=768, iterations=60, detail=4, preview_every=0)
    readings = []
    started = time.monotonic()
    with Client(endpoint) as client:
        for reply in client.run_job(m.Submit(new_job_id(), content, [m.Style(preset="starry_night")], params)):
            if reply.type == m.PROGRESS:
                progress = reply.progress
                readings.append((progress.iteration / progress.total, time.monotonic() - started, progress.eta))
    return readings, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", type=int, nargs="+", default=[384, 768, 1280])
    args = parser.parse_args()
    daemon, endpoint, hello = start_daemon(Path(tempfile.mkdtemp(prefix="impasto-eta-")), "--log-level", "warning")
    print(f"daemon on {hello.get('device')}")
    try:
        for side in args.sides:
            readings, total = run(endpoint, side)
            line = [f"{side:>5} px: took {total:6.1f} s; predicted"]
            for share in (0.0, 0.1, 0.25, 0.5):
                done, elapsed, eta = next(r for r in readings if r[0] >= share)
                line.append(f"at {done:4.0%}: {elapsed + eta:6.1f} s ({(elapsed + eta) / total - 1:+.0%})")
            print(", ".join(line), flush=True)
    finally:
        daemon.terminate()
        daemon.wait(30)


if __name__ == "__main__":
    with Results("time_left"):
        main()
