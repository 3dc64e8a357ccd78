"""The dialog's last choices, kept by the plug-in in GIMP's profile (see impasto_choices.REMEMBERED:
GIMP keeps them only for a run that succeeds, and a run cancelled midway forgot them)."""

from __future__ import annotations

import json
import os
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
import impasto_choices as choices  # noqa: E402
from gi.repository import Gimp, Gio  # noqa: E402

# Beside GIMP's own last values, and named so that removing those removes it too.
FILE_NAME = os.path.join("plug-in-settings", "plug-in-impasto-style-transfer.impasto-last.json")


def _path() -> str:
    return os.path.join(Gimp.directory(), FILE_NAME)


def _value(config: Gimp.ProcedureConfig, key: str) -> Any:
    value = config.get_property(key)
    if key == "style-file":
        return value.get_uri() if value is not None else None
    if key == "style-pattern":
        return value.get_name() if value is not None else None
    return value


def save(config: Gimp.ProcedureConfig) -> None:
    """Keep the dialog's choices (at OK); a profile that cannot be written keeps GIMP's alone."""
    values = {key: _value(config, key) for key in choices.REMEMBERED}
    try:
        os.makedirs(os.path.dirname(_path()), exist_ok=True)
        with open(_path(), "w", encoding="utf-8") as file:
            json.dump({k: v for k, v in values.items() if v is not None}, file, indent=1)
    except OSError:
        pass


def restore(config: Gimp.ProcedureConfig) -> None:
    """Set the kept choices on `config` (over GIMP's last values, which may be older)."""
    try:
        with open(_path(), encoding="utf-8") as file:
            kept = choices.remembered(json.load(file))
    except (OSError, ValueError):
        return
    for key, value in kept.items():
        if key == "style-file":
            value = Gio.File.new_for_uri(value)
        elif key == "style-pattern":
            value = Gimp.Pattern.get_by_name(value)
            if value is None:
                continue
        config.set_property(key, value)
