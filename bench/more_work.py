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
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch
from defaults import pairs_of
from scores import Scores, load

from daemon.engine import StyleTransfer
from daemon.model import load_vgg19
from protocol.messages import JobParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--factor", type=float, default=2.0, help="the longer run's iterations over the default's")
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
    print(f"{torch.get_num_threads()} threads, {args.size} px, precision {args.precision}; "
          f"{base.iterations} against {longer.iterations} full-size iterations")
    print(f"{'pair':>40} {'its':>4} {'s':>6} {'objective':>9} {'content':>9} {'style':>9} {'normal.':>7}")
    met = []
    for photo_path, painting_path in pairs_of(args.paintings, args.pairs):
        photo, painting = load(photo_path, args.size), load(painting_path)
        score = Scores(model, photo, painting)
        name = f"{photo_path.stem}×{painting_path.stem}"
        runs = []
        for params in (base, longer):
            started = time.monotonic()
            result = engine.run(photo, [(painting, 1.0)], params)
            seconds = time.monotonic() - started
            objective = engine.objective_terms(result, photo, [(painting, 1.0)], params)["total"]
            got = score(result)
            runs.append((objective, got))
            print(f"{name:>40} {params.iterations:4d} {seconds:6.1f} {objective:9.4f} {got['content']:9.3e} "
                  f"{got['style']:9.3e} {got['normalised']:7.4f}", flush=True)
        (before, scores_before), (after, scores_after) = runs
        changes = {key: scores_after[key] / scores_before[key] - 1 for key in ("content", "style", "normalised")}
        ok = after < before and changes["style"] <= 0 and changes["normalised"] <= 0
        met.append(ok)
        print(f"{name:>40} objective {after / before - 1:+.1%}, content {changes['content']:+.1%}, "
              f"style {changes['style']:+.1%}, normalised {changes['normalised']:+.1%}: "
              f"{'met' if ok else 'MISSED'}", flush=True)
    print(f"\nmore work helped on {sum(met)} of {len(met)} pairs")


if __name__ == "__main__":
    main()
