"""Does a selection look like that part of a whole-layer run? (#29 item 4)

    .venv/bin/python bench/selection_look.py --out /tmp/selection

On a real photo (../shared/images/content/tubingen.jpg at --side px) in van Gogh's style, the
plug-in's way: the whole layer run at the plug-in's Draft, then two selections (a dark corner, the
sky), each sent with 15% context and painted two ways: alone (its own statistics, with only
`layer_size`, as before) and cut from the whole's composition (sent with the layer reduced to
the working size). Printed for each: mean luma in 0..255 of the photo, the whole run and the two
parts inside the selection, the mean colour difference from the whole run's region at a quarter
size (composition and colour, not strokes), and seconds. Side by side crops (whole run | part)
go to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from common import ROOT
from PIL import Image
from results import Results
from scores import load

from impasto.daemon.engine import StyleTransfer
from impasto.daemon.imaging import composed_size, resize
from impasto.daemon.model import load_vgg19
from impasto.protocol.messages import JobParams

PHOTO = ROOT.parent / "shared" / "images" / "content" / "tubingen.jpg"
PAINTING = ROOT / "daemon" / "paintings" / "starry_night.jpg"
CONTEXT = 0.15  # as the plug-in sends (impasto_choices.CONTEXT_FRACTION)


def luma(picture: torch.Tensor) -> float:
    return float((picture * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1).mean() * 255)


def colour_off(picture: torch.Tensor, reference: torch.Tensor) -> float:
    h, w = reference.shape[-2:]
    return float((resize(picture, w // 4, h // 4) - resize(reference, w // 4, h // 4)).abs().mean() * 255)


def save(pictures: list[torch.Tensor], path: Path) -> None:
    row = torch.cat(pictures, -1)[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(np.ascontiguousarray(row)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1024, help="the photo's long side")
    parser.add_argument("--out", type=Path, default=Path("/tmp/selection"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    photo, painting = load(PHOTO, args.side), load(PAINTING, 512)
    height, width = photo.shape[-2:]
    engine = StyleTransfer(load_vgg19())
    params = JobParams(detail=2, seed=3, preview_every=0)  # the plug-in's Draft
    boxes = {"dark corner": (width * 6 // 100, height // 2, width * 30 // 100, height * 26 // 100),
             "sky": (width // 2, height * 3 // 100, width * 30 // 100, height // 5)}
    with Results("selection_look"):
        print(f"{PHOTO.name} at {width}x{height}, starry_night, Draft (detail {params.detail}), "
              f"precision {params.precision}")
        started = time.monotonic()
        whole = engine.run(photo, [(painting, 1.0)], params)
        print(f"whole layer: {time.monotonic() - started:.0f} s")
        reduced = resize(photo, *composed_size(width, height, params.size))  # as the plug-in reads it
        print("| selection | photo luma | whole run luma | alone: luma, colour off, s | cut from the whole: luma, "
              "colour off, s |")
        print("|---|---|---|---|---|")
        for name, (x, y, w, h) in boxes.items():
            pad = int(max(w, h) * CONTEXT)
            x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(width, x + w + pad), min(height, y + h + pad)
            part, inside = photo[..., y0:y1, x0:x1], (slice(y - y0, y - y0 + h), slice(x - x0, x - x0 + w))
            region = whole[..., y:y + h, x:x + w]
            row = [name, f"{luma(photo[..., y:y + h, x:x + w]):.0f}", f"{luma(region):.0f}"]
            crops = [region]
            for whole_given in (False, True):
                settings = dataclasses.replace(params, layer_size=max(width, height), part_x=x0, part_y=y0)
                started = time.monotonic()
                result = engine.run(part, [(painting, 1.0)], settings, whole=reduced if whole_given else None)
                seconds = time.monotonic() - started
                painted = result[..., inside[0], inside[1]]
                crops.append(painted)
                row.append(f"{luma(painted):.0f}, {colour_off(painted, region):.1f}, {seconds:.0f}")
            print("| " + " | ".join(row) + " |")
            save(crops, args.out / f"{name.replace(' ', '-')}.png")
        print(f"crops (whole run | alone | cut from the whole) in {args.out}")


if __name__ == "__main__":
    main()
