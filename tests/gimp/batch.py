"""Runs inside real GIMP (gimp-console-3.0 --batch-interpreter=python-fu-eval), driven by
tests/test_gimp_plugin.py: builds an image as `spec.json` describes, calls the Impasto plug-in
(its style transfer, or the procedure `spec["procedure"]` names) non-interactively through the
PDB, and writes what it finds to `result.json`.

GIMP evaluates this with exec(), so it reads its folder from the IMPASTO_BATCH_DIR variable.
"""

import json
import os
import time

from gi.repository import Gegl, Gimp

folder = os.environ["IMPASTO_BATCH_DIR"]
with open(os.path.join(folder, "spec.json")) as f:
    spec = json.load(f)
result = {}


def pixels(drawable, x, y, width, height, fmt):
    rect = Gegl.Rectangle.new(x, y, width, height)
    return bytes(drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP))


def pattern_bytes(width, height, channels, seed):
    """A deterministic picture with structure (gradients and stripes), not flat noise."""
    data = bytearray()
    for y in range(height):
        for x in range(width):
            data += bytes(((x * 255 // width + seed) % 256, (y * 255 // height) % 256,
                           ((x // 6 + y // 6) % 2) * 200 + 30))
            if channels == 4:
                data.append(255 if (x + y) % 17 else 128)
    return bytes(data)


base = Gimp.ImageBaseType.GRAY if spec.get("grey") else Gimp.ImageBaseType.RGB
image = Gimp.Image.new(spec["image_width"], spec["image_height"], base)
background = Gimp.Layer.new(image, "background", spec["image_width"], spec["image_height"],
                            Gimp.ImageType.GRAY_IMAGE if spec.get("grey") else Gimp.ImageType.RGB_IMAGE,
                            100.0, Gimp.LayerMode.NORMAL)
image.insert_layer(background, None, 0)
width, height = spec["layer_width"], spec["layer_height"]
channels = 4 if spec.get("alpha") else 3
kind = Gimp.ImageType.RGBA_IMAGE if channels == 4 else Gimp.ImageType.RGB_IMAGE
if spec.get("grey"):
    kind, channels = Gimp.ImageType.GRAY_IMAGE, 1
photo = Gimp.Layer.new(image, spec.get("photo_name", "photo"), width, height, kind, 100.0, Gimp.LayerMode.NORMAL)
image.insert_layer(photo, None, 0)
photo.set_offsets(*spec["layer_offsets"])
fmt = {1: "Y' u8", 3: "R'G'B' u8", 4: "R'G'B'A u8"}[channels]
if channels == 1:
    photo.get_buffer().set(Gegl.Rectangle.new(0, 0, width, height), fmt, bytes(width * height))
else:
    photo.get_buffer().set(Gegl.Rectangle.new(0, 0, width, height), fmt, pattern_bytes(width, height, channels, 40))
photo.get_buffer().flush()
before = pixels(photo, 0, 0, width, height, fmt)
# More layers above the photo, each the picture moved a few pixels on (as animation frames), in a
# group when asked; all of them are then the drawables the plug-in gets.
others = []
for index, name in enumerate(spec.get("more_layers", []), start=1):
    other = Gimp.Layer.new(image, name, width, height, kind, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(other, None, 0)
    other.set_offsets(*spec["layer_offsets"])
    other.get_buffer().set(Gegl.Rectangle.new(0, 0, width, height), fmt,
                           pattern_bytes(width, height, channels, 40 + 6 * index))
    other.get_buffer().flush()
    others.append((other, pixels(other, 0, 0, width, height, fmt)))
drawables = [photo, *(other for other, _ in others)]
if spec.get("in_group"):
    group = Gimp.GroupLayer.new(image, "frames")
    image.insert_layer(group, None, 0)
    for layer in drawables:  # bottom first, each on top: the order stays
        image.reorder_item(layer, group, 0)
    drawables = [group]
if spec.get("selection"):
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *spec["selection"])

procedure = Gimp.get_pdb().lookup_procedure(spec.get("procedure", "plug-in-impasto-style-transfer"))
config = procedure.create_config()
config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
config.set_property("image", image)
config.set_core_object_array("drawables", drawables)
for name, value in spec.get("arguments", {}).items():
    if name == "style-file":
        from gi.repository import Gio

        value = Gio.File.new_for_path(value)
    config.set_property(name, value)
started = time.monotonic()
values = procedure.run(config)
result["seconds"] = time.monotonic() - started
result["status"] = values.index(0).value_nick
if result["status"] != "success":
    error = values.index(1) if values.length() > 1 else None
    result["error"] = str(error) if error is not None else ""
    messages = Gimp.get_pdb().get_last_error() if hasattr(Gimp.get_pdb(), "get_last_error") else ""
    result["pdb_error"] = str(messages)

result["original_unchanged"] = pixels(photo, 0, 0, width, height, fmt) == before and all(
    pixels(other, 0, 0, width, height, fmt) == kept for other, kept in others)
result["top_level"] = [layer.get_name() for layer in image.get_layers()]
result["in_groups"] = [child.get_name() for layer in image.get_layers() if isinstance(layer, Gimp.GroupLayer)
                       for child in layer.get_children()]
# Images the run made (an animation's results): their layers, top first, and how far each is from
# the photo frame of its name.
sources = {layer.get_name(): kept for layer, kept in [(photo, before), *others]}


def changed(layer):
    """How many bytes of `layer` differ from the photo frame of its name."""
    source = sources.get(layer.get_name(), bytes(width * height * channels))
    return sum(a != b for a, b in zip(pixels(layer, 0, 0, width, height, fmt), source, strict=True))


result["new_images"] = [
    [{"name": layer.get_name(), "size": [layer.get_width(), layer.get_height()], "changed": changed(layer)}
     for layer in made.get_layers()]
    for made in Gimp.get_images() if made.get_id() != image.get_id()]
run_layers = [layer for layer in image.get_layers() if layer.get_name().startswith("Impasto")]
result["run_layers"] = [
    {"name": c.get_name(), "size": [c.get_width(), c.get_height()], "offsets": list(c.get_offsets()[1:])}
    for c in run_layers]
if run_layers and not others:
    final = run_layers[0]
    _, fx, fy = final.get_offsets()
    fw, fh = final.get_width(), final.get_height()
    px, py = spec["layer_offsets"]
    # Compare the final layer with the photo, pixel by pixel, over the final layer's area.
    final_bytes = pixels(final, 0, 0, fw, fh, fmt)
    photo_bytes = pixels(photo, fx - px, fy - py, fw, fh, fmt)
    sel = spec.get("selection") or [px, py, width, height]
    inside_changed = inside_total = outside_changed = outside_total = 0
    margin = spec.get("inside_margin", 0)
    for y in range(fh):
        for x in range(fw):
            ix, iy = fx + x, fy + y
            offset = (y * fw + x) * channels
            same = final_bytes[offset:offset + channels] == photo_bytes[offset:offset + channels]
            inside = sel[0] <= ix < sel[0] + sel[2] and sel[1] <= iy < sel[1] + sel[3]
            deep = sel[0] + margin <= ix < sel[0] + sel[2] - margin and sel[1] + margin <= iy < sel[1] + sel[3] - margin
            if not inside:
                outside_total += 1
                outside_changed += not same
            elif deep:
                inside_total += 1
                inside_changed += not same
    result.update(inside_changed=inside_changed, inside_total=inside_total, outside_changed=outside_changed,
                  outside_total=outside_total)

with open(os.path.join(folder, "result.json"), "w") as f:
    json.dump(result, f)
