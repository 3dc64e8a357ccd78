"""The GIMP plug-in in real GIMP 3.0.4 (Debian trixie, in a chroot), against a real daemon.

The chroot is built once and cached (tests/gimp/build-chroot.sh); the plug-in is installed into
it with the project's own installer; the daemon runs on the host and the two meet on an ipc
socket in a folder bind-mounted into the chroot at the same path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protocol.client import Client

from .conftest import ROOT, DaemonProcess

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the GIMP chroot needs root (debootstrap, chroot, mount)")


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


class Gimp:
    """gimp-console-3.0 in the chroot, with `folder` shared at the same path."""

    def __init__(self, chroot: Path, folder: Path) -> None:
        self.chroot = chroot
        self.folder = folder

    def command(self) -> list[str]:
        code = "exec(open('%s').read())" % (self.folder / "batch.py")
        return ["chroot", str(self.chroot), "env", "HOME=/root", f"IMPASTO_BATCH_DIR={self.folder}",
                "gimp-console-3.0", "-i", "--batch-interpreter=python-fu-eval", "-b", code, "--quit"]

    def prepare(self, spec: dict) -> None:
        (self.folder / "result.json").unlink(missing_ok=True)
        (self.folder / "spec.json").write_text(json.dumps(spec))

    def run(self, spec: dict, timeout: float = 180) -> dict:
        self.prepare(spec)
        started = time.monotonic()
        out = subprocess.run(self.command(), capture_output=True, text=True, timeout=timeout)
        result_file = self.folder / "result.json"
        if not result_file.exists():
            raise AssertionError(f"GIMP wrote no result (exit {out.returncode}):\n{out.stdout[-3000:]}\n"
                                 f"{out.stderr[-3000:]}")
        result = json.loads(result_file.read_text())
        result["gimp_seconds"] = time.monotonic() - started
        result["log"] = out.stdout[-2000:] + out.stderr[-2000:]
        return result


@pytest.fixture(scope="module")
def gimp(tmp_path_factory):
    build = subprocess.run(["bash", str(ROOT / "tests" / "gimp" / "build-chroot.sh")], capture_output=True,
                           text=True, timeout=1500)
    if build.returncode != 0:
        pytest.fail(f"could not build the GIMP chroot:\n{build.stderr[-3000:]}")
    chroot = Path(build.stdout.strip().splitlines()[-1])
    folder = tmp_path_factory.mktemp("gimp")
    folder.chmod(0o700)  # the daemon's socket folder: only its user may enter
    inside = chroot / str(folder).lstrip("/")
    inside.mkdir(parents=True, exist_ok=True)
    mounted = []
    try:
        if not os.path.ismount(chroot / "proc"):
            mount("-t", "proc", "proc", str(chroot / "proc"))
            mounted.append(chroot / "proc")
        mount("--bind", str(folder), str(inside))
        mounted.append(inside)
        (folder / "batch.py").write_text((ROOT / "tests" / "gimp" / "batch.py").read_text())
        install = subprocess.run(
            [sys.executable, str(ROOT / "install" / "gimp_plugin.py"), "--gimp-dir",
             str(chroot / "root" / ".config" / "GIMP" / "3.0"), "--endpoint", f"ipc://{folder}/d.sock",
             "--gimp-python", f"chroot {chroot} python3"], capture_output=True, text=True, timeout=300)
        assert install.returncode == 0, install.stdout + install.stderr
        assert "has pyzmq and msgpack" in install.stdout
        print(install.stdout)
        yield Gimp(chroot, folder)
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)])


@pytest.fixture(scope="module")
def host_daemon(gimp):
    process = DaemonProcess(f"ipc://{gimp.folder}/d.sock", gimp.folder / "daemon.log")
    yield process
    process.stop()


SELECTION_SPEC = {
    "image_width": 96, "image_height": 72, "layer_width": 80, "layer_height": 60, "layer_offsets": [8, 6],
    "alpha": True, "selection": [30, 20, 36, 30], "inside_margin": 4,
    "arguments": {"quality": "draft", "start-daemon": False, "style-preset": "swirls", "seed": 3,
                  "keep-previews": True},
}


def test_selection_is_stylised_into_new_layers(gimp, host_daemon) -> None:
    result = gimp.run(SELECTION_SPEC)
    assert result["status"] == "success", result
    assert result["original_unchanged"]
    # The group sits directly above the photo; the final layer is on top inside it.
    assert result["top_level"] == ["Impasto: swirls", "photo", "background"]
    children = result["children"]
    assert children[0]["name"] == "Impasto swirls"
    assert all(c["name"].startswith("Impasto preview") for c in children[1:]) and len(children) >= 2
    # Sent: the selection plus 15% context, clipped to the layer; placed at image coordinates.
    x, y, w, h = 30 - 5, 20 - 5, 36 + 10, 30 + 10
    assert all(c["offsets"] == [x, y] and c["size"] == [w, h] for c in children)
    assert result["outside_total"] > 0 and result["outside_changed"] == 0
    assert result["inside_changed"] > 0.8 * result["inside_total"]
    print(f"GIMP run with the plug-in: {result['gimp_seconds']:.1f} s (plug-in {result['seconds']:.1f} s)")


def test_whole_layer_without_alpha(gimp, host_daemon) -> None:
    spec = {**SELECTION_SPEC, "alpha": False, "selection": None, "layer_offsets": [0, 0],
            "arguments": {**SELECTION_SPEC["arguments"], "keep-previews": False}}
    result = gimp.run(spec)
    assert result["status"] == "success", result
    assert result["original_unchanged"]
    # Only the latest layer is kept: the result.
    assert [c["name"] for c in result["children"]] == ["Impasto swirls"]
    assert result["children"][0]["size"] == [80, 60]
    assert result["inside_changed"] > 0.8 * result["inside_total"]


@pytest.mark.parametrize("source", ["file", "pattern"])
def test_style_from_a_file_or_a_pattern(gimp, host_daemon, source) -> None:
    from daemon import artwork

    arguments = {**SELECTION_SPEC["arguments"], "keep-previews": False}
    if source == "file":
        artwork.embers(96).save(gimp.folder / "painting.png")
        arguments["style-file"] = str(gimp.folder / "painting.png")
    else:
        arguments["use-pattern"] = True  # the context's pattern, GIMP's default
    result = gimp.run({**SELECTION_SPEC, "selection": None, "layer_offsets": [0, 0], "arguments": arguments})
    assert result["status"] == "success", result
    name = "painting.png" if source == "file" else result["group"].removeprefix("Impasto: ")
    assert result["group"] == f"Impasto: {name}" and name != "swirls"
    assert result["inside_changed"] > 0.8 * result["inside_total"]


def test_greyscale_image_gets_a_clear_message(gimp, host_daemon) -> None:
    result = gimp.run({**SELECTION_SPEC, "grey": True, "selection": None})
    assert result["status"] != "success"
    assert result["top_level"] == ["photo", "background"]
    assert "RGB" in result["log"] + result.get("error", "") + result.get("pdb_error", "")


def test_absent_daemon_fails_fast_with_a_clear_message(gimp) -> None:
    spec = {**SELECTION_SPEC, "arguments": {**SELECTION_SPEC["arguments"], "endpoint": f"ipc://{gimp.folder}/none"}}
    result = gimp.run(spec)
    assert result["status"] == "execution-error"
    assert result["seconds"] < 5
    assert "not running" in result["log"] + result.get("error", "") + result.get("pdb_error", "")
    assert result["top_level"] == ["photo", "background"]  # nothing left behind


def test_killed_plugin_has_its_job_cancelled(gimp, host_daemon) -> None:
    spec = {**SELECTION_SPEC, "layer_width": 256, "layer_height": 192, "image_width": 256, "image_height": 192,
            "layer_offsets": [0, 0], "selection": None, "arguments": {**SELECTION_SPEC["arguments"], "quality": "fine"}}
    gimp.prepare(spec)
    process = subprocess.Popen(gimp.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Client(host_daemon.endpoint) as client:
            deadline = time.monotonic() + 60
            while client.hello()["queue"] == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert client.hello()["queue"] == 1, "the plug-in's job never reached the daemon"
            plugin = subprocess.run(["pgrep", "-f", "plug-ins/impasto/impasto.py"], capture_output=True, text=True)
            pids = [int(p) for p in plugin.stdout.split()]
            assert pids, "no plug-in process found"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)  # what GIMP does ~10 ms after the user cancels
            killed = time.monotonic()
            while client.hello()["queue"] and time.monotonic() - killed < 10:
                time.sleep(0.1)
            assert client.hello()["queue"] == 0
            print(f"job cancelled {time.monotonic() - killed:.1f} s after the plug-in was killed")
            assert time.monotonic() - killed < 2.5
    finally:
        process.kill()
        process.wait()
    assert "client gone" in host_daemon.log.read_text().replace("_", " ") or \
        "silent" in host_daemon.log.read_text()


def test_daemon_dying_mid_run_ends_in_a_clear_message(gimp, host_daemon) -> None:
    """A second daemon of the test's own on another socket, killed while the plug-in waits on it."""
    endpoint = f"ipc://{gimp.folder}/doomed.sock"
    doomed = DaemonProcess(endpoint, gimp.folder / "doomed.log")
    spec = {**SELECTION_SPEC, "layer_width": 256, "layer_height": 192, "image_width": 256, "image_height": 192,
            "layer_offsets": [0, 0], "selection": None,
            "arguments": {**SELECTION_SPEC["arguments"], "quality": "fine", "endpoint": endpoint}}
    gimp.prepare(spec)
    process = subprocess.Popen(gimp.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with Client(endpoint) as client:
            deadline = time.monotonic() + 60
            while client.hello()["queue"] == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
        doomed.process.kill()
        killed = time.monotonic()
        output = process.communicate(timeout=60)[0]
        finished = time.monotonic() - killed
    finally:
        process.kill()
        doomed.stop()
    assert (gimp.folder / "result.json").exists(), output[-3000:]
    result = json.loads((gimp.folder / "result.json").read_text())
    assert result["status"] == "execution-error"
    assert "stopped answering" in result.get("error", "")
    assert result["original_unchanged"]
    # Previews that arrived stay (the user's to keep); an empty group does not.
    assert result["top_level"] == ["photo", "background"] or result["children"]
    assert finished < 15  # the plug-in gives up within its 3 s timeout; GIMP then quits


def test_plugin_starts_the_daemon_when_none_runs(gimp, tmp_path_factory) -> None:
    """The project and its Python are bind-mounted into the chroot at their own paths, so the daemon
    command the installer wrote works there; the plug-in must start it and finish the job."""
    prefix = Path(sys.base_prefix)
    binds = [(ROOT, gimp.chroot / str(ROOT).lstrip("/")), (prefix, gimp.chroot / str(prefix).lstrip("/"))]
    mounted = []
    endpoint = f"ipc://{gimp.folder}/started/d.sock"
    try:
        for source, target in binds:
            target.mkdir(parents=True, exist_ok=True)
            mount("--bind", str(source), str(target))
            mounted.append(target)
        spec = {**SELECTION_SPEC, "selection": None, "layer_offsets": [0, 0],
                "arguments": {**SELECTION_SPEC["arguments"], "start-daemon": True, "endpoint": endpoint,
                              "keep-previews": False}}
        result = gimp.run(spec, timeout=240)
        assert result["status"] == "success", result
        assert result["children"] and result["inside_changed"] > 0.8 * result["inside_total"]
        with Client(endpoint) as client:
            assert client.hello()["queue"] == 0  # it stays up for the next run
            client.request("shutdown")
    finally:
        subprocess.run(["pkill", "-f", f"endpoint {endpoint}"])
        time.sleep(1)
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", str(target)])
