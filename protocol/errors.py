"""The error codes a daemon answers with, and the exception that carries one (no torch, no sockets)."""

from __future__ import annotations

from typing import Any, TypeGuard


class Code:
    """Stable error codes: clients may branch on these, so never rename one."""

    BAD_MESSAGE = "bad_message"  # not msgpack, not a map, frames missing
    BAD_VERSION = "bad_version"  # another protocol or version
    BAD_REQUEST = "bad_request"  # unknown type or a field of the wrong type or range
    BAD_IMAGE = "bad_image"  # size, channels, stride or byte count do not add up
    TOO_LARGE = "too_large"  # over a pixel limit
    UNKNOWN_PRESET = "unknown_preset"
    UNKNOWN_JOB = "unknown_job"
    DUPLICATE_JOB = "duplicate_job"
    BUSY = "busy"  # the queue is full
    CLIENT_GONE = "client_gone"  # the client stopped sending heartbeats
    SHUTTING_DOWN = "shutting_down"
    OUT_OF_MEMORY = "out_of_memory"
    UNAVAILABLE = "unavailable"  # the daemon lacks an optional part the job needs (OpenCV for animation frames)
    STORAGE = "storage"  # the daemon could not write its files (a full or read-only disk)
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A message that breaks the protocol; becomes an `error` reply with this code."""

    def __init__(self, code: str, message: str, job: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.job = job


def shown(value: Any, limit: int = 60) -> str:
    """`value` as an error message quotes it: its repr, cut to `limit` characters. A client's
    200 KB string was otherwise logged, and sent back, whole on every request."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
