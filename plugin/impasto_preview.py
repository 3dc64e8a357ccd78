"""The dialog's preview: the layer, small, in the chosen style and strength, as GIMP's own filters
show one. It is redone a moment after a choice changes (the one under way is cancelled).

The job runs on the daemon like any other, from a thread of its own, so the dialog never waits
on it; only the finished picture comes back to GTK's main loop (GLib.idle_add). With a selection,
the preview is the whole layer with the selection painted, which is how a run paints it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
import impasto_choices as choices  # noqa: E402
from gi.repository import GdkPixbuf, Gimp, GLib, Gtk  # noqa: E402
from impasto_pixels import read_selection_over, read_whole  # noqa: E402

from impasto.protocol.client import Client, DaemonError, DaemonUnavailable, new_job_id  # noqa: E402
from impasto.protocol.messages import RESULT, Image, Style, Submit  # noqa: E402

DELAY_MS = 500  # a moment after a choice changes: a slider dragged starts one job, not dozens
ANSWER_S = 5.0  # the most the daemon may be silent (it may be finishing another job's iteration)
# The choices the picture depends on (quality only adds detail the preview's size cannot show).
SHOWN = ("style-source", "style-preset", "style-file", "style-image", "style-pattern", "strength", "keep-colors",
         "brush-size", "seed")


class Preview:
    """A small picture in the dialog, and a line saying what it shows."""

    def __init__(self, endpoint: str, config: Gimp.ProcedureConfig, image: Gimp.Image, layer: Gimp.Layer,
                 style_of: Callable[[Gimp.ProcedureConfig], tuple[Style, str]]) -> None:
        self.endpoint, self.config, self.style_of = endpoint, config, style_of
        width, height, pixels = read_whole(layer, choices.PREVIEW_SIDE)
        self.content = Image(width, height, 3, pixels)
        self.mask = read_selection_over(image, layer, choices.PREVIEW_SIDE)
        self.picture = Gtk.Image()
        self.picture.set_size_request(choices.PREVIEW_SIDE, choices.PREVIEW_SIDE)
        self.status = Gtk.Label(label="The preview comes when the daemon answers.", xalign=0.0, wrap=True,
                                max_width_chars=24)
        self.widget = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
        self.widget.pack_start(self.picture, False, False, 0)
        self.widget.pack_start(self.status, False, False, 0)
        self.timer = 0
        self.stop: threading.Event | None = None
        self.generation = 0  # of the latest job: only its picture is shown
        for name in SHOWN:
            config.connect(f"notify::{name}", lambda *_: self.schedule())

    def schedule(self) -> None:
        """Redo the preview in a moment (again from then, if asked again meanwhile)."""
        if self.timer:
            GLib.source_remove(self.timer)
        self.timer = GLib.timeout_add(DELAY_MS, self._start)

    def cancel(self) -> None:
        if self.timer:
            GLib.source_remove(self.timer)
            self.timer = 0
        if self.stop is not None:
            self.stop.set()

    def _start(self) -> bool:
        self.timer = 0
        self.cancel()
        try:
            style, _ = self.style_of(self.config)  # GIMP is asked here, in the main thread, never in the job's
        except (choices.PluginError, GLib.Error) as exc:
            self.status.set_text(f"No preview: {getattr(exc, 'message', exc)}")
            return False
        feather = choices.feather_for(choices.Region(0, 0, self.content.width, self.content.height), True) \
            if self.mask is not None else 0
        params = choices.preview_params(self.config.get_property("strength"), self.config.get_property("seed"),
                                        self.config.get_property("keep-colors"),
                                        self.config.get_property("brush-size"), feather)
        submit = choices.build_submit(f"preview-{new_job_id()}", self.content, style, params, self.mask)
        self.generation += 1
        self.stop = threading.Event()
        threading.Thread(target=self._work, args=(submit, self.stop, self.generation), daemon=True).start()
        self.status.set_text("Painting the preview…")
        return False

    def _work(self, submit: Submit, stop: threading.Event, generation: int) -> None:
        """In the job's thread: run it, and hand the picture (or the trouble) to the main loop."""
        try:
            with Client(self.endpoint, timeout=ANSWER_S) as client:
                for reply in client.run_job(submit, should_stop=stop.is_set):
                    if reply.type == RESULT and reply.image is not None:
                        GLib.idle_add(self._show, generation, reply.image)
        except (DaemonError, DaemonUnavailable) as exc:
            GLib.idle_add(self._say, generation, f"No preview: {exc}")

    def _show(self, generation: int, picture: Image) -> bool:
        if generation == self.generation:
            width, height, rgb = choices.thumbnail_rgb(picture)
            self.picture.set_from_pixbuf(GdkPixbuf.Pixbuf.new_from_bytes(
                GLib.Bytes.new(rgb), GdkPixbuf.Colorspace.RGB, False, 8, width, height, width * 3))
            self.status.set_text("The look of the result, small (its detail comes with the run).")
        return False

    def _say(self, generation: int, text: str) -> bool:
        if generation == self.generation:
            self.status.set_text(text)
        return False
