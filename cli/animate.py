"""`impasto animate`: stylise animation frames in order, each frame after the first starting from
the previous frame's result warped along the motion between them (the daemon does that; see
daemon/motion.py), so the painting moves with the picture instead of boiling.

Finished frames are kept in a work folder as they come (the output folder itself, or a hidden
folder beside an output file), so a run interrupted and started again with the same frames,
styles and settings goes on from the last frame done.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

from impasto.protocol import messages as m
from impasto.protocol.client import Client, new_job_id
from impasto.protocol.progress import Parts

from .connection import EXIT_INTERRUPTED, EXIT_JOB, EXIT_OUTPUT, connect, start_if_needed
from .frames import Frames, load_frame, output_kind, read_frames, write_animated, write_video
from .images import ImageError, array_to_image, save_image
from .options import params_from, recommended_params, styles_of

RECORD = ".impasto-animate.json"  # in the work folder: what made its frames, and how many are done


class FramesBar:
    """One line on stderr over the whole run: frame k of n, and the time left for all of them."""

    def __init__(self, count: int, done: int, quiet: bool = False, stream: TextIO = sys.stderr) -> None:
        self.parts = Parts(count, "frame", done)
        self.stream, self.quiet = stream, quiet
        self.tty = stream.isatty()
        self.shown_frame = -1

    def update(self, progress: m.Progress) -> None:
        if self.quiet:
            return
        parts = self.parts
        line = (f"frame {parts.index + 1}/{parts.count} [{'#' * int(parts.fraction(progress) * 30):<30}] "
                f"{progress.width}x{progress.height}  ETA {round(parts.left(progress))}s")
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
        elif self.shown_frame != parts.index:  # a log gets a line a frame
            self.shown_frame = parts.index
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        self.stream.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="a folder of frames, frame files "
                        "in order, an animated GIF or WebP, or a video file")
    parser.add_argument("-o", "--output", type=Path, required=True, help="a folder (frames named as the inputs), "
                        "a .gif or .webp, or a video file")
    parser.add_argument("--independent", action="store_true", help="stylise every frame on its own (no temporal "
                        "coherence: to compare)")


def work_folder(output: Path) -> Path:
    return output if output_kind(output) == "folder" else output.with_name(f".{output.name}.frames")


def made_by(frames: Frames, styles: list[m.Style], params: m.JobParams, independent: bool) -> str:
    """A digest of everything a run's frames depend on: a kept frame is reused only for the same."""
    digest = hashlib.sha256()
    settings = {**params.to_wire(), "preview_every": 0, "preview_seconds": 0.0, "independent": independent}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for style in styles:
        digest.update(f"{style.preset}:{style.weight}".encode())
        if style.image is not None:
            digest.update(style.image.packed())
    for name, image in zip(frames.names, frames.read(), strict=True):
        digest.update(name.encode() + image.packed())
    return digest.hexdigest()


def frames_kept(work: Path, names: list[str], digest: str) -> int:
    """How many leading frames an earlier run with the same inputs and settings finished here."""
    try:
        record = json.loads((work / RECORD).read_text())
        done = int(record["done"]) if record.get("made_by") == digest else 0
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return sum(1 for _ in itertools.takewhile(lambda name: (work / name).is_file(), names[:done]))


def run_frame(client: Client, submit: m.Submit, bar: FramesBar) -> m.Image | None:
    """One frame's job; its result, or None when it was cancelled (Ctrl-C cancels it on the daemon)."""
    replies = client.run_job(submit)
    try:
        for reply in replies:
            if reply.type == m.PROGRESS:
                bar.update(reply.progress)
            elif reply.type == m.RESULT:
                return reply.image
            elif reply.type == m.CANCELLED:
                return None
    except KeyboardInterrupt:
        replies.close()  # sends the cancel
    return None


def animate(args: argparse.Namespace, client: Client, frames: Frames, styles: list[m.Style],
            params: m.JobParams) -> int:
    """Stylise `frames` into `args.output`; returns the exit code."""
    work = work_folder(args.output)
    work.mkdir(parents=True, exist_ok=True)
    digest = made_by(frames, styles, params, args.independent)
    done = frames_kept(work, frames.names, digest)
    bar = FramesBar(len(frames), done, args.quiet)
    if done:
        bar.message(f"going on from frame {done + 1}: {done} frame(s) done earlier are kept in {work}")
    previous: tuple[m.Image, m.Image] | None = None  # the last frame's photo and result
    for index, (name, photo) in enumerate(zip(frames.names, frames.read(), strict=True)):
        if index < done:
            if index == done - 1:
                previous = photo, array_to_image(load_frame(work / name))
            continue
        link = {} if previous is None or args.independent else {"previous": previous[0], "previous_result": previous[1]}
        started = time.monotonic()
        result = run_frame(client, m.Submit(new_job_id(), photo, styles, params, **link), bar)
        if result is None:
            bar.message(f"cancelled; {index} frame(s) are kept in {work}: the same command goes on from there")
            return EXIT_INTERRUPTED
        save_image(result, work / name)
        (work / RECORD).write_text(json.dumps({"made_by": digest, "done": index + 1}))
        previous = photo, result
        bar.parts.done(time.monotonic() - started)
    bar.message(f"{len(frames)} frames done")
    return finish(args.output, work, frames, bar)


def finish(output: Path, work: Path, frames: Frames, bar: FramesBar) -> int:
    """Put the finished frames into the output file (a folder of frames is the output itself)."""
    kind = output_kind(output)
    if kind == "folder":  # its record stays: the same command again has nothing left to do
        bar.message(f"wrote {len(frames)} frames into {output}")
        return 0
    pictures = (load_frame(work / name) for name in frames.names)
    try:
        (write_video if kind == "video" else write_animated)(pictures, frames.durations, output)
    except (OSError, ValueError, ImageError) as exc:
        bar.message(f"impasto: could not write {output} ({exc}); the frames are kept in {work}")
        return EXIT_OUTPUT
    shutil.rmtree(work, ignore_errors=True)
    bar.message(f"wrote {output} ({len(frames)} frames)")
    return 0


def cmd_animate(args: argparse.Namespace) -> int:
    styles = styles_of(args)
    if styles is None:
        return 2
    try:
        params_from(args)  # a value out of range is said now, before a daemon is started
        frames = read_frames(args.inputs)
        work_folder(args.output)  # a bad -o is said now, not after the work
    except (ImageError, m.ProtocolError) as exc:
        print(f"impasto: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    start_if_needed(args)
    with connect(args) as client:
        recommended = recommended_params(client, args.preset)
        if recommended is None:
            return EXIT_JOB
        return animate(args, client, frames, styles, params_from(args, recommended))
