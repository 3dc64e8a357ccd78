"""Where a job stands: the engine makes it, the daemon sends it, the CLI and the plug-in show it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import Code, ProtocolError


@dataclass
class Progress:
    """One progress report of a job."""

    scale: int  # 1-based index of the current scale
    scales: int
    width: int  # size of the image being optimised at this scale
    height: int
    iteration: int  # 1-based, counted over the whole job
    total: int
    losses: dict[str, float]  # "content", "style", "tv", "total"
    elapsed: float  # seconds since the job started
    eta: float  # seconds left, estimated from the pace so far

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_header(cls, header: dict[str, Any]) -> Progress:
        try:
            return cls(**{f.name: header[f.name] for f in fields(cls)})
        except KeyError as exc:
            raise ProtocolError(Code.BAD_MESSAGE, f"progress without {exc}") from None
