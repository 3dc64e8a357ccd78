"""The daemon as the system's job: a user service starts it, so GIMP never has to.

    impasto service install [--endpoint E] [--daemon-command C]
    impasto service remove
    impasto service status

- Linux: a systemd user socket unit and its service. systemd holds the socket and starts the
  daemon on the first connection; the daemon serves on the socket it is handed (daemon/claim.py).
- macOS: a launchd agent, started at login and kept alive (written by design, not yet run on a Mac).
- Windows: a per-user task started at logon (written by design, not yet run on Windows).
What was set up is recorded in connection.json (protocol/endpoint.py), where the CLI, the daemon
and the plug-in find the endpoint and, for loopback tcp, the keys. Standard library only, but for
the CURVE keys a tcp endpoint needs (pyzmq).
"""

from __future__ import annotations

import argparse
import json
import plistlib
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from impasto.protocol.endpoint import CONNECTION_FILE, config_dir, default_endpoint, ipc_path, user_id

from .files import remove_ours, write_file
from .platforms import Platform

Say = Callable[[str], None]
Run = Callable[[Sequence[str]], int]  # runs a command, returns its exit status
NAME = "impasto-daemon"
LAUNCHD_LABEL = "org.impasto.daemon"
WINDOWS_TASK = r"\Impasto\Daemon"


@dataclass
class ServicePlan:
    """What setting up the service writes and runs on one platform."""

    files: dict[Path, bytes]
    start: list[list[str]]  # turn it on, now and at each login
    stop: list[list[str]]  # turn it off (before its files go)
    status: list[str]
    how_to_start: str  # a line for a user who finds the daemon not running


def systemd_escaped(text: str) -> str:
    """Text as systemd reads unit settings: '%' starts a specifier and '$' a variable."""
    return text.replace("%", "%%").replace("$", "$$")


def listen_address(endpoint: str) -> str:
    """systemd's ListenStream= for an endpoint: the socket file, or host:port for tcp."""
    path = ipc_path(endpoint)
    if path is not None:
        return str(path)
    if endpoint.startswith("tcp://"):
        return endpoint[len("tcp://"):]
    raise ValueError(f"a service cannot listen on {endpoint}: use ipc:///path or tcp://host:port")


def systemd_plan(platform: Platform, daemon: list[str], endpoint: str) -> ServicePlan:
    units = Path(platform.environ.get("XDG_CONFIG_HOME") or platform.home / ".config") / "systemd" / "user"
    socket = (f"[Unit]\nDescription=Impasto style-transfer daemon's socket\n\n"
              f"[Socket]\nListenStream={systemd_escaped(listen_address(endpoint))}\n"
              "SocketMode=0600\nDirectoryMode=0700\n\n[Install]\nWantedBy=sockets.target\n")
    service = (f"[Unit]\nDescription=Impasto style-transfer daemon\nRequires={NAME}.socket\nAfter={NAME}.socket\n\n"
               f"[Service]\nExecStart={systemd_escaped(shlex.join(daemon))}\nRestart=on-failure\n")
    user = ["systemctl", "--user"]
    return ServicePlan({units / f"{NAME}.socket": socket.encode(), units / f"{NAME}.service": service.encode()},
                       start=[[*user, "daemon-reload"], [*user, "enable", "--now", f"{NAME}.socket"]],
                       stop=[[*user, "disable", "--now", f"{NAME}.socket"], [*user, "stop", f"{NAME}.service"]],
                       status=[*user, "status", "--no-pager", f"{NAME}.socket", f"{NAME}.service"],
                       how_to_start=f"systemctl --user start {NAME}.socket")


def launchd_plan(platform: Platform, daemon: list[str]) -> ServicePlan:
    plist = platform.home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    log = platform.home / "Library" / "Logs" / f"{NAME}.log"
    agent = {"Label": LAUNCHD_LABEL, "ProgramArguments": daemon, "RunAtLoad": True,
             "KeepAlive": {"SuccessfulExit": False}, "StandardErrorPath": str(log)}
    domain = f"gui/{user_id()}"
    return ServicePlan({plist: plistlib.dumps(agent)}, start=[["launchctl", "bootstrap", domain, str(plist)]],
                       stop=[["launchctl", "bootout", f"{domain}/{LAUNCHD_LABEL}"]],
                       status=["launchctl", "print", f"{domain}/{LAUNCHD_LABEL}"],
                       how_to_start=f"launchctl kickstart {domain}/{LAUNCHD_LABEL}")


def windows_plan(platform: Platform, daemon: list[str]) -> ServicePlan:
    task = config_dir("win32", platform.home, platform.environ) / f"{NAME}-task.xml"
    user = escape(platform.environ.get("USERNAME", ""))
    xml = ('<?xml version="1.0" encoding="UTF-16"?>\n'
           '<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">\n'
           "  <RegistrationInfo><Description>Impasto style-transfer daemon</Description></RegistrationInfo>\n"
           f"  <Triggers><LogonTrigger><Enabled>true</Enabled><UserId>{user}</UserId></LogonTrigger></Triggers>\n"
           f'  <Principals><Principal id="Author"><UserId>{user}</UserId><LogonType>InteractiveToken</LogonType>'
           "<RunLevel>LeastPrivilege</RunLevel></Principal></Principals>\n"
           "  <Settings><MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>"
           "<DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>"
           "<StopIfGoingOnBatteries>false</StopIfGoingOnBatteries><ExecutionTimeLimit>PT0S</ExecutionTimeLimit>"
           "<RestartOnFailure><Interval>PT1M</Interval><Count>3</Count></RestartOnFailure></Settings>\n"
           f'  <Actions Context="Author"><Exec><Command>{escape(daemon[0])}</Command>'
           f"<Arguments>{escape(subprocess.list2cmdline(daemon[1:]))}</Arguments></Exec></Actions>\n"
           "</Task>\n")
    return ServicePlan({task: xml.encode("utf-16")},
                       start=[["schtasks", "/Create", "/TN", WINDOWS_TASK, "/XML", str(task), "/F"],
                              ["schtasks", "/Run", "/TN", WINDOWS_TASK]],
                       stop=[["schtasks", "/End", "/TN", WINDOWS_TASK], ["schtasks", "/Delete", "/TN", WINDOWS_TASK,
                                                                         "/F"]],
                       status=["schtasks", "/Query", "/TN", WINDOWS_TASK],
                       how_to_start=f"schtasks /Run /TN {WINDOWS_TASK}")


def local_keys(platform: Platform) -> dict[str, Path]:
    """CURVE keys for a daemon on loopback tcp, readable by this user alone (needs pyzmq)."""
    from impasto.protocol.security import make_keys

    return make_keys(config_dir(platform.system, platform.home, platform.environ) / "keys")


def plan_for(platform: Platform, command: list[str], endpoint: str) -> tuple[ServicePlan, dict]:
    """The platform's service for `command --endpoint endpoint`, and the connection to record."""
    daemon, record = [*command, "--endpoint", endpoint], {"endpoint": endpoint, "service": True}
    if endpoint.startswith("tcp://"):  # every local user reaches loopback tcp: CURVE keys guard it
        keys = local_keys(platform)
        daemon += ["--curve-secret", str(keys["server_secret"]), "--curve-clients", str(keys["clients"])]
        record |= {"server_key": str(keys["server"]), "client_key": str(keys["client_secret"])}
    if platform.windows:
        return windows_plan(platform, daemon), record
    if platform.mac:
        return launchd_plan(platform, daemon), record
    return systemd_plan(platform, daemon, endpoint), record


def run_command(command: Sequence[str]) -> int:
    try:
        return subprocess.run(list(command), timeout=60).returncode
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"impasto-service: {shlex.join(command)}: {exc}", file=sys.stderr)
        return 127


def install_service(platform: Platform, command: list[str], endpoint: str, say: Say,
                    run: Run = run_command) -> str | None:
    """Write the service's files, turn it on, and record the connection; returns how to start it by
    hand, or None (said why) on failure."""
    try:
        plan, record = plan_for(platform, command, endpoint)
    except (ValueError, ImportError) as exc:
        say(f"COULD NOT set up the service: {exc}")
        return None
    for path, data in plan.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, data)
        say(f"wrote {path}")
    started = all(turn_on(step, run, say) for step in plan.start)
    folder = config_dir(platform.system, platform.home, platform.environ)
    folder.mkdir(parents=True, exist_ok=True)
    record["service"] = started  # clients wait for a service, and start a daemon themselves where none runs
    write_file(folder / CONNECTION_FILE, (json.dumps(record, indent=2) + "\n").encode(), 0o600)
    say(f"recorded the endpoint {endpoint} in {folder / CONNECTION_FILE} (the CLI and the daemon use it)")
    if not started:
        return None
    say(f"the daemon is the system's job now; if it ever is not running: {plan.how_to_start}")
    return plan.how_to_start


def turn_on(step: list[str], run: Run, say: Say) -> bool:
    if run(step) != 0:
        say(f"COULD NOT turn the service on: `{shlex.join(step)}` failed; its files are in place: run it yourself "
            "once the service manager runs")
        return False
    say(f"ran {shlex.join(step)}")
    return True


def remove_service(platform: Platform, say: Say, run: Run = run_command) -> None:
    """Turn the service off and remove its files and the recorded connection (the keys stay)."""
    plan, _ = plan_for(platform, ["impasto-daemon"], "ipc:///unused")
    for step in plan.stop:
        run(step)  # it may not be running, or not installed: nothing to undo then
    for path in [*plan.files, config_dir(platform.system, platform.home, platform.environ) / CONNECTION_FILE]:
        if path.exists() or path.is_symlink():
            remove_ours(path)
            say(f"removed {path}")


def main(argv: list[str] | None = None, platform: Platform | None = None) -> int:
    from .gimp import default_daemon_command

    parser = argparse.ArgumentParser(prog="impasto service", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["install", "remove", "status"])
    parser.add_argument("--endpoint", help="where the daemon listens (default: the recorded one, else the usual "
                        "private socket)")
    parser.add_argument("--daemon-command", help="the command that runs the daemon (default: the one installed "
                        "beside this Python)")
    args = parser.parse_args(argv)
    platform = platform or Platform()

    def say(text: str) -> None:
        print(f"impasto-service: {text}", flush=True)

    if args.action == "status":
        plan, _ = plan_for(platform, ["impasto-daemon"], "ipc:///unused")
        return run_command(plan.status)
    if args.action == "remove":
        remove_service(platform, say)
        return 0
    command = shlex.split(args.daemon_command) if args.daemon_command else default_daemon_command(platform)
    return 0 if install_service(platform, command, args.endpoint or default_endpoint(), say) else 1
