"""Every message Impasto's daemon and clients exchange, and their validation.

The wire format and the list of messages are specified in `protocol/README.md`; this module is
that specification in code. It needs only msgpack (and runs in GIMP's Python), so it must not
import numpy or torch.

A message is a multipart ZeroMQ message: frame 0 is a msgpack map (the header), frames 1..n
are raw pixel buffers that the header describes. Every header carries `proto` and `v`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .errors import Code, ProtocolError, is_int, is_number, shown
from .images import Image, image_from
from .jobs import Estimate, Style, Submit

# Jobs, settings, presets and progress have modules of their own; they are named here too, so that
# code holding `messages` reaches every part of a message through it.
from .presets import (  # noqa: F401
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    PresetInfo,
    PresetUpload,
    description_from,
    plain,
    preset_infos,
)
from .progress import Progress
from .settings import (  # noqa: F401
    DEFAULT_PRESET,
    DEFAULT_STYLE_LAYERS,
    LAYER_NAMES,
    MAX_PIXELS,
    MAX_SIDE,
    RECIPES,
    STYLE_LAYERS,
    JobParams,
    Range,
)

PROTOCOL = "impasto"
VERSION = 1

MAX_HEADER_BYTES = 256 * 1024
MAX_STYLES = 8
MAX_JOB_ID_LENGTH = 64
MAX_MESSAGE_BYTES = 4 * MAX_PIXELS + 16 * MAX_HEADER_BYTES


# Request and reply types.
HELLO, SUBMIT, CANCEL, PRESETS = "hello", "submit", "cancel", "presets"
HEARTBEAT, SHUTDOWN = "heartbeat", "shutdown"
PRESET_ADD, PRESET_REMOVE, ESTIMATE = "preset_add", "preset_remove", "estimate"
REQUEST_TYPES = (HELLO, SUBMIT, CANCEL, PRESETS, HEARTBEAT, SHUTDOWN, PRESET_ADD, PRESET_REMOVE, ESTIMATE)
ACCEPTED, PROGRESS, PREVIEW, RESULT = "accepted", "progress", "preview", "result"
ERROR, CANCELLED = "error", "cancelled"
REPLY_TYPES = (HELLO, PRESETS, HEARTBEAT, SHUTDOWN, PRESET_ADD, PRESET_REMOVE, ESTIMATE, ACCEPTED, PROGRESS, PREVIEW,
               RESULT, ERROR, CANCELLED)

# A job sends at most this many previews the client has not acknowledged (heartbeat `seen`), so
# a slow client gets fewer, fresher previews instead of a growing backlog.
PREVIEWS_IN_FLIGHT = 2
# Clients with a job send a heartbeat at least this often; the daemon answers each one.
HEARTBEAT_INTERVAL_S = 0.5
# The daemon cancels a job whose client has been silent this long (a killed GIMP plug-in's job
# is stopped within 2 s); a client gives up on a daemon silent for PEER_TIMEOUT_S.
CLIENT_TIMEOUT_S = 1.75
PEER_TIMEOUT_S = 3.0

# --- requests ----------------------------------------------------------------------------

@dataclass
class Request:
    """A decoded, validated request. `submit` is set for SUBMIT; `job` for CANCEL."""

    type: str
    job: str | None = None
    submit: Submit | None = None
    seen: int | None = None  # HEARTBEAT: the iteration of the last preview the client has taken in
    preset: PresetUpload | None = None  # PRESET_ADD; PRESET_REMOVE sets only its name
    estimate: Estimate | None = None  # ESTIMATE


def encode(header: dict[str, Any], images: Sequence[Image] = ()) -> list:
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
        raise ProtocolError(Code.BAD_VERSION, f"not an {PROTOCOL} message (proto={shown(header.get('proto'))})")
    if not (is_int(header.get("v")) and header["v"] == VERSION):  # 1.0 and true are not 1
        raise ProtocolError(Code.BAD_VERSION,
                            f"protocol version {shown(header.get('v'))} is not supported; this side speaks {VERSION}")
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
        if not is_number(weight) or not (0 < weight <= 1e6):
            raise ProtocolError(Code.BAD_REQUEST, f"style {i}: weight must be a number in (0, 1e6]", job)
        preset, image = entry.get("preset"), entry.get("image")
        if (preset is None) == (image is None):
            raise ProtocolError(Code.BAD_REQUEST, f"style {i}: give exactly one of 'preset' or 'image'", job)
        if preset is not None:
            if not isinstance(preset, str) or not 1 <= len(preset) <= MAX_NAME_LENGTH:
                raise ProtocolError(Code.BAD_REQUEST, f"style {i}: preset must be a name", job)
            styles.append(Style(weight=float(weight), preset=preset))
        else:
            styles.append(Style(weight=float(weight), image=image_from(image, frames, f"style {i}", max_pixels)))
    return styles


def parse_request(frames: list, max_pixels: int = MAX_PIXELS) -> Request:
    """Decode and validate one request, raising ProtocolError on anything amiss."""
    header = decode_header(frames)
    kind = header["type"]
    if kind not in REQUEST_TYPES:
        raise ProtocolError(Code.BAD_REQUEST, f"unknown request type {shown(kind)}")
    if kind == CANCEL:
        return Request(kind, job=_job_id(header))
    if kind == HEARTBEAT and "job" in header:
        seen = header.get("seen")
        if seen is not None and not is_int(seen):
            raise ProtocolError(Code.BAD_REQUEST, "'seen' must be an integer")
        return Request(kind, job=_job_id(header), seen=seen)
    if kind == ESTIMATE:
        width, height = header.get("width"), header.get("height")
        if not (is_int(width) and is_int(height) and 1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
            raise ProtocolError(Code.BAD_REQUEST, f"'width' and 'height' must be integers in 1..{MAX_SIDE}")
        whole = header.get("whole")
        if whole is not None and not (isinstance(whole, list) and len(whole) == 2
                                      and all(is_int(side) and 1 <= side <= MAX_SIDE for side in whole)):
            raise ProtocolError(Code.BAD_REQUEST, f"'whole' must be a width and a height in 1..{MAX_SIDE}")
        params = JobParams.from_wire(header.get("params"))
        return Request(kind, estimate=Estimate(width, height, params, tuple(whole) if whole else None))
    if kind in (PRESET_ADD, PRESET_REMOVE):
        return Request(kind, preset=_preset_upload(header, frames, max_pixels, with_image=kind == PRESET_ADD))
    if kind != SUBMIT:
        return Request(kind)
    job = _job_id(header)
    try:
        return Request(kind, job=job, submit=_submit(header, frames, max_pixels, job))
    except ProtocolError as exc:
        exc.job = job
        raise


def _submit(header: dict[str, Any], frames: list, max_pixels: int, job: str) -> Submit:
    content = image_from(header.get("content"), frames, "content", max_pixels)
    if content.channels == 1:
        raise ProtocolError(Code.BAD_IMAGE, "content must be RGB or RGBA")
    mask = whole = None
    if header.get("mask") is not None:
        mask = image_from(header["mask"], frames, "mask", max_pixels)
        if mask.channels != 1 or (mask.width, mask.height) != (content.width, content.height):
            raise ProtocolError(Code.BAD_IMAGE, "mask must be one channel, the content's size")
    styles = _styles(header.get("styles"), frames, max_pixels, job)
    params = JobParams.from_wire(header.get("params"))
    if header.get("whole") is not None:
        whole = image_from(header["whole"], frames, "whole", max_pixels)
        if whole.channels == 1:
            raise ProtocolError(Code.BAD_IMAGE, "the whole must be RGB or RGBA")
        if params.layer_size < max(content.width, content.height):
            raise ProtocolError(Code.BAD_REQUEST, "a whole needs 'layer_size', its long side, at least the content's")
    previous, previous_result = _previous_frame(header, frames, max_pixels, content)
    if previous is not None and whole is not None:
        raise ProtocolError(Code.BAD_REQUEST, "an animation frame cannot be a part of a whole: send the whole frame")
    return Submit(job, content, styles, params, mask, whole, previous, previous_result)


def _previous_frame(header: dict[str, Any], frames: list, max_pixels: int,
                    content: Image) -> tuple[Image | None, Image | None]:
    """An animation frame's previous photo and result: both or neither, RGB(A), the content's size."""
    if (header.get("previous") is None) != (header.get("previous_result") is None):
        raise ProtocolError(Code.BAD_REQUEST, "give both 'previous' and 'previous_result', or neither")
    if header.get("previous") is None:
        return None, None
    images = []
    for name in ("previous", "previous_result"):
        image = image_from(header[name], frames, name, max_pixels)
        if image.channels == 1 or (image.width, image.height) != (content.width, content.height):
            raise ProtocolError(Code.BAD_IMAGE, f"'{name}' must be RGB or RGBA, the content's size")
        images.append(image)
    return images[0], images[1]


def _preset_upload(header: dict[str, Any], frames: list, max_pixels: int, with_image: bool) -> PresetUpload:
    name = header.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise ProtocolError(Code.BAD_REQUEST, "'name' must be a preset name")
    if not with_image:
        return PresetUpload(name)
    description = header.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH or not plain(description):
        raise ProtocolError(Code.BAD_REQUEST, f"'description' must be printable text of at most "
                            f"{MAX_DESCRIPTION_LENGTH} characters")
    params = header.get("params", {})
    if not isinstance(params, dict):
        raise ProtocolError(Code.BAD_REQUEST, "'params' must be a map")
    JobParams.from_wire(params)  # refuses anything a job would refuse
    image = image_from(header.get("image"), frames, "preset image", max_pixels)
    if image.channels == 1:
        raise ProtocolError(Code.BAD_IMAGE, "a preset image must be RGB or RGBA")
    return PresetUpload(name, image, description, dict(params))


# --- building messages -------------------------------------------------------------------
# Every request and reply is built here, so a field is spelt in one place.

def too_large(width: int, height: int, what: str) -> str | None:
    """Why a `width`×`height` image cannot be sent, or None: the daemon's socket drops a message
    over its limit unread, so a client must say so before it sends."""
    if width * height <= MAX_PIXELS:
        return None
    return (f"{what} is {width}×{height} ({width * height / 1e6:.1f} MP); Impasto takes images of up to "
            f"{MAX_PIXELS / 1e6:.1f} MP: shrink it first")


def check_size(image: Image, what: str) -> None:
    problem = too_large(image.width, image.height, what)
    if problem is not None:
        raise ProtocolError(Code.TOO_LARGE, problem)


def submit_message(submit: Submit) -> list:
    """A SUBMIT request: the content, then each style image, then the mask, the whole and the previous
    frame's photo and result, as frames."""
    images: list[Image] = [submit.content]
    check_size(submit.content, "the content")
    styles = []
    for style in submit.styles:
        if style.image is not None:
            check_size(style.image, "a style image")
            images.append(style.image)
            styles.append({"weight": style.weight, "image": style.image.describe(len(images))})
        else:
            styles.append({"weight": style.weight, "preset": style.preset})
    header: dict[str, Any] = {"type": SUBMIT, "job": submit.job, "content": submit.content.describe(1),
                              "styles": styles, "params": submit.params.to_wire()}
    for name, image in (("mask", submit.mask), ("whole", submit.whole), ("previous", submit.previous),
                        ("previous_result", submit.previous_result)):
        if image is not None:
            check_size(image, f"the {name}")
            images.append(image)
            header[name] = image.describe(len(images))
    return encode(header, images)


def simple_message(kind: str, **fields_: Any) -> list:
    """Any message without pixels: hello, presets, shutdown, and the replies below."""
    return encode({"type": kind, **fields_})


def cancel_message(job: str) -> list:
    return simple_message(CANCEL, job=job)


def heartbeat_message(job: str | None = None, seen: int | None = None) -> list:
    """A client's heartbeat; with `seen`, it also says it has taken in the preview of that iteration."""
    extra: dict[str, Any] = {} if job is None else {"job": job}
    if seen is not None:
        extra["seen"] = seen
    return simple_message(HEARTBEAT, **extra)


def preset_add_message(upload: PresetUpload) -> list:
    assert upload.image is not None
    check_size(upload.image, "the preset's image")
    return encode({"type": PRESET_ADD, "name": upload.name, "image": upload.image.describe(1),
                   "description": upload.description, "params": upload.params}, [upload.image])


def preset_remove_message(name: str) -> list:
    return simple_message(PRESET_REMOVE, name=name)


def estimate_message(estimate: Estimate) -> list:
    whole = {"whole": list(estimate.whole)} if estimate.whole else {}
    return simple_message(ESTIMATE, width=estimate.width, height=estimate.height, params=estimate.params.to_wire(),
                          **whole)


def progress_message(job: str, progress: Progress) -> list:
    return simple_message(PROGRESS, job=job, **progress.to_wire())


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
    frames: list = field(default_factory=list, repr=False)  # the raw frames, for replies with several images

    @property
    def job(self) -> str | None:
        return self.header.get("job")

    @property
    def progress(self) -> Progress:
        """A PROGRESS reply's fields as the type the engine made."""
        return Progress.from_header(self.header)


def parse_reply(frames: list) -> Reply:
    header = decode_header(frames)
    image = None
    if "image" in header:
        image = image_from(header["image"], frames, "reply image", MAX_PIXELS)
    return Reply(header["type"], header, image, frames)
