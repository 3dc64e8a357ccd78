"""Who may connect: transport rules, and CURVE with a real daemon on loopback tcp."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from impasto.protocol.client import Client, DaemonUnavailable, ensure_daemon, start_daemon
from impasto.protocol.security import ClientKeys, TransportRefused, check_transport, make_keys

from .conftest import IMPASTO, ROOT, DaemonProcess, cli_env, write_png


@pytest.mark.parametrize("endpoint, curve, insecure, allowed", [
    ("ipc:///tmp/x/d.sock", False, False, True),
    ("tcp://127.0.0.1:5555", False, False, False),
    ("tcp://127.0.0.1:5555", False, True, True),
    ("tcp://localhost:5555", False, True, True),
    ("tcp://[::1]:5555", False, True, True),
    ("tcp://0.0.0.0:5555", False, True, False),
    ("tcp://192.168.1.20:5555", False, False, False),
    ("tcp://eth0:5555", False, True, False),
    ("tcp://0.0.0.0:5555", True, False, True),
])
def test_transport_rules(endpoint, curve, insecure, allowed) -> None:
    if allowed:
        check_transport(endpoint, curve, insecure)
    else:
        with pytest.raises(TransportRefused):
            check_transport(endpoint, curve, insecure)


def test_daemon_refuses_an_open_network_endpoint_before_binding() -> None:
    out = subprocess.run([sys.executable, "-m", "impasto.daemon.main", "--endpoint", "tcp://0.0.0.0:5599"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2 and "CURVE" in out.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def curve_daemon(tmp_path_factory):
    folder = tmp_path_factory.mktemp("curve")
    paths = make_keys(folder / "keys")
    keys = ClientKeys.load(paths["client_secret"], paths["server"])
    process = DaemonProcess(f"tcp://127.0.0.1:{free_port()}", folder / "daemon.log", "--curve-secret",
                            str(paths["server_secret"]), "--curve-clients", str(paths["clients"]), keys=keys)
    yield process, paths, keys
    process.stop()


def test_the_right_keys_are_served(curve_daemon) -> None:
    process, paths, keys = curve_daemon
    with Client(process.endpoint, keys=keys) as client:
        assert client.hello()["model"] == "vgg19-caffe"
    cli = subprocess.run([*IMPASTO, "--endpoint", process.endpoint, "status",
                          "--server-key", str(paths["server"]), "--client-key", str(paths["client_secret"])],
                         capture_output=True, text=True, env=cli_env(process.endpoint), timeout=30, cwd=ROOT)
    assert cli.returncode == 0, cli.stderr


def test_a_client_without_an_allowed_key_is_refused(curve_daemon, tmp_path) -> None:
    process, paths, _ = curve_daemon
    stranger = make_keys(tmp_path / "other")  # a key pair the daemon never heard of
    keys = ClientKeys.load(stranger["client_secret"], paths["server"])
    with Client(process.endpoint, timeout=1.5, keys=keys) as client, pytest.raises(DaemonUnavailable):
        client.hello()
    with Client(process.endpoint, timeout=1.5) as client, pytest.raises(DaemonUnavailable):
        client.hello()  # no CURVE at all
    with Client(process.endpoint, keys=curve_daemon[2]) as client:
        assert client.hello()["queue"] == 0  # and the daemon goes on serving its own


def test_cli_stylize_uses_a_curve_daemon_and_starts_none(curve_daemon, tmp_path, content_image, style_image) -> None:
    process, paths, _ = curve_daemon
    write_png(tmp_path / "photo.png", content_image)
    write_png(tmp_path / "painting.png", style_image)
    keys = ["--server-key", str(paths["server"]), "--client-key", str(paths["client_secret"])]
    stylize = [*IMPASTO, "stylize", str(tmp_path / "photo.png"), "--style",
               str(tmp_path / "painting.png"), "--size", "32", "--iterations", "2", "-q", "-o", str(tmp_path / "o.png")]
    out = subprocess.run([*stylize, "--endpoint", process.endpoint, *keys], capture_output=True, text=True,
                         env=cli_env(process.endpoint), timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "o.png").is_file() and "starting" not in out.stderr
    # No daemon on a tcp endpoint: said at once, nothing started, no log left in the current folder.
    started = time.monotonic()
    out = subprocess.run([*stylize, "--endpoint", f"tcp://127.0.0.1:{free_port()}", *keys], capture_output=True,
                         text=True, env=cli_env(process.endpoint), timeout=60, cwd=tmp_path)
    assert out.returncode == 3 and "never started" in out.stderr, out.stderr
    assert time.monotonic() - started < 15 and not list(tmp_path.glob("*.log"))


def test_a_daemon_that_exits_at_once_is_reported_at_once(tmp_path) -> None:
    log = tmp_path / "d.log"
    started = time.monotonic()
    with pytest.raises(DaemonUnavailable, match="exited at once"):
        start_daemon([sys.executable, "-m", "impasto.daemon.main", "--weights", str(tmp_path / "missing.pt")],
                     f"ipc://{tmp_path}/d.sock", log, wait=60, detach=False)
    assert time.monotonic() - started < 30  # not the 60 s it would wait for a daemon still loading
    assert "missing.pt" in log.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a folder another user owns needs root")
def test_a_socket_folder_another_user_owns_is_refused(tmp_path) -> None:
    folder = tmp_path / "impasto-planted"
    folder.mkdir(mode=0o755)
    os.chown(folder, 65534, 65534)  # nobody's
    endpoint = f"ipc://{folder}/daemon.sock"
    with Client(endpoint, timeout=0.5) as client, pytest.raises(DaemonUnavailable, match="another user"):
        client.hello()
    out = subprocess.run([*IMPASTO, "status"], capture_output=True, text=True,
                         env=cli_env(endpoint), timeout=30, cwd=ROOT)
    assert out.returncode == 3 and "another user" in out.stderr
    with pytest.raises(DaemonUnavailable, match="another user"):
        ensure_daemon(endpoint, [sys.executable, "-m", "impasto.daemon.main"], wait=5)
    assert list(folder.iterdir()) == []  # no log written there, nothing started


def test_a_daemon_never_changes_an_existing_folders_mode(tmp_path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    out = subprocess.run([sys.executable, "-m", "impasto.daemon.main", "--endpoint", f"ipc://{shared}/x.sock"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2 and "open to other users" in out.stderr
    assert shared.stat().st_mode & 0o7777 == 0o1777


def test_a_client_that_acknowledges_previews_it_never_reads_cannot_make_the_daemon_hoard(fresh_daemon) -> None:
    """Hardening #13 item 9: a client that acknowledges every preview without reading any. Its
    queue in the daemon stays a few messages (previews beyond are dropped), and the job's end
    still reaches it when it reads again."""
    import zmq

    from impasto.daemon import artwork
    from impasto.daemon.delivery import SEND_QUEUE
    from impasto.protocol import messages as m

    from .conftest import image_of, make_submit

    submit = make_submit(image_of(artwork.landscape(), (192, 144)), image_of(artwork.swirls(), (64, 64)),
                         size=192, iterations=40, first_scale=0, preview_every=1)
    liar = zmq.Context.instance().socket(zmq.DEALER)
    liar.setsockopt(zmq.RCVHWM, 1)
    liar.setsockopt(zmq.RCVBUF, 4096)  # what it would buffer itself: next to nothing
    liar.setsockopt(zmq.LINGER, 0)
    liar.connect(fresh_daemon.endpoint)
    try:
        liar.send_multipart(m.submit_message(submit))
        claimed = 0
        with Client(fresh_daemon.endpoint) as honest:
            deadline = time.monotonic() + 120
            while honest.hello()["queue"] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            while honest.hello()["queue"] and time.monotonic() < deadline:  # "seen" every preview, read none
                claimed += 1
                liar.send_multipart(m.heartbeat_message(submit.job, seen=claimed))
                time.sleep(0.05)
            assert honest.hello()["queue"] == 0, "the job did not end"
        replies = []
        while liar.poll(3000):
            replies.append(m.parse_reply([bytes(f) for f in liar.recv_multipart()]))
    finally:
        liar.close()
    kinds = [reply.type for reply in replies if reply.job == submit.job]
    assert kinds[-1] == m.RESULT  # the end must arrive
    previews = kinds.count(m.PREVIEW)
    print(f"a client that read nothing got {previews} of 39 previews afterwards (queue limit {SEND_QUEUE})")
    assert previews <= 10  # was all 39: the daemon held every one (498 → 1177 MB in the probe)
    assert "not reading" in fresh_daemon.log.read_text()
