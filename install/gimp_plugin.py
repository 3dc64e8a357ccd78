#!/usr/bin/env python3
"""Install (or remove) Impasto's GIMP 3 plug-in.

    python3 install/gimp_plugin.py                  # every GIMP 3 found for this user
    python3 install/gimp_plugin.py --uninstall
    python3 install/gimp_plugin.py --gimp-dir ~/.config/GIMP/3.0 --endpoint ipc:///run/user/1000/impasto/daemon.sock

What it does, and says it did:
1. finds GIMP 3's profile folders: ~/.config/GIMP/3.x (native) and
   ~/.var/app/org.gimp.GIMP/config/GIMP/3.x (Flatpak);
2. copies the plug-in to <profile>/plug-ins/impasto/impasto.py (executable, named like its
   folder, as GIMP requires) with its logic (impasto_job.py) and the `protocol` package beside it;
3. checks that GIMP's Python can import pyzmq and msgpack; where it cannot, installs them for
   that Python into the plug-in's own folder (vendor/) with pip;
4. writes impasto.json beside the plug-in: the daemon's endpoint and the command that starts it;
5. optionally (--systemd) writes a systemd user unit that keeps the daemon running.
Standard library only, so any python3 can run it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "impasto"
SYSTEMD_UNIT = "impasto-daemon.service"


def gimp_profiles(home: Path) -> list[Path]:
    """GIMP 3 profile folders that exist for this user, native and Flatpak."""
    found = []
    for base in (home / ".config" / "GIMP", home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP"):
        if base.is_dir():
            found += sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("3."))
    return found


def default_endpoint() -> str:
    sys.path.insert(0, str(ROOT))
    from protocol.endpoint import default_endpoint as endpoint

    return endpoint()


def python_can_import(python: list[str], modules: str, extra_path: Path | None = None) -> bool:
    code = "import sys\n" + (f"sys.path.insert(0, {str(extra_path)!r})\n" if extra_path else "") + f"import {modules}"
    try:
        return subprocess.run([*python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def install(profile: Path, args: argparse.Namespace, say) -> bool:
    folder = profile / "plug-ins" / PLUGIN_NAME
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"{PLUGIN_NAME}.py"
    shutil.copyfile(ROOT / "plugin" / "impasto.py", script)
    script.chmod(0o755)
    shutil.copyfile(ROOT / "plugin" / "impasto_job.py", folder / "impasto_job.py")  # its GIMP-free logic
    shutil.rmtree(folder / "protocol", ignore_errors=True)
    shutil.copytree(ROOT / "protocol", folder / "protocol", ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    config = {"endpoint": args.endpoint, "daemon_command": args.daemon_command}
    (folder / "impasto.json").write_text(json.dumps(config, indent=2) + "\n")
    say(f"installed the plug-in in {folder}")
    say(f"  daemon endpoint: {args.endpoint}")
    say(f"  daemon command:  {shlex.join(args.daemon_command)}")

    python = shlex.split(args.gimp_python)
    if python_can_import(python, "zmq, msgpack"):
        say(f"  GIMP's Python ({args.gimp_python}) has pyzmq and msgpack")
        return True
    vendor = folder / "vendor"
    say(f"  GIMP's Python ({args.gimp_python}) lacks pyzmq or msgpack; installing them into {vendor}")
    result = subprocess.run([*python, "-m", "pip", "install", "--quiet", "--target", str(vendor), "pyzmq", "msgpack"],
                            capture_output=True, text=True)
    if result.returncode == 0 and python_can_import(python, "zmq, msgpack", vendor):
        say("  installed pyzmq and msgpack for GIMP's Python")
        return True
    say("  COULD NOT make pyzmq and msgpack importable by GIMP's Python: install them with your system's "
        "packages (Debian/Ubuntu: apt install python3-zmq python3-msgpack) and run this again"
        + (f"\n  pip said: {result.stderr.strip().splitlines()[-1]}" if result.stderr.strip() else ""))
    return False


def uninstall(profile: Path, say) -> None:
    folder = profile / "plug-ins" / PLUGIN_NAME
    if folder.is_dir():
        shutil.rmtree(folder)
        say(f"removed {folder}")
    else:
        say(f"nothing to remove in {profile}")


def write_systemd_unit(args: argparse.Namespace, say) -> None:
    units = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "systemd" / "user"
    units.mkdir(parents=True, exist_ok=True)
    (units / SYSTEMD_UNIT).write_text(
        "[Unit]\nDescription=Impasto style-transfer daemon\n\n"
        f"[Service]\nExecStart={shlex.join([*args.daemon_command, '--endpoint', args.endpoint])}\n"
        "Restart=on-failure\n\n[Install]\nWantedBy=default.target\n")
    say(f"wrote {units / SYSTEMD_UNIT}; enable it with: systemctl --user enable --now {SYSTEMD_UNIT}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gimp-dir", type=Path, action="append",
                        help="a GIMP 3 profile folder to install into (repeatable; default: every one found)")
    parser.add_argument("--home", type=Path, default=Path.home(), help="whose profiles to look for")
    parser.add_argument("--endpoint", default=None, help="the daemon's endpoint (default: the private ipc socket)")
    parser.add_argument("--daemon-command", default=None,
                        help="command that starts the daemon (default: this checkout's .venv/bin/impasto-daemon)")
    parser.add_argument("--gimp-python", default="python3",
                        help="the Python GIMP runs plug-ins with, as a command (default: python3)")
    parser.add_argument("--systemd", action="store_true", help="also write a systemd user unit for the daemon")
    parser.add_argument("--uninstall", action="store_true", help="remove the plug-in")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(f"impasto-install: {text}", flush=True)

    profiles = args.gimp_dir or gimp_profiles(args.home)
    if not profiles:
        if args.uninstall:
            say("no GIMP 3 profile found; nothing to remove")
            return 0
        profiles = [args.home / ".config" / "GIMP" / "3.0"]
        say(f"no GIMP 3 profile found; creating {profiles[0]} (GIMP 3.0 reads it on its next start)")
    if args.uninstall:
        for profile in profiles:
            uninstall(profile, say)
        return 0
    args.endpoint = args.endpoint or default_endpoint()
    args.daemon_command = shlex.split(args.daemon_command) if args.daemon_command else \
        [str(ROOT / ".venv" / "bin" / "impasto-daemon")]
    if not Path(args.daemon_command[0]).exists() and not shutil.which(args.daemon_command[0]):
        say(f"note: {args.daemon_command[0]} does not exist yet (run `make demo` or install/setup-venv.sh); "
            "the plug-in will say so when it tries to start the daemon")
    ok = all([install(profile, args, say) for profile in profiles])
    if args.systemd:
        write_systemd_unit(args, say)
    say("done: restart GIMP, then find Filters > Artistic > Impasto Style Transfer..." if ok else
        "done, with the problems above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
