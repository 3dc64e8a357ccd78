"""What the command line says, in the protocol's terms: style specs, and the job's settings, whose
options are made from JobParams' fields so that their defaults, ranges and help live in one place."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path

from impasto.protocol import messages as m
from impasto.protocol.client import Client

from .images import ImageError, load_image


def split_weight(spec: str) -> tuple[str, float]:
    """`NAME:WEIGHT` into its name and blend weight (1 when none is given)."""
    head, sep, tail = spec.rpartition(":")
    try:
        target, weight = (head, float(tail)) if sep else (spec, 1.0)
    except ValueError:  # a colon that is part of the name
        target, weight = spec, 1.0
    if weight <= 0:
        raise argparse.ArgumentTypeError(f"style weight must be positive in {spec!r}")
    return target, weight


def parse_style(spec: str) -> m.Style:
    """`FILE`, `FILE:WEIGHT`, `PRESET` or `PRESET:WEIGHT`; an existing file wins over a preset name."""
    target, weight = split_weight(spec)
    path = Path(target).expanduser()
    if path.is_file():
        try:
            return m.Style(weight=weight, image=load_image(path))
        except ImageError as exc:
            raise argparse.ArgumentTypeError(f"style image: {exc}") from None
    if os.sep in target or "." in Path(target).name:
        raise argparse.ArgumentTypeError(f"no such style image: {target}")
    return m.Style(weight=weight, preset=target)


def parse_preset(spec: str) -> m.Style:
    """`NAME` or `NAME:WEIGHT`: always a preset, never a file."""
    name, weight = split_weight(spec)
    return m.Style(weight=weight, preset=name)


def parse_layers(text: str) -> dict[str, float]:
    """`relu1_1:0.2,relu4_1:1` into {layer: weight}."""
    layers = {}
    for item in text.split(","):
        name, _, weight = item.strip().partition(":")
        try:
            layers[name] = float(weight) if weight else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not LAYER:WEIGHT") from None
    return layers


def add_style_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--style", action="append", type=parse_style, metavar="FILE|PRESET[:WEIGHT]",
                        help="a style image or preset name, with an optional blend weight; repeat to mix styles")
    parser.add_argument("--preset", action="append", type=parse_preset, metavar="NAME[:WEIGHT]",
                        help="a named style (see `impasto presets`), with its recommended settings unless given "
                        "here; mixes with --style")


def add_job_options(parser: argparse.ArgumentParser) -> None:
    """One option for each JobParams field, with its help, choices and default from the field."""
    defaults = m.JobParams()
    expert = parser.add_argument_group("expert settings")
    for spec in fields(m.JobParams):
        allowed, default = spec.metadata["allowed"], getattr(defaults, spec.name)
        shown = ",".join(f"{k}:{v:g}" for k, v in default.items()) if isinstance(default, dict) else default
        options: dict = {"help": f"{spec.metadata['help']} (default: {shown if shown != '' else 'none'})"}
        if isinstance(allowed, tuple):
            options["choices"] = [choice for choice in allowed if choice]
        elif allowed == "layer":
            options.update(choices=m.LAYER_NAMES, metavar="LAYER")
        elif allowed == "layers":
            options.update(type=parse_layers, metavar="LAYER:WEIGHT,...")
        else:
            options["type"] = int if spec.type == "int" else float
        group = expert if spec.metadata["expert"] else parser
        group.add_argument("--" + spec.name.replace("_", "-"), **options)


def params_from(args: argparse.Namespace, recommended: dict | None = None) -> m.JobParams:
    """The job's settings: those given on the command line, over a preset's `recommended` ones."""
    given = {name: getattr(args, name) for name in m.JobParams().to_wire() if getattr(args, name, None) is not None}
    return m.JobParams.from_wire({**(recommended or {}), **given})


def styles_of(args: argparse.Namespace) -> list[m.Style] | None:
    """The styles given (--style and --preset, in that order); None, said, when there are none."""
    styles = [*(args.style or []), *(args.preset or [])]
    if not styles:
        print("impasto: give a style: --style FILE|PRESET or --preset NAME", file=sys.stderr)
        return None
    return styles


def recommended_params(client: Client, presets: list[m.Style] | None) -> dict | None:
    """The presets' recommended settings (the command line's own win over them); None, said, for an
    unknown preset."""
    recommended: dict = {}
    listing = {entry["name"]: entry for entry in client.presets()} if presets else {}
    for style in presets or []:
        entry = listing.get(style.preset)
        if entry is None:
            print(f"impasto: no preset named {style.preset!r} (see `impasto presets`)", file=sys.stderr)
            return None
        params = entry.get("params")
        recommended.update(params if isinstance(params, dict) else {})
    return recommended
