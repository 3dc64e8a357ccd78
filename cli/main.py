"""`impasto`: the command-line client. A thin layer over protocol.client; no torch here."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import numpy as np

from impasto.install.gimp import main as install_gimp
from impasto.install.service import main as install_service
from impasto.protocol import messages as m
from impasto.protocol.client import Client, DaemonError, DaemonUnavailable, new_job_id
from impasto.protocol.endpoint import default_endpoint
from impasto.protocol.security import make_keys

from .animate import add_arguments as add_animate_arguments
from .animate import cmd_animate
from .connection import EXIT_DAEMON, EXIT_INTERRUPTED, EXIT_JOB, EXIT_OUTPUT, connect, start_if_needed
from .images import (
    ImageError,
    array_to_image,
    check_frames,
    check_output,
    load_image,
    load_mask,
    save_image,
    save_result,
)
from .options import add_job_options, add_style_arguments, params_from, recommended_params, styles_of

SETUP_COMMANDS: dict[str, Callable[[list[str]], int]] = {"install-gimp": install_gimp, "service": install_service}


# --- progress ----------------------------------------------------------------------------

class ProgressBar:
    """One line on stderr, redrawn in place on a terminal, every 10% elsewhere."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_decile = -1

    def update(self, progress: m.Progress) -> None:
        fraction = progress.iteration / progress.total
        bar = "#" * int(fraction * 30)
        scale = f" scale {progress.scale}/{progress.scales}" if progress.scales > 1 else ""
        line = (f"[{bar:<30}] {progress.iteration}/{progress.total}{scale} {progress.width}x{progress.height}  "
                f"loss {progress.losses.get('total', float('nan')):.4g}  ETA {format_seconds(progress.eta)}")
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
        elif int(fraction * 10) != self.last_decile:
            self.last_decile = int(fraction * 10)
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")


def format_seconds(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# --- commands ----------------------------------------------------------------------------

def cmd_keys(args: argparse.Namespace) -> int:
    paths = make_keys(args.folder)
    print(f"keys in {args.folder}\n"
          "on the daemon's machine:\n"
          f"  impasto-daemon --endpoint tcp://0.0.0.0:5555 --curve-secret {paths['server_secret']} "
          f"--curve-clients {paths['clients']}\n"
          f"on the client's machine, with copies of {paths['server']} and {paths['client_secret']}:\n"
          "  impasto --endpoint tcp://DAEMON-HOST:5555 --server-key server.key --client-key client.key_secret status\n"
          "  (or set IMPASTO_SERVER_KEY and IMPASTO_CLIENT_KEY); allow more clients by adding their .key files "
          f"to {paths['clients']}")
    return 0

def keep_frame(reply: m.Reply, frames: Path, bar: ProgressBar) -> Path | None:
    """Save a preview in `frames`; after a failure (a full disk) say so once and keep no more."""
    assert reply.image is not None
    try:
        save_image(reply.image, frames / f"frame-{reply.header['iteration']:05d}.png")
        return frames
    except OSError as exc:
        bar.message(f"impasto: could not keep a preview in {frames} ({exc.strerror or exc}); keeping no more")
        return None


def run_job(client: Client, submit: m.Submit, output: Path, frames: Path | None, quiet: bool = False) -> int:
    bar = ProgressBar()
    replies = client.run_job(submit)
    try:
        for reply in replies:
            if reply.type == m.ACCEPTED and reply.header["position"] > 0 and not quiet:
                bar.message(f"queued behind {reply.header['position']} job(s)")
            elif reply.type == m.PROGRESS and not quiet:
                bar.update(reply.progress)
            elif reply.type == m.PREVIEW and frames is not None and reply.image is not None:
                frames = keep_frame(reply, frames, bar)
            elif reply.type == m.RESULT and reply.image is not None:
                if not quiet:
                    bar.done()
                written = save_result(reply.image, output)
                if written != output:
                    print(f"impasto: the result is kept in {written} instead", file=sys.stderr)
                    return EXIT_OUTPUT
                if not quiet:
                    print(f"wrote {output} ({reply.image.width}x{reply.image.height}) in "
                          f"{format_seconds(reply.header.get('seconds', 0))}", file=sys.stderr)
                return 0
            elif reply.type == m.CANCELLED:
                bar.message("cancelled")
                return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        bar.message("cancelling…")
        replies.close()  # sends the cancel
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            late = client.receive(0.2)
            if late is not None and late.type in (m.CANCELLED, m.RESULT, m.ERROR) and late.job == submit.job:
                break
        bar.message("cancelled")
        return EXIT_INTERRUPTED
    return EXIT_JOB


def cmd_stylize(args: argparse.Namespace) -> int:
    styles = styles_of(args)
    if styles is None:
        return 2
    try:
        params_from(args)  # a value out of range is said now, before a daemon is started
        content = load_image(args.content, keep_alpha=True)
        check_output(args.output, content.channels, args.content)  # a bad -o is said now, not after the work
        if args.frames is not None:
            check_frames(args.frames)
    except (ImageError, m.ProtocolError) as exc:
        print(f"impasto: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    try:
        mask = load_mask(args.mask, content) if args.mask else None
    except ImageError as exc:
        print(f"impasto: cannot use the mask {args.mask}: {exc}", file=sys.stderr)
        return 2
    start_if_needed(args)
    with connect(args) as client:
        recommended = recommended_params(client, args.preset)
        if recommended is None:
            return EXIT_JOB
        submit = m.Submit(new_job_id(), content, styles, params_from(args, recommended), mask)
        return run_job(client, submit, args.output, args.frames, args.quiet)


def cmd_status(args: argparse.Namespace) -> int:
    with connect(args) as client:
        started = time.monotonic()
        hello = client.hello()
        rtt = (time.monotonic() - started) * 1000
    print(f"impasto-daemon {hello['daemon']} at {client.endpoint}\n"
          f"  protocol  {hello['proto']} v{hello['v']}\n  device    {hello['device']}\n"
          f"  model     {hello['model']}\n  queue     {hello['queue']} job(s)\n"
          f"  presets   {', '.join(hello.get('presets', []))}\n  round trip {rtt:.1f} ms")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    with connect(args) as client:
        if args.action == "add":
            try:
                image = load_image(args.image)
            except ImageError as exc:
                print(f"impasto: {exc}", file=sys.stderr)
                return 2
            params = {"strength": args.strength} if args.strength is not None else {}
            client.add_preset(args.name, image, args.description or m.description_from(args.image.name), params)
            print(f"added preset {args.name!r}", file=sys.stderr)
        elif args.action == "remove":
            client.remove_preset(args.name)
            print(f"removed preset {args.name!r}", file=sys.stderr)
        else:
            for preset in client.presets():
                text = "".join(c if m.plain(c) else "?" for c in str(preset.get("description", "")))
                print(f"{preset['name']:<16} {preset.get('source', ''):<9} {text}")  # stored before checks too
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.request(m.SHUTDOWN)
    print("the daemon is stopping", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from impasto.daemon import artwork  # numpy + Pillow only

    start_if_needed(args)
    landscape = artwork.landscape()
    content_path = args.output.with_name(args.output.stem + "-content.png")
    landscape.save(content_path)
    print(f"demo: stylising a drawn landscape ({content_path}) with the built-in '{args.preset}' preset; "
          f"frames go to {args.frames}/", file=sys.stderr)
    params = m.JobParams(size=args.size, iterations=args.iterations, preview_every=args.preview_every)
    submit = m.Submit(new_job_id(), array_to_image(np.asarray(landscape)), [m.Style(preset=args.preset)], params)
    with connect(args) as client:
        code = run_job(client, submit, args.output, args.frames)
    if code == 0:
        print("the daemon keeps running, so the next job starts at once: try\n"
              "  impasto stylize photo.jpg --style painting.jpg -o out.png\n"
              "and stop it with `impasto stop`", file=sys.stderr)
    return code


def add_connection_options(parser: argparse.ArgumentParser, endpoint: str) -> None:
    """--endpoint (defaulting to `endpoint`), --server-key and --client-key. Given SUPPRESS, an
    option that is not given leaves the value set before the command (`impasto stylize --endpoint ...`)."""
    keys = argparse.SUPPRESS if endpoint == argparse.SUPPRESS else None
    parser.add_argument("--endpoint", default=endpoint, help="the daemon's ZeroMQ endpoint (default: "
                        "$IMPASTO_ENDPOINT, else the local daemon's socket)")
    parser.add_argument("--server-key", default=keys, help="a remote daemon's CURVE public key file")
    parser.add_argument("--client-key", default=keys, help="this client's CURVE secret key file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="impasto", description="Neural style transfer through the Impasto daemon.")
    add_connection_options(parser, default_endpoint())
    common = argparse.ArgumentParser(add_help=False)  # they may also follow the command
    add_connection_options(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    stylize = commands.add_parser("stylize", parents=[common], help="stylise an image")
    stylize.add_argument("content", type=Path, help="the photo to stylise")
    add_style_arguments(stylize)
    stylize.add_argument("--mask", type=Path, help="a grey image the photo's size: white is stylised, black kept "
                         "exactly, grey blended")
    stylize.add_argument("-o", "--output", type=Path, required=True, help="where to write the result (PNG)")
    stylize.add_argument("--frames", type=Path, help="folder to save progressive previews in")
    add_job_options(stylize)
    stylize.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    stylize.set_defaults(run=cmd_stylize)

    motion = commands.add_parser("animate", parents=[common], help="stylise animation frames or a video, with "
                                 "the painting following the motion")
    add_animate_arguments(motion)
    add_style_arguments(motion)
    add_job_options(motion)
    motion.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    motion.set_defaults(run=cmd_animate)

    for name, run, text in (("status", cmd_status, "show the daemon's version, device and queue"),
                            ("ping", cmd_status, "same as status"),
                            ("stop", cmd_stop, "ask the daemon to finish and exit")):
        commands.add_parser(name, parents=[common], help=text).set_defaults(run=run)

    presets = commands.add_parser("presets", parents=[common], help="list, add or remove style presets")
    actions = presets.add_subparsers(dest="action")
    add = actions.add_parser("add", parents=[common], help="store an image as a named style on the daemon")
    add.add_argument("name", help="lowercase letters, digits, '-' and '_'")
    add.add_argument("image", type=Path)
    add.add_argument("--description")
    add.add_argument("--strength", type=float, help="the strength recommended with this style")
    actions.add_parser("remove", parents=[common], help="delete a user preset").add_argument("name")
    actions.add_parser("list", parents=[common], help="the default")
    presets.set_defaults(run=cmd_presets)

    keys = commands.add_parser("keys", help="make CURVE keys for a daemon on another machine")
    keys.add_argument("folder", type=Path)
    keys.set_defaults(run=cmd_keys)

    for name, text in (("install-gimp", "install the GIMP plug-in (see `impasto install-gimp --help`)"),
                       ("service", "run the daemon as a user service: install, remove, status")):
        commands.add_parser(name, help=text, add_help=False)  # listed here; main() hands them their words
    demo = commands.add_parser("demo", parents=[common],
                               help="start the daemon if needed and stylise a built-in picture")
    demo.add_argument("-o", "--output", type=Path, default=Path("impasto-demo.png"))
    demo.add_argument("--frames", type=Path, default=Path("impasto-demo-frames"))
    demo.add_argument("--preset", default=m.DEFAULT_PRESET)
    demo.add_argument("--size", type=int, default=384)
    demo.add_argument("--iterations", type=int, default=m.JobParams().iterations, help="at the full size")
    demo.add_argument("--preview-every", type=int, default=10)
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words and words[0] in SETUP_COMMANDS:  # the installer's own options, all of them
        return SETUP_COMMANDS[words[0]](words[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DaemonUnavailable as exc:
        print(f"impasto: {exc}", file=sys.stderr)
        return EXIT_DAEMON
    except DaemonError as exc:
        hint = " (the daemon speaks another protocol version: update the client or the daemon)" \
            if exc.code == m.Code.BAD_VERSION else ""
        print(f"impasto: the daemon refused: {exc}{hint}", file=sys.stderr)
        return EXIT_JOB
    except m.ProtocolError as exc:
        print(f"impasto: {exc.message} [{exc.code}]", file=sys.stderr)
        return EXIT_JOB if exc.code != m.Code.BAD_VERSION else EXIT_DAEMON
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
