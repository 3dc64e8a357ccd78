"""A contact sheet of the built-in paintings on the photos of ../shared/images/content.

    .venv/bin/python bench/presets_sheet.py --out /tmp/presets --strengths 0.3 0.5 0.7

Each row is a photo, each column a preset at a strength; the preset's own recommended settings
apply otherwise, through a real daemon and client. The sheet is what the presets' recommended
settings (daemon/presets.py) were chosen from, by eye. Prints each job's time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, start_daemon
from PIL import Image, ImageDraw
from results import Results

from impasto.daemon.presets import BUILT_IN
from impasto.protocol import messages as m
from impasto.protocol.client import Client, new_job_id

PHOTOS = ROOT.parent / "shared" / "images" / "content"
CELL = 256


def stylise(endpoint: str, photo: Image.Image, preset: str, params: m.JobParams) -> Image.Image:
    array = np.ascontiguousarray(np.asarray(photo.convert("RGB")))
    content = m.Image(array.shape[1], array.shape[0], 3, array.tobytes())
    with Client(endpoint) as client:
        for reply in client.run_job(m.Submit(new_job_id(), content, [m.Style(preset=preset)], params)):
            if reply.type == m.RESULT:
                data = np.frombuffer(reply.image.packed(), np.uint8)
                return Image.fromarray(data.reshape(reply.image.height, reply.image.width, -1)[..., :3])
    raise RuntimeError("the job ended without a result")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("presets-sheet"))
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.5])
    parser.add_argument("--presets", nargs="+", default=[n for n, p in BUILT_IN.items() if p.params])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    photos = sorted(PHOTOS.glob("*.jpg"))
    columns = [(preset, strength) for preset in args.presets for strength in args.strengths]
    sheet = Image.new("RGB", (CELL * (len(columns) + 1), CELL * len(photos) + 20), "white")
    draw = ImageDraw.Draw(sheet)
    for column, (preset, strength) in enumerate(columns, start=1):
        draw.text((column * CELL + 4, 4), f"{preset} {strength:g}", fill="black")
    daemon, endpoint, _ = start_daemon(Path(tempfile.mkdtemp(prefix="impasto-sheet-")), "--log-level", "warning")
    try:
        for row, path in enumerate(photos):
            photo = Image.open(path).convert("RGB")
            photo.thumbnail((args.size, args.size))
            cell = photo.copy()
            cell.thumbnail((CELL, CELL))
            sheet.paste(cell, (0, 20 + row * CELL))
            for column, (preset, strength) in enumerate(columns, start=1):
                params = m.JobParams.from_wire({**BUILT_IN[preset].params, "size": args.size, "detail": 0,
                                                "strength": strength})
                started = time.monotonic()
                result = stylise(endpoint, photo, preset, params)
                print(f"{path.stem:>18} {preset:>15} strength {strength:g}: {time.monotonic() - started:5.1f} s",
                      flush=True)
                result.save(args.out / f"{path.stem}-{preset}-{strength:g}.png")
                result.thumbnail((CELL, CELL))
                sheet.paste(result, (column * CELL, 20 + row * CELL))
    finally:
        daemon.terminate()
        daemon.wait(30)
    sheet.save(args.out / "sheet.png")
    print(f"contact sheet: {args.out / 'sheet.png'}")


if __name__ == "__main__":
    with Results("presets_sheet"):
        main()
