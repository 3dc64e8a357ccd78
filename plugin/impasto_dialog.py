"""The Impasto dialog: the style first (one "Style from" choice, a preset gallery, the chosen
style's thumbnail), then strength, quality with its forecast, and an Advanced part.

Every widget is bound to the procedure's config, so what the dialog shows is what runs, and
GIMP's Reset restores both. Needs GIMP's UI; the logic it asks about lives in impasto_choices
and impasto_daemon.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
import impasto_choices as choices  # noqa: E402
from gi.repository import GdkPixbuf, Gimp, GimpUi, GLib, GObject, Gtk  # noqa: E402
from impasto_help import replace_help_button  # noqa: E402
from impasto_pixels import choose_style  # noqa: E402
from impasto_preview import Preview  # noqa: E402

if TYPE_CHECKING:
    from impasto_daemon import Daemon

    from impasto.protocol.messages import PresetInfo

THUMB = 96  # the chosen style's thumbnail, pixels
SOURCE_KEYS = {"preset": "P", "file": "I", "image": "e", "pattern": "n"}  # Alt+letter for "Style from"
# GIMP 3.0's theme paints a hovered gallery item white, hiding its label: a faint highlight instead.
GALLERY_CSS = b"iconview:hover { background-color: rgba(255, 255, 255, 0.12); }"


def pixbuf_of(width: int, height: int, rgb: bytes, side: int = THUMB) -> GdkPixbuf.Pixbuf:
    pixbuf = GdkPixbuf.Pixbuf.new_from_bytes(GLib.Bytes.new(rgb), GdkPixbuf.Colorspace.RGB, False, 8, width,
                                             height, width * 3)
    scale = side / max(width, height)
    return pixbuf.scale_simple(max(1, round(width * scale)), max(1, round(height * scale)),
                               GdkPixbuf.InterpType.BILINEAR)


class Gallery:
    """The daemon's presets as thumbnails; selecting one sets `style-preset` and the settings it
    recommends. Filled when the daemon answers (it may be starting: `daemon.presets()` is polled);
    then `on_filled()`."""

    def __init__(self, config: Gimp.ProcedureConfig, daemon: Daemon, on_filled: Callable[[], None]) -> None:
        self.config, self.daemon, self.on_filled = config, daemon, on_filled
        self.store = Gtk.ListStore(GdkPixbuf.Pixbuf, str, str, str)  # thumbnail, label, tooltip, preset name
        self.view = Gtk.IconView.new_with_model(self.store)
        self.view.set_pixbuf_column(0)
        self.view.set_text_column(1)
        self.view.set_tooltip_column(2)
        self.view.set_item_width(72)
        self.view.set_columns(-1)  # as many as fit, in rows
        self.view.set_selection_mode(Gtk.SelectionMode.BROWSE)
        self.view.connect("selection-changed", self._selected)
        css = Gtk.CssProvider()
        css.load_from_data(GALLERY_CSS)
        self.view.get_style_context().add_provider(css, Gtk.STYLE_PROVIDER_PRIORITY_APPLICATION)
        self.status = Gtk.Label(xalign=0.0, wrap=True, max_width_chars=60)
        scrolled = Gtk.ScrolledWindow(min_content_height=236, min_content_width=480)  # two rows of labelled thumbnails
        scrolled.set_policy(Gtk.PolicyType.NEVER, Gtk.PolicyType.AUTOMATIC)
        scrolled.add(self.view)
        self.widget = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
        self.widget.pack_start(scrolled, True, True, 0)
        self.widget.pack_start(self.status, False, False, 0)
        self.infos: dict[str, PresetInfo] = {}
        self.thumbnails: dict[str, GdkPixbuf.Pixbuf | None] = {}
        self.status.set_text(daemon.state_text())
        self.polling = True
        GLib.timeout_add(300, self._poll)

    def wake(self) -> None:
        """'Start the daemon if missing' was turned on: start it, and fill when it answers."""
        if self.config.get_property("start-daemon"):
            self.daemon.start_now()
        self.status.set_text(self.daemon.state_text())
        if not self.polling and self.daemon.waiting():
            self.polling = True
            GLib.timeout_add(300, self._poll)

    def _poll(self) -> bool:
        infos = self.daemon.presets()
        if infos is None:
            self.status.set_text(self.daemon.state_text())
            self.polling = self.daemon.waiting()  # keep polling while it starts
            return self.polling
        self.polling = False
        for info in infos:
            self.infos[info.name] = info
            pixbuf = pixbuf_of(*choices.thumbnail_rgb(info.thumbnail), side=64) if info.thumbnail else None
            self.thumbnails[info.name] = pixbuf
            self.store.append([pixbuf, choices.display_name(info.name), f"{info.name}: {info.description}",
                               info.name])
        self.status.set_text(f"{len(infos)} presets. Add your own with Filters ▸ Artistic ▸ "
                             "Save Layer as Impasto Style Preset…")
        self.show_current()
        self.on_filled()
        return False

    def show_current(self) -> None:
        name = self.config.get_property("style-preset")
        for row in self.store:
            if row[3] == name:
                self.view.select_path(row.path)
                self.view.set_cursor(row.path, None, False)  # the arrow keys move on from here
                self.view.scroll_to_path(row.path, False, 0, 0)
                return

    def _selected(self, view: Gtk.IconView) -> None:
        paths = view.get_selected_items()
        if not paths:
            return
        name = self.store[paths[0]][3]
        if name != self.config.get_property("style-preset"):
            self.config.set_property("style-preset", name)
            for key, value in choices.recommended(self.infos[name]).items():
                self.config.set_property(key, value)

    def thumbnail(self, name: str) -> GdkPixbuf.Pixbuf | None:
        pixbuf = self.thumbnails.get(name)
        return pixbuf.scale_simple(THUMB, THUMB * pixbuf.get_height() // pixbuf.get_width(),
                                   GdkPixbuf.InterpType.BILINEAR) if pixbuf else None


class StyleSection:
    """"Style from" radio buttons, the chosen style's thumbnail, and the one widget that source uses."""

    def __init__(self, dialog: GimpUi.ProcedureDialog, config: Gimp.ProcedureConfig, daemon: Daemon,
                 current_image: Gimp.Image, on_presets: Callable[[], None]) -> None:
        self.config = config
        self.thumb = Gtk.Image()
        self.thumb.set_size_request(THUMB, THUMB)
        self.stack = Gtk.Stack()
        # When the presets come, the thumbnail can show the chosen one, and the daemon can forecast.
        self.gallery = Gallery(config, daemon, lambda: self._presets_came(on_presets))
        self.stack.add_named(self.gallery.widget, "preset")
        # The stack is as tall as the gallery (the dialog keeps its size); the choosers keep theirs.
        for name, chooser in (("file", self._file_chooser()), ("image", self._image_chooser(dialog, current_image)),
                              ("pattern", dialog.get_widget("style-pattern", GObject.TYPE_NONE))):
            chooser.set_valign(Gtk.Align.START)
            self.stack.add_named(chooser, name)
        self.radios = {}
        row = Gtk.Box(spacing=8)
        row.pack_start(Gtk.Label(label="Style from:"), False, False, 0)
        group = None
        for key, label in choices.STYLE_SOURCES.items():
            radio = Gtk.RadioButton.new_with_mnemonic_from_widget(group, with_mnemonic(label, SOURCE_KEYS[key]))
            group = group or radio
            radio.connect("toggled", self._toggled, key)
            row.pack_start(radio, False, False, 0)
            self.radios[key] = radio
        left = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
        left.pack_start(row, False, False, 0)
        left.pack_start(self.stack, True, True, 0)
        self.widget = Gtk.Box(spacing=12)
        self.widget.pack_start(left, True, True, 0)
        self.widget.pack_start(self.thumb, False, False, 0)
        for name in ("style-source", "style-preset", "style-file", "style-image", "style-pattern"):
            config.connect(f"notify::{name}", lambda *_: self.refresh())
        self.refresh()

    def _file_chooser(self) -> Gtk.Widget:
        self.file_button = Gtk.FileChooserButton(title="Choose a painting", action=Gtk.FileChooserAction.OPEN)
        images = Gtk.FileFilter()
        images.set_name("Images")
        images.add_pixbuf_formats()
        self.file_button.add_filter(images)
        preview = Gtk.Image()
        self.file_button.set_preview_widget(preview)
        self.file_button.connect("update-preview", self._update_preview, preview)
        self.file_button.connect("file-set", lambda b: self.config.set_property("style-file", b.get_file()))
        return self.file_button

    def _update_preview(self, chooser: Gtk.FileChooser, preview: Gtk.Image) -> None:
        path = chooser.get_preview_filename()
        try:
            preview.set_from_pixbuf(GdkPixbuf.Pixbuf.new_from_file_at_scale(path, 160, 160, True))
            chooser.set_preview_widget_active(True)
        except (GLib.Error, TypeError):
            chooser.set_preview_widget_active(False)

    def _image_chooser(self, dialog: GimpUi.ProcedureDialog, current_image: Gimp.Image) -> Gtk.Widget:
        if hasattr(GimpUi, "ImageChooser"):  # GIMP 3.2 draws an image argument itself
            return dialog.get_widget("style-image", GObject.TYPE_NONE)
        # GIMP 3.0 does not: a combo of the other open images.
        combo = GimpUi.ImageComboBox.new(lambda image, *_: image != current_image)

        def changed(widget: Gtk.Widget) -> None:
            chosen, image_id = widget.get_active()
            self.config.set_property("style-image", Gimp.Image.get_by_id(image_id) if chosen else None)

        GObject.Object.connect(combo, "changed", changed)  # GimpIntComboBox.connect means something else
        chosen = self.config.get_property("style-image")
        if chosen is not None:
            combo.set_active(chosen.get_id())
        return combo

    def _toggled(self, radio: Gtk.RadioButton, key: str) -> None:
        if radio.get_active() and self.config.get_property("style-source") != key:
            self.config.set_property("style-source", key)

    def _presets_came(self, on_presets: Callable[[], None]) -> None:
        self.refresh()
        on_presets()

    def refresh(self) -> None:
        """Show the chosen source's widget and the style's thumbnail (after any change, Reset included)."""
        source = self.config.get_property("style-source")
        source = source if source in self.radios else choices.DEFAULT_STYLE_SOURCE
        self.radios[source].set_active(True)
        self.stack.set_visible_child_name(source)
        style_file = self.config.get_property("style-file")
        if style_file is None:
            self.file_button.unselect_all()  # Reset: the button forgets the file too
        elif self.file_button.get_file() is None or not self.file_button.get_file().equal(style_file):
            self.file_button.set_file(style_file)
        self.gallery.show_current()
        self.thumb.set_from_pixbuf(self._thumbnail(source))

    def _thumbnail(self, source: str) -> GdkPixbuf.Pixbuf | None:
        try:
            if source == "preset":
                return self.gallery.thumbnail(self.config.get_property("style-preset"))
            if source == "file" and self.config.get_property("style-file") is not None:
                path = self.config.get_property("style-file").get_path()
                return GdkPixbuf.Pixbuf.new_from_file_at_scale(path, THUMB, THUMB, True)
            if source == "image" and self.config.get_property("style-image") is not None:
                return self.config.get_property("style-image").get_thumbnail(THUMB, THUMB,
                                                                             Gimp.PixbufTransparency.SMALL_CHECKS)
            if source == "pattern" and self.config.get_property("style-pattern") is not None:
                return pattern_pixbuf(self.config.get_property("style-pattern"))
        except (GLib.Error, TypeError, AttributeError):
            pass
        return None


def pattern_pixbuf(pattern: Gimp.Pattern) -> GdkPixbuf.Pixbuf:
    gi.require_version("Babl", "0.1")
    gi.require_version("Gegl", "0.4")
    from gi.repository import Babl, Gegl

    buffer = pattern.get_buffer(THUMB, THUMB, Babl.format("R'G'B' u8"))
    extent = buffer.get_extent()
    data = bytes(buffer.get(extent, 1.0, "R'G'B' u8", Gegl.AbyssPolicy.CLAMP))
    return pixbuf_of(extent.width, extent.height, data)


def packed(*rows: Gtk.Widget, spacing: int = 6, orientation: Gtk.Orientation = Gtk.Orientation.VERTICAL,
           expand_last: bool = False) -> Gtk.Box:
    box = Gtk.Box(orientation=orientation, spacing=spacing)
    for index, row in enumerate(rows):
        grow = expand_last and index == len(rows) - 1
        box.pack_start(row, grow, grow, 0)
    return box


def show(procedure: Gimp.Procedure, config: Gimp.ProcedureConfig, daemon: Daemon, current_image: Gimp.Image,
         forecast: Callable[[Gimp.ProcedureConfig], str], layer: Gimp.Layer | None = None, layers: int = 1) -> bool:
    """Run the dialog; True when the user pressed OK. `daemon` answers presets (impasto_daemon.Daemon);
    `forecast(config)` is the line about sizes and time, refreshed as settings change; `layer`, the
    (top) one to paint, is previewed (impasto_preview); over several `layers`, the user says whether
    they are animation frames."""
    GimpUi.init("impasto")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Impasto Style Transfer")
    estimate = Gtk.Label(xalign=0.0, wrap=True, max_width_chars=70)

    def update_estimate(*_: object) -> None:
        estimate.set_text(forecast(config))

    for name in ("quality", "paint-size", "strength", "brush-size", "start-daemon"):
        config.connect(f"notify::{name}", update_estimate)
    update_estimate()
    preview = Preview(daemon.endpoint, config, current_image, layer, choose_style) if layer is not None else None

    def presets_came() -> None:  # the daemon answers: the estimate, and the first preview
        update_estimate()
        if preview is not None:
            preview.schedule()

    style = StyleSection(dialog, config, daemon, current_image, on_presets=presets_came)
    config.connect("notify::start-daemon", lambda *_: style.gallery.wake())  # at once, not at the next opening
    labels = Gtk.SizeGroup(mode=Gtk.SizeGroupMode.HORIZONTAL)  # one column of labels, GIMP's and ours
    strength = packed(labelled(dialog.get_scale_entry("strength", 1.0), labels),
                      choice_row(config, "keep-colors", "Colo_urs", labels),
                      labelled(dialog.get_scale_entry("brush-size", 1.0), labels))
    advanced = Gtk.Expander(label="_Advanced", use_underline=True)
    advanced.add(packed(*(dialog.get_widget(name, GObject.TYPE_NONE)
                          for name in ("seed", "keep-previews", *(["start-daemon"] if daemon.can_start else []),
                                       "endpoint"))))  # from a sandbox, or beside a service, nothing to start
    quality = packed(choice_row(config, "quality", "_Quality", labels),
                     choice_row(config, "paint-size", "Si_ze", labels), estimate,  # titled by their own labels
                     *([dialog.get_widget("animation", GObject.TYPE_NONE)] if layers > 1 else []))
    content = packed(frame("Style", style.widget), frame("Strength", strength), quality, advanced, spacing=12)
    if preview is not None:
        content = packed(content, frame("Preview", preview.widget), orientation=Gtk.Orientation.HORIZONTAL,
                         spacing=18)
    content.set_border_width(12)
    dialog.get_content_area().pack_start(content, True, True, 0)
    content.show_all()

    replace_help_button(dialog)
    # The gallery has the keys: arrows choose a preset, Enter (or a double click) runs it.
    style.gallery.view.connect("item-activated", lambda *_: dialog.response(Gtk.ResponseType.OK))
    style.gallery.view.grab_focus()
    accepted = dialog.run()
    if preview is not None:
        preview.cancel()
    dialog.destroy()
    return accepted


def with_mnemonic(label: str, key: str) -> str:
    """`label` with its first `key` underlined (Alt+key reaches it)."""
    at = label.index(key)
    return f"{label[:at]}_{label[at:]}"


def labelled(widget: Gtk.Widget, labels: Gtk.SizeGroup) -> Gtk.Widget:
    labels.add_widget(GimpUi.Labeled.get_label(widget))
    return widget


def choice_row(config: Gimp.ProcedureConfig, name: str, label: str, labels: Gtk.SizeGroup) -> Gtk.Box:
    """A label with a mnemonic and a combo for a choice argument (GIMP's own choice widget gives
    its label no mnemonic: "no mnemonic for property" on the console, and no Alt+key)."""
    combo = GimpUi.prop_choice_combo_box_new(config, name)
    combo.set_hexpand(True)
    title = Gtk.Label.new_with_mnemonic(label)
    title.set_xalign(0.0)
    title.set_mnemonic_widget(combo)
    labels.add_widget(title)
    return packed(title, combo, orientation=Gtk.Orientation.HORIZONTAL, spacing=12, expand_last=True)


def frame(title: str, child: Gtk.Widget) -> Gtk.Frame:
    label = Gtk.Label(xalign=0.0)
    label.set_markup(f"<b>{GLib.markup_escape_text(title)}</b>")
    return packed(label, child)
