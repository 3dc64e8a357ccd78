"""Where a job stands: the engine makes it, the daemon sends it, the CLI and the plug-in show it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
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


@dataclass
class Parts:
    """Where a run over several parts (a plug-in's layers, animation frames) stands: part `index`
    of `count` is running, and the finished ones took `seconds` each."""

    count: int
    kind: str = "Layer"  # or "Frame"
    index: int = 0
    seconds: list[float] = field(default_factory=list)

    def fraction(self, progress: Progress) -> float:
        return (self.index + progress.iteration / progress.total) / self.count

    def left(self, progress: Progress, since: float = 0.0) -> float:
        """Seconds left for the whole run: this part's, then each part after it at the pace of the
        finished ones (after the first: a frame that follows another is quicker), else of this one."""
        later = self.seconds[1:] or self.seconds
        each = sum(later) / len(later) if later else progress.elapsed + progress.eta
        return max(0.0, progress.eta - since) + each * (self.count - self.index - 1)

    def done(self, seconds: float) -> None:
        self.seconds.append(seconds)
        self.index += 1
