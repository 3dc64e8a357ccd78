"""Does more work help? #14's iteration target on every photo × painting pair of ../shared/images.

    .venv/bin/python bench/more_work.py                                    # 60 against 120
    .venv/bin/python bench/more_work.py --pairs hoovertowernight:the_scream --factor 4
    .venv/bin/python bench/more_work.py --precision fp32 --settings '{"strength": 1.0}'

For each pair the engine's defaults (with --settings over them) run at their full-size iterations
and at --factor times as many, in-process on a warmed engine, the photo shrunk to --size (no
detail scales). Per pair it prints, for both runs, the job's own objective (the terms it
minimises, evaluated in fp32 at the working size: StyleTransfer.objective_terms), Gatys's
content and style scores and the normalised style score (bench/scores.py), then whether the
longer run lowered the objective and left neither style score worse. The target: all of that on
every pair.

A single run's scores move with the rounding (the optimiser's path follows the order of its
floating-point sums): hoovertowernight × starry_night at 60 iterations, bf16, scored Gatys's
style 7.16e8 with style weight 89, 7.47e8 with 88.9 and 7.36e8 with 89.1, a 4% spread from a
0.1% nudge; at 120 iterations 7.23-7.28e8. With --runs K each side runs K times, the style weight
nudged by NUDGE steps around its value, and the verdict compares the runs' means.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch
from defaults import pairs_of
from results import Results
from scores import Scores, load

from impasto.daemon.engine import StyleTransfer
from impasto.daemon.model import load_vgg19
from impasto.protocol.messages import JobParams

NUDGE = 1e-3  # each further run's style weight is this much (relative) further from the setting's
SCORED = ("objective", "content", "style", "normalised")


def nudged(params: JobParams, runs: int) -> list[JobParams]:
    """`runs` settings whose style weights are NUDGE steps around `params`' (itself for one run)."""
    return [dataclasses.replace(params, style_weight=params.style_weight * (1 + NUDGE * (k - (runs - 1) / 2)))
            for k in range(runs)]


def mean_scores(engine: StyleTransfer, score: Scores, photo: torch.Tensor, painting: torch.Tensor,
                params: JobParams, runs: int, name: str) -> dict[str, float]:
    """The job's objective and the three scores of each nudged run, printed; returns their means."""
    rows = []
    for nudge in nudged(params, runs):
        started = time.monotonic()
        result = engine.run(photo, [(painting, 1.0)], nudge)
        seconds = time.monotonic() - started
        # Every run is judged by the un-nudged setting's objective, so the means compare like with like.
        got = {"objective": engine.objective_terms(result, photo, [(painting, 1.0)], params)["total"],
               **score(result)}
        rows.append(got)
        print(f"{name:>40} {nudge.iterations:4d} {nudge.style_weight:8.3f} {seconds:6.1f} {got['objective']:9.4f} "
              f"{got['content']:9.3e} {got['style']:9.3e} {got['normalised']:7.4f}", flush=True)
    return {key: sum(row[key] for row in rows) / runs for key in SCORED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--factor", type=float, default=2.0, help="the longer run's iterations over the default's")
    parser.add_argument("--runs", type=int, default=1, help="runs a side, the style weight nudged (see NUDGE)")
    parser.add_argument("--settings", default="{}", help="a JSON map of JobParams fields over the defaults")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--paintings", nargs="*", help="only these paintings (file stems)")
    parser.add_argument("--pairs", nargs="*", help="only these PHOTO:PAINTING pairs (file stems)")
    args = parser.parse_args()
    model = load_vgg19()
    engine = StyleTransfer(model)
    engine.warm_up()
    base = dataclasses.replace(JobParams(size=args.size, detail=0, preview_every=0, seed=0,
                                         precision=args.precision), **json.loads(args.settings))
    longer = dataclasses.replace(base, iterations=round(base.iterations * args.factor))
    print(f"{torch.get_num_threads()} threads, {args.size} px, precision {args.precision}, {args.runs} run(s) a "
          f"side; {base.iterations} against {longer.iterations} full-size iterations")
    print(f"{'pair':>40} {'its':>4} {'style w.':>8} {'s':>6} {'objective':>9} {'content':>9} {'style':>9} "
          f"{'normal.':>7}")
    met = []
    for photo_path, painting_path in pairs_of(args.paintings, args.pairs):
        photo, painting = load(photo_path, args.size), load(painting_path)
        score = Scores(model, photo, painting)
        name = f"{photo_path.stem}×{painting_path.stem}"
        before, after = (mean_scores(engine, score, photo, painting, params, args.runs, name)
                         for params in (base, longer))
        change = {key: after[key] / before[key] - 1 for key in SCORED}
        ok = change["objective"] < 0 and change["style"] <= 0 and change["normalised"] <= 0
        met.append(ok)
        print(f"{name:>40} {'means: ' if args.runs > 1 else ''}"
              + ", ".join(f"{key} {change[key]:+.1%}" for key in SCORED) + f": {'met' if ok else 'MISSED'}",
              flush=True)
    print(f"\nmore work helped on {sum(met)} of {len(met)} pairs")


if __name__ == "__main__":
    with Results("more_work"):
        main()
