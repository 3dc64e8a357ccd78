"""The client side of the protocol, shared by the CLI and the GIMP plug-in (pyzmq + msgpack only).

A DEALER socket talks to the daemon's ROUTER. Every wait is a Poller with a timeout, so a dead
or absent daemon is noticed within `PEER_TIMEOUT_S` and never freezes the caller (the ZeroMQ
guide's Lazy Pirate pattern). While a job runs the client sends heartbeats, which both keep its
job alive on the daemon and draw replies that prove the daemon is alive.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator

import zmq

from . import messages as m
from .endpoint import default_endpoint
from .security import ClientKeys


class DaemonUnavailable(ConnectionError):
    """No answer from the daemon in time: not running, or died."""


class DaemonError(RuntimeError):
    """The daemon answered with an `error` reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} [{code}]")
        self.code = code
        self.message = message


class Client:
    def __init__(self, endpoint: str | None = None, timeout: float = m.PEER_TIMEOUT_S,
                 context: zmq.Context | None = None, keys: ClientKeys | None = None) -> None:
        self.endpoint = endpoint or os.environ.get("IMPASTO_ENDPOINT") or default_endpoint()
        self.timeout = timeout
        self.keys = keys  # CURVE, for a daemon on another machine
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None

    # Lazy Pirate: a socket that timed out may hold a half-sent request; throw it away.
    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            socket = self._context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.MAXMSGSIZE, m.MAX_MESSAGE_BYTES)
            if self.keys is not None:
                self.keys.apply(socket)
            socket.connect(self.endpoint)
            self._socket = socket
        return self._socket

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, frames: list) -> None:
        self._connect().send_multipart(frames, copy=False)

    def receive(self, timeout: float) -> m.Reply | None:
        """The next reply, or None when none came within `timeout` seconds."""
        socket = self._connect()
        if not socket.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        frames = [frame.buffer for frame in socket.recv_multipart(copy=False)]
        return m.parse_reply(frames)

    def request(self, kind: str, images: tuple[m.Image, ...] = (), **fields: object) -> m.Reply:
        """One request, one reply (hello, presets, preset_add, preset_remove, shutdown)."""
        self.send(m.encode({"type": kind, **fields}, list(images)))
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            reply = self.receive(left)
            if reply is None:
                break
            if reply.type == m.ERROR:
                raise DaemonError(reply.header.get("code", "?"), reply.header.get("message", ""))
            if reply.type == kind:
                return reply
            # A late reply to something earlier (a heartbeat, say): not ours, keep waiting.
        self.close()
        raise DaemonUnavailable(f"no answer from the Impasto daemon at {self.endpoint} within {self.timeout:g} s "
                                "(is it running? start it with `impasto-daemon`)")

    def hello(self) -> dict:
        return self.request(m.HELLO).header

    def presets(self) -> list[dict]:
        return self.request(m.PRESETS).header.get("presets", [])

    def add_preset(self, name: str, image: m.Image, description: str = "", params: dict | None = None) -> None:
        self.request(m.PRESET_ADD, (image,), name=name, image=image.describe(1), description=description,
                     params=params or {})

    def remove_preset(self, name: str) -> None:
        self.request(m.PRESET_REMOVE, name=name)

    def cancel(self, job: str) -> None:
        self.send(m.simple_message(m.CANCEL, job=job))

    def run_job(self, submit: m.Submit, should_stop: Callable[[], bool] = lambda: False) -> Iterator[m.Reply]:
        """Submit a job and yield its replies (accepted, progress, preview) up to the last one.

        The last reply yielded is `result` or `cancelled`; an `error` raises DaemonError and a
        silent daemon raises DaemonUnavailable. When `should_stop()` turns true, or the caller
        stops iterating (Ctrl-C), the job is cancelled on the daemon.
        """
        self.send(m.submit_message(submit))
        last_heard = last_beat = time.monotonic()
        cancel_sent = False
        finished = False
        try:
            while True:
                now = time.monotonic()
                if now - last_beat >= m.HEARTBEAT_INTERVAL_S:
                    self.send(m.simple_message(m.HEARTBEAT, job=submit.job))
                    last_beat = now
                if should_stop() and not cancel_sent:
                    self.cancel(submit.job)
                    cancel_sent = True
                reply = self.receive(min(m.HEARTBEAT_INTERVAL_S, 0.25))
                now = time.monotonic()
                if reply is None:
                    if now - last_heard > self.timeout:
                        self.close()
                        raise DaemonUnavailable(
                            f"the Impasto daemon at {self.endpoint} stopped answering for {self.timeout:g} s")
                    continue
                last_heard = now
                if reply.type == m.HEARTBEAT or (reply.job not in (None, submit.job)):
                    continue
                if reply.type == m.ERROR:
                    finished = True
                    raise DaemonError(reply.header.get("code", "?"), reply.header.get("message", ""))
                finished = reply.type in (m.RESULT, m.CANCELLED)
                if reply.type == m.PREVIEW:  # taken in: the daemon may send the next one
                    self.send(m.simple_message(m.HEARTBEAT, job=submit.job, seen=reply.header["iteration"]))
                    last_beat = now
                yield reply
                if finished:
                    return
        finally:
            if not finished and self._socket is not None:
                self.cancel(submit.job)


def wait_for_daemon(endpoint: str, wait: float, keys: ClientKeys | None = None,
                    still_starting: Callable[[], bool] = lambda: True) -> dict:
    """Poll `hello` until the daemon at `endpoint` answers; returns its hello.

    Raises DaemonUnavailable after `wait` seconds, or as soon as `still_starting()` turns false
    (say, the daemon's process has exited).
    """
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and still_starting():
        with Client(endpoint, timeout=0.5, keys=keys) as client:
            try:
                return client.hello()
            except DaemonUnavailable:
                continue
    raise DaemonUnavailable(f"no Impasto daemon answered at {endpoint} within {wait:g} s")


def new_job_id() -> str:
    return uuid.uuid4().hex
