#!/usr/bin/env python3
"""Impasto Style Transfer for GIMP 3: Filters > Artistic > Impasto Style Transfer...

Sends the active layer (or the selected part of it, with some context around) and a style to
the Impasto daemon, and adds what comes back as new layers in a group above the layer while the
optimisation runs. The original layer is never modified, and the whole run is one undo step.

Needs only GIMP's own Python with pyzmq and msgpack: the daemon does the heavy lifting. The
`protocol` package sits beside this file (the installer copies it), with `impasto.json`, which
names the daemon's endpoint and the command that starts it.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
if os.path.isdir(os.path.join(HERE, "vendor")):  # pyzmq/msgpack the installer fetched for us
    sys.path.insert(0, os.path.join(HERE, "vendor"))

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
import impasto_job as job  # noqa: E402
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

from protocol.messages import DEFAULT_PRESET, JobParams  # noqa: E402

PROCEDURE = "plug-in-impasto-style-transfer"
# The procedure's arguments, in the order the dialog shows them.
ARGUMENTS = ("style-preset", "style-file", "style-image", "use-pattern", "style-pattern", "strength", "quality",
             "seed", "keep-previews", "start-daemon", "endpoint")


# --- pixels ----------------------------------------------------------------------------

def read_pixels(drawable, x, y, width, height, fmt):
    buffer = drawable.get_buffer()
    return bytes(buffer.get(Gegl.Rectangle.new(x, y, width, height), 1.0, fmt, Gegl.AbyssPolicy.CLAMP))


def style_from_image(image):
    """Another open image, flattened as it looks, as RGB bytes."""
    from protocol.messages import Image, Style

    copy = image.duplicate()
    try:
        layer = copy.flatten()
        if copy.get_base_type() != Gimp.ImageBaseType.RGB:
            copy.convert_rgb()
            layer = copy.get_layers()[0]
        width, height = layer.get_width(), layer.get_height()
        data = read_pixels(layer, 0, 0, width, height, "R'G'B' u8")
    finally:
        copy.delete()
    return Style(image=Image(width, height, 3, data))


def style_from_file(path):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, path)
    try:
        return style_from_image(image)
    finally:
        image.delete()


def style_from_pattern(pattern):
    from protocol.messages import Image, Style

    gi.require_version("Babl", "0.1")
    from gi.repository import Babl

    buffer = pattern.get_buffer(1024, 1024, Babl.format("R'G'B' u8"))
    extent = buffer.get_extent()
    data = bytes(buffer.get(extent, 1.0, "R'G'B' u8", Gegl.AbyssPolicy.CLAMP))
    return Style(image=Image(extent.width, extent.height, 3, data))


def choose_style(config):
    """The style the procedure's arguments name (see impasto_job.style_source), and its name."""
    image = config.get_property("style-image")
    style_file = config.get_property("style-file")
    path = style_file.get_path() if style_file is not None else None
    pattern = config.get_property("style-pattern")
    source = job.style_source(image is not None, path, config.get_property("use-pattern"), pattern is not None)
    if source == "image":
        return style_from_image(image), image.get_name()
    if source == "file":
        return style_from_file(style_file), os.path.basename(path)
    if source == "pattern":
        return style_from_pattern(pattern), pattern.get_name()
    return job.preset_style(config.get_property("style-preset") or "")


def selection_region(image, layer):
    """The region to send (impasto_job.Region, layer coordinates) and the selection mask over it (or None)."""
    _, offset_x, offset_y = layer.get_offsets()
    size = (layer.get_width(), layer.get_height())
    _, selected, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
    if not selected:
        return job.region_to_send(size, None), None
    # Selection bounds are in image coordinates.
    region = job.region_to_send(size, (x1 - offset_x, y1 - offset_y, x2 - offset_x, y2 - offset_y))
    mask = read_pixels(image.get_selection(), region.x + offset_x, region.y + offset_y, region.width, region.height,
                       "Y u8")
    return region, mask


# --- layers ----------------------------------------------------------------------------

class ResultLayers:
    """The group above the source layer, and the layers the previews and the result become."""

    def __init__(self, image, source, region, name, keep_previews):
        self.image = image
        self.x, self.y, self.width, self.height = region.x, region.y, region.width, region.height
        _, offset_x, offset_y = source.get_offsets()
        self.x += offset_x
        self.y += offset_y
        self.has_alpha = source.has_alpha()
        self.keep_previews = keep_previews
        self.group = Gimp.GroupLayer.new(image, f"Impasto: {name}")
        image.insert_layer(self.group, source.get_parent(), image.get_item_position(source))
        self.latest = None

    def add(self, picture, name):
        """A new layer for each preview when they are kept; else one layer, repainted (seven
        full-size preview layers of a 6000×4000 image took 951 MB in GIMP)."""
        if self.latest is not None and not self.keep_previews:
            layer = self.latest
            layer.set_name(name)
        else:
            kind = Gimp.ImageType.RGBA_IMAGE if picture.channels == 4 else Gimp.ImageType.RGB_IMAGE
            layer = Gimp.Layer.new(self.image, name, picture.width, picture.height, kind, 100.0,
                                   Gimp.LayerMode.NORMAL)
            self.image.insert_layer(layer, self.group, 0)
            layer.set_offsets(self.x, self.y)
        fmt = "R'G'B'A u8" if picture.channels == 4 else "R'G'B' u8"
        buffer = layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, picture.width, picture.height), fmt, picture.packed())
        buffer.flush()
        layer.update(0, 0, picture.width, picture.height)
        self.latest = layer
        Gimp.displays_flush()
        return layer


# --- the procedure ---------------------------------------------------------------------

def show_dialog(procedure, config, forecast):
    """The procedure's dialog; False when the user cancels. `forecast(config)` is the line that
    tells, before OK, the sizes the job works at and how long it should take."""
    gi.require_version("GimpUi", "3.0")
    gi.require_version("Gtk", "3.0")
    from gi.repository import GimpUi, Gtk

    GimpUi.init("impasto")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Impasto Style Transfer")
    dialog.get_scale_entry("strength", 1.0)
    dialog.fill([name for name in ARGUMENTS if name != "style-image"])
    # GIMP 3.0's dialog draws no widget for an image argument: add a combo of open images.
    images = GimpUi.ImageComboBox.new(None, None)
    row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=12)
    row.pack_start(Gtk.Label(label="Style from open image"), False, False, 0)
    use_image = Gtk.CheckButton(label="use it")
    row.pack_start(images, True, True, 0)
    row.pack_start(use_image, False, False, 0)
    dialog.get_content_area().pack_start(row, False, False, 6)
    row.show_all()
    estimate = Gtk.Label(label=forecast(config), xalign=0.0)
    estimate.set_line_wrap(True)
    dialog.get_content_area().pack_start(estimate, False, False, 6)
    estimate.show()
    for name in ("quality", "strength"):
        config.connect(f"notify::{name}", lambda *_: estimate.set_text(forecast(config)))
    accepted = dialog.run()
    if accepted:
        chosen, image_id = images.get_active()
        if chosen and use_image.get_active():
            config.set_property("style-image", Gimp.Image.get_by_id(image_id))
    dialog.destroy()
    return accepted


def check_target(image, drawables):
    """The one RGB layer to stylise; PluginError otherwise."""
    if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
        raise job.PluginError("Impasto works on one layer: select a single layer.")
    if image.get_base_type() != Gimp.ImageBaseType.RGB:
        raise job.PluginError("Impasto works on RGB images: use Image > Mode > RGB first.")
    if isinstance(drawables[0], Gimp.GroupLayer):
        raise job.PluginError("Impasto cannot stylise a layer group: select one of its layers.")
    return drawables[0]


def forecast_text(image, drawables, endpoint, config):
    """The dialog's line about sizes and time for the current settings ("" when there is no layer)."""
    try:
        layer = check_target(image, drawables)
        region, mask = selection_region(image, layer)
    except job.PluginError:
        return ""
    layer_side = max(layer.get_width(), layer.get_height()) if mask is not None else 0
    params = job.job_params(config.get_property("quality"), config.get_property("strength"),
                            config.get_property("seed"), 0, layer_side)
    return job.estimate_text(job.forecast(endpoint, region, params))


def stream_into_layers(client, submit, layers, style_name):
    """Run the job, turning its previews and result into layers and its progress into GIMP's."""
    from protocol.messages import PREVIEW, PROGRESS, RESULT

    previews = 0
    for reply in client.run_job(submit):
        if reply.type == PROGRESS:
            progress = reply.progress
            Gimp.progress_set_text(job.progress_text(progress))
            Gimp.progress_update(progress.iteration / progress.total)
        elif reply.type == PREVIEW:
            previews += 1
            layers.add(reply.image, job.preview_name(previews, reply.header["iteration"], reply.header["total"]))
        elif reply.type == RESULT:
            layers.add(reply.image, f"Impasto {style_name}")


def stylize(procedure, run_mode, image, drawables, config, data):
    from protocol.client import Client, DaemonError, DaemonUnavailable, new_job_id
    from protocol.messages import Image

    settings = job.load_settings(HERE)
    endpoint = job.endpoint_of(config.get_property("endpoint"), settings)
    if run_mode == Gimp.RunMode.INTERACTIVE and not show_dialog(
            procedure, config, lambda config: forecast_text(image, drawables, endpoint, config)):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())

    def fail(message):
        error = GLib.Error.new_literal(Gimp.PlugIn.error_quark(), message, 0)
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, error)

    Gimp.progress_init("Impasto: connecting to the daemon…")
    try:
        layer = check_target(image, drawables)
        region, mask = selection_region(image, layer)
        style, style_name = choose_style(config)
        job.connect(endpoint, settings, config.get_property("start-daemon"), on_wait=Gimp.progress_pulse,
                    on_start=lambda log: Gimp.progress_set_text("Starting the Impasto daemon (loading VGG19)…"))
    except job.PluginError as exc:
        return fail(str(exc))
    except GLib.Error as exc:
        return fail(f"Impasto could not read the style: {exc.message}")

    channels = 4 if layer.has_alpha() else 3
    content = Image(region.width, region.height, channels,
                    read_pixels(layer, region.x, region.y, region.width, region.height,
                                "R'G'B'A u8" if channels == 4 else "R'G'B' u8"))
    layer_side = max(layer.get_width(), layer.get_height()) if mask is not None else 0
    params = job.job_params(config.get_property("quality"), config.get_property("strength"),
                            config.get_property("seed"), job.feather_for(region, mask is not None), layer_side)
    submit = job.build_submit(new_job_id(), content, style, params, mask)

    image.undo_group_start()
    layers = ResultLayers(image, layer, region, style_name, config.get_property("keep-previews"))
    client = Client(endpoint, timeout=2.0)
    try:
        stream_into_layers(client, submit, layers, style_name)
    except (DaemonError, DaemonUnavailable) as exc:
        if layers.latest is None:  # nothing came back: leave no empty group behind
            image.remove_layer(layers.group)
        image.undo_group_end()
        return fail(f"Impasto: {exc}")
    finally:
        client.close()
    image.undo_group_end()
    Gimp.progress_end()
    Gimp.displays_flush()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


class Impasto(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROCEDURE]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, stylize, None)
        procedure.set_image_types("RGB*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label("Impasto Style Transfer…")
        procedure.add_menu_path("<Image>/Filters/Artistic")
        procedure.set_documentation(
            "Paint the layer in the style of another picture",
            "Neural style transfer (Gatys et al.) through the Impasto daemon. The result and its "
            "progressive previews become new layers in a group above the layer; with a selection, only "
            "the selection is stylised, with a soft edge.",
            name)
        procedure.set_attribution("Impasto", "Impasto", "2026")
        flags = GObject.ParamFlags.READWRITE
        procedure.add_string_argument("style-preset", "Style _preset",
                                      "A built-in style (used when no image, file or pattern is given)",
                                      DEFAULT_PRESET, flags)
        procedure.add_file_argument("style-file", "Style _file", "A painting to take the style from",
                                    Gimp.FileChooserAction.OPEN, True, None, flags)
        procedure.add_image_argument("style-image", "Style from open _image", "Another open image as the style",
                                     True, flags)
        procedure.add_boolean_argument("use-pattern", "_Use the pattern", "Take the style from the pattern",
                                       False, flags)
        procedure.add_pattern_argument("style-pattern", "St_yle pattern", "A GIMP pattern as the style",
                                       True, None, True, flags)
        procedure.add_double_argument("strength", "S_trength", *job.knob("strength"), flags)
        choice = Gimp.Choice.new()
        for index, (key, (label, *_)) in enumerate(job.QUALITIES.items()):
            choice.add(key, index, label, "")
        procedure.add_choice_argument("quality", "_Quality", "Size the picture is composed at, and the work spent "
                                      "on it and on its full-resolution detail",
                                      choice, job.DEFAULT_QUALITY, flags)
        procedure.add_int_argument("seed", "Random see_d", "Same seed, same picture", 0, 2**31 - 1,
                                   JobParams().seed, flags)
        procedure.add_boolean_argument("keep-previews", "_Keep every preview",
                                       "Keep each progressive result as a layer (else one layer shows the latest)",
                                       False, flags)
        procedure.add_boolean_argument("start-daemon", "Start the daemon if _missing",
                                       "Start the Impasto daemon if it is not running", True, flags)
        procedure.add_string_argument("endpoint", "Daemon _endpoint", "Empty: the one the installer wrote",
                                      "", flags)
        return procedure


if __name__ == "__main__":
    Gimp.main(Impasto.__gtype__, sys.argv)
