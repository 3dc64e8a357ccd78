"""What a run shows: its layers, its progress, and how the user stops it.

Interactive runs get a small window of the plug-in's own (latest preview, progress, time left,
Cancel), not GIMP's progress bar: GIMP kills a plug-in about 10 ms after its progress bar's
Cancel, so nothing could be tidied up and the image was left with an open undo group and
partial layers. Here Cancel is a request the plug-in carries out: the job is cancelled on the
daemon and the layers of the run are removed. Scripts get GIMP's progress, where the plug-in
never holds anything half-done (see ResultLayers).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
gi.require_version("Gegl", "0.4")
from gi.repository import GdkPixbuf, Gegl, Gimp, GLib, Gtk  # noqa: E402
from impasto_choices import Parts, progress_text  # noqa: E402

if TYPE_CHECKING:
    from impasto_choices import Region

    from impasto.protocol.messages import Image, Progress

PREVIEW_SIDE = 320


# --- layers ----------------------------------------------------------------------------

class ResultLayers:
    """The run's layers. Each goes into the image whole (made and painted first), so the image is
    consistent at every instant whatever ends the run.

    The result layer, "Impasto: STYLE", goes in directly above the source: at the first preview
    when the run shows previews (interactive runs, which cancel cleanly), else with the result.
    Later previews repaint it. Kept previews are layers of their own, named like the progress they
    show. While the run goes on its layers stay out of the undo history (GIMP's history is frozen
    for each insertion, never for the user's own edits meanwhile): Ctrl+Z undoes the user's steps,
    not the half-painted run, and a cancelled run leaves no step behind. `commit` puts the run's
    layers back as copies in one undo step, so a finished run is one step Ctrl+Z removes.
    """

    def __init__(self, image: Gimp.Image, source: Gimp.Layer, region: Region, name: str, keep_previews: bool,
                 live: bool) -> None:
        self.image, self.source, self.name = image, source, name
        _, offset_x, offset_y = source.get_offsets()
        self.x, self.y = region.x + offset_x, region.y + offset_y
        self.keep_previews, self.live = keep_previews, live
        self.result: Gimp.Layer | None = None
        self.final: Image | None = None  # a script's result, until it is placed
        self.received: Image | None = None  # the job's result, once it came
        self.kept: list[Gimp.Layer] = []

    def _new_layer(self, picture: Image, name: str) -> Gimp.Layer:
        kind = Gimp.ImageType.RGBA_IMAGE if picture.channels == 4 else Gimp.ImageType.RGB_IMAGE
        layer = Gimp.Layer.new(self.image, name, picture.width, picture.height, kind, 100.0, Gimp.LayerMode.NORMAL)
        layer.set_offsets(self.x, self.y)
        paint(layer, picture)
        return layer

    def _insert(self, layer: Gimp.Layer, position: int) -> None:
        """Put `layer` into the image at `position` of the source's parent, outside the history."""
        with _Unrecorded(self.image):
            self.image.insert_layer(layer, self.source.get_parent(), position)
        Gimp.displays_flush()

    def _in_image(self, layer: Gimp.Layer) -> bool:
        """Whether `layer` is still beside the source (the user may delete it during the run)."""
        parent = self.source.get_parent()
        siblings = parent.get_children() if parent is not None else self.image.get_layers()
        return any(item.get_id() == layer.get_id() for item in siblings)

    def _present(self) -> list[Gimp.Layer]:
        """The run's layers still in the image, top first."""
        layers = [layer for layer in [self.result, *reversed(self.kept)] if layer is not None and self._in_image(layer)]
        return sorted(layers, key=self.image.get_item_position)

    def _above_run(self) -> int:
        """The position just above the run's layers so far (above the source when none)."""
        self.kept = [layer for layer in self.kept if self._in_image(layer)]
        return self.image.get_item_position(self.kept[-1] if self.kept else self.source)

    def preview(self, picture: Image, name: str) -> None:
        """Show a preview: the result layer repainted (live runs) and, when kept, a layer of its
        own just below the result, newest first."""
        if self.keep_previews:
            layer = self._new_layer(picture, name)
            in_image = self.result is not None and self._in_image(self.result)
            below_result = self.image.get_item_position(self.result) + 1 if in_image else None
            self._insert(layer, self._above_run() if below_result is None else below_result)
            self.kept.append(layer)
        if self.live:
            self.finish(picture)

    def arrived(self, picture: Image) -> None:
        """The job's result: shown now in a live run; in a script's, kept for `finish` once GIMP's
        progress (whose Cancel kills the plug-in) has ended."""
        self.received = picture
        if self.live:
            self.finish(picture)
        else:
            self.final = picture

    def finish(self, picture: Image) -> None:
        if self.result is not None and not self._in_image(self.result):
            self.result = None  # deleted by the user while the run went on: a new one goes in
        if self.result is None:
            self.result = self._new_layer(picture, f"Impasto: {self.name}")
            self._insert(self.result, self._above_run())
        else:
            paint(self.result, picture)
            Gimp.displays_flush()

    def commit(self) -> None:
        """Make the run's layers one undo step ("Impasto Style Transfer" in Undo History): each is
        swapped, outside the history, for a copy put in at its place within one undo group."""
        layers = self._present()
        places = [(self.image.get_item_position(layer), _copy(layer)) for layer in layers]
        with _Unrecorded(self.image):
            for layer in layers:
                self.image.remove_layer(layer)
        self.image.undo_group_start()  # named after the plug-in
        for position, copy in places:  # top first: each lands where its original was
            self.image.insert_layer(copy, self.source.get_parent(), position)
        self.image.undo_group_end()
        Gimp.displays_flush()
        self.result, self.kept = None, []

    def remove(self) -> None:
        """Take the run's layers out again (the user cancelled): the image and its history are as
        before."""
        layers = self._present()
        if layers:
            with _Unrecorded(self.image):
                for layer in layers:
                    self.image.remove_layer(layer)
            Gimp.displays_flush()
        self.result, self.kept = None, []

    def mark_unfinished(self) -> None:
        if self.result is not None and self._in_image(self.result):
            with _Unrecorded(self.image):  # the name is part of the step `commit` makes
                self.result.set_name(f"Impasto: {self.name} (unfinished)")


class _Unrecorded:
    """A block whose changes to the image stay out of its undo history (GIMP still marks the image
    changed). GIMP nests freezes, so an image frozen by someone else stays frozen."""

    def __init__(self, image: Gimp.Image) -> None:
        self.image = image

    def __enter__(self) -> None:
        self.image.undo_freeze()

    def __exit__(self, *_: object) -> None:
        self.image.undo_thaw()


def _copy(layer: Gimp.Layer) -> Gimp.Layer:
    copy = layer.copy()
    copy.set_name(layer.get_name())  # not "… copy": the name is free again once the original is out
    return copy


def paint(layer: Gimp.Layer, picture: Image) -> None:
    fmt = "R'G'B'A u8" if picture.channels == 4 else "R'G'B' u8"
    buffer = layer.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, picture.width, picture.height), fmt, picture.packed())
    buffer.flush()
    layer.update(0, 0, picture.width, picture.height)


class GimpProgress:
    """GIMP's own progress bar (for scripts): no cancelling of our own."""

    cancelled = False

    def __init__(self, text: str) -> None:
        Gimp.progress_init(text)
        self.parts = Parts(1)  # the layers of the run

    def say(self, text: str, fraction: float | None = None) -> None:
        Gimp.progress_set_text(text)
        if fraction is not None:
            Gimp.progress_update(fraction)

    def show(self, progress: Progress) -> None:
        self.say(progress_text(progress, parts=self.parts), self.parts.fraction(progress))

    def pulse(self) -> None:
        Gimp.progress_pulse()

    def show_preview(self, picture: Image) -> None:
        pass

    def poll(self) -> bool:
        return self.cancelled

    def close(self) -> None:
        Gimp.progress_end()


class RunWindow:
    """The plug-in's own progress window: a preview, a bar, the time left and Cancel."""

    def __init__(self, title: str, text: str) -> None:
        self.cancelled = False
        self.parts = Parts(1)  # the layers of the run
        self.latest: tuple[Progress, float] | None = None  # the last progress report, and when it came
        self.shown_at = 0.0
        self.window = Gtk.Window(title=title)
        self.window.set_default_size(PREVIEW_SIDE + 40, -1)
        self.window.set_keep_above(True)
        self.window.connect("delete-event", self._cancel)
        self.preview = Gtk.Image()
        self.preview.set_size_request(PREVIEW_SIDE, PREVIEW_SIDE * 2 // 3)
        self.bar = Gtk.ProgressBar(show_text=True)
        self.bar.set_text(text)
        self.button = Gtk.Button.new_with_mnemonic("_Cancel")
        self.button.connect("clicked", self._cancel)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=8, border_width=12)
        box.pack_start(self.preview, True, True, 0)
        box.pack_start(self.bar, False, False, 0)
        buttons = Gtk.Box(spacing=6)
        buttons.pack_end(self.button, False, False, 0)
        box.pack_start(buttons, False, False, 0)
        self.window.add(box)
        self.window.show_all()
        self.button.grab_focus()  # Enter or Space cancels
        self.poll()

    def _cancel(self, *_: object) -> bool:
        self.cancelled = True
        self.button.set_sensitive(False)
        self.bar.set_text("Cancelling…")
        return True  # the window closes when the run has tidied up

    def say(self, text: str, fraction: float | None = None) -> None:
        if not self.cancelled:
            self.bar.set_text(text)
        if fraction is not None:
            self.bar.set_fraction(min(max(fraction, 0.0), 1.0))
        else:
            self.bar.pulse()
        self.poll()

    def show(self, progress: Progress) -> None:
        self.latest = (progress, time.monotonic())
        self.shown_at = time.monotonic()
        self.say(progress_text(progress, parts=self.parts), self.parts.fraction(progress))

    def pulse(self) -> None:
        self.bar.pulse()
        self.poll()

    def show_preview(self, picture: Image) -> None:
        """Show a wire image (impasto's preview) scaled into the window."""
        channels = picture.channels
        pixbuf = GdkPixbuf.Pixbuf.new_from_bytes(GLib.Bytes.new(picture.packed()), GdkPixbuf.Colorspace.RGB,
                                                 channels == 4, 8, picture.width, picture.height,
                                                 picture.width * channels)
        scale = PREVIEW_SIDE / max(picture.width, picture.height)
        self.preview.set_from_pixbuf(pixbuf.scale_simple(max(1, round(picture.width * scale)),
                                                         max(1, round(picture.height * scale)),
                                                         GdkPixbuf.InterpType.BILINEAR))
        self.poll()

    def poll(self) -> bool:
        """Let the window draw and take clicks, and count the time left down between reports;
        True once the user asked to cancel."""
        now = time.monotonic()
        if self.latest is not None and not self.cancelled and now - self.shown_at >= 1.0:
            progress, came = self.latest
            self.bar.set_text(progress_text(progress, now - came, self.parts))
            self.shown_at = now
        while Gtk.events_pending():
            Gtk.main_iteration_do(False)
        return self.cancelled

    def close(self) -> None:
        self.window.destroy()
        self.poll()


def progress_for(interactive: bool, title: str, text: str) -> RunProgress:
    if interactive:
        from gi.repository import GimpUi

        GimpUi.init("impasto")
        return RunWindow(title, text)
    return GimpProgress(text)


RunProgress = GimpProgress | RunWindow  # what a run reports to and asks about Cancel
