"""Install (or remove) Impasto's GIMP 3 plug-in: `impasto install-gimp`, or from a clone
`python3 install/gimp_plugin.py`, with the same options.

    impasto install-gimp                   # every GIMP 3 found for this user
    impasto install-gimp --service         # and the daemon as a user service (install/service.py)
    impasto install-gimp --uninstall
    impasto install-gimp --gimp-dir ~/.config/GIMP/3.0 --endpoint ipc:///run/user/1000/impasto/daemon.sock

What it does, and says it did:
1. finds GIMP 3's profile folders (install/platforms.py: native and Flatpak on Linux, and where
   macOS and Windows keep them);
2. copies the plug-in to <profile>/plug-ins/impasto_gimp/impasto_gimp.py (executable, named like
   its folder, as GIMP requires) with its other modules and `impasto/protocol` beside it, and
   removes an earlier Impasto's plug-ins/impasto folder;
3. finds GIMP's own Python (install/gimp_python.py), writes its path into the plug-in's first
   line, and where it lacks pyzmq or msgpack installs wheels for its version, ABI and platform
   into the plug-in's own folder (vendor/), and fails loudly if they still do not import;
4. writes impasto.json beside the plug-in: the daemon's endpoint, the command that starts it,
   and how to start it where the plug-in cannot. A Flatpak GIMP's sandbox cannot start a program
   of the host nor reach $XDG_RUNTIME_DIR: its endpoint is a private folder in the shared /tmp,
   and the daemon is started on the host (best: --service).
Standard library only, so any python3 can run it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from impasto.protocol.endpoint import default_endpoint, is_loopback_tcp, sandbox_endpoint

from . import service
from .files import remove_ours, write_file
from .gimp_python import find_gimp_python, has_messaging, vendor_wheels
from .platforms import Platform

Say = Callable[[str], None]  # where the installer reports what it does

# The folder holding plugin/ and protocol/: the clone's root, or the installed `impasto` package.
ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "impasto_gimp"
OLD_PLUGIN_NAME = "impasto"  # where Impasto 0.1 installed itself, removed on install
PLUGIN_PARTS = ("impasto_dialog.py", "impasto_run.py", "impasto_pixels.py", "impasto_choices.py", "impasto_daemon.py",
                "impasto_last.py", "impasto_help.py", "impasto_preview.py", "impasto_jobs.py",
                "impasto-help.html")


def gimp_profiles(platform: Platform) -> list[Path]:
    """GIMP 3 profile folders that exist for this user, native and Flatpak."""
    found = []
    for base in platform.profile_bases():
        if base.is_dir():
            found += sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("3."))
    return found


def installed_gimp_version() -> str:
    """The newest GIMP 3 on PATH ("3.2" or "3.0"), which names its profile folder; 3.0 if none is."""
    for version in ("3.2", "3.0"):
        if shutil.which(f"gimp-{version}") or shutil.which(f"gimp-console-{version}"):
            return version
    return "3.0"


def default_daemon_command(platform: Platform) -> list[str]:
    """The daemon installed beside the Python running this (pipx, a venv), else the clone's .venv's.
    On Windows through pythonw, which opens no console window."""
    here = Path(sys.executable).parent
    if platform.windows and (here / "pythonw.exe").exists():
        return [str(here / "pythonw.exe"), "-m", "impasto.daemon.launch"]
    beside = here / platform.daemon_script()
    return [str(beside if beside.exists() else ROOT / ".venv" / "bin" / "impasto-daemon")]


def plugin_settings(args: argparse.Namespace, flatpak: bool) -> dict:
    """impasto.json: where the daemon is, and how it starts. Inside a sandbox the plug-in cannot
    start it, so it is told how the user can instead."""
    hint = args.how_to_start or (
        f"on the host, run `impasto service install --endpoint {args.endpoint}` once (or `impasto-daemon "
        f"--endpoint {args.endpoint}` each time)" if flatpak else "")
    return {"endpoint": args.endpoint, "daemon_command": [] if flatpak or args.how_to_start else args.daemon_command,
            "service": bool(args.how_to_start), "start_hint": hint}


def plugin_folder(profile: Path) -> Path:
    """The plug-in's folder in `profile`; OSError when something else (a link, a file) is in its place."""
    folder = profile / "plug-ins" / PLUGIN_NAME
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise OSError(f"{folder} is a link or a file, not Impasto's folder: move it away and run this again")
    return folder


def install(profile: Path, args: argparse.Namespace, platform: Platform, say: Say) -> bool:
    try:
        folder = plugin_folder(profile)
        if (profile / "plug-ins" / OLD_PLUGIN_NAME).exists():
            uninstall(profile, say, OLD_PLUGIN_NAME)  # GIMP would load both
        folder.mkdir(parents=True, exist_ok=True)
        settings = plugin_settings(args, platform.is_flatpak(profile))
        copy_plugin(folder, settings)
    except OSError as exc:
        say(f"could not install into {profile}: {exc.strerror if exc.filename else exc}"
            + (f" ({exc.filename})" if exc.filename else ""))
        return False
    script = folder / f"{PLUGIN_NAME}.py"
    say(f"installed the plug-in in {folder}")
    say(f"  daemon endpoint: {args.endpoint}")
    say(f"  daemon command:  {shlex.join(settings['daemon_command']) or 'none: ' + settings['start_hint']}")

    python = find_gimp_python(args.gimp_python, platform, profile, say)
    if python is None:
        return False
    say(f"  GIMP's Python: {python.executable or shlex.join(python.command)} (Python {python.version}, {python.why})")
    if python.executable:  # the plug-in runs with exactly that Python, whatever PATH GIMP was started with
        text = script.read_text()
        script.write_text(f"#!{python.executable}\n" + text.split("\n", 1)[1])
    vendor = folder / "vendor"
    if vendor.is_symlink():
        vendor.unlink()  # pip would install through it
    if has_messaging(python.command):
        remove_ours(vendor)
        say("  GIMP's Python has pyzmq and msgpack")
        return True
    say(f"  GIMP's Python lacks pyzmq or msgpack; installing {python.tag} wheels into {vendor}")
    complaint = vendor_wheels(python, vendor)
    if has_messaging(python.command, vendor):
        say(f"  installed pyzmq and msgpack for GIMP's Python {python.version}")
        return True
    say("  COULD NOT make pyzmq and msgpack importable by GIMP's Python: install them with your system's "
        "packages (Debian/Ubuntu: apt install python3-zmq python3-msgpack) and run this again"
        + (f"\n  pip said: {complaint.splitlines()[-1]}" if complaint else ""))
    return False


def copy_plugin(folder: Path, settings: dict) -> None:
    """The plug-in's files, the `protocol` package and impasto.json into `folder`."""
    write_file(folder / f"{PLUGIN_NAME}.py", (ROOT / "plugin" / f"{PLUGIN_NAME}.py").read_bytes(), 0o755)
    for part in PLUGIN_PARTS:  # its dialog, its run, its GIMP-free logic and its help page
        write_file(folder / part, (ROOT / "plugin" / part).read_bytes())
    package = folder / "impasto"
    remove_ours(package)
    package.mkdir()
    write_file(package / "__init__.py", b'"""The part of Impasto the plug-in needs: its protocol."""\n')
    shutil.copytree(ROOT / "protocol", package / "protocol", ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    write_file(folder / "impasto.json", (json.dumps(settings, indent=2) + "\n").encode())


def uninstall(profile: Path, say: Say, name: str = PLUGIN_NAME) -> None:
    """Remove what the installer puts in the plug-in's folder, and the folder once nothing else is
    left; a link in its place goes as a link, never what it points to."""
    folder = profile / "plug-ins" / name
    if folder.is_symlink():
        folder.unlink()
        say(f"removed the link {folder} (not what it pointed to)")
        return
    if not folder.is_dir():
        say(f"nothing to remove in {profile}")
        return
    package = "impasto" if name == PLUGIN_NAME else "protocol"  # where each version put the protocol
    for part in (f"{name}.py", *PLUGIN_PARTS, "impasto.json", package, "vendor", "__pycache__"):
        remove_ours(folder / part)
    others = sorted(path.name for path in folder.iterdir())
    if others:
        say(f"removed Impasto from {folder}; left what it did not install there: {', '.join(others)}")
    else:
        folder.rmdir()
        say(f"removed {folder}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="impasto install-gimp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gimp-dir", type=Path, action="append",
                        help="a GIMP 3 profile folder to install into (repeatable; default: every one found)")
    parser.add_argument("--home", type=Path, default=Path.home(), help="whose profiles to look for")
    parser.add_argument("--endpoint", default=None, help="the daemon's endpoint (default: the private ipc socket; "
                        "for a Flatpak GIMP, a private folder in /tmp; on Windows, loopback tcp with keys)")
    parser.add_argument("--daemon-command", default=None,
                        help="command that starts the daemon (default: the impasto-daemon beside this Python)")
    parser.add_argument("--gimp-python", default="",
                        help="the Python GIMP runs plug-ins with, as a command (default: found, see above)")
    parser.add_argument("--service", action="store_true",
                        help="also set up the daemon as a user service, started by the system (see `impasto service`)")
    parser.add_argument("--uninstall", action="store_true", help="remove the plug-in (and the service, with --service)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, platform: Platform | None = None) -> int:
    args = parse_args(argv)
    platform = platform or Platform(home=args.home)

    def say(text: str) -> None:
        print(f"impasto-install: {text}", flush=True)

    profiles = args.gimp_dir or gimp_profiles(platform)
    if args.uninstall:
        for profile in profiles:
            uninstall(profile, say)
        if args.service:
            service.remove_service(platform, say)
        return 0
    if not profiles:
        version = installed_gimp_version()
        profiles = [platform.profile_bases()[0] / version]
        say(f"no GIMP 3 profile found; creating {profiles[0]} (GIMP {version} reads it on its next start)")
    # One daemon serves every profile: where a Flatpak GIMP is among them, at an endpoint its sandbox reaches.
    flatpak = any(platform.is_flatpak(profile) for profile in profiles)
    args.endpoint = args.endpoint or (sandbox_endpoint() if flatpak else default_endpoint())
    args.daemon_command = shlex.split(args.daemon_command) if args.daemon_command else \
        default_daemon_command(platform)
    if not Path(args.daemon_command[0]).exists() and not shutil.which(args.daemon_command[0]):
        say(f"note: {args.daemon_command[0]} does not exist yet (run `make demo` or install/setup-venv.sh); "
            "the plug-in will say so when it tries to start the daemon")
    args.how_to_start = ""
    if is_loopback_tcp(args.endpoint) and not args.service:  # Windows: no ipc there
        say("note: a daemon on loopback tcp needs keys, and no client ever starts one: setting it up as a service")
        args.service = True
    if args.service:
        how = service.install_service(platform, args.daemon_command, args.endpoint, say)
        if how is None:
            return 1
        args.how_to_start = f"it is the system's job: {how}"
    elif flatpak:
        say(f"note: a Flatpak GIMP cannot start the daemon itself; add --service, or start it on the host with "
            f"`impasto-daemon --endpoint {args.endpoint}`")
    ok = all([install(profile, args, platform, say) for profile in profiles])
    say("done: restart GIMP, then find Filters > Artistic > Impasto Style Transfer..." if ok else
        "done, with the problems above")
    return 0 if ok else 1
