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
photo = Gimp.Layer.new(image, "photo", width, height, kind, 100.0, Gimp.LayerMode.NORMAL)
image.insert_layer(photo, None, 0)
photo.set_offsets(*spec["layer_offsets"])
fmt = {1: "Y' u8", 3: "R'G'B' u8", 4: "R'G'B'A u8"}[channels]
if channels == 1:
    photo.get_buffer().set(Gegl.Rectangle.new(0, 0, width, height), fmt, bytes(width * height))
else:
    photo.get_buffer().set(Gegl.Rectangle.new(0, 0, width, height), fmt, pattern_bytes(width, height, channels, 40))
photo.get_buffer().flush()
before = pixels(photo, 0, 0, width, height, fmt)
if spec.get("selection"):
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *spec["selection"])

procedure = Gimp.get_pdb().lookup_procedure(spec.get("procedure", "plug-in-impasto-style-transfer"))
config = procedure.create_config()
config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
config.set_property("image", image)
config.set_core_object_array("drawables", [photo])
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

result["original_unchanged"] = pixels(photo, 0, 0, width, height, fmt) == before
result["top_level"] = [layer.get_name() for layer in image.get_layers()]
run_layers = [layer for layer in image.get_layers() if layer.get_name().startswith("Impasto")]
result["run_layers"] = [
    {"name": c.get_name(), "size": [c.get_width(), c.get_height()], "offsets": list(c.get_offsets()[1:])}
    for c in run_layers]
if run_layers:
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
