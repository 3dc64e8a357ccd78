"""The GIMP plug-in in real GIMP, 3.0.4 (Debian trixie) and 3.2 (Debian sid), each in a chroot,
against a real daemon.

The chroots are built once and cached (tests/gimp/build-chroot.sh); the plug-in is installed
into each with the project's own installer; the daemon runs on the host and the two meet on an
ipc socket in a folder bind-mounted into the chroot at the same path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from impasto.protocol.client import Client

from .conftest import ROOT, DaemonProcess

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the GIMP chroot needs root (debootstrap, chroot, mount)")


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


class Gimp:
    """gimp-console in the chroot, with `folder` shared at the same path."""

    def __init__(self, chroot: Path, folder: Path) -> None:
        self.chroot = chroot
        self.folder = folder
        # gimp-console-3.0 or -3.2: the version names the profile folder too.
        self.version = sorted(p.name for p in (chroot / "usr" / "bin").glob("gimp-console-3.*"))[-1].split("-")[-1]

    def command(self) -> list[str]:
        code = "exec(open('%s').read())" % (self.folder / "batch.py")
        return ["chroot", str(self.chroot), "env", "HOME=/root", f"IMPASTO_BATCH_DIR={self.folder}",
                f"gimp-console-{self.version}", "-i", "--batch-interpreter=python-fu-eval", "-b", code, "--quit"]

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


@pytest.fixture(scope="module", params=["trixie", "sid"])
def gimp(request, tmp_path_factory, installed_package):
    build = subprocess.run(["bash", str(ROOT / "tests" / "gimp" / "build-chroot.sh"), request.param],
                           capture_output=True, text=True, timeout=1500)
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
        gimp = Gimp(chroot, folder)
        (folder / "batch.py").write_text((ROOT / "tests" / "gimp" / "batch.py").read_text())
        install = subprocess.run(  # as a user would: `impasto install-gimp` from the wheel
            [str(installed_package / "bin" / "impasto"), "install-gimp", "--gimp-dir",
             str(chroot / "root" / ".config" / "GIMP" / gimp.version), "--endpoint", f"ipc://{folder}/d.sock",
             "--gimp-python", f"chroot {chroot} python3"], capture_output=True, text=True, timeout=300)
        assert install.returncode == 0, install.stdout + install.stderr
        assert "has pyzmq and msgpack" in install.stdout
        print(install.stdout)
        yield gimp
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
    "arguments": {"quality": "draft", "start-daemon": False, "style-source": "preset", "style-preset": "swirls",
                  "seed": 3, "keep-previews": True},
}


def test_selection_is_stylised_into_new_layers(gimp, host_daemon) -> None:
    result = gimp.run(SELECTION_SPEC)
    assert result["status"] == "success", result
    assert result["original_unchanged"]
    # The result sits directly above the photo, the kept previews below it (newest first), each
    # named with the iteration the progress showed with it.
    children = result["run_layers"]
    assert result["top_level"] == [c["name"] for c in children] + ["photo", "background"]
    assert children[0]["name"] == "Impasto: swirls"
    previews = [c["name"] for c in children[1:]]
    assert previews and all(name.startswith("Impasto preview: iteration ") for name in previews)
    iterations = [int(name.split("iteration ")[1].split("/")[0]) for name in previews]
    assert iterations == sorted(iterations, reverse=True)
    # Sent: the selection plus 15% context, clipped to the layer; placed at image coordinates.
    x, y, w, h = 30 - 5, 20 - 5, 36 + 10, 30 + 10
    assert all(c["offsets"] == [x, y] and c["size"] == [w, h] for c in children)
    assert result["outside_total"] > 0 and result["outside_changed"] == 0
    assert result["inside_changed"] > 0.8 * result["inside_total"]
    # The selection went with its layer, so it is cut from the layer's composition.
    assert "(46x40, a part of a 80 px whole sent with it)" in host_daemon.log.read_text()
    print(f"GIMP run with the plug-in: {result['gimp_seconds']:.1f} s (plug-in {result['seconds']:.1f} s)")


def test_whole_layer_without_alpha(gimp, host_daemon) -> None:
    spec = {**SELECTION_SPEC, "alpha": False, "selection": None, "layer_offsets": [0, 0],
            "arguments": {**SELECTION_SPEC["arguments"], "keep-previews": False}}
    result = gimp.run(spec)
    assert result["status"] == "success", result
    assert result["original_unchanged"]
    # One layer: the result (a script's run shows no previews unless asked to keep them).
    assert result["top_level"] == ["Impasto: swirls", "photo", "background"]
    assert result["run_layers"][0]["size"] == [80, 60]
    assert result["inside_changed"] > 0.8 * result["inside_total"]


@pytest.mark.parametrize("source", ["file", "pattern"])
def test_style_from_a_file_or_a_pattern(gimp, host_daemon, source) -> None:
    from impasto.daemon import artwork

    arguments = {**SELECTION_SPEC["arguments"], "keep-previews": False}
    arguments["style-source"] = source  # decides: the preset named too is ignored
    if source == "file":
        artwork.embers(96).save(gimp.folder / "painting.png")
        arguments["style-file"] = str(gimp.folder / "painting.png")
    # else the context's pattern, GIMP's default
    result = gimp.run({**SELECTION_SPEC, "selection": None, "layer_offsets": [0, 0], "arguments": arguments})
    assert result["status"] == "success", result
    name = result["top_level"][0].removeprefix("Impasto: ")
    assert name == "painting.png" if source == "file" else name not in ("swirls", "painting.png")
    assert result["inside_changed"] > 0.8 * result["inside_total"]


def test_every_selected_layer_gets_its_result_above_it(gimp, host_daemon) -> None:
    arguments = {**SELECTION_SPEC["arguments"], "keep-previews": False}
    spec = {**SELECTION_SPEC, "more_layers": ["second", "third"], "arguments": arguments}
    result = gimp.run(spec)
    assert result["status"] == "success", result
    assert result["original_unchanged"]
    assert result["top_level"] == ["Impasto: swirls (third)", "third", "Impasto: swirls (second)", "second",
                                   "Impasto: swirls (photo)", "photo", "background"]
    # The selection applies to every layer: each result is the selection's part, with context.
    assert all(layer["size"] == [46, 40] for layer in result["run_layers"])
    assert result["new_images"] == []


def test_animation_frames_are_painted_in_order_into_a_new_image(gimp, host_daemon) -> None:
    names = ["Frame 1 (100ms)", "Frame 2 (200ms)", "Frame 3 (100ms) (combine)"]
    arguments = {**SELECTION_SPEC["arguments"], "keep-previews": False, "animation": True}
    spec = {**SELECTION_SPEC, "selection": None, "photo_name": names[0], "more_layers": names[1:], "in_group": True,
            "arguments": arguments}
    following = host_daemon.log.read_text().count("an animation frame following the previous one")
    result = gimp.run(spec)
    assert result["status"] == "success", result
    assert result["original_unchanged"]
    assert result["top_level"] == ["frames", "background"] and result["in_groups"] == names[::-1]  # untouched
    [frames] = result["new_images"]
    assert [frame["name"] for frame in frames] == names[::-1]  # the first frame at the bottom, timings kept
    # Painted: most colour bytes differ from the frame's photo (its alpha comes back as it was).
    assert all(frame["size"] == [80, 60] and frame["changed"] > 0.6 * 80 * 60 * 4 for frame in frames), frames
    # Frames 2 and 3 each followed the frame before.
    assert host_daemon.log.read_text().count("an animation frame following the previous one") == following + 2


def test_animation_frames_refuse_a_selection(gimp, host_daemon) -> None:
    arguments = {**SELECTION_SPEC["arguments"], "animation": True}
    result = gimp.run({**SELECTION_SPEC, "more_layers": ["second"], "arguments": arguments})
    assert result["status"] != "success" and result["new_images"] == []
    assert result["top_level"] == ["second", "photo", "background"]
    assert "Select > None" in result["log"] + result.get("error", "") + result.get("pdb_error", "")


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


def cancel_as_gimp_does(endpoint: str) -> float:
    """Once the plug-in's job reaches the daemon, kill the plug-in's process, as GIMP does ~10 ms
    after the user cancels; returns the seconds the daemon took to drop the job."""
    with Client(endpoint) as client:
        deadline = time.monotonic() + 60
        while client.hello()["queue"] == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.hello()["queue"] == 1, "the plug-in's job never reached the daemon"
        found = subprocess.run(["pgrep", "-f", "plug-ins/impasto_gimp/impasto_gimp.py"], capture_output=True, text=True)
        pids = [int(p) for p in found.stdout.split()]
        assert pids, "no plug-in process found"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        while client.hello()["queue"] and time.monotonic() - killed < 10:
            time.sleep(0.1)
        assert client.hello()["queue"] == 0
        return time.monotonic() - killed


def test_killed_plugin_has_its_job_cancelled(gimp, host_daemon) -> None:
    spec = {**SELECTION_SPEC, "layer_width": 256, "layer_height": 192, "image_width": 256, "image_height": 192,
            "layer_offsets": [0, 0], "selection": None, "arguments": {**SELECTION_SPEC["arguments"], "quality": "fine"}}
    gimp.prepare(spec)
    process = subprocess.Popen(gimp.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seconds = cancel_as_gimp_does(host_daemon.endpoint)
        print(f"job cancelled {seconds:.1f} s after the plug-in was killed")
        assert seconds < 2.5
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
    # Previews that arrived stay, named as previews (the user's to keep); nothing else of the run does.
    assert result["top_level"][-2:] == ["photo", "background"]
    assert all(name.startswith("Impasto preview: ") for name in result["top_level"][:-2])
    assert finished < 15  # the plug-in gives up within its 3 s timeout; GIMP then quits


def test_plugin_starts_the_daemon_when_none_runs(gimp, installed_package) -> None:
    """The installed package, the project (its venv has the dependencies) and their Python are
    bind-mounted into the chroot at their own paths, so the daemon command the installer wrote
    works there; the plug-in must start it and finish the job."""
    binds = [(path, gimp.chroot / str(path).lstrip("/")) for path in (ROOT, Path(sys.base_prefix), installed_package)]
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
        assert result["run_layers"] and result["inside_changed"] > 0.8 * result["inside_total"]
        with Client(endpoint) as client:
            assert client.hello()["queue"] == 0  # it stays up for the next run
            client.request("shutdown")
    finally:
        subprocess.run(["pkill", "-f", f"endpoint {endpoint}"])
        time.sleep(1)
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", str(target)])


class Screen:
    """Xvfb, xdotool and ImageMagick inside the chroot: GIMP's real windows, driven by keys."""

    def __init__(self, gimp: Gimp, display: int) -> None:
        self.gimp, self.display = gimp, f":{display}"
        (gimp.chroot / "tmp" / f".X{display}-lock").unlink(missing_ok=True)
        self.xvfb = subprocess.Popen(self.inside("Xvfb", self.display, "-screen", "0", "1280x900x24"),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)

    def inside(self, *command: str) -> list[str]:
        return ["chroot", str(self.gimp.chroot), "env", "HOME=/root", f"DISPLAY={self.display}", *command]

    def xdotool(self, *args: str, timeout: float = 60) -> str:
        return subprocess.run(self.inside("xdotool", *args), capture_output=True, text=True, timeout=timeout,
                              check=True).stdout

    def find(self, title: str) -> str | None:
        """The id of the first window whose title matches, if there is one now."""
        found = subprocess.run(self.inside("xdotool", "search", "--name", title), capture_output=True, text=True,
                               timeout=30).stdout.split()
        return found[0] if found else None

    def appears(self, title: str, timeout: float) -> str | None:
        """The id of the first window whose title matches, once there is one; None after `timeout` s."""
        deadline = time.monotonic() + timeout
        while (found := self.find(title)) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        return found

    def window(self, title: str, timeout: float = 90) -> str:
        """The id of the first window whose title matches, once there is one."""
        found = self.appears(title, timeout)
        assert found is not None, f"no window {title!r} after {timeout} s"
        return found

    def press_until(self, window: str, key: str, title: str, tries: int = 3) -> str:
        """Press `key` in `window` until a window titled `title` opens, and return that one. A key
        pressed while a dialog is still being built can be lost (on a slow day GIMP 3.2 once
        dropped an Enter), so it is pressed again, but only while `window` is still open."""
        for _ in range(tries):
            self.keys(window, key)
            if (found := self.appears(title, 30)) is not None:
                return found
            still_open = subprocess.run(self.inside("xdotool", "getwindowname", window), capture_output=True,
                                        timeout=30).returncode == 0
            assert still_open, f"{title!r} never opened, and the window {key} was pressed in closed"
        raise AssertionError(f"{title!r} never opened after {tries} presses of {key}")

    def keys(self, window: str, *keys: str) -> None:
        self.xdotool("windowfocus", "--sync", window)
        for key in keys:
            self.xdotool("key", key)
            time.sleep(0.4)

    def shot(self, name: str) -> Path:
        subprocess.run(self.inside("import", "-window", "root", str(self.gimp.folder / name)), check=True)
        return self.gimp.folder / name

    def close(self) -> None:
        self.xvfb.kill()
        self.xvfb.wait()


def wait_for_file(path: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never came"
        time.sleep(0.2)
    time.sleep(0.2)
    return json.loads(path.read_text())


def gimp_with_windows(gimp: Gimp, screen: Screen, plan: list) -> subprocess.Popen:
    """GIMP with its GUI on `screen`, running tests/gimp/gui.py over `plan` (its runN.json: the results)."""
    for old in [*gimp.folder.glob("run*.json"), *gimp.folder.glob("undone*")]:
        old.unlink()
    (gimp.folder / "gui.py").write_text((ROOT / "tests" / "gimp" / "gui.py").read_text())
    (gimp.folder / "plan.json").write_text(json.dumps(plan))
    code = "exec(open('%s').read())" % (gimp.folder / "gui.py")
    return subprocess.Popen(screen.inside(f"IMPASTO_BATCH_DIR={gimp.folder}", f"gimp-{gimp.version}",
                                          "--console-messages", "--no-splash", "--batch-interpreter=python-fu-eval",
                                          "-b", code, "--quit"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def undo_in(screen: Screen, window: str, gimp: Gimp, index: int) -> dict:
    """Press Ctrl+Z in the image `window`, and what run `index`'s image holds then (tests/gimp/gui.py)."""
    screen.keys(screen.window(window), "ctrl+z")
    time.sleep(1)
    (gimp.folder / f"undone{index}").touch()
    return wait_for_file(gimp.folder / f"run{index}-undone.json", 30)


def runs_done(daemon: DaemonProcess) -> int:
    """How many jobs the daemon has finished, the dialog's previews aside."""
    return sum(" done in " in line and "job preview-" not in line for line in daemon.log.read_text().splitlines())


def test_the_dialog_in_the_gui_runs_a_preset_from_the_gallery_and_cancels_cleanly(gimp, host_daemon) -> None:
    """Real GIMP with its windows under Xvfb: pick a preset in the gallery with the keys, run it on
    three layers, and one Ctrl+Z removes the run's three results. A second run, on another preset
    and two layers, goes on through Ctrl+Z pressed while it paints; cancelled in its second layer,
    it leaves the image and its Undo History as they were (Ctrl+Z brings nothing back) and GIMP
    warns of nothing. The third dialog remembers the cancelled run's preset."""
    from impasto.daemon.presets import BUILT_IN
    from impasto.protocol.settings import DEFAULT_PRESET

    presets = list(BUILT_IN)
    chosen, second = presets[presets.index(DEFAULT_PRESET) + 1:presets.index(DEFAULT_PRESET) + 3]  # the next two
    profile = gimp.chroot / "root" / ".config" / "GIMP" / gimp.version
    for remembered in profile.glob("plug-in-settings/*plug-in-impasto-style-transfer*"):
        remembered.unlink()  # GIMP's last-used values and the plug-in's: start from the defaults
    screen = Screen(gimp, 90 + (gimp.version == "3.2"))
    started = time.monotonic()
    process = gimp_with_windows(gimp, screen, [{"size": [96, 72], "layers": 3, "undo": True},
                                               {"size": [384, 288], "layers": 2, "undo": True}, {"size": [96, 72]}])
    try:
        dialog = screen.window("^Impasto Style Transfer$")
        opened = time.monotonic() - started
        time.sleep(3)  # the gallery fills when the daemon has answered
        screen.shot("dialog.png")
        screen.keys(dialog, "alt+h")  # no browser in the chroot: a window names the help page instead
        help_window = screen.window("^Impasto Help$", timeout=30)
        screen.shot("help.png")
        screen.keys(help_window, "Return")
        screen.keys(dialog, "Right")  # the gallery has the keys: the next preset
        screen.shot("gallery.png")
        screen.keys(dialog, "Return")  # Enter in the gallery runs it
        first = wait_for_file(gimp.folder / "run0.json", 120)
        first_undone = undo_in(screen, "96x72", gimp, 0)

        dialog = screen.window("^Impasto Style Transfer$")  # the second image's run: the next preset again
        time.sleep(2)  # as for the first: the dialog settles before its keys
        screen.keys(dialog, "Right")
        jobs_done = runs_done(host_daemon)
        running = screen.press_until(dialog, "Return", f"^Impasto: {second}$")
        deadline = time.monotonic() + 120
        while runs_done(host_daemon) == jobs_done and time.monotonic() < deadline:
            time.sleep(0.2)  # the first layer's job
        time.sleep(3)  # the second layer's previews
        screen.keys(screen.window("384x288"), "ctrl+z")  # Undo meanwhile: the run goes on
        time.sleep(3)
        screen.shot("running.png")
        cancelled_at = time.monotonic()
        screen.keys(running, "Return")  # Cancel has the keys
        cancelled = wait_for_file(gimp.folder / "run1.json", 60)
        cancel_seconds = time.monotonic() - cancelled_at
        time.sleep(1)  # GIMP's Layers dock redraws when idle
        screen.shot("cancelled.png")
        cancelled_undone = undo_in(screen, "384x288", gimp, 1)

        dialog = screen.window("^Impasto Style Transfer$")  # the third: as the cancelled run was set
        time.sleep(2)
        screen.press_until(dialog, "Return", f"^Impasto: {second}$")
        third = wait_for_file(gimp.folder / "run2.json", 120)
        output = process.communicate(timeout=60)[0]
    finally:
        process.kill()
        screen.close()
    assert first["status"] == "success", first
    assert first["layers"] == [f"Impasto: {chosen} (photo 3)", "photo 3", f"Impasto: {chosen} (photo 2)", "photo 2",
                               f"Impasto: {chosen} (photo)", "photo"], first
    assert first["sizes"][0] == [96, 72]
    assert first_undone["layers"] == ["photo 3", "photo 2", "photo"], first_undone  # the run was one step
    assert cancelled["status"] == "cancel" and cancelled["layers"] == ["photo 2", "photo"], cancelled
    assert cancelled_undone["layers"] == ["photo 2", "photo"], cancelled_undone  # no step of the run to bring back
    assert third["status"] == "success" and third["layers"] == [f"Impasto: {second}", "photo"], third
    assert "inconsistent" not in output and "undo group" not in output, output[-3000:]
    assert "mnemonic" not in output, output[-3000:]  # every setting has its Alt+key, none twice
    log = host_daemon.log.read_text().splitlines()
    previews = [line for line in log if "job preview-" in line and " done " in line]
    assert previews, "the dialog's preview never ran"  # dialog.png shows it
    with Client(host_daemon.endpoint) as client:
        assert client.hello()["queue"] == 0
    print(f"GIMP {gimp.version} GUI: dialog after {opened:.1f} s, first run {first['seconds']:.1f} s, "
          f"cancel done in {cancel_seconds:.1f} s (the image then marked changed: {cancelled['dirty']}); "
          f"the first preview: {previews[0].split(' done ')[1]}; "
          f"screenshots in {gimp.folder}")


def test_the_installer_finds_gimps_python_not_the_first_python3_on_path(gimp) -> None:
    """Inside the chroot, as a user would run it: `python3 install/gimp_plugin.py` with a Python
    that cannot load GIMP's bindings first on PATH (a venv here; pyenv's, say, in the wild)."""
    source = gimp.folder / "src"
    for part in ("install", "plugin", "protocol", "impasto"):  # a clone: impasto/ holds links to the others
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True,
                        symlinks=True)
    wrong = gimp.folder / "wrong-python"
    subprocess.run(["chroot", str(gimp.chroot), "python3", "-m", "venv", "--without-pip", str(wrong)], check=True)
    profile = gimp.folder / "profile"

    def install(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(["chroot", str(gimp.chroot), "env", f"PATH={wrong}/bin:/usr/bin:/bin", "python3",
                               str(source / "install" / "gimp_plugin.py"), "--gimp-dir", str(profile), "--endpoint",
                               f"ipc://{gimp.folder}/d.sock", *extra], capture_output=True, text=True, timeout=300)

    done = install()
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GIMP's Python: /usr/bin/python3" in done.stdout
    assert f"python3 on PATH ({wrong}/bin/python3" in done.stdout and "is not GIMP's Python" in done.stdout
    assert "has pyzmq and msgpack" in done.stdout  # Debian's python3-zmq, found: nothing vendored
    plugin = profile / "plug-ins" / "impasto_gimp"
    assert (plugin / "impasto_gimp.py").read_text().startswith("#!/usr/bin/python3\n")
    assert not (plugin / "vendor").exists()
    refused = install("--gimp-python", f"{wrong}/bin/python3")  # told a Python that is not GIMP's: refused loudly
    assert refused.returncode == 1 and "COULD NOT find GIMP's Python" in refused.stdout, refused.stdout


def test_a_selection_is_saved_as_a_user_preset(gimp, host_daemon) -> None:
    spec = {**SELECTION_SPEC, "procedure": "plug-in-impasto-save-preset",
            "arguments": {"preset-name": "My Stripes", "description": "stripes from a test",
                          "endpoint": host_daemon.endpoint}}
    result = gimp.run(spec)
    assert result["status"] == "success", result
    assert result["top_level"] == ["photo", "background"] and result["original_unchanged"]
    with Client(host_daemon.endpoint) as client:
        saved = {info.name: info for info in client.preset_gallery()}["my-stripes"]
        assert saved.source == "user" and saved.description == "stripes from a test"
        assert saved.thumbnail is not None  # the selection itself, 36×30, without the context a job gets:
        assert (saved.thumbnail.width, saved.thumbnail.height) == (36, 30)
        client.remove_preset("my-stripes")
    refused = gimp.run({**spec, "arguments": {**spec["arguments"], "preset-name": "../../etc"}})
    assert refused["status"] == "execution-error" and "cannot name a preset" in refused.get("error", "") + \
        refused["log"]


def test_the_preset_dialog_says_a_bad_name_at_once_and_stays_open(gimp, host_daemon) -> None:
    """Save Layer as Impasto Style Preset in the GUI: a name that cannot name a preset is said over
    the dialog, which stays open for another; a name with spaces and capitals is stored as its
    lowercase, dashed form, and the saving is confirmed in a window, not a status-bar line."""
    screen = Screen(gimp, 92 + (gimp.version == "3.2"))
    process = gimp_with_windows(gimp, screen, [{"size": [64, 48], "procedure": "plug-in-impasto-save-preset"}])
    try:
        dialog = screen.window("^Save Layer as Impasto Style Preset$")
        time.sleep(2)
        screen.keys(dialog, "alt+n", "ctrl+a")  # "Preset _name": its field
        screen.xdotool("type", "--delay", "40", "no good!")
        screen.keys(dialog, "alt+o")
        problem = screen.window("^Impasto: Preset Name$", timeout=30)
        screen.shot("preset-name.png")
        screen.keys(problem, "Return")
        assert screen.find("^Save Layer as Impasto Style Preset$") is not None  # still open, for another name
        screen.keys(dialog, "alt+n", "ctrl+a")
        screen.xdotool("type", "--delay", "40", "Lake Pebbles")
        screen.keys(dialog, "alt+o")
        saved = screen.window("^Impasto Preset Saved$", timeout=60)
        screen.shot("preset-saved.png")
        screen.keys(saved, "Return")
        result = wait_for_file(gimp.folder / "run0.json", 60)
        process.communicate(timeout=60)
    finally:
        process.kill()
        screen.close()
    assert result["status"] == "success", result
    with Client(host_daemon.endpoint) as client:
        assert "lake-pebbles" in {info.name for info in client.preset_gallery()}
