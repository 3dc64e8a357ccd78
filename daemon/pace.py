"""How long a job takes: its work in units of a whole VGG19 pass, the daemon's pace per unit,
and the time left while a job runs. Estimates before a job and the time left during it both
come from here. Figures behind the constants: bench/RESULTS.md (findings) and bench/time_left.py.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

import torch

from impasto.protocol.messages import JobParams, Progress

from . import tiles
from .memory import use_bf16
from .plan import Schedule

# A detail iteration's cost per pixel against a whole pass: it stops at relu3_1, but its
# full-size first layers are bound by memory, and its set-up at full size is slow; what a 4 MP
# job's scales took (bench/network_cost.py), checked on new daemons by bench/first_estimate.py.
DETAIL_COST = 0.65
# A pixel costs more in a larger picture, as its activations outgrow the caches: (megapixels)^this.
PACE_EXPONENT = 0.15
# A scale with no iterations (a Draft's top: the scale below enlarged, with the photo's detail),
# in whole passes: the 15 MP Draft's estimate fell 30% short without it (bench/first_estimate.py).
UNPAINTED_COST = 0.25
PACE_TRUST = 0.2  # share of a job's work after which its own pace alone gives the time left
PACE_FILE = "pace.json"  # in the daemon's cache folder (StyleTransfer.pace_file)
# Jobs with at least this much work an iteration on average (a picture of about 190×140) teach the
# pace per unit; smaller ones, where the per-iteration overheads dominate, what an iteration costs.
LEARN_FROM_COST = 20_000


def pass_cost(width: int, height: int) -> float:
    """One whole VGG19 pass's work at a size, a pixel costing more in a larger picture (PACE_EXPONENT)."""
    return width * height * (width * height / 1e6) ** PACE_EXPONENT


def costs(schedule: Schedule) -> list[float]:
    """Each scale's work: its iterations' passes, cheaper at a detail scale (DETAIL_COST)."""
    return [pass_cost(w, h) * n * (DETAIL_COST if index >= schedule.first_detail else 1.0)
            for index, ((w, h), n) in enumerate(zip(schedule.sizes, schedule.steps, strict=True))]


def tiled_cost(schedule: Schedule, max_crop_pixels: int, measuring_pass: bool) -> float:
    """`costs()` with what tiles add: the margins every crop sees again, and for the Gram loss
    the forward pass that measures the picture's Gram first (a third more)."""
    total = 0.0
    for (w, h), cost in zip(schedule.sizes, costs(schedule), strict=True):
        counts = tiles.counts_for(w, h, max_crop_pixels) or (1, 1)
        if counts != (1, 1):
            seen = sum(tile.crop.pixels for tile in tiles.grid(w, h, counts)) / (w * h)
            cost *= seen * (4 / 3 if measuring_pass else 1.0)
        total += cost
    return total


def setup_cost(schedule: Schedule) -> float:
    """The work each scale does before its first iteration: the photo's and the painting's
    forward passes for the targets, each a third of a forward+backward. A scale with none (a
    Draft's top) still builds its picture at its size, and the job's result is that large."""
    return sum(2 / 3 * cost / steps if steps else UNPAINTED_COST * pass_cost(*size)
               for size, cost, steps in zip(schedule.sizes, costs(schedule), schedule.steps, strict=True))


def blended_pace(prior: float | None, seconds: float, work: float, total: float, so_far: float) -> float:
    """Seconds per unit for the time left: the job's own pace since its first iteration
    (`seconds` for `work`), trusted more as it covers more of the job (fully from PACE_TRUST of
    it), and until then the daemon's measured pace (`prior`); counting its set-up would make the
    first figures far too long. `so_far`, the pace with the set-up, serves when there is nothing else."""
    if work <= 0:
        return prior or so_far
    own = seconds / work
    if prior is None:
        return own
    trust = min(1.0, work / (PACE_TRUST * total))
    return trust * own + (1 - trust) * prior


def identity(device: torch.device) -> str:
    """What a measured pace holds for: this machine, this device (and its threads), this torch."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    return f"{platform.node()}/{platform.machine()}/{device.type} {name}/torch {torch.__version__}"


def regime(params: JobParams, device: torch.device) -> str:
    """What sets a pixel's cost besides its size: the precision it runs in and the style loss."""
    return f"{'bf16' if use_bf16(params.precision, device) else 'fp32'}/{params.style_loss}"


class Pace:
    """The daemon's pace on its device: seconds per unit of work for each regime (measured at
    warm-up and on every job large enough to tell), and seconds per iteration whatever its size
    (the optimiser, VGG19's layers one by one, the checks between them), measured at warm-up."""

    def __init__(self) -> None:
        self.per_unit: dict[str, float] = {}
        self.per_iteration = 0.0

    def seconds_per_unit(self, key: str) -> float | None:
        """The regime's pace. Until it is measured: its loss's pace in another precision, scaled as
        the two precisions compare on a loss measured in both; else the mean of the others'."""
        if key in self.per_unit:
            return self.per_unit[key]
        precision, loss = key.split("/")
        for known in self.per_unit:
            other, other_loss = known.split("/")
            same, both = f"{other}/{loss}", f"{precision}/{other_loss}"
            if other_loss != loss and same in self.per_unit and both in self.per_unit:
                return self.per_unit[same] * self.per_unit[both] / self.per_unit[known]
        return sum(self.per_unit.values()) / len(self.per_unit) if self.per_unit else None

    def learn(self, key: str, seconds: float, work: float, iterations: int) -> None:
        """Take in a finished job's `seconds` for `work` units and `iterations` after its first
        iteration (whose set-up, targets and kernel choice, would make a small job look slow): a
        small job tells what an iteration costs, a larger one what a unit does, so a figure taken
        while the machine was busy (at warm-up, say) does not stay."""
        if iterations <= 0 or work / iterations < LEARN_FROM_COST:
            per_unit = self.seconds_per_unit(key)
            if per_unit is not None and iterations > 0:
                measured = max(0.0, seconds - per_unit * work) / iterations
                self.per_iteration = (self.per_iteration + measured) / 2
            return
        measured = max(0.0, seconds - self.per_iteration * iterations) / work
        previous = self.per_unit.get(key)
        self.per_unit[key] = measured if previous is None else (previous + measured) / 2

    def save(self, path: Path, identity: str) -> None:
        """Keep the measured pace for the next daemon on this machine (best effort)."""
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial.write_text(json.dumps({"identity": identity, "per_unit": self.per_unit}))
            partial.replace(path)
        except OSError:
            partial.unlink(missing_ok=True)

    def adopt(self, path: Path, identity: str) -> bool:
        """Take in the pace an earlier daemon measured on its jobs, if it ran on this machine and
        device (`identity`): a warm-up's small jobs alone foretold a large job's time worse than one
        finished job did (bench/first_estimate.py). The seconds per iteration stay the warm-up's."""
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        per_unit = saved.get("per_unit") if isinstance(saved, dict) and saved.get("identity") == identity else None
        if not isinstance(per_unit, dict) or not all(
                isinstance(key, str) and isinstance(value, float) and math.isfinite(value) and value > 0
                for key, value in per_unit.items()):
            return False
        self.per_unit.update(per_unit)
        return True

    def estimate(self, schedule: Schedule, params: JobParams, max_crop_pixels: int, key: str) -> float:
        """Seconds a job with this schedule would take, set-up included."""
        work = tiled_cost(schedule, max_crop_pixels, params.style_loss == "gram") + setup_cost(schedule)
        return work * (self.seconds_per_unit(key) or 0.0) + sum(schedule.steps) * self.per_iteration


class Clock:
    """One job's time: where it stands after each iteration, and the time left."""

    def __init__(self, schedule: Schedule, pace: Pace, key: str, started: float) -> None:
        self.schedule = schedule
        self.pace = pace
        self.key = key  # the job's regime
        self.costs = costs(schedule)
        self.total = sum(self.costs)
        self.iterations = sum(schedule.steps)
        self.started = started  # time.monotonic() when the job began
        self.first: tuple[float, float, int] | None = None  # when, after how much work and iterations, one ended

    def spent(self, index: int, iteration: int) -> float:
        """The work done after `iteration` steps of scale `index`."""
        return sum(self.costs[:index]) + self.costs[index] * iteration / self.schedule.steps[index]

    def progress(self, index: int, iteration: int, losses: dict[str, float]) -> Progress:
        """Where the job stands after `iteration` steps of scale `index`."""
        now, spent = time.monotonic(), self.spent(index, iteration)
        done = sum(self.schedule.steps[:index]) + iteration
        if self.first is None:
            self.first = (now, spent, done)
        overhead = self.pace.per_iteration
        own = now - self.first[0] - overhead * (done - self.first[2])  # the job's seconds for its work alone
        so_far = max(0.0, now - self.started - overhead * done) / spent
        pace = blended_pace(self.pace.seconds_per_unit(self.key), max(0.0, own), spent - self.first[1], self.total,
                            so_far)
        (w, h) = self.schedule.sizes[index]
        return Progress(scale=index + 1, scales=len(self.schedule.sizes), width=w, height=h, iteration=done,
                        total=self.iterations, losses=losses, elapsed=now - self.started,
                        eta=(self.total - spent) * pace + (self.iterations - done) * overhead)

    def finished(self, max_crop_pixels: int, params: JobParams) -> None:
        """Teach the daemon's pace what this job took (from its first iteration on)."""
        if self.first is not None:
            work = tiled_cost(self.schedule, max_crop_pixels, params.style_loss == "gram")
            self.pace.learn(self.key, time.monotonic() - self.first[0], work - self.first[1],
                            self.iterations - self.first[2])
