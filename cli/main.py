"""`impasto`: the command-line client. A thin layer over protocol.client; no torch here."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from protocol import messages as m
from protocol.client import Client, DaemonError, DaemonUnavailable, new_job_id, wait_for_daemon
from protocol.endpoint import default_endpoint, ipc_path
from protocol.security import ClientKeys, make_keys

EXIT_DAEMON = 3  # could not talk to the daemon
EXIT_JOB = 4  # the daemon refused or failed the job
EXIT_INTERRUPTED = 130


# --- images ------------------------------------------------------------------------------

def load_image(path: Path, keep_alpha: bool = False) -> m.Image:
    picture = PILImage.open(path)
    mode = "RGBA" if keep_alpha and picture.mode in ("RGBA", "LA", "PA") else "RGB"
    array = np.asarray(picture.convert(mode))
    return array_to_image(array)


def array_to_image(array: np.ndarray) -> m.Image:
    array = np.ascontiguousarray(array)
    height, width, channels = array.shape
    return m.Image(width, height, channels, array.tobytes())


def save_image(image: m.Image, path: Path) -> None:
    row = np.frombuffer(image.packed(), dtype=np.uint8)
    array = row.reshape(image.height, image.width, image.channels)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[image.channels]
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(array.squeeze(2) if image.channels == 1 else array, mode).save(path)


def split_weight(spec: str) -> tuple[str, float]:
    """`NAME:WEIGHT` into its name and blend weight (1 when none is given)."""
    head, sep, tail = spec.rpartition(":")
    try:
        target, weight = (head, float(tail)) if sep else (spec, 1.0)
    except ValueError:  # a colon that is part of the name
        target, weight = spec, 1.0
    if weight <= 0:
        raise argparse.ArgumentTypeError(f"style weight must be positive in {spec!r}")
    return target, weight


def parse_style(spec: str) -> m.Style:
    """`FILE`, `FILE:WEIGHT`, `PRESET` or `PRESET:WEIGHT`; an existing file wins over a preset name."""
    target, weight = split_weight(spec)
    path = Path(target).expanduser()
    if path.is_file():
        try:
            return m.Style(weight=weight, image=load_image(path))
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read style image {path}: {exc}") from None
    if os.sep in target or "." in Path(target).name:
        raise argparse.ArgumentTypeError(f"no such style image: {target}")
    return m.Style(weight=weight, preset=target)


def parse_preset(spec: str) -> m.Style:
    """`NAME` or `NAME:WEIGHT`: always a preset, never a file."""
    name, weight = split_weight(spec)
    return m.Style(weight=weight, preset=name)


# --- progress ----------------------------------------------------------------------------

class ProgressBar:
    """One line on stderr, redrawn in place on a terminal, every 10% elsewhere."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_decile = -1

    def update(self, header: dict) -> None:
        iteration, total = header["iteration"], header["total"]
        fraction = iteration / total
        bar = "#" * int(fraction * 30)
        scale = f" scale {header['scale']}/{header['scales']}" if header.get("scales", 1) > 1 else ""
        line = (f"[{bar:<30}] {iteration}/{total}{scale} {header['width']}x{header['height']}  "
                f"loss {header['losses'].get('total', float('nan')):.4g}  ETA {format_seconds(header['eta'])}")
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

def connect(args: argparse.Namespace, timeout: float = m.PEER_TIMEOUT_S) -> Client:
    """A client for `--endpoint`, with CURVE keys when a remote daemon needs them."""
    keys = None
    client_key = getattr(args, "client_key", None) or os.environ.get("IMPASTO_CLIENT_KEY")
    server_key = getattr(args, "server_key", None) or os.environ.get("IMPASTO_SERVER_KEY")
    if client_key or server_key:
        if not (client_key and server_key):
            raise SystemExit("impasto: CURVE needs both --client-key and --server-key")
        keys = ClientKeys.load(Path(client_key), Path(server_key))
    return Client(args.endpoint, timeout=timeout, keys=keys)


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

def run_job(client: Client, submit: m.Submit, output: Path, frames: Path | None, quiet: bool = False) -> int:
    bar = ProgressBar()
    replies = client.run_job(submit)
    try:
        for reply in replies:
            if reply.type == m.ACCEPTED and reply.header["position"] > 0 and not quiet:
                bar.message(f"queued behind {reply.header['position']} job(s)")
            elif reply.type == m.PROGRESS and not quiet:
                bar.update(reply.header)
            elif reply.type == m.PREVIEW and frames is not None:
                save_image(reply.image, frames / f"frame-{reply.header['iteration']:05d}.png")
            elif reply.type == m.RESULT:
                save_image(reply.image, output)
                if not quiet:
                    bar.done()
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
            reply = client.receive(0.2)
            if reply is not None and reply.type in (m.CANCELLED, m.RESULT, m.ERROR) and reply.job == submit.job:
                break
        bar.message("cancelled")
        return EXIT_INTERRUPTED
    return EXIT_JOB


def params_from(args: argparse.Namespace, recommended: dict | None = None) -> m.JobParams:
    """The job's settings: those given on the command line, over a preset's `recommended` ones."""
    given = {name: getattr(args, name) for name in m.JobParams().to_wire() if getattr(args, name, None) is not None}
    return m.JobParams.from_wire({**(recommended or {}), **given})


def load_mask(path: Path, content: m.Image) -> m.Image:
    """A grey image the content's size: white is stylised, black kept, grey blended."""
    picture = PILImage.open(path)
    if picture.size != (content.width, content.height):
        raise ValueError(f"the mask is {picture.size[0]}x{picture.size[1]}, the photo "
                         f"{content.width}x{content.height}: they must match")
    return array_to_image(np.asarray(picture.convert("L"))[..., None])


def cmd_stylize(args: argparse.Namespace) -> int:
    styles = [*(args.style or []), *(args.preset or [])]
    if not styles:
        print("impasto: give a style: --style FILE|PRESET or --preset NAME", file=sys.stderr)
        return 2
    try:
        content = load_image(args.content, keep_alpha=True)
    except OSError as exc:
        print(f"impasto: cannot read {args.content}: {exc}", file=sys.stderr)
        return 2
    try:
        mask = load_mask(args.mask, content) if args.mask else None
    except (OSError, ValueError) as exc:
        print(f"impasto: cannot use the mask {args.mask}: {exc}", file=sys.stderr)
        return 2
    ensure_daemon(args.endpoint)  # as the plug-in does: the first job starts the daemon
    with connect(args) as client:
        recommended: dict = {}
        listing = {entry["name"]: entry for entry in client.presets()} if args.preset else {}
        for style in args.preset or []:  # a preset's recommended settings, unless given here
            entry = listing.get(style.preset)
            if entry is None:
                print(f"impasto: no preset named {style.preset!r} (see `impasto presets`)", file=sys.stderr)
                return EXIT_JOB
            recommended.update(entry.get("params") or {})
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
            except OSError as exc:
                print(f"impasto: cannot read {args.image}: {exc}", file=sys.stderr)
                return 2
            params = {"strength": args.strength} if args.strength is not None else {}
            client.add_preset(args.name, image, args.description or f"from {args.image.name}", params)
            print(f"added preset {args.name!r}", file=sys.stderr)
        elif args.action == "remove":
            client.remove_preset(args.name)
            print(f"removed preset {args.name!r}", file=sys.stderr)
        else:
            for preset in client.presets():
                print(f"{preset['name']:<16} {preset.get('source', ''):<9} {preset['description']}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.request(m.SHUTDOWN)
    print("the daemon is stopping", file=sys.stderr)
    return 0


def ensure_daemon(endpoint: str, wait: float = 120.0) -> None:
    """Start `impasto-daemon` in its own session unless one already answers on `endpoint`."""
    with Client(endpoint, timeout=1.0) as client:
        try:
            client.hello()
            return
        except DaemonUnavailable:
            pass
    path = ipc_path(endpoint)
    log_path = (path.parent if path else Path.cwd()) / "impasto-daemon.log"
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    print(f"starting impasto-daemon on {endpoint} (log: {log_path}); loading VGG19…", file=sys.stderr)
    with open(log_path, "ab") as log:
        subprocess.Popen([sys.executable, "-m", "daemon.main", "--endpoint", endpoint],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    try:
        hello = wait_for_daemon(endpoint, wait)
    except DaemonUnavailable:
        raise DaemonUnavailable(f"impasto-daemon did not come up within {wait:g} s; see {log_path}") from None
    print(f"daemon ready on {hello['device']}", file=sys.stderr)


def cmd_demo(args: argparse.Namespace) -> int:
    from daemon import artwork  # numpy + Pillow only

    ensure_daemon(args.endpoint)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="impasto", description="Neural style transfer through the Impasto daemon.")
    parser.add_argument("--endpoint", default=os.environ.get("IMPASTO_ENDPOINT") or default_endpoint(),
                        help="the daemon's ZeroMQ endpoint (default: $IMPASTO_ENDPOINT, else %(default)s)")
    # --endpoint may also follow the command (`impasto stylize --endpoint ...`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint", default=argparse.SUPPRESS, help="the daemon's ZeroMQ endpoint")
    common.add_argument("--server-key", default=argparse.SUPPRESS, help="a remote daemon's CURVE public key file")
    common.add_argument("--client-key", default=argparse.SUPPRESS, help="this client's CURVE secret key file")
    commands = parser.add_subparsers(dest="command", required=True)

    defaults = m.JobParams()
    stylize = commands.add_parser("stylize", parents=[common], help="stylise an image")
    stylize.add_argument("content", type=Path, help="the photo to stylise")
    stylize.add_argument("--style", action="append", type=parse_style,
                         metavar="FILE|PRESET[:WEIGHT]",
                         help="a style image or preset name, with an optional blend weight; repeat to mix styles")
    stylize.add_argument("--preset", action="append", type=parse_preset, metavar="NAME[:WEIGHT]",
                         help="a named style (see `impasto presets`), with its recommended settings unless given "
                         "here; mixes with --style")
    stylize.add_argument("--mask", type=Path, help="a grey image the photo's size: white is stylised, black kept "
                         "exactly, grey blended")
    stylize.add_argument("--mask-feather", type=float, help="soften the mask's edge over this many pixels, inside "
                         f"the mask (default: {defaults.mask_feather:g})")
    stylize.add_argument("-o", "--output", type=Path, required=True, help="where to write the result (PNG)")
    stylize.add_argument("--frames", type=Path, help="folder to save progressive previews in")
    stylize.add_argument("--size", type=int, help=f"long side to work at, in pixels (default: {defaults.size}); "
                         "the result comes back at the content's size")
    stylize.add_argument("--iterations", type=int, help=f"optimiser iterations at the full size (default: "
                         f"{defaults.iterations})")
    stylize.add_argument("--coarse-iterations", type=int, help="optimiser iterations at each smaller scale, 0 for "
                         f"as many as --iterations (default: {defaults.coarse_iterations})")
    stylize.add_argument("--strength", type=float, help="0 keeps the photo, 1 is all painting; the same "
                         f"balance at every size (default: {defaults.strength:g})")
    stylize.add_argument("--first-scale", type=int, help="long side of the first, coarsest scale; scales grow "
                         f"by √2 from there, 0 for a single scale (default: {defaults.first_scale})")
    stylize.add_argument("--style-scale", type=float, help="size of the painting's brush strokes relative to "
                         f"the picture (default: {defaults.style_scale:g})")
    stylize.add_argument("--style-loss", choices=("gram", "sliced"), help="Gram matrices (Gatys) or sliced "
                         f"Wasserstein (Heitz et al.) (default: {defaults.style_loss})")
    stylize.add_argument("--precision", choices=("auto", "bf16", "fp32"), help="bf16 where the device has it "
                         f"(auto), or force one (default: {defaults.precision})")
    stylize.add_argument("--keep-colors", choices=("none", "luminance", "match"),
                         help="keep the photo's colours: transfer only luminance, or recolour the painting to the "
                         "photo's palette first (default: none)")
    stylize.add_argument("--recipe", choices=sorted(m.RECIPES), help="a classic tutorial's set-up; other options "
                         "given override its values")
    stylize.add_argument("--content-weight", type=float, help=f"expert: default: {defaults.content_weight:g}")
    stylize.add_argument("--style-weight", type=float, help=f"expert: default: {defaults.style_weight:g}")
    stylize.add_argument("--tv-weight", type=float, help=f"total-variation (smoothness) weight, default: "
                         f"{defaults.tv_weight:g}")
    stylize.add_argument("--optimizer", choices=("lbfgs", "adam"), help=f"default: {defaults.optimizer}")
    stylize.add_argument("--learning-rate", type=float, help=f"Adam's step (default: {defaults.learning_rate:g})")
    stylize.add_argument("--init", choices=("content", "noise"), help=f"start image (default: {defaults.init})")
    stylize.add_argument("--pooling", choices=("max", "avg"), help=f"VGG19 pooling (default: {defaults.pooling})")
    stylize.add_argument("--seed", type=int, help=f"random seed (default: {defaults.seed})")
    stylize.add_argument("--preview-every", type=int, help=f"a preview every N iterations, 0 for none "
                         f"(default: {defaults.preview_every})")
    stylize.add_argument("--tile-pixels", type=int, help="the most pixels the network sees at once; larger "
                         "pictures run in overlapping tiles (default: as many as the daemon's memory allows)")
    stylize.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    stylize.set_defaults(run=cmd_stylize)

    for name, run, text in (("status", cmd_status, "show the daemon's version, device and queue"),
                            ("ping", cmd_status, "same as status"),
                            ("stop", cmd_stop, "ask the daemon to finish and exit")):
        commands.add_parser(name, parents=[common], help=text).set_defaults(run=run)

    presets = commands.add_parser("presets", parents=[common], help="list, add or remove style presets")
    actions = presets.add_subparsers(dest="action")
    add = actions.add_parser("add", help="store an image as a named style on the daemon")
    add.add_argument("name", help="lowercase letters, digits, '-' and '_'")
    add.add_argument("image", type=Path)
    add.add_argument("--description")
    add.add_argument("--strength", type=float, help="the strength recommended with this style")
    actions.add_parser("remove", help="delete a user preset").add_argument("name")
    actions.add_parser("list", help="the default")
    presets.set_defaults(run=cmd_presets)

    keys = commands.add_parser("keys", help="make CURVE keys for a daemon on another machine")
    keys.add_argument("folder", type=Path)
    keys.set_defaults(run=cmd_keys)

    demo = commands.add_parser("demo", parents=[common],
                               help="start the daemon if needed and stylise a built-in picture")
    demo.add_argument("-o", "--output", type=Path, default=Path("impasto-demo.png"))
    demo.add_argument("--frames", type=Path, default=Path("impasto-demo-frames"))
    demo.add_argument("--preset", default="swirls")
    demo.add_argument("--size", type=int, default=384)
    demo.add_argument("--iterations", type=int, default=m.JobParams().iterations, help="at the full size")
    demo.add_argument("--preview-every", type=int, default=10)
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
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
