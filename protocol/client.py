"""The client side of the protocol, shared by the CLI and the GIMP plug-in (pyzmq + msgpack only).

A DEALER socket talks to the daemon's ROUTER. Every wait is a Poller with a timeout, so a dead
or absent daemon is noticed within `PEER_TIMEOUT_S` and never freezes the caller (the ZeroMQ
guide's Lazy Pirate pattern). While a job runs the client sends heartbeats, which both keep its
job alive on the daemon and draw replies that prove the daemon is alive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from pathlib import Path

import zmq

from . import messages as m
from .endpoint import check_socket_folder, default_endpoint, ipc_path, local_keys, make_private_dir, served_by_service
from .security import ClientKeys


class DaemonUnavailable(ConnectionError):
    """No answer from the daemon in time: not running, or died."""


class DaemonError(RuntimeError):
    """The daemon answered with an `error` reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} [{code}]")
        self.code = code
        self.message = message


def recorded_keys(endpoint: str) -> ClientKeys | None:
    """The keys the installer made for a daemon on loopback tcp (Windows), when `endpoint` is its."""
    files = local_keys(endpoint) if endpoint.startswith("tcp://") else None
    try:
        return ClientKeys.load(*files) if files else None
    except (OSError, ValueError):
        return None  # the daemon's refusal then says what is wrong


class Client:
    def __init__(self, endpoint: str | None = None, timeout: float = m.PEER_TIMEOUT_S,
                 context: zmq.Context | None = None, keys: ClientKeys | None = None) -> None:
        self.endpoint = endpoint or default_endpoint()
        self.timeout = timeout
        self.keys = keys or recorded_keys(self.endpoint)  # CURVE: a daemon on another machine, or on loopback tcp
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None

    # Lazy Pirate: a socket that timed out may hold a half-sent request; throw it away.
    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            path = ipc_path(self.endpoint)
            if path is not None:
                try:
                    check_socket_folder(path.parent)
                except PermissionError as exc:
                    raise DaemonUnavailable(str(exc)) from None
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

    def request(self, kind: str, frames: list | None = None) -> m.Reply:
        """One request, one reply of the same type (hello, presets, preset_add, preset_remove,
        shutdown); `frames` is the request when it carries more than its type."""
        self.send(frames if frames is not None else m.simple_message(kind))
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
                                "(is it running?)")

    def hello(self) -> dict:
        return self.request(m.HELLO).header

    def presets(self) -> list[dict]:
        return self.request(m.PRESETS).header.get("presets", [])

    def preset_gallery(self) -> list[m.PresetInfo]:
        """The presets with their thumbnails."""
        reply = self.request(m.PRESETS)
        return m.preset_infos(reply.header, reply.frames)

    def add_preset(self, name: str, image: m.Image, description: str = "", params: dict | None = None) -> None:
        self.request(m.PRESET_ADD, m.preset_add_message(m.PresetUpload(name, image, description, params or {})))

    def remove_preset(self, name: str) -> None:
        self.request(m.PRESET_REMOVE, m.preset_remove_message(name))

    def estimate(self, width: int, height: int, params: m.JobParams, whole: tuple[int, int] | None = None) -> dict:
        """The daemon's forecast for a job: `seconds`, and the `working` and `output` sizes (for a
        part sent with its whole, `whole` is that whole's size)."""
        return self.request(m.ESTIMATE, m.estimate_message(m.Estimate(width, height, params, whole))).header

    def cancel(self, job: str) -> None:
        self.send(m.cancel_message(job))

    def run_job(self, submit: m.Submit,
                should_stop: Callable[[], bool] = lambda: False) -> Generator[m.Reply, None, None]:
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
                    self.send(m.heartbeat_message(submit.job))
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
                    self.send(m.heartbeat_message(submit.job, seen=reply.header["iteration"]))
                    last_beat = now
                yield reply
                if finished:
                    return
        finally:
            if not finished and self._socket is not None:
                self.cancel(submit.job)


def wait_for_daemon(endpoint: str, wait: float, keys: ClientKeys | None = None,
                    still_starting: Callable[[], bool] = lambda: True,
                    on_wait: Callable[[], None] = lambda: None) -> dict:
    """Poll `hello` until the daemon at `endpoint` answers; returns its hello.

    Raises DaemonUnavailable after `wait` seconds, or as soon as `still_starting()` turns false
    (say, the daemon's process has exited). `on_wait()` is called between tries (a GUI's pulse).
    """
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and still_starting():
        on_wait()
        with Client(endpoint, timeout=0.5, keys=keys) as client:
            try:
                return client.hello()
            except DaemonUnavailable:
                continue
    raise DaemonUnavailable(f"no Impasto daemon answered at {endpoint} within {wait:g} s")


def daemon_log_path(endpoint: str) -> Path:
    """Where a daemon started for an ipc endpoint logs: beside its socket, in the private folder."""
    path = ipc_path(endpoint)
    if path is None:
        raise ValueError(f"{endpoint} is not an ipc endpoint")
    return path.parent / "impasto-daemon.log"


def last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def spawn_daemon(command: Sequence[str], endpoint: str, log_path: Path, detach: bool = True,
                 cwd: Path | None = None) -> subprocess.Popen:
    """Run `command --endpoint ENDPOINT`, logging to `log_path`, without waiting for it to answer
    (a dialog that goes on drawing meanwhile); start_daemon waits."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(log_path, flags, 0o600)  # never through a planted symlink
        with open(descriptor, "ab") as log:
            return subprocess.Popen([*command, "--endpoint", endpoint], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=log, start_new_session=detach, cwd=cwd)
    except OSError as exc:
        raise DaemonUnavailable(f"could not start the Impasto daemon ({' '.join(command)}): {exc}") from None


def await_daemon(process: subprocess.Popen, endpoint: str, log_path: Path, wait: float = 120.0,
                 keys: ClientKeys | None = None, on_wait: Callable[[], None] = lambda: None) -> dict:
    """The hello of the daemon `process` just started, once it answers; DaemonUnavailable, with
    its log's last line, when it exits first or does not answer within `wait` seconds."""
    try:
        return wait_for_daemon(endpoint, wait, keys, lambda: process.poll() is None, on_wait)
    except DaemonUnavailable:
        if process.poll() is None:
            raise DaemonUnavailable(f"the Impasto daemon did not answer within {wait:g} s; see {log_path}") from None
        raise DaemonUnavailable(f"the Impasto daemon exited at once (status {process.returncode}): "
                                f"{last_line(log_path) or 'no output'}; see {log_path}") from None


def start_daemon(command: Sequence[str], endpoint: str, log_path: Path, wait: float = 120.0,
                 keys: ClientKeys | None = None, on_wait: Callable[[], None] = lambda: None,
                 detach: bool = True, cwd: Path | None = None) -> tuple[subprocess.Popen, dict]:
    """Run `command --endpoint ENDPOINT`, logging to `log_path`, and wait until it answers.

    The one way the CLI, the plug-in, the benches and the tests start a daemon. `detach` gives
    it a session of its own, so it outlives its starter (GIMP kills a plug-in's process group).
    Returns the process and its hello.
    """
    process = spawn_daemon(command, endpoint, log_path, detach, cwd)
    return process, await_daemon(process, endpoint, log_path, wait, keys, on_wait)


def command_found(command: Sequence[str]) -> bool:
    """Whether `command`'s program exists, as a path or on PATH."""
    return bool(command) and (os.path.exists(command[0]) or shutil.which(command[0]) is not None)


def spawn_local_daemon(command: Sequence[str], endpoint: str) -> tuple[subprocess.Popen, Path]:
    """Start a daemon for `endpoint` in the background, logging beside its socket; returns the
    process and its log.

    Only a local (ipc) daemon is ever started by a client: one on tcp runs elsewhere or under its
    own keys, so its absence is reported, not papered over. The socket's folder must be ours and
    closed to others (another local user could otherwise listen there).
    """
    if ipc_path(endpoint) is None:
        raise DaemonUnavailable(f"no Impasto daemon answers at {endpoint}; one on tcp or an abstract socket is "
                                "never started from here: start it where it runs")
    log_path = daemon_log_path(endpoint)
    try:
        make_private_dir(log_path.parent)
    except PermissionError as exc:
        raise DaemonUnavailable(str(exc)) from None
    return spawn_daemon(command, endpoint, log_path), log_path


def ensure_daemon(endpoint: str, command: Sequence[str], wait: float = 120.0, keys: ClientKeys | None = None,
                  on_wait: Callable[[], None] = lambda: None,
                  on_start: Callable[[Path], None] = lambda log: None) -> dict:
    """The hello of the daemon at `endpoint`, after starting one with `command` if none answers
    (spawn_local_daemon says where one may be started); `on_start(log_path)` is told when it
    starts, since loading VGG19 takes a while. A daemon run by a user service is waited for instead."""
    with Client(endpoint, timeout=1.0, keys=keys) as client:
        try:
            return client.hello()
        except DaemonUnavailable:
            pass
    if served_by_service(endpoint):
        try:
            return wait_for_daemon(endpoint, wait, keys, on_wait=on_wait)
        except DaemonUnavailable:
            raise DaemonUnavailable(f"the Impasto service did not answer at {endpoint} within {wait:g} s: see "
                                    "`impasto service status`") from None
    process, log_path = spawn_local_daemon(command, endpoint)
    on_start(log_path)
    return await_daemon(process, endpoint, log_path, wait, keys, on_wait)


def new_job_id() -> str:
    return uuid.uuid4().hex
