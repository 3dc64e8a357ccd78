"""How soon the dialog's preview comes (#29: within 5 s of opening the dialog, warm daemon).

    .venv/bin/python bench/preview_speed.py

Starts its own daemon, then sends the preview's job as the plug-in does (impasto_choices.
preview_params: the layer reduced to PREVIEW_SIDE, a preset's style) for each built-in preset
and a few strengths, through the real client, and prints the seconds from sending to the
picture. The dialog adds its own part before sending: the wait after a change (DELAY_MS in
impasto_preview.py) and, when it opens, the daemon's first answer.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugin"))

import impasto_choices as choices  # noqa: E402

from bench.common import start_daemon  # noqa: E402
from bench.results import Results  # noqa: E402
from impasto.daemon import artwork  # noqa: E402
from impasto.daemon.presets import BUILT_IN  # noqa: E402
from impasto.protocol import messages as m  # noqa: E402
from impasto.protocol.client import Client, new_job_id  # noqa: E402

PHOTO = ROOT.parent / "shared" / "images" / "content" / "tubingen.jpg"


def photo() -> tuple[m.Image, str]:
    picture = PILImage.open(PHOTO) if PHOTO.exists() else artwork.landscape(1024, 768)
    picture = picture.convert("RGB")
    picture.thumbnail((choices.PREVIEW_SIDE, choices.PREVIEW_SIDE))
    array = np.ascontiguousarray(np.asarray(picture))
    label = PHOTO.name if PHOTO.exists() else "drawn landscape"
    return m.Image(array.shape[1], array.shape[0], 3, array.tobytes()), label


def seconds_to_picture(client: Client, content: m.Image, preset: str, strength: float) -> float:
    params = choices.preview_params(strength, 0, "none", 1.0, 0)
    started = time.monotonic()
    for reply in client.run_job(m.Submit(f"preview-{new_job_id()}", content, [m.Style(preset=preset)], params)):
        if reply.type == m.RESULT:
            return time.monotonic() - started
    raise RuntimeError("no picture came")


def main() -> None:
    content, label = photo()
    with tempfile.TemporaryDirectory() as folder, Results("preview_speed"):
        process, endpoint, hello = start_daemon(Path(folder))
        try:
            print(f"{label} at {content.width}x{content.height}, {choices.PREVIEW_ITERATIONS} iterations from "
                  f"{choices.PREVIEW_FIRST_SCALE} px, on {hello['device']}")
            print("| preset | first (its style targets made) | strength 0.5 | strength 1 |")
            print("|---|---|---|---|")
            with Client(endpoint, timeout=30) as client:
                for preset in BUILT_IN:
                    times = [seconds_to_picture(client, content, preset, strength) for strength in (0.8, 0.5, 1.0)]
                    print(f"| {preset} | " + " | ".join(f"{t:.1f} s" for t in times) + " |")
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
