"""Reach: each platform's installer plan, the daemon as a user service, and a Flatpak profile.

macOS and Windows cannot run here: their plans (profile folders, GIMP's Python, endpoint, service
files) are checked with the platform injected. The service is run for real as far as this machine
allows: no user systemd runs here, so the test does what systemd does with the units written
(holds the socket, runs ExecStart on the first connection) with systemd's own
systemd-socket-activate where it is installed.
"""

from __future__ import annotations

import json
import os
import plistlib
import shlex
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from impasto.install.gimp_python import interpreter_files_python
from impasto.install.platforms import Platform
from impasto.install.service import install_service, plan_for, remove_service
from impasto.protocol.client import Client, DaemonUnavailable
from impasto.protocol.endpoint import config_dir, platform_endpoint

from .conftest import IMPASTO, ROOT, write_png


def test_each_platform_knows_gimps_profiles_python_and_endpoint(tmp_path: Path) -> None:
    home = tmp_path / "home"
    windows = Platform("win32", home, {"APPDATA": str(tmp_path / "Roaming"), "ProgramFiles": str(tmp_path / "PF"),
                                       "USERNAME": "ada"})
    assert windows.profile_bases() == [tmp_path / "Roaming" / "GIMP"]
    assert config_dir("win32", home, windows.environ) == tmp_path / "Roaming" / "Impasto"
    assert platform_endpoint("win32") == "tcp://127.0.0.1:5591"  # no ipc in ZeroMQ there: loopback with keys
    interpreters = tmp_path / "PF" / "GIMP 3" / "lib" / "gimp" / "3.0" / "interpreters"
    interpreters.mkdir(parents=True)
    (interpreters / "pygimp.interp").write_text("python=C:\\Program Files\\GIMP 3\\bin\\python.exe\n"
                                                ":Python:E::py::python:\n")
    named = interpreter_files_python(windows)
    assert named is not None and named[0] == ["C:\\Program Files\\GIMP 3\\bin\\python.exe"]

    mac = Platform("darwin", home, {})
    assert mac.profile_bases() == [home / "Library" / "Application Support" / "GIMP"]
    assert mac.interpreter_files()[0].startswith("/Applications/GIMP.app/Contents/Resources/lib/gimp/3.0/")
    assert mac.fallback_pythons() == [["/Applications/GIMP.app/Contents/MacOS/python3"]]
    assert platform_endpoint("darwin", {}).startswith("ipc://")

    linux = Platform("linux", home, {})
    flatpak = home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.2"
    assert linux.profile_bases() == [home / ".config" / "GIMP", flatpak.parent]
    assert linux.is_flatpak(flatpak) and not linux.is_flatpak(home / ".config" / "GIMP" / "3.0")


def test_service_files_for_each_platform(tmp_path: Path) -> None:
    home, command = tmp_path / "home", ["/opt/impasto/bin/impasto-daemon", "--weights", "/w/100%$HOME.pt"]
    linux, record = plan_for(Platform("linux", home, {}), command, "ipc:///run/user/7/impasto/daemon.sock")
    units = home / ".config" / "systemd" / "user"
    socket_unit = linux.files[units / "impasto-daemon.socket"].decode()
    assert "ListenStream=/run/user/7/impasto/daemon.sock" in socket_unit and "SocketMode=0600" in socket_unit
    service_unit = linux.files[units / "impasto-daemon.service"].decode()
    assert "/w/100%%$$HOME.pt" in service_unit  # systemd would expand '%' and '$'
    assert "Requires=impasto-daemon.socket" in service_unit and record["service"] is True

    mac, _ = plan_for(Platform("darwin", home, {}), command, "ipc:///tmp/x/daemon.sock")
    agent = plistlib.loads(mac.files[home / "Library" / "LaunchAgents" / "org.impasto.daemon.plist"])
    assert agent["ProgramArguments"] == [*command, "--endpoint", "ipc:///tmp/x/daemon.sock"]
    assert agent["RunAtLoad"] is True and mac.start[0][:2] == ["launchctl", "bootstrap"]

    environ = {"APPDATA": str(tmp_path / "Roaming"), "USERNAME": "ada"}
    windows, record = plan_for(Platform("win32", home, environ), ["C:\\Py\\pythonw.exe", "-m", "impasto.daemon.launch"],
                               "tcp://127.0.0.1:5591")
    keys = tmp_path / "Roaming" / "Impasto" / "keys"
    task = windows.files[tmp_path / "Roaming" / "Impasto" / "impasto-daemon-task.xml"].decode("utf-16")
    assert "<Command>C:\\Py\\pythonw.exe</Command>" in task and "<UserId>ada</UserId>" in task
    assert f"--curve-secret {keys / 'server.key_secret'}" in task  # loopback tcp: every user reaches it
    assert record["client_key"] == str(keys / "client.key_secret")
    assert stat.S_IMODE((keys / "client.key_secret").stat().st_mode) == 0o600
    assert windows.start[0][:2] == ["schtasks", "/Create"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def socket_activation(address: str, command: list[str]) -> list[str]:
    """What systemd does with the socket unit: listen at `address`, run `command` on the first
    connection with the socket as descriptor 3. Its own tool where installed."""
    if shutil.which("systemd-socket-activate"):
        return ["systemd-socket-activate", "-l", address, *command]
    host, port = address.rsplit(":", 1)  # the same hand-over, in Python, at once
    code = ("import os, socket, sys\ns = socket.create_server((sys.argv[1], int(sys.argv[2])))\n"
            "if s.fileno() != 3:\n    os.dup2(s.fileno(), 3)\nos.set_inheritable(3, True)\n"
            "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))\n"
            "os.execvp(sys.argv[3], sys.argv[3:])")
    return [sys.executable, "-c", code, host, port, *command]


def test_a_service_on_loopback_tcp_serves_the_cli_with_no_options(tmp_path: Path, content_image) -> None:
    """Windows' design, run here: loopback tcp with keys the installer made, recorded where the CLI
    finds them; systemd's socket activation starts the daemon on the first connection."""
    home = tmp_path / "home"
    env = {key: value for key, value in os.environ.items() if key != "IMPASTO_ENDPOINT"}
    env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    platform, endpoint, ran = Platform("linux", home, env), f"tcp://127.0.0.1:{free_port()}", []
    daemon = [sys.executable, "-m", "impasto.daemon.launch", "--cache-dir", str(tmp_path / "cache"),
              "--presets-dir", str(tmp_path / "presets")]
    assert install_service(platform, daemon, endpoint, print, run=lambda step: ran.append(list(step)) or 0)
    assert ran == [["systemctl", "--user", "daemon-reload"],
                   ["systemctl", "--user", "enable", "--now", "impasto-daemon.socket"]]
    units = home / ".config" / "systemd" / "user"
    assert f"ListenStream={endpoint[len('tcp://'):]}" in (units / "impasto-daemon.socket").read_text()
    exec_start = next(line for line in (units / "impasto-daemon.service").read_text().splitlines()
                      if line.startswith("ExecStart="))
    connection = home / ".config" / "impasto" / "connection.json"
    assert stat.S_IMODE(connection.stat().st_mode) == 0o600 and json.loads(connection.read_text())["service"]

    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        manager = subprocess.Popen(socket_activation(endpoint[len("tcp://"):], shlex.split(exec_start[10:])),
                                   env=env, stdout=out, stderr=out, cwd=ROOT)
    try:
        photo = tmp_path / "photo.png"
        write_png(photo, content_image)
        done = subprocess.run([*IMPASTO, "stylize", str(photo), "--preset", "swirls", "--size", "32",
                               "--iterations", "2", "--detail", "0", "-q", "-o", str(tmp_path / "out.png")],
                              capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr + log.read_text()
        assert "starting impasto-daemon" not in done.stderr  # it waited for the service, started none
        assert (tmp_path / "out.png").is_file()
        assert "handed over by the service manager" in log.read_text()
        with pytest.raises(DaemonUnavailable), Client(endpoint, timeout=2) as stranger:
            stranger.hello()  # no keys (this process has no record): CURVE shuts it out
    finally:
        manager.terminate()
        manager.wait(30)
    remove_service(platform, print, run=lambda step: ran.append(list(step)) or 0)
    assert not connection.exists() and not (units / "impasto-daemon.socket").exists()
    assert ran[-2:] == [["systemctl", "--user", "disable", "--now", "impasto-daemon.socket"],
                        ["systemctl", "--user", "stop", "impasto-daemon.service"]]


def test_a_flatpak_profile_gets_an_endpoint_its_sandbox_reaches_and_no_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    profile = home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.2"
    profile.mkdir(parents=True)
    done = subprocess.run([sys.executable, "install/gimp_plugin.py", "--home", str(home), "--gimp-python",
                           sys.executable], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "a Flatpak GIMP cannot start the daemon itself" in done.stdout, done.stdout + done.stderr
    settings = json.loads((profile / "plug-ins" / "impasto_gimp" / "impasto.json").read_text())
    assert settings["endpoint"] == f"ipc:///tmp/impasto-{os.getuid()}/daemon.sock"  # /tmp is shared, not /run/user
    assert settings["daemon_command"] == [] and "impasto service install" in settings["start_hint"]


def test_a_service_that_cannot_be_turned_on_is_not_waited_for(tmp_path: Path) -> None:
    """No user systemd (a container, a session without a bus): the files stay for later, and the
    recorded connection says no service runs, so clients start a daemon as before."""
    platform = Platform("linux", tmp_path, {"XDG_CONFIG_HOME": str(tmp_path / "config")})
    said: list[str] = []
    assert install_service(platform, ["impasto-daemon"], "ipc:///tmp/x/d.sock", said.append, run=lambda step: 1) is None
    assert any("COULD NOT turn the service on" in line for line in said)
    record = json.loads((tmp_path / "config" / "impasto" / "connection.json").read_text())
    assert record == {"endpoint": "ipc:///tmp/x/d.sock", "service": False}
    assert (tmp_path / "config" / "systemd" / "user" / "impasto-daemon.socket").is_file()
