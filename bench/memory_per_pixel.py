"""What VGG19's passes add to the daemon's memory per pixel, under each allocator it may run on.

The memory plan (daemon/memory.py, BYTES_PER_PIXEL) sizes tiles by these figures. For each of
glibc's malloc and tcmalloc (where installed; daemon/allocator.py) a process of its own builds a
scale's objective on a real 2560×1600 photo (KDE's wallpaper) and evaluates it three times, and
the growth of its resident memory over those passes is divided by the picture's pixels: a detail
scale (VGG19 to relu3_1, at 2560×1600) and a composition scale (to relu5_1, at 1280×800), in
bf16 and fp32. Both allocators keep what is freed (as the daemon does), so the growth is what
the passes need, held.

    .venv/bin/python bench/memory_per_pixel.py
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from impasto.daemon import allocator  # noqa: E402

KINDS = ("detail", "composition")
PRECISIONS = ("bf16", "fp32")


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(kind: str, precision: str) -> float:
    """Bytes per pixel that three evaluations of one scale's objective add, in this process."""
    import numpy as np
    import torch
    from PIL import Image as PILImage

    from bench.full_resolution import SHARED, wallpaper
    from impasto.daemon import engine, pixels
    from impasto.daemon.memory import hold_freed_memory
    from impasto.daemon.model import load_vgg19
    from impasto.protocol.messages import JobParams

    hold_freed_memory()
    photo = pixels.array_to_tensor(np.asarray(PILImage.open(wallpaper("Path")).convert("RGB")))
    style = pixels.array_to_tensor(np.asarray(PILImage.open(SHARED / "style" / "starry_night.jpg").convert("RGB")))
    transfer = engine.StyleTransfer(load_vgg19())
    transfer.warm_up()
    params = JobParams(precision=precision)
    if kind == "detail":
        params = dataclasses.replace(params, style_layers=dict(engine.DETAIL_STYLE_LAYERS),
                                     content_layer=engine.DETAIL_CONTENT_LAYER)
    else:
        photo = torch.nn.functional.interpolate(photo, size=(800, 1280), mode="bilinear", align_corners=False)
    objective = transfer._objective(photo, photo, [(style, 1.0)], params, torch.Generator(), 2**40, kind == "detail")
    before = resident_bytes()
    for _ in range(3):
        objective()
    return (resident_bytes() - before) / (photo.shape[-1] * photo.shape[-2])


def in_process_under(environment: dict[str, str], kind: str, precision: str) -> float:
    done = subprocess.run([sys.executable, __file__, "--one", kind, precision], env=environment, check=True,
                          capture_output=True, text=True, timeout=900)
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", nargs=2, metavar=("KIND", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child: one measure under the allocator it was started with
        print(f"{measure(*args.one):.0f}")
        return
    environments = {"glibc": {**os.environ, allocator.CHOICE: "system"}}
    tcmalloc = allocator.tcmalloc_environment(dict(os.environ))
    if tcmalloc is not None:
        environments["tcmalloc"] = tcmalloc
    else:
        print("tcmalloc is not installed here: glibc only")
    print("| scale | precision | " + " | ".join(f"{name} B/px" for name in environments) + " |")
    print("|---|---|" + "---|" * len(environments))
    for kind in KINDS:
        for precision in PRECISIONS:
            figures = [in_process_under(environment, kind, precision) for environment in environments.values()]
            print(f"| {kind} | {precision} | " + " | ".join(f"{figure:.0f}" for figure in figures) + " |")


if __name__ == "__main__":
    if "--one" in sys.argv:
        main()
    else:
        from bench.results import Results

        with Results("memory_per_pixel"):
            main()
