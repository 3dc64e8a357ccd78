"""How true the time left is: for jobs of several sizes on a warm daemon, what the first progress
reading (and later ones) predicted for the whole job, against what it took.

    .venv/bin/python bench/time_left.py --sides 384 768 1280

Each job is tubingen × starry_night at the plug-in's Normal quality (768 px composition, 60
iterations, detail 4), the photo shrunk to the side given. A prediction is `elapsed + eta` at a
reading; its error is prediction / actual - 1 (the issue's goal: within ±30% from the first).
"before" is the daemon's estimate asked before the job, as the plug-in's dialog shows it; a few
more jobs follow, of the kinds estimates once got wrong (EXTRAS).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, start_daemon
from PIL import Image
from results import Results

from impasto.protocol import messages as m
from impasto.protocol.client import Client, new_job_id

PHOTO = ROOT.parent / "shared" / "images" / "content" / "tubingen.jpg"


def photo(side: int) -> m.Image:
    picture = Image.open(PHOTO).convert("RGB")
    picture.thumbnail((side, side))
    array = np.ascontiguousarray(np.asarray(picture))
    return m.Image(array.shape[1], array.shape[0], 3, array.tobytes())


# The plug-in's Normal quality at each side given, then what estimates once got wrong (#27): many
# iterations of a tiny picture, the sliced loss, fp32 where bf16 is the default.
EXTRAS = {"16 px × 2000 its": (16, m.JobParams(size=16, iterations=2000, first_scale=0, detail=0)),
          "384 px sliced": (384, m.JobParams(size=384, style_loss="sliced", detail=0)),
          "384 px fp32": (384, m.JobParams(size=384, precision="fp32", detail=0))}


def run(endpoint: str, content: m.Image, params: m.JobParams) -> tuple[list[tuple[float, float, float]], float, float]:
    """The readings (fraction done, seconds since submit, eta), the total seconds, and the
    daemon's estimate before the job (what the dialog shows before OK)."""
    readings = []
    params = dataclasses.replace(params, preview_every=0)
    with Client(endpoint) as client:
        estimate = client.estimate(content.width, content.height, params)["seconds"]
        started = time.monotonic()
        for reply in client.run_job(m.Submit(new_job_id(), content, [m.Style(preset="starry_night")], params)):
            if reply.type == m.PROGRESS:
                progress = reply.progress
                readings.append((progress.iteration / progress.total, time.monotonic() - started, progress.eta))
    return readings, time.monotonic() - started, estimate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", type=int, nargs="+", default=[384, 768, 1280])
    parser.add_argument("--no-extras", action="store_true", help="only the Normal quality at each side")
    args = parser.parse_args()
    daemon, endpoint, hello = start_daemon(Path(tempfile.mkdtemp(prefix="impasto-eta-")), "--log-level", "warning")
    print(f"daemon on {hello.get('device')}")
    normal = m.JobParams(size=768, iterations=60, detail=4)
    cases = {f"{side} px Normal": (side, normal) for side in args.sides} | ({} if args.no_extras else EXTRAS)
    try:
        for label, (side, params) in cases.items():
            readings, total, estimate = run(endpoint, photo(side), params)
            line = [f"{label:>17}: took {total:6.1f} s; before: {estimate:6.1f} s ({estimate / total - 1:+.0%}); "
                    "predicted"]
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
