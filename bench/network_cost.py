"""Where a full-resolution job's time goes, against what VGG19 itself costs.

Runs one job in a daemon of its own (a real 2560×1600 photo, KDE's wallpaper, at the CLI's
defaults unless told otherwise), then a second (another seed) in the same daemon, as a user's
next run finds it (its memory held from the first, its painting's targets cached), and times
each of their scales from the jobs' progress reports. The daemon runs under tcmalloc where it
is installed (daemon/allocator.py); a third daemon, under the C library's malloc, runs the
first job again for comparison.
Beside each scale it prints what a bare VGG19 forward and backward pass costs at that scale's
size, to the deepest layer the scale uses, in the job's precision, times the scale's
iterations: the job's cost over the network's own. A scale's first iteration also pays for
its set-up (its targets and starting point): `set-up` is that first iteration less the
scale's usual one. Time outside the scales is the picture's transfer, its colours and the
result's, and a scale with no iterations (a Draft's top).

Then what the engine's choices save, on bare passes at the job's sizes: freed memory held
for the next pass (the daemon's, daemon/memory.py) against glibc's own policy; VGG19's
features channels-last against contiguous, and its max pooling's indices found again in the
backward against kept (daemon/model.py); a Gram matrix formed as one 2-D product with a
gradient of its own against the batched product (daemon/losses.py).

    .venv/bin/python bench/network_cost.py
    .venv/bin/python bench/network_cost.py --photo FallenLeaf --detail 2
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import peak_rss_gib, start_daemon  # noqa: E402
from bench.full_resolution import SHARED, as_image, wallpaper  # noqa: E402
from bench.results import Results  # noqa: E402
from impasto.daemon import allocator  # noqa: E402
from impasto.daemon.engine import DETAIL_CONTENT_LAYER, DETAIL_STYLE_LAYERS  # noqa: E402
from impasto.daemon.losses import gram_matrix  # noqa: E402
from impasto.daemon.memory import hold_freed_memory, use_bf16  # noqa: E402
from impasto.daemon.model import LAYER_INDEX, VGG19, MaxPool, load_vgg19  # noqa: E402
from impasto.daemon.plan import schedule_for  # noqa: E402
from impasto.protocol import messages as m  # noqa: E402
from impasto.protocol.client import Client, new_job_id  # noqa: E402

Stamp = tuple[float, int]  # seconds since the job was sent, and the scale it reported (1-based)


def timed_jobs(content: m.Image, style: m.Image, params: m.JobParams,
               jobs: int = 2) -> tuple[list[tuple[float, list[Stamp]]], float]:
    """The job `jobs` times in turn in a daemon of its own (each after the last, as a user runs
    them, within the daemon's hold on memory): seconds to each result, and a stamp per progress
    report; and the daemon's peak resident memory, GiB."""
    folder = Path(tempfile.mkdtemp(prefix="impasto-cost-"))
    daemon, endpoint, _ = start_daemon(folder, "--log-level", "warning")
    timings, peak = [], 0.0
    try:
        with Client(endpoint) as client:
            for seed in range(jobs):
                started, stamps = time.monotonic(), []
                for reply in client.run_job(m.Submit(new_job_id(), content, [m.Style(image=style)],
                                                     dataclasses.replace(params, seed=seed))):
                    if reply.type == m.PROGRESS:
                        stamps.append((time.monotonic() - started, reply.progress.scale))
                    elif reply.type == m.RESULT:
                        timings.append((time.monotonic() - started, stamps))
                        break
                else:
                    raise RuntimeError("the job ended without a result")
        peak = peak_rss_gib(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(30)
    return timings, peak


def under_system_malloc(content: m.Image, style: m.Image, params: m.JobParams) -> tuple[float, float]:
    """The first job's seconds and the daemon's peak memory under the C library's malloc."""
    with mock.patch.dict(os.environ, {allocator.CHOICE: "system"}):
        [(seconds, _)], peak = timed_jobs(content, style, params, jobs=1)
    return seconds, peak


def per_scale(stamps: list[Stamp], scales: int) -> list[tuple[float, float]]:
    """Each scale's seconds and its set-up (its first iteration less its median one)."""
    rows = []
    for scale in range(1, scales + 1):
        before = [t for t, s in stamps if s < scale]
        times = [t for t, s in stamps if s == scale]
        if not times:  # a scale with no iterations (a Draft's top): its time is the job's last, outside
            rows.append((0.0, 0.0))
            continue
        starts = [before[-1] if before else 0.0, *times[:-1]]
        steps = [later - earlier for earlier, later in zip(starts, times, strict=True)]
        usual = statistics.median(steps[1:]) if len(steps) > 1 else steps[0]
        rows.append((sum(steps), steps[0] - usual))
    return rows


def bare_pass(model: VGG19, width: int, height: int, layer: str, bf16: bool, repeats: int = 2) -> float:
    """Seconds of one forward and backward pass of VGG19 to `layer`, the quickest of `repeats`
    after one to warm up."""
    picture = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    seconds = []
    for _ in range(repeats + 1):
        started = time.monotonic()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            features = model(picture, {layer}, edge="replicate")[layer]
        features.float().square().mean().backward()
        seconds.append(time.monotonic() - started)
    return min(seconds[1:])


def kept_gib(model: VGG19, width: int, height: int, bf16: bool) -> float:
    """What a forward pass to relu3_1 keeps for its backward, GiB."""
    storages: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    picture = torch.rand(1, 3, height, width).requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(picture, {"relu3_1"}, edge="replicate")
    return sum(storages.values()) / 2**30


def pooling_costs(model: VGG19, width: int, height: int, bf16: bool) -> str:
    """A bare pass to relu3_1 with max pooling's indices found again in the backward (ours), and
    kept (PyTorch's): seconds, and what the pass keeps for its backward."""
    ours = bare_pass(model, width, height, "relu3_1", bf16, repeats=1), kept_gib(model, width, height, bf16)
    with mock.patch.object(MaxPool, "apply", lambda x: F.max_pool2d(x, 2)):
        kept = bare_pass(model, width, height, "relu3_1", bf16, repeats=1), kept_gib(model, width, height, bf16)
    return (f"indices kept {kept[0]:.2f} s, {kept[1]:.2f} GiB kept for the backward; found again {ours[0]:.2f} s, "
            f"{ours[1]:.2f} GiB")


def gram_seconds(features: torch.Tensor, batched: bool) -> float:
    """Forward and backward of a Gram matrix of `features`, as the engine forms it or batched."""
    features = features.detach().requires_grad_(True)
    started = time.monotonic()
    if batched:
        n, c, h, w = features.shape
        flat = features.reshape(n, c, h * w)
        gram = (flat @ flat.transpose(1, 2)).float() / (c * h * w)
    else:
        gram = gram_matrix(features)
    gram.square().sum().backward()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default="Path", help="a KDE wallpaper's name")
    parser.add_argument("--style", type=Path, default=SHARED / "style" / "starry_night.jpg")
    parser.add_argument("--detail", type=int, default=m.JobParams().detail)
    parser.add_argument("--precision", default=m.JobParams().precision, choices=("auto", "bf16", "fp32"))
    args = parser.parse_args()
    picture = PILImage.open(wallpaper(args.photo)).convert("RGB")
    params = m.JobParams(detail=args.detail, precision=args.precision)
    schedule = schedule_for(picture.width, picture.height, params, None)
    model, bf16 = load_vgg19(), use_bf16(params.precision, torch.device("cpu"))
    hold_freed_memory()  # as the daemon does
    content, style = as_image(picture), as_image(PILImage.open(args.style))
    [(seconds, stamps), (again, again_stamps)], peak = timed_jobs(content, style, params)
    system_seconds, system_peak = under_system_malloc(content, style, params)
    library = allocator.find_tcmalloc() if os.environ.get(allocator.CHOICE) != "system" else None
    print(f"{args.photo} {picture.width}x{picture.height} × {args.style.name}, detail {args.detail}, "
          f"{'bf16' if bf16 else 'fp32'} on the cpu, the daemon's memory from "
          f"{'tcmalloc (' + library + ')' if library else 'glibc'}: {seconds:.1f} s to "
          f"the result, {again:.1f} s for a second job in the same daemon; its peak memory {peak:.2f} GiB")
    print("| scale | size | deepest layer | iterations | job s | set-up s | 2nd job s | its set-up s | bare pass s "
          "| bare × iterations | job / bare | 2nd / bare |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    composing = {*params.style_layers, params.content_layer}
    detailing = {*DETAIL_STYLE_LAYERS, DETAIL_CONTENT_LAYER}
    total_bare = 0.0
    rows, again_rows = per_scale(stamps, len(schedule.sizes)), per_scale(again_stamps, len(schedule.sizes))
    for index, ((width, height), steps, (spent, setup), (spent_again, setup_again)) in enumerate(
            zip(schedule.sizes, schedule.steps, rows, again_rows, strict=True)):
        layer = max(detailing if index >= schedule.first_detail else composing, key=LAYER_INDEX.__getitem__)
        if not steps:
            print(f"| {index + 1} | {width}x{height} | none | 0 | | | | | | | | |")
            continue
        bare = bare_pass(model, width, height, layer, bf16)
        total_bare += bare * steps
        print(f"| {index + 1} | {width}x{height} | {layer} | {steps} | {spent:.1f} | {setup:.1f} | {spent_again:.1f} "
              f"| {setup_again:.1f} | {bare:.2f} | {bare * steps:.1f} | {spent / (bare * steps):.2f} "
              f"| {spent_again / (bare * steps):.2f} |")
    in_scales = sum(spent for spent, _ in rows)
    print(f"whole job {seconds:.1f} s ({seconds - in_scales:.1f} s outside the scales); the bare network over "
          f"its schedule {total_bare:.1f} s; job / bare {seconds / total_bare:.2f}; a second job / bare "
          f"{again / total_bare:.2f}")
    print(f"the first job in a daemon under glibc's malloc: {system_seconds:.1f} s, job / bare "
          f"{system_seconds / total_bare:.2f}; its peak memory {system_peak:.2f} GiB")
    top = schedule.sizes[-1]
    print("\nfreed memory, a bare pass (forward + backward) to relu3_1:")
    for (width, height) in ((top[0] // 2, top[1] // 2), top):
        hold_freed_memory(False)
        unheld = bare_pass(model, width, height, "relu3_1", bf16, repeats=1)
        hold_freed_memory()
        print(f"  {width}x{height}: glibc's own policy {unheld:.2f} s, held for the next pass "
              f"{bare_pass(model, width, height, 'relu3_1', bf16, repeats=1):.2f} s")
    print("layout of VGG19's features, a bare pass:")
    for (width, height), layer in (((512, 320), "relu5_1"), ((top[0] // 2, top[1] // 2), "relu3_1"), (top, "relu3_1")):
        model.memory_format = torch.contiguous_format
        contiguous = bare_pass(model, width, height, layer, bf16, repeats=1)
        model.memory_format = torch.channels_last
        print(f"  {width}x{height} to {layer}: contiguous {contiguous:.2f} s, channels-last "
              f"{bare_pass(model, width, height, layer, bf16, repeats=1):.2f} s")
    print(f"max pooling, a bare pass to relu3_1 at {top[0]}x{top[1]}: {pooling_costs(model, *top, bf16)}")
    features = torch.rand(1, 64, top[1], top[0], dtype=torch.bfloat16 if bf16 else torch.float32)
    features = features.contiguous(memory_format=torch.channels_last)
    gram_seconds(features, batched=False)
    print(f"Gram matrix of relu1_1-sized features at {top[0]}x{top[1]} (forward + backward): one 2-D product "
          f"{gram_seconds(features, batched=False):.2f} s, batched {gram_seconds(features, batched=True):.2f} s")


if __name__ == "__main__":
    with Results("network_cost"):
        main()
