"""One engine iteration against a bare VGG19 forward+backward at the same size and precision.

The bare pass runs the network to relu5_1 and back with a trivial loss; the engine's iteration
adds the losses (Gram matrices, total variation) and the optimiser's step. Prints both.

    .venv/bin/python bench/iteration_overhead.py [--size 512] [--precision auto|bf16|fp32]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import Results
from impasto.daemon.engine import StyleTransfer
from impasto.daemon.memory import use_bf16
from impasto.daemon.model import load_vgg19
from impasto.protocol.messages import STYLE_LAYERS, JobParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--iterations", type=int, default=8)
    args = parser.parse_args()
    model = load_vgg19()
    device = torch.device("cpu")
    bf16 = use_bf16(args.precision, device)
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, args.size * 3 // 4, args.size, generator=generator)
    style = torch.rand(1, 3, args.size * 3 // 4, args.size, generator=generator)
    layers = {"relu4_2", *STYLE_LAYERS}

    image = content.clone().requires_grad_(True)
    timings = []
    for _ in range(args.iterations + 2):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            features = model(image, layers, edge="replicate")
        sum(f.float().mean() for f in features.values()).backward()
        timings.append(time.perf_counter() - started)
    bare = sorted(timings[2:])[len(timings[2:]) // 2]

    stamps = []
    params = JobParams(size=args.size, first_scale=0, iterations=args.iterations + 2, precision=args.precision,
                       preview_every=0)
    StyleTransfer(model).run(content, [(style, 1.0)], params, on_progress=lambda p: stamps.append(time.perf_counter()))
    steps = [b - a for a, b in itertools.pairwise(stamps[1:])]  # the first step pays for set-up
    engine = sorted(steps)[len(steps) // 2]
    print(f"{args.size}x{args.size * 3 // 4}, {'bf16' if bf16 else 'fp32'}, {torch.get_num_threads()} threads: "
          f"bare VGG19 forward+backward {bare:.3f} s, engine iteration {engine:.3f} s "
          f"({(engine / bare - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    with Results("iteration_overhead"):
        main()
