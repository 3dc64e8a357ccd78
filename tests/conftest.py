"""Shared fixtures: tiny generated pictures, the real VGG19, and a real daemon process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from impasto.daemon import artwork
from impasto.protocol import messages as m
from impasto.protocol.client import Client, DaemonUnavailable, new_job_id, start_daemon

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugin"))  # the plug-in's modules import each other as GIMP loads them
SHARED_IMAGES = ROOT.parent / "shared" / "images"
IMPASTO = [sys.executable, "-m", "impasto.cli.main"]  # the CLI, as this Python has it


def image_of(picture, size: tuple[int, int]) -> m.Image:
    array = np.ascontiguousarray(np.asarray(picture.convert("RGB").resize(size)))
    return m.Image(size[0], size[1], 3, array.tobytes())


@pytest.fixture(scope="session")
def content_image() -> m.Image:
    return image_of(artwork.landscape(), (80, 60))


@pytest.fixture(scope="session")
def style_image() -> m.Image:
    return image_of(artwork.swirls(), (64, 64))


def make_submit(content: m.Image, style: m.Image, **params) -> m.Submit:
    defaults = {"size": 64, "iterations": 20, "preview_every": 5, "detail": 0}  # detail: see test_detail.py
    return m.Submit(new_job_id(), content, [m.Style(image=style)], m.JobParams(**{**defaults, **params}))


def replies_of(client: Client, submit: m.Submit) -> list[m.Reply]:
    return list(client.run_job(submit))


@pytest.fixture(scope="session")
def installed_package(tmp_path_factory) -> Path:
    """Impasto as a user gets it: a wheel built from this tree, installed in a new venv; returns
    the venv. Its dependencies are this venv's, through a .pth line, rather than another GB of torch."""
    folder = tmp_path_factory.mktemp("package")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(folder / "dist"), str(ROOT)], check=True, capture_output=True)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    *map(str, (folder / "dist").glob("impasto-*.whl"))], check=True, capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "impasto-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


@pytest.fixture(scope="session")
def vgg19():
    from impasto.daemon.model import load_vgg19

    return load_vgg19()


class DaemonProcess:
    """A real daemon of the test's own, started the way the CLI and the plug-in start one."""

    def __init__(self, endpoint: str, log: Path, *args: str, keys=None, timeout: float = 60) -> None:
        self.endpoint = endpoint
        self.log = log
        self.keys = keys
        command = [sys.executable, "-m", "impasto.daemon.launch", "--log-level", "debug", "--presets-dir",
                   str(log.parent / "presets"), "--cache-dir", str(log.parent / "cache"), *args]
        try:
            self.process, _ = start_daemon(command, endpoint, log, timeout, keys, detach=False, cwd=ROOT)
        except DaemonUnavailable as exc:
            raise RuntimeError(f"daemon not ready: {exc}\n{log.read_text()}") from None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory):
    """One real daemon for the session, on a private ipc socket."""
    folder = tmp_path_factory.mktemp("daemon")
    process = DaemonProcess(f"ipc://{folder}/d.sock", folder / "daemon.log")
    yield process
    process.stop()


@pytest.fixture
def client(daemon):
    with Client(daemon.endpoint) as c:
        yield c


@pytest.fixture
def fresh_daemon(tmp_path):
    """A daemon of the test's own, for tests that stop or disturb it."""
    process = DaemonProcess(f"ipc://{tmp_path}/d.sock", tmp_path / "daemon.log")
    yield process
    process.stop()


def write_png(path: Path, image: m.Image) -> None:
    from PIL import Image as PILImage

    PILImage.frombytes("RGB", (image.width, image.height), image.packed()).save(path)


def cli_env(endpoint: str) -> dict[str, str]:
    return {**os.environ, "IMPASTO_ENDPOINT": endpoint, "PYTHONUNBUFFERED": "1"}
