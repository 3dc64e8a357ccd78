"""Who may talk to a daemon: transport rules and ZeroMQ CURVE keys (pyzmq only, no torch).

- `ipc://` sockets live in a folder only their user can enter: no keys needed. A Linux abstract
  socket (`ipc://@name`) has no folder, so every local user can reach it, as on loopback tcp.
- `tcp://` on a loopback address is reachable by every local user, so it needs CURVE, or an
  explicit `--insecure-loopback` from whoever starts the daemon.
- `tcp://` on any other address needs CURVE: the daemon's key pair and a folder of the public
  keys of the clients it accepts (ZeroMQ's CurveZMQ, RFC 26, through pyzmq's authenticator).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from .endpoint import is_loopback_tcp


class TransportRefused(ValueError):
    """An endpoint that would expose the daemon without the keys to protect it."""


def check_transport(endpoint: str, curve: bool, insecure_loopback: bool) -> None:
    """Refuse an endpoint that the given protection does not cover."""
    if endpoint.startswith("ipc://@") and not insecure_loopback:
        raise TransportRefused(f"{endpoint} is an abstract socket, open to every user of this machine: use a "
                               "socket file (ipc:///path) or say --insecure-loopback")
    if endpoint.startswith("ipc://") or curve:
        return
    if not endpoint.startswith("tcp://"):
        raise TransportRefused(f"unsupported endpoint {endpoint!r}: use ipc:// or tcp://")
    if is_loopback_tcp(endpoint):
        if insecure_loopback:
            return
        raise TransportRefused(f"{endpoint} is open to every user of this machine: add CURVE keys "
                               "(--curve-secret, --curve-clients) or say --insecure-loopback")
    raise TransportRefused(f"{endpoint} would be reachable from the network: it needs CURVE keys "
                           "(--curve-secret and --curve-clients; `impasto keys DIR` makes them)")


@dataclass
class ClientKeys:
    """What a client needs for CURVE: its own key pair and the daemon's public key."""

    public: bytes
    secret: bytes
    server_public: bytes

    @classmethod
    def load(cls, client_secret_file: Path, server_public_file: Path) -> ClientKeys:
        public, secret = zmq.auth.load_certificate(str(client_secret_file))
        server_public, _ = zmq.auth.load_certificate(str(server_public_file))
        if secret is None:
            raise ValueError(f"{client_secret_file} holds no secret key (use the .key_secret file)")
        return cls(public, secret, server_public)

    def apply(self, socket: zmq.Socket) -> None:
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
        socket.curve_serverkey = self.server_public


def make_keys(folder: Path) -> dict[str, Path]:
    """A daemon key pair and one client key pair in `folder`, the client's public key allowed.

    A new folder is made 0700; an existing one keeps its mode (it may be shared). The secret
    files are 0600 whatever the folder: written under a private umask, and made so if older.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    clients = folder / "clients"
    clients.mkdir(exist_ok=True)
    paths = {}
    for name in ("server", "client"):
        secret = folder / f"{name}.key_secret"
        if not secret.exists():
            old = os.umask(0o077)  # never readable by others, not even for a moment
            try:
                zmq.auth.create_certificates(str(folder), name)
            finally:
                os.umask(old)
        secret.chmod(0o600)
        paths[name] = folder / f"{name}.key"
        paths[name + "_secret"] = secret
    (clients / "client.key").write_bytes(paths["client"].read_bytes())
    paths["clients"] = clients
    return paths
