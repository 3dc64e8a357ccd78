"""The daemon as the GIMP plug-in sees it: where it is (the installer's impasto.json), whether it
answers, and starting it where that is allowed. Needs no GIMP, so plain pytest runs it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from impasto_choices import PluginError, Region

from impasto.protocol.client import (
    Client,
    DaemonError,
    DaemonUnavailable,
    command_found,
    ensure_daemon,
    last_line,
    spawn_local_daemon,
    wait_for_daemon,
)
from impasto.protocol.endpoint import default_endpoint
from impasto.protocol.messages import JobParams, PresetInfo

# How long the plug-in waits for the daemon, by what it asks (seconds).
GLANCE_S = 0.15  # is it there? (the dialog is drawing)
FORECAST_S = 1.0  # the time a job would take, asked while the dialog is open
ANSWER_S = 2.0  # a hello before a run, and the most a running job's daemon may be silent
GALLERY_S = 10.0  # the presets with their thumbnails
SAVE_PRESET_S = 60.0  # a large layer stored as a preset
START_WAIT_S = 90.0  # a daemon it started (loading VGG19)


def load_settings(folder: str | Path) -> dict:
    """impasto.json beside the plug-in: the daemon's endpoint and the command that starts it."""
    try:
        with open(Path(folder) / "impasto.json") as f:
            settings = json.load(f)
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def endpoint_of(argument: str, settings: dict, environ: Mapping[str, str] | None = None) -> str:
    """The procedure's argument, else $IMPASTO_ENDPOINT, else the installer's, else the default."""
    variables = os.environ if environ is None else environ
    return argument or variables.get("IMPASTO_ENDPOINT") or settings.get("endpoint") or default_endpoint()


def forecast(endpoint: str, region: Region, params: JobParams, whole: tuple[int, int] | None = None) -> dict | None:
    """The daemon's estimate for this job (a selection's: `whole`, the layer's size), or None when no
    daemon answers at once."""
    try:
        with Client(endpoint, timeout=FORECAST_S) as client:
            return client.estimate(region.width, region.height, params, whole)
    except (DaemonUnavailable, DaemonError):
        return None


def daemon_command(settings: dict) -> list[str]:
    command = settings.get("daemon_command")
    return [str(part) for part in command] if isinstance(command, list) else []


def connect(endpoint: str, settings: dict, start: bool, on_wait: Callable[[], None] = lambda: None,
            on_start: Callable[[Path], None] = lambda log: None, starting: Daemon | None = None) -> None:
    """Make sure a daemon answers at `endpoint`, starting the configured one where allowed (or
    waiting for the one the dialog started, `starting`).

    Raises PluginError with what the user can do about it.
    """
    if starting is not None and starting.waiting():
        try:
            wait_for_daemon(endpoint, START_WAIT_S, still_starting=starting.waiting, on_wait=on_wait)
            return
        except DaemonUnavailable:
            raise PluginError(f"The Impasto daemon could not be started: {starting.state_text()}") from None
    command = daemon_command(settings)
    if settings.get("service") is True:  # the system starts it (socket activation: this first call)
        try:
            wait_for_daemon(endpoint, START_WAIT_S, on_wait=on_wait)
            return
        except DaemonUnavailable:
            raise PluginError(not_running_text(endpoint, command, start, hint_of(settings))) from None
    if start and command_found(command):
        try:
            ensure_daemon(endpoint, command, START_WAIT_S, on_wait=on_wait, on_start=on_start)
        except DaemonUnavailable as exc:
            raise PluginError(f"The Impasto daemon could not be started: {exc}") from None
        return
    try:
        with Client(endpoint, timeout=ANSWER_S) as client:
            client.hello()
        return
    except DaemonUnavailable:
        pass
    raise PluginError(not_running_text(endpoint, command, start, hint_of(settings)))


def hint_of(settings: dict) -> str:
    """How the user starts the daemon where the plug-in cannot (a sandbox, a user service)."""
    hint = settings.get("start_hint")
    return hint if isinstance(hint, str) else ""


def not_running_text(endpoint: str, command: list[str], start: bool, hint: str = "") -> str:
    """What to do when no daemon answers: the installer's hint where the plug-in cannot start it,
    else the configured command (with its endpoint), or the installer."""
    if hint:
        return f"The Impasto daemon is not running at {endpoint}. To start it: {hint}."
    if start:
        return (f"The Impasto daemon is not running at {endpoint}, and it cannot be started from here "
                f"({command[0] if command else 'no daemon command configured'} not found). Run Impasto's "
                "installer again.")
    how = f"`{shlex.join([*command, '--endpoint', endpoint])}`" if command else "Impasto's installer"
    return (f"The Impasto daemon is not running at {endpoint}. Start it with {how}, or turn on "
            "'Start the daemon if missing' (under Advanced).")


class Daemon:
    """The daemon as the dialog sees it: its presets once it answers. Where allowed, a daemon
    that is not running is started in the background when the dialog opens, so the gallery
    fills while the user chooses (loading VGG19 takes a few seconds)."""

    def __init__(self, endpoint: str, settings: dict, may_start: bool) -> None:
        self.endpoint = endpoint
        self.command = daemon_command(settings)
        self.hint = hint_of(settings)
        self.service = settings.get("service") is True  # the first hello has the system start it
        self.process: subprocess.Popen | None = None
        self.log: Path | None = None
        self.problem = ""
        self.started = time.monotonic()
        self.infos = self._ask()
        if self.infos is None and may_start and self.can_start:
            self._start()
        elif self.infos is None:
            self._explain(may_start)

    def start_now(self) -> None:
        """The user turned on 'Start the daemon if missing' in the open dialog: start it now."""
        if self.infos is None and self.process is None and self.can_start:
            self.started = time.monotonic()
            self._start()

    def _ask(self) -> list[PresetInfo] | None:
        try:
            with Client(self.endpoint, timeout=GLANCE_S) as client:
                client.hello()
            with Client(self.endpoint, timeout=GALLERY_S) as client:
                return client.preset_gallery()
        except (DaemonUnavailable, DaemonError):
            return None

    def _explain(self, may_start: bool) -> None:
        self.problem = not_running_text(self.endpoint, self.command, may_start, self.hint)

    def _start(self) -> None:
        if not command_found(self.command):
            self._explain(True)
            return
        try:
            self.process, self.log = spawn_local_daemon(self.command, self.endpoint)
        except (OSError, DaemonUnavailable) as exc:
            self.problem = f"The Impasto daemon could not be started: {exc}"

    @property
    def can_start(self) -> bool:
        """Whether this plug-in may start the daemon at all (not from a sandbox, nor beside a service)."""
        return bool(self.command) and not self.service

    def waiting(self) -> bool:
        """Whether a daemon this dialog started (or the service it woke) may still come up."""
        starting = self.service or (self.process is not None and self.process.poll() is None)
        return self.infos is None and starting and time.monotonic() - self.started < START_WAIT_S

    def presets(self) -> list[PresetInfo] | None:
        if self.infos is None and (self.waiting() or self.process is None):
            self.infos = self._ask()
        return self.infos

    def absent_text(self, may_start: bool) -> str:
        """The estimate line while no daemon answers, in agreement with the gallery's message."""
        if self.waiting():
            return "The estimate follows when the Impasto daemon is ready."
        if may_start and self.can_start:
            return "The Impasto daemon is not running: it starts with the first run (loading VGG19 takes seconds)."
        return "No estimate: the Impasto daemon is not running (see above)."

    def state_text(self) -> str:
        if self.infos is not None:
            return ""
        if self.waiting():
            return "Starting the Impasto daemon (loading VGG19): its presets appear here when it is ready."
        if self.process is not None and self.process.poll() is not None:
            tail = last_line(self.log) if self.log else ""
            return f"The Impasto daemon stopped at once: {tail or 'no output'} (see {self.log})."
        return self.problem or not_running_text(self.endpoint, self.command, False)
