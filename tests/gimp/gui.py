"""Runs inside real GIMP with its GUI (under Xvfb), driven by test_gimp_plugin.py's GUI test:
for each {"size": [width, height], "layers": count?, "procedure": name?, "undo": bool?} in
`plan.json`, opens a new image of that many layers (all selected) in a window (its Undo History
empty, as for an opened file) and runs the Impasto plug-in's style transfer (or that procedure)
INTERACTIVELY (its dialog appears; the test answers it with xdotool), then writes what the image
holds afterwards to `runN.json`. With "undo", it then waits for the test to press Ctrl+Z in the
image and say so (a file `undoneN`), and writes what the image holds after that to
`runN-undone.json`.

GIMP evaluates this with exec(), so it reads its folder from the IMPASTO_BATCH_DIR variable.
"""

import json
import os
import time

from gi.repository import Gegl, Gimp

folder = os.environ["IMPASTO_BATCH_DIR"]


def new_image(width, height, count):
    """An image of `count` layers, "photo", "photo 2", …, each the picture moved on a little."""
    image = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
    layers = []
    for index in range(count):
        name = "photo" if index == 0 else f"photo {index + 1}"
        layer = Gimp.Layer.new(image, name, width, height, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
        image.insert_layer(layer, None, 0)
        data = bytearray()
        for y in range(height):
            for x in range(width):
                data += bytes(((x + 4 * index) * 255 // width % 256, y * 255 // height,
                               (((x + 4 * index) // 6 + y // 6) % 2) * 200 + 30))
        layer.get_buffer().set(Gegl.Rectangle.new(0, 0, width, height), "R'G'B' u8", bytes(data))
        layer.get_buffer().flush()
        layers.append(layer)
    image.undo_disable()  # GIMP drops the history…
    image.undo_enable()  # …and records again from here
    image.clean_all()
    Gimp.Display.new(image)
    Gimp.displays_flush()
    return image, layers


with open(os.path.join(folder, "plan.json")) as f:
    plan = json.load(f)
def contents(image):
    return {"layers": [item.get_name() for item in image.get_layers()],
            "sizes": [[item.get_width(), item.get_height()] for item in image.get_layers()]}


def write(name, result):
    with open(os.path.join(folder, name), "w") as f:
        json.dump(result, f)


for index, step in enumerate(plan):
    procedure = Gimp.get_pdb().lookup_procedure(step.get("procedure", "plug-in-impasto-style-transfer"))
    image, layers = new_image(*step["size"], step.get("layers", 1))
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", layers)  # all of them selected
    started = time.monotonic()
    values = procedure.run(config)
    write(f"run{index}.json", {"status": values.index(0).value_nick, "seconds": time.monotonic() - started,
                               "dirty": image.is_dirty(), **contents(image)})
    if step.get("undo"):
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(folder, f"undone{index}")) and time.monotonic() < deadline:
            time.sleep(0.2)
        write(f"run{index}-undone.json", contents(image))
    time.sleep(3)  # GIMP stays up a moment for the test's screenshot of what the run left
