"""A run over the chosen layers: one job a layer, in turn, each streamed into its own result layers,
one progress over them all, one undo step for the whole run, and Cancel anywhere leaving the image
as it was. Animation frames go in frame order, each job carrying the previous frame's photo and
result (the daemon warps that result along the motion), and their results into a new image.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gi

gi.require_version("Gimp", "3.0")
import impasto_choices as choices  # noqa: E402
import impasto_daemon  # noqa: E402
import impasto_run  # noqa: E402
from gi.repository import Gimp, GLib  # noqa: E402
from impasto_pixels import read_pixels, read_whole  # noqa: E402

if TYPE_CHECKING:
    from impasto.protocol.client import Client
    from impasto.protocol.messages import Image, JobParams, Style, Submit



class Animation:
    """An animation's results: a new image the frames' size with one layer a frame, named as its
    frame (so its timing is kept), the first frame at the bottom, so Filters > Animation >
    Playback and File > Export as GIF/WebP take it at once. The user's image is not touched."""

    def __init__(self, width: int, height: int, live: bool) -> None:
        self.image = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
        self.image.undo_disable()  # its making is no step to undo
        self.live = live
        self.display = Gimp.Display.new(self.image) if live else None

    def frame(self, source: Gimp.Layer) -> FrameLayer:
        _, x, y = source.get_offsets()
        return FrameLayer(self, source.get_name(), x, y)

    def done(self) -> None:
        self.image.undo_enable()
        Gimp.displays_flush()

    def remove(self) -> None:
        if self.display is not None:
            self.display.delete()  # the image goes with its only display
        else:
            self.image.delete()
        Gimp.displays_flush()


class FrameLayer:
    """One frame's result layer in an Animation's image, put on top as it comes (live runs: at the
    first preview, repainted by the next ones; scripts: with the result)."""

    def __init__(self, animation: Animation, name: str, x: int, y: int) -> None:
        self.animation, self.name, self.x, self.y = animation, name, x, y
        self.layer: Gimp.Layer | None = None
        self.final: Image | None = None
        self.received: Image | None = None

    def preview(self, picture: Image, name: str) -> None:
        if self.animation.live:
            self.finish(picture)

    def arrived(self, picture: Image) -> None:
        self.received = picture
        if self.animation.live:
            self.finish(picture)
        else:
            self.final = picture

    def finish(self, picture: Image) -> None:
        if self.layer is None:
            kind = Gimp.ImageType.RGBA_IMAGE if picture.channels == 4 else Gimp.ImageType.RGB_IMAGE
            self.layer = Gimp.Layer.new(self.animation.image, self.name, picture.width, picture.height, kind, 100.0,
                                        Gimp.LayerMode.NORMAL)
            self.layer.set_offsets(self.x, self.y)
            impasto_run.paint(self.layer, picture)
            self.animation.image.insert_layer(self.layer, None, 0)
        else:
            impasto_run.paint(self.layer, picture)
        Gimp.displays_flush()

    def commit(self) -> None:
        pass  # the Animation's image holds it

    def remove(self) -> None:
        pass  # the Animation's image goes whole

    def mark_unfinished(self) -> None:
        if self.layer is not None:
            self.layer.set_name(f"{self.name} (unfinished)")


Layers = impasto_run.ResultLayers | FrameLayer


@dataclass
class Target:
    """A layer to stylise, the part of it sent, and the selection over that part."""

    layer: Gimp.Layer
    region: choices.Region
    mask: bytes | None

    def content(self) -> Image:
        from impasto.protocol.messages import Image

        region, layer = self.region, self.layer
        channels = 4 if layer.has_alpha() else 3
        return Image(region.width, region.height, channels,
                     read_pixels(layer, region.x, region.y, region.width, region.height,
                                 "R'G'B'A u8" if channels == 4 else "R'G'B' u8"))


def failure(procedure: Gimp.Procedure, message: str) -> Gimp.ValueArray:
    error = GLib.Error.new_literal(Gimp.PlugIn.error_quark(), message, 0)
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, error)


def cancelled(procedure: Gimp.Procedure) -> Gimp.ValueArray:
    return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())


def submission(target: Target, style: Style, params: JobParams, endpoint: str, interactive: bool,
               previous: tuple[Image, Image] | None = None) -> Submit:
    """The job to send: the region's pixels, the style, and the settings (previews evenly in time
    for a person watching, from the daemon's forecast). A selection goes with the whole layer,
    reduced to its working size, so it is painted as that part of the whole would be. `previous`:
    an animation frame's previous photo and result."""
    from impasto.protocol.client import new_job_id
    from impasto.protocol.messages import Image

    layer, region, mask = target.layer, target.region, target.mask
    whole = None
    if mask is not None:
        whole_w, whole_h, whole_pixels = read_whole(layer, params.size)
        whole = Image(whole_w, whole_h, 3, whole_pixels)
        params = dataclasses.replace(params, part_x=region.x, part_y=region.y)
    if interactive:
        whole_size = (layer.get_width(), layer.get_height()) if mask is not None else None
        estimate = impasto_daemon.forecast(endpoint, region, params, whole_size)
        seconds = choices.preview_interval(estimate["seconds"] if estimate else None)
        params = dataclasses.replace(params, preview_every=0, preview_seconds=seconds)
    return choices.build_submit(new_job_id(), target.content(), style, params, mask, whole, previous)


def stream_into_layers(client: Client, submit: Submit, layers: Layers, progress: impasto_run.RunProgress) -> bool:
    """Run the job, turning its previews and result into layers and its progress into words.
    Returns False when the user cancelled."""
    from impasto.protocol.messages import CANCELLED, PREVIEW, PROGRESS, RESULT

    latest = None
    for reply in client.run_job(submit, should_stop=progress.poll):
        if reply.type == PROGRESS:
            latest = reply.progress
            progress.show(latest)
        elif reply.type == PREVIEW and reply.image is not None:
            progress.show_preview(reply.image)
            layers.preview(reply.image, choices.preview_name(latest))
        elif reply.type == RESULT and reply.image is not None:
            layers.arrived(reply.image)
        elif reply.type == CANCELLED:
            return False
    return True


@dataclass
class Run:
    """The run's plan: its layers, the style and the settings of each layer's job."""

    image: Gimp.Image
    targets: list[Target]
    style: Style
    style_name: str
    settings: list[JobParams]  # one a target
    keep_previews: bool
    interactive: bool
    animation: Animation | None = None

    def layers_for(self, target: Target) -> Layers:
        if self.animation is not None:
            return self.animation.frame(target.layer)
        # Over several layers each result names its layer too (GIMP would number equal names).
        name = self.style_name if len(self.targets) == 1 else f"{self.style_name} ({target.layer.get_name()})"
        return impasto_run.ResultLayers(self.image, target.layer, target.region, name, self.keep_previews,
                                        live=self.interactive)


def run_into_layers(procedure: Gimp.Procedure, endpoint: str, run: Run,
                    progress: impasto_run.RunProgress) -> Gimp.ValueArray:
    """Each layer's job in turn; a cancelled run leaves nothing, a failed one what it had made
    (its last layer marked unfinished), a finished one all its layers as one undo step."""
    from impasto.protocol.client import Client, DaemonError, DaemonUnavailable

    progress.parts = choices.Parts(len(run.targets), "Frame" if run.animation else "Layer")
    client = Client(endpoint, timeout=impasto_daemon.ANSWER_S)
    made: list[Layers] = []
    previous: tuple[Image, Image] | None = None
    try:
        for target, params in zip(run.targets, run.settings, strict=True):
            layers = run.layers_for(target)
            made.append(layers)
            submit = submission(target, run.style, params, endpoint, run.interactive, previous)
            started = time.monotonic()
            if not stream_into_layers(client, submit, layers, progress):
                remove(run, made)
                return cancelled(procedure)
            progress.parts.done(time.monotonic() - started)
            if run.animation is not None and layers.received is not None:
                previous = (submit.content, layers.received)
    except (DaemonError, DaemonUnavailable) as exc:
        made[-1].mark_unfinished()
        commit(run, made)
        return failure(procedure, f"Impasto: {exc}")
    finally:
        client.close()
        progress.close()
    for layers in made:
        if layers.final is not None:  # a script's result, placed now that nothing can cancel it
            layers.finish(layers.final)
    commit(run, made)
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def commit(run: Run, made: list[Layers]) -> None:
    """The run's layers as one undo step (GIMP nests each layer's group into this one)."""
    if run.animation is not None:
        run.animation.done()
        return
    run.image.undo_group_start()
    for layers in made:
        layers.commit()
    run.image.undo_group_end()


def remove(run: Run, made: list[Layers]) -> None:
    """Cancelled: the image as it was (an animation's new image closed)."""
    for layers in made:
        layers.remove()
    if run.animation is not None:
        run.animation.remove()
