"""A real daemon process over real ZeroMQ sockets, driven by the real client and CLI."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time

import msgpack
import numpy as np
import pytest
import torch
import zmq
from PIL import Image as PILImage

from impasto.daemon import memory, tiles
from impasto.protocol import messages as m
from impasto.protocol.client import Client, DaemonError, DaemonUnavailable

from .conftest import ROOT, SHARED_IMAGES, DaemonProcess, make_submit, replies_of


def test_hello_describes_the_daemon(client) -> None:
    hello = client.hello()
    assert hello["v"] == m.VERSION and hello["model"] == "vgg19-caffe"
    assert hello["device"].startswith("cpu") and hello["queue"] == 0
    assert "swirls" in hello["presets"]


def test_presets_come_with_thumbnails(client) -> None:
    client.send(m.simple_message(m.PRESETS))
    reply = client.receive(5)
    names = [p["name"] for p in reply.header["presets"]]
    assert "swirls" in names
    assert all(p["thumbnail"]["width"] <= 64 for p in reply.header["presets"])


def test_stylisation_streams_previews_and_lowers_the_loss(client, content_image, style_image) -> None:
    replies = replies_of(client, make_submit(content_image, style_image, iterations=20, preview_every=5))
    kinds = [r.type for r in replies]
    assert kinds[0] == m.ACCEPTED and kinds[-1] == m.RESULT
    previews = [r for r in replies if r.type == m.PREVIEW]
    assert [p.header["iteration"] for p in previews] == [5, 10, 15]
    progress = [r.header for r in replies if r.type == m.PROGRESS]
    assert progress[-1]["iteration"] == 20
    assert progress[-1]["losses"]["total"] < progress[0]["losses"]["total"]
    result = replies[-1].image
    # Worked at 64 px on the long side; comes back at the content's 80x60.
    assert (result.width, result.height, result.channels) == (80, 60, 3)
    assert progress[0]["width"] == 64
    assert all((p.image.width, p.image.height) == (80, 60) for p in previews)
    assert result.packed() != content_image.packed()


def test_preset_style_and_alpha_kept(client, content_image) -> None:
    array = bytearray()
    rgb = content_image.packed()
    for i in range(0, len(rgb), 3):
        array += rgb[i:i + 3] + bytes([i % 256])
    rgba = m.Image(80, 60, 4, bytes(array))
    submit = make_submit(rgba, None, iterations=3, preview_every=0)
    submit.styles = [m.Style(preset="embers")]
    result = replies_of(client, submit)[-1].image
    assert result.channels == 4
    assert result.packed()[3::4] == rgba.packed()[3::4]


def test_mask_leaves_outside_untouched(client, content_image, style_image) -> None:
    mask = bytes(255 if x >= 40 else 0 for y in range(60) for x in range(80))
    submit = make_submit(content_image, style_image, iterations=5, preview_every=0)
    submit.mask = m.Image(80, 60, 1, mask)
    result = replies_of(client, submit)[-1].image.packed()
    original = content_image.packed()
    for y in range(60):
        row = slice(y * 240, y * 240 + 120)
        assert result[row] == original[row]
    assert result != original


def test_two_clients_are_served_in_order(daemon, content_image, style_image) -> None:
    finished: dict[str, float] = {}
    accepted: dict[str, int] = {}

    def run(name: str, delay: float) -> None:
        time.sleep(delay)
        with Client(daemon.endpoint) as client:
            for reply in client.run_job(make_submit(content_image, style_image, iterations=15, preview_every=0)):
                if reply.type == m.ACCEPTED:
                    accepted[name] = reply.header["position"]
            finished[name] = time.monotonic()

    threads = [threading.Thread(target=run, args=("first", 0)), threading.Thread(target=run, args=("second", 0.2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert accepted == {"first": 0, "second": 1}
    assert finished["first"] < finished["second"]


def test_cancel_stops_a_running_job_within_a_second(client, content_image, style_image) -> None:
    submit = make_submit(content_image, style_image, iterations=10000, preview_every=0)
    replies = client.run_job(submit)
    for reply in replies:
        if reply.type == m.PROGRESS:
            break
    asked = time.monotonic()
    client.cancel(submit.job)
    kinds = [reply.type for reply in replies]
    assert kinds[-1] == m.CANCELLED
    assert time.monotonic() - asked < 1.0
    assert client.hello()["queue"] == 0


def test_cancel_of_unknown_job_is_an_error(client) -> None:
    client.send(m.simple_message(m.CANCEL, job="nope"))
    reply = client.receive(5)
    assert reply.type == m.ERROR and reply.header["code"] == m.Code.UNKNOWN_JOB


def test_unknown_preset_is_refused(client, content_image) -> None:
    submit = make_submit(content_image, None)
    submit.styles = [m.Style(preset="../../etc/passwd")]
    with pytest.raises(DaemonError) as caught:
        replies_of(client, submit)
    assert caught.value.code == m.Code.UNKNOWN_PRESET


def raw_dealer(endpoint: str) -> zmq.Socket:
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    return socket


@pytest.mark.parametrize("frames, code", [
    ([b"\x00\xff garbage \xc1"], m.Code.BAD_MESSAGE),
    ([msgpack.packb({"proto": "impasto", "v": 0, "type": "hello"})], m.Code.BAD_VERSION),
    ([msgpack.packb({"proto": "impasto", "v": 1, "type": "submit", "job": "x"})], m.Code.BAD_IMAGE),
])
def test_bad_messages_get_errors_and_the_daemon_keeps_serving(daemon, frames, code) -> None:
    socket = raw_dealer(daemon.endpoint)
    try:
        socket.send_multipart(frames)
        assert socket.poll(5000)
        reply = m.parse_reply(socket.recv_multipart())
        assert reply.type == m.ERROR and reply.header["code"] == code and reply.header["message"]
    finally:
        socket.close()
    with Client(daemon.endpoint) as client:
        assert client.hello()["v"] == m.VERSION


def test_a_client_that_vanishes_has_its_job_cancelled(daemon, content_image, style_image) -> None:
    socket = raw_dealer(daemon.endpoint)
    socket.send_multipart(m.submit_message(make_submit(content_image, style_image, iterations=10000)))
    assert socket.poll(5000)
    socket.close()  # gone, without a word: no cancel, no more heartbeats
    with Client(daemon.endpoint) as client:
        gone = time.monotonic()
        while client.hello()["queue"] and time.monotonic() - gone < 5:
            time.sleep(0.1)
        assert client.hello()["queue"] == 0
        assert time.monotonic() - gone < 2.5


def test_a_second_daemon_on_the_same_endpoint_refuses(daemon) -> None:
    second = subprocess.run([sys.executable, "-m", "impasto.daemon.main", "--endpoint", daemon.endpoint],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert second.returncode == 2
    assert "already running" in second.stderr
    with Client(daemon.endpoint) as client:
        assert client.hello()["v"] == m.VERSION


def test_client_notices_a_daemon_that_dies_mid_job(fresh_daemon, content_image, style_image) -> None:
    with Client(fresh_daemon.endpoint) as client:
        replies = client.run_job(make_submit(content_image, style_image, iterations=10000, preview_every=0))
        next(replies)
        fresh_daemon.process.kill()
        killed = time.monotonic()
        with pytest.raises(DaemonUnavailable):
            for _ in replies:
                pass
        assert time.monotonic() - killed < 5


def test_sigterm_tells_the_client_and_exits(fresh_daemon, content_image, style_image) -> None:
    with Client(fresh_daemon.endpoint) as client:
        replies = client.run_job(make_submit(content_image, style_image, iterations=10000, preview_every=0))
        next(replies)
        fresh_daemon.process.send_signal(signal.SIGTERM)
        with pytest.raises(DaemonError) as caught:
            for _ in replies:
                pass
        assert caught.value.code == m.Code.SHUTTING_DOWN
    assert fresh_daemon.process.wait(15) == 0


def test_tiles_below_the_smallest_are_refused(daemon, content_image, style_image) -> None:
    with Client(daemon.endpoint) as client, pytest.raises(DaemonError) as caught:
        replies_of(client, make_submit(content_image, style_image, tile_pixels=1000))
    assert caught.value.code == m.Code.TOO_LARGE and "smallest tile" in caught.value.message


@pytest.mark.skipif(not SHARED_IMAGES.is_dir(), reason="../shared/images is absent (a developer checkout has it)")
def test_real_painting_and_photo(client) -> None:
    from impasto.cli.images import load_image

    photo = PILImage.open(SHARED_IMAGES / "content" / "tubingen.jpg").resize((96, 72))
    content = m.Image(96, 72, 3, photo.convert("RGB").tobytes())
    style = load_image(SHARED_IMAGES / "style" / "starry_night.jpg")
    submit = m.Submit("tubingen", content, [m.Style(image=style)], m.JobParams(size=96, iterations=15,
                                                                                 preview_every=0))
    replies = replies_of(client, submit)
    progress = [r.header["losses"]["style"] for r in replies if r.type == m.PROGRESS]
    assert progress[-1] < progress[0]
    assert (replies[-1].image.width, replies[-1].image.height) == (96, 72)


def test_a_killed_daemon_can_be_replaced(fresh_daemon) -> None:
    fresh_daemon.process.kill()
    fresh_daemon.process.wait()
    # The dead daemon's socket file is still there; its lock died with it.
    replacement = type(fresh_daemon)(fresh_daemon.endpoint, fresh_daemon.log.with_name("second.log"))
    try:
        with Client(fresh_daemon.endpoint) as client:
            assert client.hello()["queue"] == 0
    finally:
        assert replacement.stop() == 0


def test_cancelling_a_queued_job_answers_at_once(daemon, content_image, style_image) -> None:
    with Client(daemon.endpoint) as first, Client(daemon.endpoint) as second:
        running = first.run_job(make_submit(content_image, style_image, iterations=10000, preview_every=0))
        next(running)
        queued = make_submit(content_image, style_image, iterations=5)
        replies = second.run_job(queued)
        assert next(replies).header["position"] == 1
        asked = time.monotonic()
        second.cancel(queued.job)
        assert [r.type for r in replies][-1] == m.CANCELLED
        assert time.monotonic() - asked < 0.5  # not after the running job
        assert first.hello()["queue"] == 1
        running.close()  # cancels the first


def test_a_slow_client_gets_fresh_previews_not_a_backlog(daemon, content_image, style_image) -> None:
    """A client that takes in no preview gets two, then none until it acknowledges one."""
    socket = raw_dealer(daemon.endpoint)
    submit = make_submit(content_image, style_image, iterations=10000, preview_every=1)
    try:
        socket.send_multipart(m.submit_message(submit))
        previews: list[int] = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # heartbeats to stay alive, but no acknowledgement
            socket.send_multipart(m.simple_message(m.HEARTBEAT, job=submit.job))
            while socket.poll(100):
                reply = m.parse_reply(socket.recv_multipart())
                if reply.type == m.PREVIEW:
                    previews.append(reply.header["iteration"])
        assert len(previews) == m.PREVIEWS_IN_FLIGHT
        socket.send_multipart(m.simple_message(m.HEARTBEAT, job=submit.job, seen=previews[-1]))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(previews) == m.PREVIEWS_IN_FLIGHT:
            if socket.poll(100):
                reply = m.parse_reply(socket.recv_multipart())
                if reply.type == m.PREVIEW:
                    previews.append(reply.header["iteration"])
        assert len(previews) == m.PREVIEWS_IN_FLIGHT + 1
        assert previews[-1] > previews[-2] + 1  # a fresh one, not the next in line
        socket.send_multipart(m.simple_message(m.CANCEL, job=submit.job))
    finally:
        socket.close()


def test_a_job_predicted_not_to_fit_is_refused_before_it_starts(tmp_path, content_image, style_image) -> None:
    tight = DaemonProcess(f"ipc://{tmp_path}/d.sock", tmp_path / "daemon.log", "--memory-limit", "0.2")
    try:
        with Client(tight.endpoint) as client:
            with pytest.raises(DaemonError) as caught:
                replies_of(client, make_submit(content_image, style_image, size=512))
            assert caught.value.code == m.Code.TOO_LARGE and "GiB" in caught.value.message
            assert client.hello()["queue"] == 0
    finally:
        tight.stop()
    assert "started" not in tight.log.read_text()  # refused at the door, nothing allocated


def test_a_job_too_large_to_run_whole_runs_in_tiles(tmp_path, style_image) -> None:
    """Under a memory limit a 512x384 job does not fit whole; the daemon tiles it instead of refusing."""
    limit, (width, height) = int(0.5 * 2**30), (512, 384)
    for precision, tcmalloc in itertools.product(("bf16", "fp32"), (False, True)):  # whatever this machine runs
        per_pixel = memory.crop_bytes_per_pixel(precision, torch.device("cpu"), tcmalloc)
        whole = memory.FIXED_BYTES + width * height * memory.WHOLE_BYTES_PER_PIXEL[precision]
        assert whole + tiles.SMALLEST_CROP * per_pixel <= limit < whole + width * height * per_pixel
    params = m.JobParams(size=width, first_scale=0, iterations=1, preview_every=0)
    tight = DaemonProcess(f"ipc://{tmp_path}/d.sock", tmp_path / "daemon.log", "--memory-limit", str(limit / 2**30))
    try:
        pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
        submit = m.Submit("tiled", m.Image(width, height, 3, pixels.tobytes()), [m.Style(image=style_image)], params)
        with Client(tight.endpoint) as client:
            replies = replies_of(client, submit)
        assert replies[-1].type == m.RESULT and (replies[-1].image.width, replies[-1].image.height) == (width, height)
    finally:
        tight.stop()


def test_a_full_queue_answers_busy(tmp_path, content_image, style_image) -> None:
    small = DaemonProcess(f"ipc://{tmp_path}/d.sock", tmp_path / "daemon.log", "--max-queue", "1")
    try:
        with Client(small.endpoint) as first, Client(small.endpoint) as second, Client(small.endpoint) as third:
            running = first.run_job(make_submit(content_image, style_image, iterations=10000, preview_every=0))
            next(running)
            waiting = second.run_job(make_submit(content_image, style_image, iterations=3))
            assert next(waiting).header["position"] == 1
            with pytest.raises(DaemonError) as caught:
                replies_of(third, make_submit(content_image, style_image, iterations=3))
            assert caught.value.code == m.Code.BUSY
            running.close()
            assert [r.type for r in waiting][-1] == m.RESULT  # the queued one is still served
    finally:
        small.stop()



@pytest.mark.parametrize("width, height, size", [(1, 1, 512), (24, 24, 512), (10, 500, 64), (300, 20, 512),
                                                 (100, 80, 16)])
def test_tiny_and_thin_pictures_are_stylised(client, style_image, width, height, size) -> None:
    """Every size the protocol allows ends in a result at the content's size, never `internal`."""
    rng = np.random.default_rng(width * height)
    content = m.Image(width, height, 3, rng.integers(0, 256, (height, width, 3), dtype=np.uint8).tobytes())
    thin_style = m.Image(40, 3, 3, rng.integers(0, 256, (3, 40, 3), dtype=np.uint8).tobytes())
    submit = make_submit(content, style_image, size=size, iterations=3, preview_every=2)
    submit.styles.append(m.Style(image=thin_style, weight=0.5))
    replies = replies_of(client, submit)
    assert replies[-1].type == m.RESULT
    assert [(r.image.width, r.image.height) for r in replies if r.image is not None] == \
        [(width, height)] * sum(r.image is not None for r in replies)


def test_a_daemon_whose_cache_cannot_be_written_still_serves(tmp_path, content_image, style_image) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")  # nothing can be made under it, even by root
    daemon = DaemonProcess(f"ipc://{tmp_path}/d.sock", tmp_path / "daemon.log", "--cache-dir", str(blocked / "c"))
    try:
        with Client(daemon.endpoint) as client:
            assert replies_of(client, make_submit(content_image, style_image, iterations=2))[-1].type == m.RESULT
    finally:
        daemon.stop()
    assert "could not cache style targets" in daemon.log.read_text()


def test_adding_a_large_preset_leaves_the_daemon_answering(fresh_daemon) -> None:
    """Storing a large painting runs off the socket thread: hello answers meanwhile."""
    rng = np.random.default_rng(0)
    side = 4096
    painting = m.Image(side, side, 3, rng.integers(0, 256, (side, side, 3), dtype=np.uint8).tobytes())
    done: list[float] = []

    def add() -> None:
        started = time.monotonic()
        with Client(fresh_daemon.endpoint, timeout=120) as adder:
            adder.add_preset("large", painting)
        done.append(time.monotonic() - started)

    thread = threading.Thread(target=add)
    thread.start()
    slowest = 0.0
    with Client(fresh_daemon.endpoint) as client:
        while thread.is_alive():
            started = time.monotonic()
            client.hello()
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)
        thread.join()
        assert "large" in client.hello()["presets"]
    print(f"adding a {side}² preset took {done[0]:.1f} s; the slowest hello meanwhile {slowest * 1000:.0f} ms")
    assert done[0] > 0.5  # long enough that a blocked socket thread would have shown
    assert slowest < 0.3


def test_names_and_texts_that_would_fool_a_terminal_are_refused(client, style_image) -> None:
    for name, description in (("swirls\n", ""), ("fine", "evil \u202e txt.exe"), ("fine", "nul \x00 here")):
        with pytest.raises(DaemonError) as caught:
            client.add_preset(name, style_image, description)
        assert caught.value.code == m.Code.BAD_REQUEST
    assert client.hello()["presets"].count("swirls") == 1


def test_a_huge_string_is_quoted_short(client, daemon, content_image, style_image) -> None:
    """A 200 KB value is neither sent back nor logged whole."""
    frames = m.submit_message(make_submit(content_image, style_image))
    for params in ({"init": "x" * 200_000}, {"y" * 100_000: 1}):
        header = msgpack.unpackb(frames[0])
        header["params"] = params
        client.send([msgpack.packb(header), *frames[1:]])
        reply = client.receive(5)
        assert reply.type == m.ERROR and reply.header["code"] == m.Code.BAD_REQUEST
        assert len(reply.header["message"]) < 500
    assert max(len(line) for line in daemon.log.read_text().splitlines()) < 2000


def test_estimates_come_from_the_measured_pace(client, style_image) -> None:
    """The forecast the plug-in shows before OK: sizes as the job will run them, seconds measured."""
    from impasto.daemon import artwork

    from .conftest import image_of

    params = m.JobParams(size=96, iterations=8, detail=2, preview_every=0)
    estimate = client.estimate(320, 240, params)
    assert estimate["working"] == [96, 72] and estimate["output"] == [320, 240] and estimate["seconds"] > 0
    assert estimate["device"].startswith("cpu")
    submit = m.Submit("estimated", image_of(artwork.landscape(), (320, 240)), [m.Style(image=style_image)], params)
    started = time.monotonic()
    assert replies_of(client, submit)[-1].type == m.RESULT
    took = time.monotonic() - started
    print(f"estimated {estimate['seconds']:.2f} s, took {took:.2f} s")
    assert estimate["seconds"] / 4 < took < 4 * estimate["seconds"]
    with pytest.raises(DaemonError) as caught:
        client.request(m.ESTIMATE, m.simple_message(m.ESTIMATE, width=0, height=10))
    assert caught.value.code == m.Code.BAD_REQUEST
