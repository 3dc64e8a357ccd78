"""The dialog's estimate on a freshly started daemon, against the run it forecasts (#29 item 2:
within ±30% for 0.5, 4 and 15 MP layers at every quality).

    .venv/bin/python bench/first_estimate.py [--megapixels 0.5 4 15] [--qualities draft normal fine]

For each size and quality a new daemon is started (its pace is what its warm-up measured, as
when GIMP's first run starts one), the estimate is asked as the dialog asks it (the plug-in's
settings for that quality, impasto_choices.job_params), then the job runs as the plug-in sends
it (previews evenly in time) on tubingen.jpg enlarged to the size, in van Gogh's style. Printed:
the estimate, the time the job took from sending to its result, and the estimate's error; then
the estimate of a daemon started again on the same folders, which takes in the pace the first
one's job measured (daemon/pace.py), against the same time.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, start_daemon
from PIL import Image
from results import Results

sys.path.insert(0, str(ROOT / "plugin"))
import impasto_choices as choices

from impasto.protocol import messages as m
from impasto.protocol.client import Client, new_job_id

PHOTO = ROOT.parent / "shared" / "images" / "content" / "tubingen.jpg"


def photo(megapixels: float) -> m.Image:
    picture = Image.open(PHOTO).convert("RGB")
    scale = math.sqrt(megapixels * 1e6 / (picture.width * picture.height))
    picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.LANCZOS)
    array = np.ascontiguousarray(np.asarray(picture))
    return m.Image(array.shape[1], array.shape[0], 3, array.tobytes())


def first_run(content: m.Image, quality: str) -> tuple[float, float, float]:
    """On a new daemon: its estimate and the seconds the job took; then the estimate of a daemon
    started again on the same folders (it takes in the pace the first one's job measured)."""
    params = choices.job_params(quality, m.JobParams().strength, 0, 0)
    with tempfile.TemporaryDirectory() as folder:
        before, took = 0.0, 0.0
        for restarted in (False, True):
            daemon, endpoint, _ = start_daemon(Path(folder), "--log-level", "warning")
            try:
                with Client(endpoint, timeout=30) as client:
                    estimate = client.estimate(content.width, content.height, params)["seconds"]
                    if restarted:
                        return before, took, estimate
                    before = estimate
                    sent = dataclasses.replace(params, preview_every=0,
                                               preview_seconds=choices.preview_interval(before))
                    started = time.monotonic()
                    submit = m.Submit(new_job_id(), content, [m.Style(preset="starry_night")], sent)
                    for reply in client.run_job(submit):
                        if reply.type == m.RESULT:
                            took = time.monotonic() - started
            finally:
                daemon.terminate()
                daemon.wait(30)
    raise AssertionError("unreachable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, nargs="+", default=[0.5, 4, 15])
    parser.add_argument("--qualities", nargs="+", default=list(choices.QUALITIES), choices=list(choices.QUALITIES))
    parser.add_argument("--section", default="first_estimate",
                        help="RESULTS.md section to write (a check of some sizes beside the full run)")
    args = parser.parse_args()
    with Results(args.section):
        measure(args)


def measure(args: argparse.Namespace) -> None:
    print("| layer | quality | estimate, first daemon | took | error | estimate, the daemon started again | error |")
    print("|---|---|---|---|---|---|---|")
    for megapixels in args.megapixels:
        content = photo(megapixels)
        for quality in args.qualities:
            before, took, after = first_run(content, quality)
            print(f"| {content.width}x{content.height} | {quality} | {before:.0f} s | {took:.0f} s | "
                  f"{before / took - 1:+.0%} | {after:.0f} s | {after / took - 1:+.0%} |", flush=True)


if __name__ == "__main__":
    main()
