"""Reaching the daemon from the command line: CURVE keys for a remote one, and a local one started
on the first job, as the plug-in does."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from impasto.protocol import messages as m
from impasto.protocol.client import Client, ensure_daemon
from impasto.protocol.security import ClientKeys

EXIT_DAEMON = 3  # could not talk to the daemon
EXIT_JOB = 4  # the daemon refused or failed the job
EXIT_OUTPUT = 5  # the result could not be written where asked (it was kept elsewhere, and said)
EXIT_INTERRUPTED = 130
# This Python runs the daemon the CLI starts, so it has the same packages.
DAEMON_COMMAND = (sys.executable, "-m", "impasto.daemon.launch")


def curve_keys(args: argparse.Namespace) -> ClientKeys | None:
    """CURVE keys from --client-key/--server-key (or the environment), for a remote daemon."""
    client_key = getattr(args, "client_key", None) or os.environ.get("IMPASTO_CLIENT_KEY")
    server_key = getattr(args, "server_key", None) or os.environ.get("IMPASTO_SERVER_KEY")
    if not (client_key or server_key):
        return None
    if not (client_key and server_key):
        raise SystemExit("impasto: CURVE needs both --client-key and --server-key")
    try:
        return ClientKeys.load(Path(client_key), Path(server_key))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"impasto: cannot use the CURVE keys: {exc}") from None


def connect(args: argparse.Namespace, timeout: float = m.PEER_TIMEOUT_S) -> Client:
    """A client for `--endpoint`, with CURVE keys when a remote daemon needs them."""
    return Client(args.endpoint, timeout=timeout, keys=curve_keys(args))


def start_if_needed(args: argparse.Namespace) -> None:
    """As the plug-in does: the first job starts a local daemon (never one on tcp)."""
    started = []

    def tell(log_path: Path) -> None:
        started.append(log_path)
        print(f"starting impasto-daemon on {args.endpoint} (log: {log_path}); loading VGG19…", file=sys.stderr)

    hello = ensure_daemon(args.endpoint, DAEMON_COMMAND, keys=curve_keys(args), on_start=tell)
    if started:
        print(f"daemon ready on {hello['device']}", file=sys.stderr)
