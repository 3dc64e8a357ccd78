"""Settings judged on every photo × painting pair of ../shared/images, by several scores, against
pastiche's converged run: what the engine's defaults are chosen on.

    .venv/bin/python bench/defaults.py --out /tmp/defaults                        # the defaults
    .venv/bin/python bench/defaults.py --settings '{}' '{"strength": 1.0}' '{"iterations": 80}'
    .venv/bin/python bench/defaults.py --cached-only --paintings starry_night the_scream
    .venv/bin/python bench/defaults.py --pairs tubingen:escher_sphere golden_gate:frida_kahlo

For each pair, pastiche (`python -m pastiche`, L-BFGS, its defaults) runs --pastiche-steps at
--size once; its result is cached in --pastiche-cache (it is deterministic: seed 0) and reused.
Each setting then runs in-process on a warmed engine, the photo shrunk to --size (so no detail
scales), the engine's defaults for everything the setting does not name. Per pair and setting it
prints the seconds, Gatys's content and style terms and the normalised style score
(bench/scores.py), each also over pastiche's; then, per setting, the worst ratios and how many
pairs meet #14's target: content ≤ pastiche's, both style scores ≤ pastiche's, in ≤ 60 s. The
contact sheet has a row per pair: the photo, pastiche's result, then each setting's.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from common import ROOT
from compare_pastiche import run_pastiche
from PIL import Image, ImageDraw
from results import Results
from scores import Scores, load

from impasto.daemon.engine import StyleTransfer
from impasto.daemon.model import load_vgg19
from impasto.protocol.messages import JobParams

IMAGES = ROOT.parent / "shared" / "images"
CELL = 192
TARGET_SECONDS = 60.0
SCORES = ("content", "style", "normalised")


def pairs_of(paintings: list[str] | None, named: list[str] | None = None) -> list[tuple[Path, Path]]:
    """Every photo × painting of ../shared/images (only the named paintings, or PHOTO:PAINTING
    pairs, when given)."""
    if named:
        return [(IMAGES / "content" / f"{a}.jpg", IMAGES / "style" / f"{b}.jpg")
                for a, b in (pair.split(":") for pair in named)]
    photos = sorted((IMAGES / "content").glob("*.jpg"))
    styles = [IMAGES / "style" / f"{p}.jpg" for p in paintings] if paintings else \
        sorted((IMAGES / "style").glob("*.jpg"))
    return list(itertools.product(photos, styles))


def pastiche_result(photo: Path, painting: Path, args: argparse.Namespace) -> torch.Tensor | None:
    """pastiche's final picture for the pair, run now unless cached (None with --cached-only)."""
    out = args.pastiche_cache / f"pastiche-{args.size}-{args.pastiche_steps}" / f"{photo.stem}+{painting.stem}"
    if args.cached_only and not (out / "run.json").is_file():
        return None
    run = run_pastiche(photo, painting, args.size, args.pastiche_steps, args.pastiche_steps, out, reuse=True)
    return load(run["frames"][-1][1])


def thumbnail(image: torch.Tensor) -> Image.Image:
    picture = Image.fromarray(image[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy())
    picture.thumbnail((CELL, CELL))
    return picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("defaults-bench"))
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--settings", nargs="+", default=["{}"], help="JSON maps of JobParams fields")
    parser.add_argument("--paintings", nargs="*", help="only these paintings (file stems)")
    parser.add_argument("--pairs", nargs="*", help="only these PHOTO:PAINTING pairs (file stems)")
    parser.add_argument("--pastiche-steps", type=int, default=300)
    parser.add_argument("--pastiche-cache", type=Path, default=Path.home() / ".cache" / "impasto-bench")
    parser.add_argument("--cached-only", action="store_true", help="skip pairs pastiche has not run yet")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = [json.loads(text) for text in args.settings]
    model = load_vgg19()
    engine = StyleTransfer(model)
    engine.warm_up()
    rows: list[dict] = []
    pairs = [(photo, painting, reference) for photo, painting in pairs_of(args.paintings, args.pairs)
             if (reference := pastiche_result(photo, painting, args)) is not None]
    sheet = Image.new("RGB", (CELL * (len(settings) + 2), CELL * len(pairs)), "white")
    draw = ImageDraw.Draw(sheet)
    print(f"{torch.get_num_threads()} threads; {len(pairs)} pairs at {args.size} px; ratios are over pastiche's "
          f"{args.pastiche_steps}-step result", flush=True)
    print(f"{'pair':>38} {'setting':>28} {'s':>5} {'content':>9} {'style':>9} {'normal.':>7}   ratios c/s/n")
    for row, (photo_path, painting_path, reference) in enumerate(pairs):
        photo, painting = load(photo_path, args.size), load(painting_path)
        score = Scores(model, photo, painting)
        goal = score(reference)
        name = f"{photo_path.stem}×{painting_path.stem}"
        print(f"{name:>38} {'pastiche':>28} {'':>5} {goal['content']:9.3e} {goal['style']:9.3e} "
              f"{goal['normalised']:7.4f}", flush=True)
        for column, picture in enumerate((photo, reference)):
            sheet.paste(thumbnail(picture), (column * CELL, row * CELL))
        for column, setting in enumerate(settings, start=2):
            params = dataclasses.replace(JobParams(size=args.size, detail=0, preview_every=0, seed=0), **setting)
            started = time.monotonic()
            result = engine.run(photo, [(painting, 1.0)], params)
            seconds = time.monotonic() - started
            got = score(result)
            ratios = {key: got[key] / goal[key] for key in SCORES}
            rows.append({"pair": name, "setting": json.dumps(setting), "seconds": seconds, **got,
                         **{f"{key}_ratio": value for key, value in ratios.items()}})
            print(f"{name:>38} {json.dumps(setting)[:28]:>28} {seconds:5.1f} {got['content']:9.3e} "
                  f"{got['style']:9.3e} {got['normalised']:7.4f}   "
                  + "/".join(f"{ratios[key]:.2f}" for key in SCORES), flush=True)
            sheet.paste(thumbnail(result), (column * CELL, row * CELL))
            if row == 0:
                draw.text((column * CELL + 3, 3), json.dumps(setting)[:30], fill="white")
    (args.out / "rows.json").write_text(json.dumps(rows, indent=1))
    sheet.save(args.out / "sheet.png")
    summarise(rows, settings)
    print(f"contact sheet: {args.out / 'sheet.png'} (columns: photo, pastiche, then the settings)")


def summarise(rows: list[dict], settings: list[dict]) -> None:
    print(f"\n{'setting':>34} {'worst ratio c/s/n':>18} {'mean ratio c/s/n':>18} {'max s':>6} {'meet':>6}")
    for setting in settings:
        mine = [r for r in rows if r["setting"] == json.dumps(setting)]
        if not mine:
            continue
        worst = "/".join(f"{max(r[f'{k}_ratio'] for r in mine):.2f}" for k in SCORES)
        mean = "/".join(f"{np.mean([r[f'{k}_ratio'] for r in mine]):.2f}" for k in SCORES)
        meet = sum(all(r[f"{k}_ratio"] <= 1 for k in SCORES) and r["seconds"] <= TARGET_SECONDS for r in mine)
        print(f"{json.dumps(setting)[:34]:>34} {worst:>18} {mean:>18} {max(r['seconds'] for r in mine):6.1f} "
              f"{meet:>3}/{len(mine)}")


if __name__ == "__main__":
    with Results("defaults"):
        main()
