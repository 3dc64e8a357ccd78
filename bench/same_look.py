"""Does one strength give one look at every size and with every amount of work?

    .venv/bin/python bench/same_look.py --out /tmp/look
    .venv/bin/python bench/same_look.py --variants 256:60 384:60 512:60 384:40 384:100 --pairs tubingen:the_scream

A variant is SIZE:ITERATIONS[:FIRST_SCALE], the long side the picture is composed at, the
iterations there and the long side of its first scale (the default's when left out). For each pair,
variant and strength the engine paints the photo shrunk to SIZE (no detail scales, the defaults
otherwise). Every result is then shrunk to the first variant's size, the reference, and measured
there: its mean |difference| from the photo in 0..255 levels (how far the painting has gone) and
the normalised style score (bench/scores.py). "as strength" is the strength that would go as far
at the reference, read off the reference's own curve (linear between its strengths, 0 being the
photo): one look means it stays near the strength asked for, well within the 0.25 between the
slider's steps. The contact sheet has a row per pair and variant, a column per strength.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import ROOT
from PIL import Image, ImageDraw
from results import Results
from scores import Scores, load
from strength import to_array

from impasto.daemon.engine import StyleTransfer
from impasto.daemon.model import load_vgg19
from impasto.protocol.messages import JobParams

IMAGES = ROOT.parent / "shared" / "images"
PAIRS = ("golden_gate:the_scream", "hoovertowernight:shipwreck", "tubingen:starry_night",
         "tubingen:woman-with-hat-matisse")
CELL = 128


def shrunk(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`image` (1, 3, H, W in 0..1) at `size` (H, W), Lanczos on its 8-bit pixels as a user sees them."""
    picture = Image.fromarray(to_array(image)).resize(size[::-1], Image.LANCZOS)
    return torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1)[None].float() / 255


def as_strength(distance: float, strengths: list[float], distances: list[float]) -> float:
    """The strength whose result lies `distance` from the photo on the reference's curve (made
    non-decreasing first: a strength that went less far than a weaker one counts as far)."""
    curve = np.maximum.accumulate([0.0, *distances])
    return float(np.interp(distance, curve, [0.0, *strengths]))


Variant = tuple[int, int, int]  # size, iterations, first scale


def variant(text: str) -> Variant:
    """SIZE:ITERATIONS[:FIRST_SCALE], the default first scale when it is left out."""
    size, iterations, *first = (int(part) for part in text.split(":"))
    return size, iterations, first[0] if first else JobParams().first_scale


def painted(engine: StyleTransfer, photo: torch.Tensor, painting: torch.Tensor, params: JobParams,
            saved: Path | None) -> torch.Tensor:
    """The engine's result, or the one `saved` holds from an earlier run of the same engine."""
    if saved is not None and saved.exists():
        return load(saved)
    result = engine.run(photo, [(painting, 1.0)], params)
    if saved is not None:
        Image.fromarray(to_array(result)).save(saved)
    return result


def one_pair(engine: StyleTransfer, pair: str, variants: list[Variant], strengths: list[float],
             sheet: Image.Image, first_row: int, keep: Path | None) -> dict[str, float]:
    """Paint one pair in every variant and strength, print each, draw its rows; returns each
    variant's largest |as strength − strength|."""
    photo_name, painting_name = pair.split(":")
    painting = load(IMAGES / "style" / f"{painting_name}.jpg")
    reference_photo = load(IMAGES / "content" / f"{photo_name}.jpg", variants[0][0])
    score = Scores(engine.model, reference_photo, painting)
    reference: list[float] = []  # the first variant's distances from the photo
    worst: dict[str, float] = {}
    for row, (size, iterations, first_scale) in enumerate(variants, start=first_row):
        photo = load(IMAGES / "content" / f"{photo_name}.jpg", size)
        key = f"{size}:{iterations}:{first_scale}"
        ImageDraw.Draw(sheet).text((3, row * CELL + 3), f"{photo_name[:10]} x {painting_name[:10]}\n{size} px, "
                                   f"{iterations} its\nfirst {first_scale}", fill="black")
        for column, strength in enumerate(strengths, start=1):
            params = JobParams(size=size, iterations=iterations, strength=strength, detail=0, preview_every=0, seed=0,
                               first_scale=first_scale)
            started = time.monotonic()
            saved = keep / f"{pair.replace(':', '-')}-{key.replace(':', '-')}-{strength}.png" if keep else None
            result = shrunk(painted(engine, photo, painting, params, saved), tuple(reference_photo.shape[-2:]))
            seconds = time.monotonic() - started
            distance = float((result - reference_photo).abs().mean()) * 255
            if row == first_row:
                reference.append(distance)
            seen = as_strength(distance, strengths, reference) if row > first_row else strength
            worst[key] = max(worst.get(key, 0.0), abs(seen - strength))
            print(f"{pair:>34} {key:>8} {strength:8.2f} {seconds:6.1f} {distance:10.1f} {seen:11.2f} "
                  f"{score(result)['normalised']:10.4f}", flush=True)
            cell = Image.fromarray(to_array(result))
            cell.thumbnail((CELL, CELL))
            sheet.paste(cell, (column * CELL, row * CELL))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("same-look-bench"))
    parser.add_argument("--variants", nargs="+", default=["256:60", "384:60", "512:60", "256:40", "256:100"])
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), help="PHOTO:PAINTING file stems")
    parser.add_argument("--keep", action="store_true", help="keep each result in OUT/results and reuse the ones "
                        "there (only while the engine is unchanged)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    keep = args.out / "results" if args.keep else None
    if keep:
        keep.mkdir(exist_ok=True)
    variants = [variant(text) for text in args.variants]
    engine = StyleTransfer(load_vgg19())
    engine.warm_up()
    sheet = Image.new("RGB", (CELL * (len(args.strengths) + 1), CELL * len(args.pairs) * len(variants)), "white")
    print(f"{'pair':>34} {'variant':>8} {'strength':>8} {'s':>6} {'from photo':>10} {'as strength':>11} "
          f"{'normalised':>10}", flush=True)
    worst: dict[str, float] = {}
    for index, pair in enumerate(args.pairs):
        for key, value in one_pair(engine, pair, variants, args.strengths, sheet, index * len(variants),
                                   keep).items():
            worst[key] = max(worst.get(key, 0.0), value)
    sheet.save(args.out / "sheet.png")
    print("\nworst |as strength − strength| per variant: "
          + ", ".join(f"{key} {value:.2f}" for key, value in worst.items()))
    print(f"contact sheet: {args.out / 'sheet.png'}")


if __name__ == "__main__":
    with Results("same_look"):
        main()
