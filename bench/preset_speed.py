"""Time to first preview: a style sent as a file (first and second time) against the same style as a preset.

A style's Gram targets are cached by the daemon, keyed by its pixels, so the first use of a
painting pays for VGG19 on it and later uses (a preset, or the same file again) do not.

    .venv/bin/python bench/preset_speed.py [--size 384]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import start_daemon  # noqa: E402
from bench.results import Results  # noqa: E402
from bench.service_speed import pictures  # noqa: E402
from impasto.protocol import messages as m  # noqa: E402
from impasto.protocol.client import Client, new_job_id  # noqa: E402


def first_preview(client: Client, content: m.Image, style: m.Style, size: int) -> float:
    """Seconds from submit to the first preview; the job is then cancelled and drained."""
    submit = m.Submit(new_job_id(), content, [style], m.JobParams(size=size, iterations=10, preview_every=1))
    started = time.monotonic()
    elapsed = None
    for reply in client.run_job(submit):
        if reply.type == m.PREVIEW and elapsed is None:
            elapsed = time.monotonic() - started
            client.cancel(submit.job)
    if elapsed is None:
        raise RuntimeError("no preview came")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=384)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="impasto-preset-bench-"))
    daemon, endpoint, _ = start_daemon(folder, "--log-level", "warning")
    try:
        content, style, label = pictures(args.size)
        print(f"{label}: style image {style.width}x{style.height}, content {content.width}x{content.height}")
        with Client(endpoint) as client:
            cold = first_preview(client, content, m.Style(image=style), args.size)
            again = first_preview(client, content, m.Style(image=style), args.size)
            client.add_preset("bench-style", style)
            preset_first = first_preview(client, content, m.Style(preset="bench-style"), args.size)
            preset = first_preview(client, content, m.Style(preset="bench-style"), args.size)
        print(f"submit → first preview: file, first time {cold:.2f} s; same file again {again:.2f} s; "
              f"preset, first use {preset_first:.2f} s; preset again {preset:.2f} s "
              f"({(1 - preset / cold) * 100:.0f}% shorter than the file's first time)")
    finally:
        daemon.terminate()
        daemon.wait(15)


if __name__ == "__main__":
    with Results("preset_speed"):
        main()
