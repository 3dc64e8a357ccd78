"""What the strength slider does, on every photo × painting pair of ../shared/images.

    .venv/bin/python bench/strength.py --out /tmp/strength                 # strengths 0 .. 1
    .venv/bin/python bench/strength.py --out /tmp/gains --gains 1e-5 1e-3 1e-1 1 10

For each pair and strength (or, with --gains, each multiplier of the style weight at strength
0.5, the raw curve the strength is calibrated on) it prints Gatys et al.'s content and style
terms of the result (bench/scores.py), the mean |difference| from the
photo in 0..255 levels, and the mean |difference| between neighbouring strengths, and draws a
contact sheet (rows: pairs; columns: strengths). In-process on the engine, at --size (256 px by
default), the engine's defaults otherwise, no detail scales.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from pathlib import Path

import numpy as np
import torch
from common import ROOT
from PIL import Image, ImageDraw
from results import Results
from scores import GatysScore, load

from impasto.daemon.engine import StyleTransfer
from impasto.daemon.model import load_vgg19
from impasto.protocol.messages import JobParams

IMAGES = ROOT.parent / "shared" / "images"
PAINTINGS = ("starry_night", "the_scream", "shipwreck", "woman-with-hat-matisse")
CELL = 160


def to_array(image: torch.Tensor) -> np.ndarray:
    return image[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("strength-bench"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--gains", type=float, nargs="*", help="sweep the style weight's multiplier instead")
    parser.add_argument("--paintings", nargs="+", default=list(PAINTINGS))
    parser.add_argument("--pairs", nargs="*", help="only these PHOTO:PAINTING pairs (file stems)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_vgg19()
    engine = StyleTransfer(model)
    base = JobParams()
    settings = [("gain", g) for g in args.gains] if args.gains else [("strength", s) for s in args.strengths]
    photos = sorted((IMAGES / "content").glob("*.jpg"))
    pairs = list(itertools.product(photos, [IMAGES / "style" / f"{p}.jpg" for p in args.paintings]))
    if args.pairs:
        pairs = [(IMAGES / "content" / f"{a}.jpg", IMAGES / "style" / f"{b}.jpg")
                 for a, b in (pair.split(":") for pair in args.pairs)]
    sheet = Image.new("RGB", (CELL * (len(settings) + 1), CELL * len(pairs)), "white")
    draw = ImageDraw.Draw(sheet)
    print(f"{'pair':>36} {'setting':>13} {'content':>10} {'style':>10} {'from photo':>10} {'step':>6} {'s':>5}")
    for row, (photo_path, painting_path) in enumerate(pairs):
        photo, painting = load(photo_path, args.size), load(painting_path)
        score = GatysScore(model, photo, painting)
        photo_array = to_array(photo).astype(np.float32)
        cell = Image.fromarray(to_array(photo))
        cell.thumbnail((CELL, CELL))
        sheet.paste(cell, (0, row * CELL))
        previous = None
        for column, (kind, value) in enumerate(settings, start=1):
            params = JobParams(size=args.size, detail=0, preview_every=0, seed=0)
            params = dataclasses.replace(params, **({"style_weight": base.style_weight * value} if kind == "gain"
                                                    else {"strength": value}))
            started = time.monotonic()
            result = engine.run(photo, [(painting, 1.0)], params)
            seconds = time.monotonic() - started
            content_term, style_term = score(result)
            array = to_array(result).astype(np.float32)
            from_photo = float(np.abs(array - photo_array).mean())
            step = float(np.abs(array - previous).mean()) if previous is not None else float("nan")
            previous = array
            name = f"{photo_path.stem}×{painting_path.stem}"
            print(f"{name:>36} {kind} {value:<8g} {content_term:10.3e} {style_term:10.3e} {from_photo:10.1f} "
                  f"{step:6.1f} {seconds:5.1f}", flush=True)
            picture = Image.fromarray(to_array(result))
            picture.thumbnail((CELL, CELL))
            sheet.paste(picture, (column * CELL, row * CELL))
            if row == 0:
                draw.text((column * CELL + 3, 3), f"{kind} {value:g}", fill="white")
    sheet.save(args.out / "sheet.png")
    print(f"contact sheet: {args.out / 'sheet.png'}")


if __name__ == "__main__":
    with Results("strength"):
        main()
