#!/usr/bin/env python3
"""Install (or remove) Impasto's GIMP 3 plug-in.

    python3 install/gimp_plugin.py                  # every GIMP 3 found for this user
    python3 install/gimp_plugin.py --uninstall
    python3 install/gimp_plugin.py --gimp-dir ~/.config/GIMP/3.0 --endpoint ipc:///run/user/1000/impasto/daemon.sock

What it does, and says it did:
1. finds GIMP 3's profile folders: ~/.config/GIMP/3.x (native) and
   ~/.var/app/org.gimp.GIMP/config/GIMP/3.x (Flatpak);
2. copies the plug-in to <profile>/plug-ins/impasto_gimp/impasto_gimp.py (executable, named like
   its folder, as GIMP requires) with its other modules and `impasto/protocol` beside it, and
   removes an earlier Impasto's plug-ins/impasto folder;
3. finds GIMP's own Python: the one its interpreters/*.interp files name, else the first of
   /usr/bin/python3 and `python3` on PATH that can load GIMP 3's bindings (a python3 first on
   PATH, pyenv's say, is often not GIMP's), or the Flatpak's own; writes its path into the
   plug-in's first line; checks that it can import pyzmq and msgpack, and where it cannot,
   installs wheels for its version and ABI into the plug-in's own folder (vendor/), then checks
   again, and fails loudly if they still do not import;
4. writes impasto.json beside the plug-in: the daemon's endpoint and the command that starts it;
5. optionally (--systemd) writes a systemd user unit that keeps the daemon running.
Standard library only, so any python3 can run it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Say = Callable[[str], None]  # where the installer reports what it does

# The folder holding plugin/ and protocol/: the clone's root, or the installed `impasto` package.
ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "impasto_gimp"
OLD_PLUGIN_NAME = "impasto"  # where Impasto 0.1 installed itself, removed on install
SYSTEMD_UNIT = "impasto-daemon.service"
FLATPAK_PYTHON = ["flatpak", "run", "--command=python3", "org.gimp.GIMP"]
# Where GIMP 3 installs look for interpreter files (native packages and builds from source).
INTERPRETER_FILES = ("/usr/lib/*/gimp/3.0/interpreters/*.interp", "/usr/lib/gimp/3.0/interpreters/*.interp",
                     "/usr/local/lib/*/gimp/3.0/interpreters/*.interp", "/usr/local/lib/gimp/3.0/interpreters/*.interp")
# What a GIMP plug-in's Python must do: load GIMP 3's bindings through PyGObject.
LOADS_GIMP = "import gi; gi.require_version('Gimp', '3.0')"
PLUGIN_PARTS = ("impasto_dialog.py", "impasto_run.py", "impasto_pixels.py", "impasto_choices.py", "impasto_daemon.py",
                "impasto-help.html")


def gimp_profiles(home: Path) -> list[Path]:
    """GIMP 3 profile folders that exist for this user, native and Flatpak."""
    found = []
    for base in (home / ".config" / "GIMP", home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP"):
        if base.is_dir():
            found += sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("3."))
    return found


def installed_gimp_version() -> str:
    """The newest GIMP 3 on PATH ("3.2" or "3.0"), which names its profile folder; 3.0 if none is."""
    for version in ("3.2", "3.0"):
        if shutil.which(f"gimp-{version}") or shutil.which(f"gimp-console-{version}"):
            return version
    return "3.0"


def default_endpoint() -> str:
    if not __package__:  # run as a script from a clone: its root holds the `impasto` package
        sys.path.insert(0, str(ROOT))
    from impasto.protocol.endpoint import default_endpoint as endpoint

    return endpoint()


def default_daemon_command() -> list[str]:
    """The daemon installed beside the Python running this (pipx, a venv), else the clone's .venv's."""
    beside = Path(sys.executable).parent / ("impasto-daemon.exe" if os.name == "nt" else "impasto-daemon")
    return [str(beside if beside.exists() else ROOT / ".venv" / "bin" / "impasto-daemon")]


def python_can_import(python: list[str], modules: str, extra_path: Path | None = None) -> bool:
    code = "import sys\n" + (f"sys.path.insert(0, {str(extra_path)!r})\n" if extra_path else "") + f"import {modules}"
    return run_python(python, code) is not None


def run_python(python: list[str], code: str) -> str | None:
    """What `code` prints when `python` runs it, or None when it fails."""
    try:
        done = subprocess.run([*python, "-c", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@dataclass
class GimpPython:
    command: list[str]
    why: str  # how it was found, for the report
    executable: str = ""  # its own path, for the plug-in's first line ("" for the Flatpak's)
    version: str = ""  # e.g. "3.13"
    tag: str = ""  # e.g. "cp313", its ABI
    platform: str = ""  # e.g. "linux-x86_64"


def interpreter_files_python(patterns: tuple[str, ...] = INTERPRETER_FILES) -> tuple[list[str], str] | None:
    """The python3 that GIMP's interpreters/*.interp files name (`python3=/usr/bin/python3`)."""
    for path in sorted(p for pattern in patterns for p in glob.glob(pattern)):
        try:
            lines = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, program = line.strip().partition("=")
            if name in ("python3", "python") and program.startswith("/"):
                return [program], f"named by {path}"
    return None


def find_gimp_python(args: argparse.Namespace, profile: Path, say: Say) -> GimpPython | None:
    """GIMP's own Python for `profile`, checked to load GIMP's bindings; None (said why) if none does."""
    if args.gimp_python:
        candidates = [(shlex.split(args.gimp_python), "given with --gimp-python")]
    elif ".var/app/org.gimp.GIMP" in str(profile):
        candidates = [(FLATPAK_PYTHON, "the GIMP Flatpak's own")]
    else:
        named = interpreter_files_python()
        on_path = shutil.which("python3")
        candidates = ([named] if named else []) + [(["/usr/bin/python3"], "the system's")] + \
            ([([on_path], "python3 on PATH")] if on_path else [])
    report = "import sys, sysconfig; print(sys.executable, '%d.%d' % sys.version_info[:2], " \
             "sys.implementation.cache_tag.replace('cpython-', 'cp'), sysconfig.get_platform())"
    for command, why in candidates:
        found = run_python(command, f"{LOADS_GIMP}; {report}")
        if found:
            executable, version, tag, platform = found.split()[-4:]
            first = shutil.which("python3")
            # A venv's python3 is a link to a base Python, so its path proves nothing: ask it.
            if first and not args.gimp_python and run_python([first], LOADS_GIMP) is None:
                its_version = run_python([first], "import sys; print('%d.%d' % sys.version_info[:2])") or "?"
                say(f"  note: python3 on PATH ({first}, Python {its_version}) is not GIMP's Python; the plug-in "
                    "names GIMP's in its first line")
            return GimpPython(command, why, executable if command != FLATPAK_PYTHON else "", version, tag, platform)
        about = run_python(command, "import sys; print(sys.executable, '%d.%d' % sys.version_info[:2])")
        say(f"  not GIMP's Python: {shlex.join(command)} ({about or 'does not run'}, {why}) cannot load GIMP 3's "
            "bindings (gi, Gimp 3.0)")
    say("  COULD NOT find GIMP's Python: none of the above loads GIMP 3's bindings. Give the Python GIMP runs "
        "plug-ins with: --gimp-python /path/to/python3")
    return None


def vendor_wheels(python: GimpPython, vendor: Path) -> str:
    """Install pyzmq and msgpack for `python` into `vendor`: with its own pip, else with this
    one's, for its version, ABI and platform. Returns pip's complaint, or ""."""
    shutil.rmtree(vendor, ignore_errors=True)
    packages = ["pyzmq", "msgpack"]
    own = subprocess.run([*python.command, "-m", "pip", "install", "--quiet", "--target", str(vendor), *packages],
                         capture_output=True, text=True)
    if own.returncode == 0:
        return ""
    arch = python.platform.split("-", 1)[-1]
    platforms = [f"manylinux_2_28_{arch}", f"manylinux2014_{arch}", f"manylinux_2_17_{arch}"] \
        if python.platform.startswith("linux") else [python.platform.replace("-", "_").replace(".", "_")]
    wanted = ["--python-version", python.version, "--implementation", "cp", "--abi", python.tag,
              "--only-binary=:all:", *(option for p in platforms for option in ("--platform", p))]
    ours = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(vendor), *wanted,
                           *packages], capture_output=True, text=True)
    return "" if ours.returncode == 0 else (ours.stderr or own.stderr).strip()


def write_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """`path` as a new file of ours: a link or file already there is replaced, never written through."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    with open(descriptor, "wb") as file:
        file.write(data)
    path.chmod(mode)  # whatever the umask


def remove_ours(path: Path) -> None:
    """Remove one thing the installer made: a link only as a link, a folder whole."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def plugin_folder(profile: Path) -> Path:
    """The plug-in's folder in `profile`; OSError when something else (a link, a file) is in its place."""
    folder = profile / "plug-ins" / PLUGIN_NAME
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise OSError(f"{folder} is a link or a file, not Impasto's folder: move it away and run this again")
    return folder


def install(profile: Path, args: argparse.Namespace, say: Say) -> bool:
    try:
        folder = plugin_folder(profile)
        if (profile / "plug-ins" / OLD_PLUGIN_NAME).exists():
            uninstall(profile, say, OLD_PLUGIN_NAME)  # GIMP would load both
        folder.mkdir(parents=True, exist_ok=True)
        copy_plugin(folder, args)
    except OSError as exc:
        say(f"could not install into {profile}: {exc.strerror if exc.filename else exc}"
            + (f" ({exc.filename})" if exc.filename else ""))
        return False
    script = folder / f"{PLUGIN_NAME}.py"
    say(f"installed the plug-in in {folder}")
    say(f"  daemon endpoint: {args.endpoint}")
    say(f"  daemon command:  {shlex.join(args.daemon_command)}")

    python = find_gimp_python(args, profile, say)
    if python is None:
        return False
    say(f"  GIMP's Python: {python.executable or shlex.join(python.command)} (Python {python.version}, {python.why})")
    if python.executable:  # the plug-in runs with exactly that Python, whatever PATH GIMP was started with
        text = script.read_text()
        script.write_text(f"#!{python.executable}\n" + text.split("\n", 1)[1])
    vendor = folder / "vendor"
    if vendor.is_symlink():
        vendor.unlink()  # pip would install through it
    if python_can_import(python.command, "zmq, msgpack"):
        remove_ours(vendor)
        say("  GIMP's Python has pyzmq and msgpack")
        return True
    say(f"  GIMP's Python lacks pyzmq or msgpack; installing {python.tag} wheels into {vendor}")
    complaint = vendor_wheels(python, vendor)
    if python_can_import(python.command, "zmq, msgpack", vendor):
        say(f"  installed pyzmq and msgpack for GIMP's Python {python.version}")
        return True
    say("  COULD NOT make pyzmq and msgpack importable by GIMP's Python: install them with your system's "
        "packages (Debian/Ubuntu: apt install python3-zmq python3-msgpack) and run this again"
        + (f"\n  pip said: {complaint.splitlines()[-1]}" if complaint else ""))
    return False


def copy_plugin(folder: Path, args: argparse.Namespace) -> None:
    """The plug-in's files, the `protocol` package and impasto.json into `folder`."""
    write_file(folder / f"{PLUGIN_NAME}.py", (ROOT / "plugin" / f"{PLUGIN_NAME}.py").read_bytes(), 0o755)
    for part in PLUGIN_PARTS:  # its dialog, its run, its GIMP-free logic and its help page
        write_file(folder / part, (ROOT / "plugin" / part).read_bytes())
    package = folder / "impasto"
    remove_ours(package)
    package.mkdir()
    write_file(package / "__init__.py", b'"""The part of Impasto the plug-in needs: its protocol."""\n')
    shutil.copytree(ROOT / "protocol", package / "protocol", ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    config = {"endpoint": args.endpoint, "daemon_command": args.daemon_command}
    write_file(folder / "impasto.json", (json.dumps(config, indent=2) + "\n").encode())


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


def systemd_escaped(command: str) -> str:
    """A command line as systemd reads ExecStart: '%' starts a specifier and '$' a variable."""
    return command.replace("%", "%%").replace("$", "$$")


def write_systemd_unit(args: argparse.Namespace, say: Say) -> None:
    units = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "systemd" / "user"
    units.mkdir(parents=True, exist_ok=True)
    (units / SYSTEMD_UNIT).write_text(
        "[Unit]\nDescription=Impasto style-transfer daemon\n\n"
        f"[Service]\nExecStart={systemd_escaped(shlex.join([*args.daemon_command, '--endpoint', args.endpoint]))}\n"
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
    parser.add_argument("--gimp-python", default="",
                        help="the Python GIMP runs plug-ins with, as a command (default: found, see above)")
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
        version = installed_gimp_version()
        profiles = [args.home / ".config" / "GIMP" / version]
        say(f"no GIMP 3 profile found; creating {profiles[0]} (GIMP {version} reads it on its next start)")
    if args.uninstall:
        for profile in profiles:
            uninstall(profile, say)
        return 0
    args.endpoint = args.endpoint or default_endpoint()
    args.daemon_command = shlex.split(args.daemon_command) if args.daemon_command else default_daemon_command()
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
