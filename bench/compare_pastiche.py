"""Impasto against the `pastiche` package: same device, content, style and size, one common score.

Both tools run as child processes of this script, each saving its progressive frames with
timestamps; then every frame is scored with the same objective, Gatys et al.'s own terms
(bench/scores.py). Lower is better on both.

Impasto's clock starts when its job starts on a loaded model (a warm daemon); pastiche's when
its process starts, with its own set-up time shown apart.

    .venv/bin/python bench/compare_pastiche.py                     # 384 px, pastiche 300 steps
    .venv/bin/python bench/compare_pastiche.py --size 256 --pastiche-steps 100
    .venv/bin/python bench/compare_pastiche.py --out /tmp/cmp --reuse-pastiche --params '{"optimizer": "adam"}'
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results import Results  # noqa: E402
from scores import GatysScore, load  # noqa: E402

from impasto.daemon.engine import StyleTransfer  # noqa: E402
from impasto.daemon.model import load_vgg19  # noqa: E402
from impasto.protocol.messages import JobParams  # noqa: E402

SHARED = ROOT.parent / "shared" / "images"


def peak_rss_mib(pid: int) -> float:
    _, _, usage = os.wait4(pid, 0)
    return usage.ru_maxrss / 1024


def run_pastiche(content: Path, style: Path, size: int, steps: int, every: int, out: Path, reuse: bool) -> dict:
    """pastiche's run, or with `reuse` the one already in `out` for the same settings (it is deterministic)."""
    meta_file = out / "run.json"
    settings = [str(content), str(style), size, steps, every]
    if reuse and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if meta["settings"] == settings:
            return {"frames": [(t, out / name) for t, name in meta["frames"]], "rss": meta["rss"],
                    "total": meta["total"], "steps": steps}
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    process = subprocess.Popen(
        [sys.executable, "-m", "pastiche", "--content", str(content), "--styles", str(style), "--size", str(size),
         "--num-steps", str(steps), "--workspace", str(out), "--workspace-step", str(every), "--seed", "0",
         "--info-step", str(every), "--output", str(out / "final.png")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rss = peak_rss_mib(process.pid)
    frames = sorted((p.stat().st_mtime - started, p) for p in out.glob("*.png") if p.name != "final.png")
    total = max(t for t, _ in frames)
    meta_file.write_text(json.dumps({"settings": settings, "rss": rss, "total": total,
                                     "frames": [(t, p.name) for t, p in frames]}))
    return {"frames": frames, "rss": rss, "total": total, "steps": steps}


def run_impasto_child(args: argparse.Namespace) -> None:
    """In the child: load the model (not timed), run one job, save frames and their times."""
    out = Path(args.child)
    model = load_vgg19()
    StyleTransfer(model).warm_up()  # as the daemon does before it says it is ready
    content, style = load(args.content), load(args.style)
    params = JobParams(size=args.size, preview_every=args.every, seed=0,
                       **json.loads(args.params))
    frames: list[tuple[float, torch.Tensor]] = []
    iteration_times: list[tuple[int, int, float]] = []
    started = time.monotonic()
    result = StyleTransfer(model).run(
        content, [(style, 1.0)], params,
        on_progress=lambda p: iteration_times.append((p.scale, p.iteration, time.monotonic() - started)),
        on_preview=lambda image, p: frames.append((time.monotonic() - started, image.clone())))
    frames.append((time.monotonic() - started, result))
    meta = []
    for i, (t, image) in enumerate(frames):
        name = f"frame-{i:04d}.png"
        array = image[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(array).save(out / name)
        meta.append({"t": t, "file": name, "size": list(image.shape[-2:])})
    last_scale = [row for row in iteration_times if row[0] == iteration_times[-1][0]]
    per_iteration = (last_scale[-1][2] - last_scale[0][2]) / max(1, len(last_scale) - 1)
    (out / "frames.json").write_text(json.dumps({"frames": meta, "per_iteration": per_iteration,
                                                 "iterations": len(iteration_times)}))


def run_impasto(args: argparse.Namespace, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([sys.executable, __file__, "--child", str(out), "--content", str(args.content),
                                "--style", str(args.style), "--size", str(args.size), "--every", str(args.every),
                                "--params", args.params])
    rss = peak_rss_mib(process.pid)
    meta = json.loads((out / "frames.json").read_text())
    frames = [(f["t"], out / f["file"]) for f in meta["frames"]]
    return {"frames": frames, "rss": rss, "total": frames[-1][0], "per_iteration": meta["per_iteration"],
            "steps": meta["iterations"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--content", type=Path, default=SHARED / "content" / "tubingen.jpg")
    parser.add_argument("--style", type=Path, default=SHARED / "style" / "starry_night.jpg")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--pastiche-steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=10, help="a frame every N iterations")
    parser.add_argument("--params", default="{}", help="JSON of Impasto JobParams fields (default: the defaults)")
    parser.add_argument("--out", type=Path, default=None, help="keep frames here (default: a temporary folder)")
    parser.add_argument("--reuse-pastiche", action="store_true",
                        help="with --out: score pastiche's frames from an earlier run with the same settings there")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_impasto_child(args)
        return
    with Results("compare_pastiche"):
        compare(args)


def compare(args: argparse.Namespace) -> None:
    if not args.content.is_file() or not args.style.is_file():
        sys.exit(f"missing {args.content} or {args.style} (../shared/images holds the defaults)")
    out = args.out or Path(tempfile.mkdtemp(prefix="impasto-vs-pastiche-"))
    print(f"{args.content.name} × {args.style.name}, {args.size} px long side, "
          f"{torch.get_num_threads()} CPU threads; frames in {out}", flush=True)

    impasto = run_impasto(args, out / "impasto")
    print(f"impasto done in {impasto['total']:.1f} s", flush=True)
    pastiche = run_pastiche(args.content, args.style, args.size, args.pastiche_steps, args.every, out / "pastiche",
                            args.reuse_pastiche)
    print(f"pastiche done in {pastiche['total']:.1f} s", flush=True)

    model = load_vgg19()
    final_size = Image.open(impasto["frames"][-1][1]).size
    score = GatysScore(model, load(args.content, max(final_size)), load(args.style))

    def scored(frames):
        rows = []
        for t, path in frames:
            image = load(path)
            if image.shape[-2:] == score.size:
                rows.append((t, *score(image)))
        return rows

    impasto_rows, pastiche_rows = scored(impasto["frames"]), scored(pastiche["frames"])
    goal_content, goal_style = pastiche_rows[-1][1], pastiche_rows[-1][2]

    def time_to_goal(rows):
        return next((t for t, c, s in rows if c <= goal_content and s <= goal_style), None)

    print(f"\ngoal: pastiche's final score after {args.pastiche_steps} steps: "
          f"content {goal_content:.4g}, style {goal_style:.4g}")
    print(f"{'tool':<9} {'to goal':>9} {'total':>8} {'1st frame':>10} {'s/iter':>7} {'peak RSS':>9} "
          f"{'final content':>14} {'final style':>12}")
    for name, run, rows in (("impasto", impasto, impasto_rows), ("pastiche", pastiche, pastiche_rows)):
        reached = time_to_goal(rows)
        per_iteration = run.get("per_iteration", run["total"] / run["steps"])
        print(f"{name:<9} {(f'{reached:.1f}s' if reached is not None else 'never'):>9} {run['total']:>7.1f}s "
              f"{run['frames'][0][0]:>9.2f}s {per_iteration:>7.3f} {run['rss']:>7.0f}MB "
              f"{rows[-1][1]:>14.4g} {rows[-1][2]:>12.4g}")
    reached_i, reached_p = time_to_goal(impasto_rows), time_to_goal(pastiche_rows)
    if reached_i:
        print(f"ratio (pastiche time to goal / impasto time to goal): {reached_p / reached_i:.1f}×")
    print("\nimpasto frames at output size (time, content, style):")
    for t, c, s in impasto_rows:
        print(f"  {t:7.1f}s {c:12.4g} {s:12.4g}")


if __name__ == "__main__":
    main()
