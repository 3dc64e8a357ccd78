"""Presets on the wire: the one rule for their names, an upload, and a gallery's entries.

The daemon stores presets under these names, the CLI and the plug-in check a new name before
they send it; like the rest of `protocol/`, this needs only msgpack's types (no numpy, no torch).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .errors import ProtocolError
from .images import Image, image_from

MAX_NAME_LENGTH = 64
# Lowercase letters, digits, '-' and '_', starting with a letter or a digit: a name is also a folder's.
NAME_PATTERN = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{MAX_NAME_LENGTH - 1}}}")
NAME_RULE = (f"1 to {MAX_NAME_LENGTH} lowercase letters, digits, '-' or '_', starting with a letter or a digit")
MAX_DESCRIPTION_LENGTH = 200


def is_preset_name(name: object) -> bool:
    # fullmatch: with match, "$" also matched before a final newline, and "swirls\n" was a second "swirls".
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


def plain(text: str) -> bool:
    """Printable, with no format characters: no NUL, no escape, no right-to-left override (U+202E)
    that would turn a terminal's line around."""
    return all(char.isprintable() and unicodedata.category(char) != "Cf" for char in text)


def description_from(source: str) -> str:
    """A preset's description when the user gives none: where it came from, made acceptable
    (printable, short) whatever the file or image is called."""
    text = "".join(char if plain(char) else " " for char in source)
    text = f"From {' '.join(text.split())}"
    return text if len(text) <= MAX_DESCRIPTION_LENGTH else text[:MAX_DESCRIPTION_LENGTH - 1] + "…"


@dataclass
class PresetUpload:
    name: str
    image: Image | None = None
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # recommended, already validated


@dataclass(frozen=True)
class PresetInfo:
    """One entry of a `presets` reply: what a gallery shows."""

    name: str
    description: str
    source: str  # "built-in" or "user"
    params: dict[str, Any]
    thumbnail: Image | None  # at most 64 px a side


def preset_infos(header: dict[str, Any], frames: list) -> list[PresetInfo]:
    """The presets a `presets` reply lists, with their thumbnails (None where one is unreadable)."""
    infos = []
    for entry in header.get("presets", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        try:
            thumbnail = image_from(entry.get("thumbnail"), frames, "thumbnail", 256 * 256)
        except ProtocolError:
            thumbnail = None
        params = entry.get("params")
        infos.append(PresetInfo(entry["name"], str(entry.get("description", "")), str(entry.get("source", "")),
                                params if isinstance(params, dict) else {}, thumbnail))
    return infos
