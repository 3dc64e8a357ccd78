"""Every message Impasto's daemon and clients exchange, and their validation.

The wire format and the list of messages are specified in `protocol/README.md`; this module is
that specification in code. It needs only msgpack (and runs in GIMP's Python), so it must not
import numpy or torch.

A message is a multipart ZeroMQ message: frame 0 is a msgpack map (the header), frames 1..n
are raw pixel buffers that the header describes. Every header carries `proto` and `v`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from typing import Any

import msgpack

PROTOCOL = "impasto"
VERSION = 1

MAX_HEADER_BYTES = 256 * 1024
MAX_SIDE = 16384
MAX_PIXELS = 64 * 1024 * 1024  # one image; the daemon may set a lower limit
MAX_STYLES = 8
MAX_NAME_LENGTH = 64
MAX_JOB_ID_LENGTH = 64
MAX_MESSAGE_BYTES = 4 * MAX_PIXELS + 16 * MAX_HEADER_BYTES


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
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A message that breaks the protocol; becomes an `error` reply with this code."""

    def __init__(self, code: str, message: str, job: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.job = job


# Request and reply types.
HELLO, SUBMIT, CANCEL, PRESETS = "hello", "submit", "cancel", "presets"
HEARTBEAT, SHUTDOWN = "heartbeat", "shutdown"
PRESET_ADD, PRESET_REMOVE = "preset_add", "preset_remove"
REQUEST_TYPES = (HELLO, SUBMIT, CANCEL, PRESETS, HEARTBEAT, SHUTDOWN, PRESET_ADD, PRESET_REMOVE)
ACCEPTED, PROGRESS, PREVIEW, RESULT = "accepted", "progress", "preview", "result"
ERROR, CANCELLED = "error", "cancelled"
REPLY_TYPES = (HELLO, PRESETS, HEARTBEAT, SHUTDOWN, PRESET_ADD, PRESET_REMOVE, ACCEPTED, PROGRESS, PREVIEW, RESULT,
               ERROR, CANCELLED)
MAX_DESCRIPTION_LENGTH = 200

# A job sends at most this many previews the client has not acknowledged (heartbeat `seen`), so
# a slow client gets fewer, fresher previews instead of a growing backlog.
PREVIEWS_IN_FLIGHT = 2
# Clients with a job send a heartbeat at least this often; the daemon answers each one.
HEARTBEAT_INTERVAL_S = 0.5
# The daemon cancels a job whose client has been silent this long (a killed GIMP plug-in's job
# is stopped within 2 s); a client gives up on a daemon silent for PEER_TIMEOUT_S.
CLIENT_TIMEOUT_S = 1.75
PEER_TIMEOUT_S = 3.0

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# relu4_1 carries the style: in Gatys et al.'s own objective (eq. 5, the layers weighted 1/5 on
# unnormalised Gram errors), relu4_1 has 98% of the weight for starry_night at 384 px, because
# its activations are the largest. The lower layers keep a little for brush texture.
DEFAULT_STYLE_LAYERS = {"relu1_1": 0.01, "relu2_1": 0.05, "relu3_1": 0.05, "relu4_1": 1.0, "relu5_1": 0.01}
_STYLE_CONVS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")

# The set-ups of the tutorials users learn from, by name. All run at one scale, as they did, and
# with style weight 10: the balance our relative terms give with every layer weighted (the
# default 1000 belongs with the default, relu4_1-led layer weights).
_RECIPE_BASE: dict[str, Any] = {"first_scale": 0, "style_weight": 10.0}
RECIPES: dict[str, dict[str, Any]] = {name: {**_RECIPE_BASE, **recipe} for name, recipe in {
    # TensorFlow's Gatys implementations: average pooling, Adam, content conv4_2.
    "tf-gatys": {"pooling": "avg", "optimizer": "adam", "content_layer": "conv4_2",
                 "style_layers": dict.fromkeys(_STYLE_CONVS, 1.0), "tv_weight": 0.0},
    # The Keras example: scipy-style L-BFGS, content conv5_2.
    "keras-lbfgs": {"optimizer": "lbfgs", "content_layer": "conv5_2", "style_layers": dict.fromkeys(_STYLE_CONVS, 1.0)},
    # The PyTorch course: Adam from the content image, style layers weighted 1, 0.75, 0.2, 0.2, 0.2.
    "pytorch-course": {"optimizer": "adam", "init": "content", "content_layer": "conv4_2",
                       "style_layers": dict(zip(_STYLE_CONVS, (1.0, 0.75, 0.2, 0.2, 0.2), strict=True))},
    # TensorFlow 2's tutorial: Adam with total variation, content conv5_2.
    "tf2-tutorial": {"optimizer": "adam", "content_layer": "conv5_2", "tv_weight": 30.0,
                     "style_layers": dict.fromkeys(_STYLE_CONVS, 1.0)},
}.items()}


# --- images -------------------------------------------------------------------------------

@dataclass
class Image:
    """8-bit pixels, row-major, `channels` interleaved (1 grey, 3 RGB, 4 RGBA).

    `stride` is the number of bytes from one row to the next (at least width * channels), so
    a client can send rows straight out of a buffer that pads them.
    """

    width: int
    height: int
    channels: int
    data: bytes | bytearray | memoryview
    stride: int = 0

    def __post_init__(self) -> None:
        if not self.stride:
            self.stride = self.width * self.channels

    def describe(self, frame: int) -> dict[str, int]:
        return {"width": self.width, "height": self.height, "channels": self.channels,
                "stride": self.stride, "frame": frame}

    def packed(self) -> bytes:
        """The pixels without row padding."""
        row = self.width * self.channels
        if self.stride == row:
            return bytes(self.data[: row * self.height])
        view = memoryview(self.data)
        return b"".join(view[y * self.stride: y * self.stride + row] for y in range(self.height))


def _image_from(desc: Any, frames: list, what: str, max_pixels: int) -> Image:
    if not isinstance(desc, dict):
        raise ProtocolError(Code.BAD_IMAGE, f"{what}: image description must be a map")
    values = {}
    for key in ("width", "height", "channels", "stride", "frame"):
        value = desc.get(key)
        if not _is_int(value):
            raise ProtocolError(Code.BAD_IMAGE, f"{what}: '{key}' must be an integer")
        values[key] = value
    width, height, channels, stride, frame = (values[k] for k in ("width", "height", "channels", "stride", "frame"))
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ProtocolError(Code.BAD_IMAGE, f"{what}: {width}x{height} is outside 1..{MAX_SIDE} per side")
    if width * height > max_pixels:
        raise ProtocolError(Code.TOO_LARGE, f"{what}: {width}x{height} is over the limit of {max_pixels} pixels")
    if channels not in (1, 3, 4):
        raise ProtocolError(Code.BAD_IMAGE, f"{what}: channels must be 1, 3 or 4, not {channels}")
    if not (width * channels <= stride <= width * channels + 4096):
        raise ProtocolError(Code.BAD_IMAGE, f"{what}: stride {stride} does not fit width {width} x {channels}")
    if not (1 <= frame < len(frames)):
        raise ProtocolError(Code.BAD_IMAGE, f"{what}: frame {frame} is missing")
    data = frames[frame]
    expected = stride * (height - 1) + width * channels
    if len(data) not in (expected, stride * height):
        raise ProtocolError(Code.BAD_IMAGE, f"{what}: {len(data)} bytes, expected {stride * height}")
    return Image(width, height, channels, data, stride)


# --- job parameters ----------------------------------------------------------------------

@dataclass(frozen=True)
class Range:
    low: float
    high: float


@dataclass
class JobParams:
    """How to stylise: the one list of knobs shared by the CLI, the plug-in and the engine.

    Each field's metadata gives its allowed values (a Range or a tuple of choices); weights are
    relative, so only their ratios matter.
    """

    size: int = field(default=512, metadata={"allowed": Range(16, MAX_SIDE)})
    iterations: int = field(default=40, metadata={"allowed": Range(1, 20000)})  # at the full size
    # At each smaller scale: enough for the first previews and the large shapes; 0: `iterations`.
    coarse_iterations: int = field(default=3, metadata={"allowed": Range(0, 20000)})
    first_scale: int = field(default=128, metadata={"allowed": Range(0, MAX_SIDE)})  # 0: one scale
    strength: float = field(default=0.5, metadata={"allowed": Range(0.0, 1.0)})
    content_weight: float = field(default=1.0, metadata={"allowed": Range(0.0, 1e9)})
    style_weight: float = field(default=1000.0, metadata={"allowed": Range(0.0, 1e12)})
    tv_weight: float = field(default=1.0, metadata={"allowed": Range(0.0, 1e9)})
    style_loss: str = field(default="gram", metadata={"allowed": ("gram", "sliced")})
    style_scale: float = field(default=1.0, metadata={"allowed": Range(0.05, 8.0)})
    content_layer: str = field(default="relu4_2", metadata={"allowed": "layer"})
    style_layers: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_STYLE_LAYERS), metadata={"allowed": "layers"})
    optimizer: str = field(default="lbfgs", metadata={"allowed": ("lbfgs", "adam")})
    learning_rate: float = field(default=0.02, metadata={"allowed": Range(1e-6, 10.0)})
    average_decay: float = field(default=0.9, metadata={"allowed": Range(0.0, 0.999)})
    init: str = field(default="content", metadata={"allowed": ("content", "noise")})
    pooling: str = field(default="max", metadata={"allowed": ("max", "avg")})
    precision: str = field(default="auto", metadata={"allowed": ("auto", "bf16", "fp32")})
    # The most pixels VGG19 sees at once; larger pictures run in overlapping tiles. 0: as many as
    # the daemon's memory allows.
    tile_pixels: int = field(default=0, metadata={"allowed": Range(0, MAX_PIXELS)})
    seed: int = field(default=0, metadata={"allowed": Range(0, 2**63 - 1)})
    preview_every: int = field(default=10, metadata={"allowed": Range(0, 20000)})
    mask_feather: float = field(default=0.0, metadata={"allowed": Range(0.0, 1024.0)})  # pixels, inward
    keep_colors: str = field(default="none", metadata={"allowed": ("none", "luminance", "match")})
    recipe: str = field(default="", metadata={"allowed": ("", *RECIPES)})

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
        unknown = sorted(str(k) for k in raw if k not in known)
        if unknown:
            raise ProtocolError(Code.BAD_REQUEST, f"unknown parameters: {', '.join(unknown)}")
        values = {name: _check_param(name, known[name], value) for name, value in raw.items()}
        # A recipe gives the values its keys were not given explicitly.
        recipe = copy.deepcopy(RECIPES.get(values.get("recipe", ""), {}))
        return cls(**{**recipe, **values})


def _check_param(name: str, spec: Any, value: Any) -> Any:
    allowed = spec.metadata["allowed"]
    bad = ProtocolError(Code.BAD_REQUEST, f"parameter '{name}': {value!r} is not allowed")
    if isinstance(allowed, Range):
        if spec.type == "int":
            if not _is_int(value):
                raise bad
        elif not (_is_number(value) and math.isfinite(value)):
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
            if layer not in LAYER_NAMES or not _is_number(weight) or not 0 <= weight <= 1e6:
                raise bad
        return {layer: float(weight) for layer, weight in value.items()}
    if value not in allowed:
        raise ProtocolError(Code.BAD_REQUEST, f"parameter '{name}' must be one of {', '.join(allowed)}")
    return value


def _vgg_layer_names() -> tuple[str, ...]:
    # Mirrors daemon/model.py, which this module cannot import (no torch in GIMP).
    names = []
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
        for conv in range(1, convs + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES = _vgg_layer_names()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- requests ----------------------------------------------------------------------------

@dataclass
class Style:
    """One style: pixels or a preset name, with its share of the blend."""

    weight: float = 1.0
    image: Image | None = None
    preset: str | None = None


@dataclass
class Submit:
    job: str
    content: Image
    styles: list[Style]
    params: JobParams
    mask: Image | None = None


@dataclass
class Request:
    """A decoded, validated request. `submit` is set for SUBMIT; `job` for CANCEL."""

    type: str
    job: str | None = None
    submit: Submit | None = None
    seen: int | None = None  # HEARTBEAT: the iteration of the last preview the client has taken in
    preset: PresetUpload | None = None  # PRESET_ADD; PRESET_REMOVE sets only its name


@dataclass
class PresetUpload:
    name: str
    image: Image | None = None
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # recommended, already validated


def encode(header: dict[str, Any], images: list[Image] = ()) -> list:
    """Header plus pixel frames, ready for `socket.send_multipart(..., copy=False)`."""
    return [msgpack.packb({"proto": PROTOCOL, "v": VERSION, **header}, use_bin_type=True),
            *(image.data for image in images)]


def decode_header(frames: list) -> dict[str, Any]:
    """Frame 0 as a map, after checking it speaks our protocol and version."""
    if not frames:
        raise ProtocolError(Code.BAD_MESSAGE, "empty message")
    raw = frames[0]
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError(Code.BAD_MESSAGE, f"header over {MAX_HEADER_BYTES} bytes")
    try:
        header = msgpack.unpackb(bytes(raw), raw=False, strict_map_key=True,
                                 max_bin_len=0, max_ext_len=0)
    except Exception as exc:  # msgpack raises many types for garbage
        raise ProtocolError(Code.BAD_MESSAGE, f"header is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError(Code.BAD_MESSAGE, "header must be a msgpack map")
    if header.get("proto") != PROTOCOL:
        raise ProtocolError(Code.BAD_VERSION, f"not an {PROTOCOL} message (proto={header.get('proto')!r})")
    if header.get("v") != VERSION:
        raise ProtocolError(Code.BAD_VERSION,
                            f"protocol version {header.get('v')!r} is not supported; this side speaks {VERSION}")
    if not isinstance(header.get("type"), str):
        raise ProtocolError(Code.BAD_MESSAGE, "header has no 'type'")
    return header


def _job_id(header: dict[str, Any]) -> str:
    job = header.get("job")
    if not isinstance(job, str) or not 1 <= len(job) <= MAX_JOB_ID_LENGTH or not job.isprintable():
        raise ProtocolError(Code.BAD_REQUEST, f"'job' must be a printable string of 1..{MAX_JOB_ID_LENGTH} characters")
    return job


def _styles(raw: Any, frames: list, max_pixels: int, job: str) -> list[Style]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_STYLES:
        raise ProtocolError(Code.BAD_REQUEST, f"'styles' must be a list of 1..{MAX_STYLES} styles", job)
    styles = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ProtocolError(Code.BAD_REQUEST, f"style {i} must be a map", job)
        weight = entry.get("weight", 1.0)
        if not _is_number(weight) or not (0 < weight <= 1e6):
            raise ProtocolError(Code.BAD_REQUEST, f"style {i}: weight must be a number in (0, 1e6]", job)
        preset, image = entry.get("preset"), entry.get("image")
        if (preset is None) == (image is None):
            raise ProtocolError(Code.BAD_REQUEST, f"style {i}: give exactly one of 'preset' or 'image'", job)
        if preset is not None:
            if not isinstance(preset, str) or not 1 <= len(preset) <= MAX_NAME_LENGTH:
                raise ProtocolError(Code.BAD_REQUEST, f"style {i}: preset must be a name", job)
            styles.append(Style(weight=float(weight), preset=preset))
        else:
            styles.append(Style(weight=float(weight), image=_image_from(image, frames, f"style {i}", max_pixels)))
    return styles


def parse_request(frames: list, max_pixels: int = MAX_PIXELS) -> Request:
    """Decode and validate one request, raising ProtocolError on anything amiss."""
    header = decode_header(frames)
    kind = header["type"]
    if kind not in REQUEST_TYPES:
        raise ProtocolError(Code.BAD_REQUEST, f"unknown request type {kind!r}")
    if kind == CANCEL:
        return Request(kind, job=_job_id(header))
    if kind == HEARTBEAT and "job" in header:
        seen = header.get("seen")
        if seen is not None and not _is_int(seen):
            raise ProtocolError(Code.BAD_REQUEST, "'seen' must be an integer")
        return Request(kind, job=_job_id(header), seen=seen)
    if kind in (PRESET_ADD, PRESET_REMOVE):
        return Request(kind, preset=_preset_upload(header, frames, max_pixels, with_image=kind == PRESET_ADD))
    if kind != SUBMIT:
        return Request(kind)
    job = _job_id(header)
    try:
        content = _image_from(header.get("content"), frames, "content", max_pixels)
        if content.channels == 1:
            raise ProtocolError(Code.BAD_IMAGE, "content must be RGB or RGBA")
        mask = None
        if header.get("mask") is not None:
            mask = _image_from(header["mask"], frames, "mask", max_pixels)
            if mask.channels != 1 or (mask.width, mask.height) != (content.width, content.height):
                raise ProtocolError(Code.BAD_IMAGE, "mask must be one channel, the content's size")
        styles = _styles(header.get("styles"), frames, max_pixels, job)
        params = JobParams.from_wire(header.get("params"))
    except ProtocolError as exc:
        exc.job = job
        raise
    return Request(kind, job=job, submit=Submit(job, content, styles, params, mask))


def _preset_upload(header: dict[str, Any], frames: list, max_pixels: int, with_image: bool) -> PresetUpload:
    name = header.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise ProtocolError(Code.BAD_REQUEST, "'name' must be a preset name")
    if not with_image:
        return PresetUpload(name)
    description = header.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH:
        raise ProtocolError(Code.BAD_REQUEST, f"'description' must be text of at most {MAX_DESCRIPTION_LENGTH}")
    params = header.get("params") or {}
    JobParams.from_wire(params)  # refuses anything a job would refuse
    image = _image_from(header.get("image"), frames, "preset image", max_pixels)
    if image.channels == 1:
        raise ProtocolError(Code.BAD_IMAGE, "a preset image must be RGB or RGBA")
    return PresetUpload(name, image, description, dict(params))


# --- building messages -------------------------------------------------------------------

def submit_message(submit: Submit) -> list:
    """A SUBMIT request: the content, then each style image, then the mask, as frames."""
    images: list[Image] = [submit.content]
    styles = []
    for style in submit.styles:
        if style.image is not None:
            images.append(style.image)
            styles.append({"weight": style.weight, "image": style.image.describe(len(images))})
        else:
            styles.append({"weight": style.weight, "preset": style.preset})
    header: dict[str, Any] = {"type": SUBMIT, "job": submit.job, "content": submit.content.describe(1),
                              "styles": styles, "params": submit.params.to_wire()}
    if submit.mask is not None:
        images.append(submit.mask)
        header["mask"] = submit.mask.describe(len(images))
    return encode(header, images)


def simple_message(kind: str, **fields_: Any) -> list:
    """Any message without pixels: hello, cancel, progress, error, ..."""
    return encode({"type": kind, **fields_})


def image_message(kind: str, image: Image, **fields_: Any) -> list:
    """PREVIEW or RESULT: one image in frame 1."""
    return encode({"type": kind, "image": image.describe(1), **fields_}, [image])


def error_message(code: str, message: str, job: str | None = None) -> list:
    extra = {"job": job} if job is not None else {}
    return simple_message(ERROR, code=code, message=message, **extra)


@dataclass
class Reply:
    """A decoded reply as a client sees it: the header, and its image if it has one."""

    type: str
    header: dict[str, Any]
    image: Image | None = None

    @property
    def job(self) -> str | None:
        return self.header.get("job")


def parse_reply(frames: list) -> Reply:
    header = decode_header(frames)
    image = None
    if "image" in header:
        image = _image_from(header["image"], frames, "reply image", MAX_PIXELS)
    return Reply(header["type"], header, image)
