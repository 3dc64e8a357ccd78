"""Flatpak GIMP, emulated with bubblewrap: GIMP 3.2 from the sid chroot as the sandbox's runtime.

The sandbox is what org.gimp.GIMP gets: the host's /tmp and home shared, a private
/run/user/UID (so not the daemon's usual socket), XDG_CONFIG_HOME under ~/.var/app/org.gimp.GIMP,
nothing of the host's /usr (so no host program can be started from inside), and a Python without
pyzmq or msgpack (the chroot's copies are hidden). The daemon runs on the host. The plug-in is
installed with `impasto install-gimp` from the wheel, as a user would.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import ROOT, DaemonProcess
from .test_gimp_plugin import SELECTION_SPEC, Gimp, Screen, cancel_as_gimp_does, gimp_with_windows, wait_for_file

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the GIMP chroot needs root (debootstrap, chroot)")
DIST_PACKAGES = "/usr/lib/python3/dist-packages"


class SandboxedGimp(Gimp):
    """gimp-console inside the emulated Flatpak sandbox."""

    def __init__(self, chroot: Path, folder: Path, home: Path) -> None:
        super().__init__(chroot, folder)
        self.home = home

    def sandbox(self) -> list[str]:
        config = self.home / ".var" / "app" / "org.gimp.GIMP"
        runtime = f"/run/user/{os.getuid()}"
        hidden = [option for name in ("zmq", "msgpack") for option in ("--tmpfs", f"{DIST_PACKAGES}/{name}")]
        return ["bwrap", "--ro-bind", str(self.chroot), "/", "--dev", "/dev", "--proc", "/proc",
                "--bind", "/tmp", "/tmp", "--bind", str(self.home), str(self.home), "--tmpfs", "/run",
                "--dir", runtime, *hidden, "--unshare-pid", "--die-with-parent", "--clearenv",
                "--setenv", "HOME", str(self.home), "--setenv", "XDG_RUNTIME_DIR", runtime,
                "--setenv", "XDG_CONFIG_HOME", str(config / "config"), "--setenv", "XDG_DATA_HOME",
                str(config / "data"), "--setenv", "XDG_CACHE_HOME", str(config / "cache"),
                "--setenv", "FLATPAK_ID", "org.gimp.GIMP", "--setenv", "PATH", "/usr/bin:/bin"]

    def command(self) -> list[str]:
        code = "exec(open('%s').read())" % (self.folder / "batch.py")
        return [*self.sandbox(), "--setenv", "IMPASTO_BATCH_DIR", str(self.folder), f"gimp-console-{self.version}",
                "-i", "--batch-interpreter=python-fu-eval", "-b", code, "--quit"]


@pytest.fixture(scope="module")
def flatpak(tmp_path_factory, installed_package):
    if not shutil.which("bwrap"):  # Debian's bubblewrap, what Flatpak itself runs
        apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=apt)
        subprocess.run(["apt-get", "install", "-y", "-qq", "bubblewrap"], check=True, capture_output=True, env=apt)
    build = subprocess.run(["bash", str(ROOT / "tests" / "gimp" / "build-chroot.sh"), "sid"], capture_output=True,
                           text=True, timeout=1500)
    if build.returncode != 0:
        pytest.fail(f"could not build the GIMP chroot:\n{build.stderr[-3000:]}")
    folder, home = tmp_path_factory.mktemp("flatpak"), tmp_path_factory.mktemp("home")
    folder.chmod(0o700)
    gimp = SandboxedGimp(Path(build.stdout.strip().splitlines()[-1]), folder, home)
    (folder / "batch.py").write_text((ROOT / "tests" / "gimp" / "batch.py").read_text())
    profile = home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / gimp.version
    profile.mkdir(parents=True)  # as the Flatpak's first start leaves it
    install = subprocess.run([str(installed_package / "bin" / "impasto"), "install-gimp", "--home", str(home),
                              "--endpoint", f"ipc://{folder}/run/daemon.sock",
                              "--gimp-python", shlex.join([*gimp.sandbox(), "python3"])],
                             capture_output=True, text=True, timeout=600, cwd=folder)
    print(install.stdout)
    assert install.returncode == 0, install.stdout + install.stderr
    assert "lacks pyzmq or msgpack" in install.stdout and "installed pyzmq and msgpack" in install.stdout
    assert "a Flatpak GIMP cannot start the daemon itself" in install.stdout
    yield gimp


def test_flatpak_gimp_runs_a_job_and_cancels_against_the_hosts_daemon(flatpak, installed_package) -> None:
    settings = json.loads(next(flatpak.home.rglob("impasto_gimp/impasto.json")).read_text())
    endpoint = settings["endpoint"]
    assert settings["daemon_command"] == []
    absent = flatpak.run({**SELECTION_SPEC, "arguments": {**SELECTION_SPEC["arguments"], "start-daemon": True}})
    assert absent["status"] == "execution-error" and absent["top_level"] == ["photo", "background"]
    assert "impasto service install" in absent.get("error", "") + absent["log"]  # says how, starts nothing
    # What a native install would run could not even start in there: its Python is the host's.
    host_program = subprocess.run([*flatpak.sandbox(), str(installed_package / "bin" / "impasto-daemon"), "--help"],
                                  capture_output=True)
    assert host_program.returncode != 0

    daemon = DaemonProcess(endpoint, flatpak.folder / "daemon.log")
    try:
        done = flatpak.run(SELECTION_SPEC)
        assert done["status"] == "success", done
        assert done["original_unchanged"] and done["outside_changed"] == 0
        assert done["inside_changed"] > 0.8 * done["inside_total"]
        assert_cancel_is_clean(flatpak, endpoint)
    finally:
        daemon.stop()


def assert_cancel_is_clean(gimp: SandboxedGimp, endpoint: str) -> None:
    """Cancel as GIMP does it (the plug-in's process killed ~10 ms after the user's click): the
    daemon on the host drops the sandboxed plug-in's job at once."""
    spec = {**SELECTION_SPEC, "layer_width": 256, "layer_height": 192, "image_width": 256, "image_height": 192,
            "layer_offsets": [0, 0], "selection": None, "arguments": {**SELECTION_SPEC["arguments"], "quality": "fine"}}
    gimp.prepare(spec)
    process = subprocess.Popen(gimp.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert cancel_as_gimp_does(endpoint) < 2.5
    finally:
        process.kill()
        process.wait()


class SandboxedScreen(Screen):
    """Xvfb, xdotool and ImageMagick inside the sandbox: the X socket is in the shared /tmp."""

    def inside(self, *command: str) -> list[str]:
        assert isinstance(self.gimp, SandboxedGimp)
        return [*self.gimp.sandbox(), "--setenv", "DISPLAY", self.display, "env", *command]


def test_the_flatpak_dialog_offers_no_start_box_and_says_how_to_start_the_daemon(flatpak) -> None:
    """No daemon runs: the dialog cannot start one from the sandbox, and OK ends in a message that
    says how to start it on the host (the screenshot shows the dialog as the user sees it)."""
    Path("/tmp/.X92-lock").unlink(missing_ok=True)
    screen = SandboxedScreen(flatpak, 92)
    process = gimp_with_windows(flatpak, screen, [{"size": [96, 72]}])
    try:
        dialog = screen.window("^Impasto Style Transfer$")
        time.sleep(3)  # the gallery asks the daemon, which does not answer
        screen.shot("flatpak-dialog.png")
        screen.keys(dialog, "alt+o")  # OK
        run = wait_for_file(flatpak.folder / "run0.json", 90)
        output = process.communicate(timeout=60)[0]
    finally:
        process.kill()
        screen.close()
    assert run["status"] != "success" and run["layers"] == ["photo"], run
    assert "impasto service install" in output, output[-3000:]
