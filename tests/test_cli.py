"""The `impasto` command line against real daemons: stylize, presets, Ctrl-C, starting a daemon."""

from __future__ import annotations

import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image as PILImage

from impasto.protocol import messages as m
from impasto.protocol.client import Client, DaemonError, DaemonUnavailable

from .conftest import IMPASTO, ROOT, cli_env, make_submit, replies_of, write_png


def test_client_reports_an_absent_daemon_quickly(tmp_path) -> None:
    started = time.monotonic()
    with Client(f"ipc://{tmp_path}/nobody.sock", timeout=1.0) as client, pytest.raises(DaemonUnavailable):
        client.hello()
    assert time.monotonic() - started < 2
    cli = subprocess.run([*IMPASTO, "status"], capture_output=True, text=True,
                         env=cli_env(f"ipc://{tmp_path}/nobody.sock"), timeout=30, cwd=ROOT)
    assert cli.returncode == 3 and "is it running" in cli.stderr


def test_cli_stylize_starts_a_daemon_when_none_runs(tmp_path, content_image, style_image) -> None:
    write_png(tmp_path / "photo.png", content_image)
    write_png(tmp_path / "painting.png", style_image)
    env = cli_env(f"ipc://{tmp_path}/own.sock")
    try:
        out = subprocess.run([*IMPASTO, "stylize", str(tmp_path / "photo.png"), "--style",
                              str(tmp_path / "painting.png"), "--size", "32", "--iterations", "2", "-q",
                              "-o", str(tmp_path / "out.png")], capture_output=True, text=True, env=env,
                             timeout=120, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        assert "starting impasto-daemon" in out.stderr and (tmp_path / "out.png").is_file()
    finally:
        subprocess.run([*IMPASTO, "stop"], env=env, capture_output=True, timeout=30,
                       cwd=ROOT)


def test_cli_stylize_writes_result_and_frames(daemon, tmp_path, content_image, style_image) -> None:
    write_png(tmp_path / "photo.png", content_image)
    write_png(tmp_path / "painting.png", style_image)
    out = subprocess.run(
        [*IMPASTO, "stylize", str(tmp_path / "photo.png"), "--style",
         f"{tmp_path / 'painting.png'}:0.7", "--style", "swirls:0.3", "--size", "64", "--iterations", "12",
         "--preview-every", "4", "--frames", str(tmp_path / "frames"), "--keep-colors", "luminance",
         "--recipe", "tf2-tutorial", "-o", str(tmp_path / "out.png")],
        capture_output=True, text=True, env=cli_env(daemon.endpoint), timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert PILImage.open(tmp_path / "out.png").size == (80, 60)
    # 12 iterations at the working size, whose end is previewed, then 2 painting the 80 px detail
    # (the top scale gets half of --detail's 4).
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        "frame-00004.png", "frame-00008.png", "frame-00012.png"]
    assert "14/14" in out.stderr and "wrote" in out.stderr


def test_cli_preset_and_mask(daemon, tmp_path, content_image, style_image) -> None:
    """--preset brings the preset's recommended settings; --mask keeps the black half exact."""
    write_png(tmp_path / "photo.png", content_image)
    mask = np.zeros((60, 80), np.uint8)
    mask[:, 40:] = 255
    PILImage.fromarray(mask).save(tmp_path / "mask.png")
    PILImage.fromarray(mask[:30]).save(tmp_path / "small-mask.png")
    with Client(daemon.endpoint) as client:
        client.add_preset("quick", style_image, "five iterations", {"iterations": 5, "first_scale": 0, "detail": 0})

    def stylize(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*IMPASTO, "stylize", str(tmp_path / "photo.png"), *args,
                               "-o", str(tmp_path / "out.png")],
                              capture_output=True, text=True, env=cli_env(daemon.endpoint), timeout=120, cwd=ROOT)

    out = stylize("--preset", "quick", "--mask", str(tmp_path / "mask.png"), "--size", "64")
    assert out.returncode == 0, out.stderr
    assert "5/5" in out.stderr
    photo = np.asarray(PILImage.open(tmp_path / "photo.png")).astype(int)
    result = np.asarray(PILImage.open(tmp_path / "out.png")).astype(int)
    assert np.array_equal(result[:, :40], photo[:, :40])
    assert np.abs(result[:, 40:] - photo[:, 40:]).mean() > 2
    wrong = stylize("--preset", "quick", "--mask", str(tmp_path / "small-mask.png"))
    assert wrong.returncode == 2 and "must match" in wrong.stderr
    unknown = stylize("--preset", "no-such-style")
    assert unknown.returncode == 4 and "no preset named" in unknown.stderr


def test_cli_ctrl_c_cancels_the_job(daemon, tmp_path, content_image, style_image) -> None:
    write_png(tmp_path / "photo.png", content_image)
    cli = subprocess.Popen(
        [*IMPASTO, "stylize", str(tmp_path / "photo.png"), "--style", "swirls",
         "--iterations", "10000", "-o", str(tmp_path / "out.png")],
        stderr=subprocess.PIPE, text=True, env=cli_env(daemon.endpoint), cwd=ROOT,
        # A shell's background job (`pytest &`) starts with SIGINT ignored, and Python then
        # keeps ignoring it: Ctrl-C's default behaviour is what this test is about.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    with Client(daemon.endpoint) as client:
        deadline = time.monotonic() + 30
        while client.hello()["queue"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        cli.send_signal(signal.SIGINT)
        assert cli.wait(10) == 130
        assert "cancelled" in cli.stderr.read()
        deadline = time.monotonic() + 2
        while client.hello()["queue"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.hello()["queue"] == 0
    assert not (tmp_path / "out.png").exists()


def test_user_presets_are_added_used_listed_and_removed(daemon, tmp_path, content_image, style_image) -> None:
    write_png(tmp_path / "painting.png", style_image)
    env = cli_env(daemon.endpoint)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*IMPASTO, "presets", *args], capture_output=True, text=True,
                              env=env, timeout=60, cwd=ROOT)

    assert cli("add", "my-oil", str(tmp_path / "painting.png"), "--strength", "0.7").returncode == 0
    listing = cli().stdout
    assert "my-oil" in listing and "user" in listing and "swirls" in listing
    with Client(daemon.endpoint) as client:
        entry = next(p for p in client.presets() if p["name"] == "my-oil")
        assert entry["params"] == {"strength": 0.7} and entry["thumbnail"]["width"] <= 64
        submit = make_submit(content_image, None, iterations=3, preview_every=0)
        submit.styles = [m.Style(preset="my-oil")]
        assert replies_of(client, submit)[-1].type == m.RESULT
        for bad in ("../evil", "a/b", "UPPER", "x" * 65, "swirls"):
            with pytest.raises(DaemonError) as caught:
                client.add_preset(bad, style_image)
            assert caught.value.code == m.Code.BAD_REQUEST
    assert cli("remove", "my-oil").returncode == 0
    assert "my-oil" not in cli("list").stdout
    removed = cli("remove", "my-oil")
    assert removed.returncode == 4 and "no user preset" in removed.stderr
    assert not (daemon.log.parent / "presets" / "evil").exists()
