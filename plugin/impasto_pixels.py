"""What the plug-in reads from GIMP: the layer to stylise, its pixels, the selection over it, and
the style the procedure's arguments name."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
import impasto_choices as choices  # noqa: E402
from gi.repository import Gegl, Gimp  # noqa: E402

if TYPE_CHECKING:
    from gi.repository import Gio

    from impasto.protocol.messages import Style


def read_pixels(drawable: Gimp.Drawable, x: int, y: int, width: int, height: int, fmt: str) -> bytes:
    buffer = drawable.get_buffer()
    return bytes(buffer.get(Gegl.Rectangle.new(x, y, width, height), 1.0, fmt, Gegl.AbyssPolicy.CLAMP))


def reduced(layer: Gimp.Layer, side: int) -> tuple[float, int, int]:
    """The scale that brings the layer's long side to at most `side`, and the size it gives."""
    width, height = layer.get_width(), layer.get_height()
    scale = min(1.0, side / max(width, height))
    return scale, max(1, round(width * scale)), max(1, round(height * scale))


def read_whole(layer: Gimp.Layer, side: int) -> tuple[int, int, bytes]:
    """The whole layer reduced (by GEGL, as it reads) to a long side of at most `side`, RGB."""
    scale, small_w, small_h = reduced(layer, side)
    data = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, small_w, small_h), scale, "R'G'B' u8",
                                  Gegl.AbyssPolicy.CLAMP)
    return small_w, small_h, bytes(data)


def read_selection_over(image: Gimp.Image, layer: Gimp.Layer, side: int) -> bytes | None:
    """The selection over the whole layer, reduced as read_whole reduces the layer; None without one."""
    if not Gimp.Selection.bounds(image)[1]:
        return None
    scale, small_w, small_h = reduced(layer, side)
    _, offset_x, offset_y = layer.get_offsets()
    rectangle = Gegl.Rectangle.new(round(offset_x * scale), round(offset_y * scale), small_w, small_h)
    return bytes(image.get_selection().get_buffer().get(rectangle, scale, "Y u8", Gegl.AbyssPolicy.NONE))


def style_from_image(image: Gimp.Image) -> Style:
    """Another open image, flattened as it looks, as RGB bytes."""
    from impasto.protocol.messages import Image, Style

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


def style_from_file(path: Gio.File) -> Style:
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, path)
    try:
        return style_from_image(image)
    finally:
        image.delete()


def style_from_pattern(pattern: Gimp.Pattern) -> Style:
    from impasto.protocol.messages import Image, Style

    gi.require_version("Babl", "0.1")
    from gi.repository import Babl

    buffer = pattern.get_buffer(1024, 1024, Babl.format("R'G'B' u8"))
    extent = buffer.get_extent()
    data = bytes(buffer.get(extent, 1.0, "R'G'B' u8", Gegl.AbyssPolicy.CLAMP))
    return Style(image=Image(extent.width, extent.height, 3, data))


def choose_style(config: Gimp.ProcedureConfig) -> tuple[Style, str]:
    """The style the procedure's arguments name, and its name: "Style from" decides."""
    source = config.get_property("style-source")
    given = {"file": config.get_property("style-file"), "image": config.get_property("style-image"),
             "pattern": config.get_property("style-pattern")}
    source = choices.check_style_source(source, given.get(source) is not None)
    if source == "image":
        return style_from_image(given["image"]), given["image"].get_name()
    if source == "file":
        return style_from_file(given["file"]), os.path.basename(given["file"].get_path() or "style file")
    if source == "pattern":
        return style_from_pattern(given["pattern"]), given["pattern"].get_name()
    return choices.preset_style(config.get_property("style-preset") or "")


def selection_region(image: Gimp.Image, layer: Gimp.Layer,
                     context: bool = True) -> tuple[choices.Region, bytes | None]:
    """The region to send (impasto_choices.Region, layer coordinates) and the selection mask over it (or
    None). `context`: some of the layer around the selection goes too (a job's), or none (a preset's)."""
    _, offset_x, offset_y = layer.get_offsets()
    size = (layer.get_width(), layer.get_height())
    _, selected, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
    if not selected:
        return choices.region_to_send(size, None), None
    # Selection bounds are in image coordinates.
    region = choices.region_to_send(size, (x1 - offset_x, y1 - offset_y, x2 - offset_x, y2 - offset_y), context)
    mask = read_pixels(image.get_selection(), region.x + offset_x, region.y + offset_y, region.width, region.height,
                       "Y u8")
    return region, mask


def check_target(image: Gimp.Image, drawables: list[Gimp.Drawable]) -> Gimp.Layer:
    """The one RGB layer to take a preset from; PluginError otherwise."""
    if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer) or isinstance(drawables[0], Gimp.GroupLayer):
        raise choices.PluginError("Select a single layer (not a group) to save as a style preset.")
    return check_targets(image, drawables)[0]


def check_targets(image: Gimp.Image, drawables: list[Gimp.Drawable]) -> list[Gimp.Layer]:
    """The RGB layers to stylise, bottom first (an animation's frame order): the selected layers, and
    every layer inside a selected group; PluginError when there are none."""
    if image.get_base_type() != Gimp.ImageBaseType.RGB:
        raise choices.PluginError("Impasto works on RGB images: use Image > Mode > RGB first.")
    if not drawables or not all(isinstance(drawable, Gimp.Layer) for drawable in drawables):
        raise choices.PluginError("Impasto works on layers: select one or more layers (not a channel or a mask).")
    order = {layer.get_id(): place for place, layer in enumerate(_all_layers(image.get_layers()))}
    chosen = {layer.get_id(): layer for drawable in drawables for layer in _all_layers([drawable])}
    if not chosen:
        raise choices.PluginError("The selected layer group holds no layers to stylise.")
    return sorted(chosen.values(), key=lambda layer: order.get(layer.get_id(), 0), reverse=True)


def _all_layers(layers: list[Gimp.Layer]) -> list[Gimp.Layer]:
    """The layers, top first, with each group replaced by the layers inside it."""
    found = []
    for layer in layers:
        if isinstance(layer, Gimp.GroupLayer):
            found += _all_layers(layer.get_children())
        else:
            found.append(layer)
    return found
