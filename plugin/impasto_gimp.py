#!/usr/bin/env python3
"""Impasto Style Transfer for GIMP 3: Filters > Artistic > Impasto Style Transfer...

Sends the active layer (or the selected part of it, with some context around) and a style to
the Impasto daemon, and adds what comes back as new layers in a group above the layer while the
optimisation runs. The original layer is never modified, and the whole run is one undo step.

Needs only GIMP's own Python with pyzmq and msgpack: the daemon does the heavy lifting. The
installer puts `impasto/protocol` beside this file, with `impasto.json`, which names the daemon's
endpoint and the command that starts it. (The file is not named impasto.py: that would hide the
`impasto` package it imports.)
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import TYPE_CHECKING

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
if os.path.isdir(os.path.join(HERE, "vendor")):  # pyzmq/msgpack the installer fetched for us
    sys.path.insert(0, os.path.join(HERE, "vendor"))

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
import impasto_choices as choices  # noqa: E402
import impasto_daemon  # noqa: E402
import impasto_jobs  # noqa: E402
import impasto_run  # noqa: E402
from gi.repository import Gimp, GLib, GObject  # noqa: E402
from impasto_jobs import cancelled, failure  # noqa: E402
from impasto_pixels import check_target, check_targets, choose_style, read_pixels, selection_region  # noqa: E402

from impasto.protocol.messages import DEFAULT_PRESET, JobParams  # noqa: E402
from impasto.protocol.presets import description_from  # noqa: E402

if TYPE_CHECKING:
    from gi.repository import GimpUi


PROCEDURE = "plug-in-impasto-style-transfer"
SAVE_PRESET = "plug-in-impasto-save-preset"


# --- the procedure ---------------------------------------------------------------------

def settings_of(config: Gimp.ProcedureConfig, feather: float, layer_side: int, paint_size: str = "",
                size: int = 0) -> JobParams:
    """The job's settings from the procedure's arguments (`paint_size`: another than the chosen one;
    `size`: the composing size, when not the default)."""
    params = choices.job_params(config.get_property("quality"), config.get_property("strength"),
                                config.get_property("seed"), feather, layer_side, config.get_property("keep-colors"),
                                config.get_property("brush-size"), paint_size or config.get_property("paint-size"))
    return dataclasses.replace(params, size=size) if size else params


def forecast_text(image: Gimp.Image, drawables: list[Gimp.Drawable], daemon: impasto_daemon.Daemon,
                  config: Gimp.ProcedureConfig) -> str:
    """The dialog's line about sizes and time for the current settings ("" when there is no layer):
    the top layer's, and the time for all of them."""
    try:
        layers = check_targets(image, drawables)
        layer = layers[-1]
        region, mask = selection_region(image, layer)
    except choices.PluginError:
        return ""
    layer_side = max(layer.get_width(), layer.get_height()) if mask is not None else 0
    whole = (layer.get_width(), layer.get_height()) if mask is not None else None
    params = settings_of(config, 0, layer_side, size=size_of(layer, layers))
    estimate = impasto_daemon.forecast(daemon.endpoint, region, params, whole)
    chosen = config.get_property("paint-size")
    others = {name: impasto_daemon.forecast(daemon.endpoint, region, settings_of(config, 0, layer_side, name,
                                                                               params.size), whole)
              for name in choices.PAINT_SIZES if name != chosen and estimate is not None}
    return choices.estimate_text(estimate, daemon.absent_text(config.get_property("start-daemon")), others,
                                 len(layers))


def size_of(layer: Gimp.Layer, layers: list[Gimp.Layer]) -> int:
    """The size `layer` is composed at, so strokes have one size across the run's layers."""
    return choices.composed_side(max(layer.get_width(), layer.get_height()),
                                 max(max(other.get_width(), other.get_height()) for other in layers))


def layer_count(image: Gimp.Image, drawables: list[Gimp.Drawable]) -> int:
    try:
        return len(check_targets(image, drawables))
    except choices.PluginError:
        return 0


def previewed(image: Gimp.Image, drawables: list[Gimp.Drawable]) -> Gimp.Layer | None:
    """The layer the dialog previews: the top one a run would paint (none when a run would refuse)."""
    try:
        return check_targets(image, drawables)[-1]
    except choices.PluginError:
        return None


def stylize(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image, drawables: list[Gimp.Drawable],
            config: Gimp.ProcedureConfig, data: object) -> Gimp.ValueArray:
    settings = impasto_daemon.load_settings(HERE)
    endpoint = impasto_daemon.endpoint_of(config.get_property("endpoint"), settings)
    interactive = run_mode == Gimp.RunMode.INTERACTIVE
    daemon = None
    if interactive:
        import impasto_dialog
        import impasto_last

        impasto_last.restore(config)
        daemon = started = impasto_daemon.Daemon(endpoint, settings, config.get_property("start-daemon"))
        if not impasto_dialog.show(procedure, config, started, image,
                                   lambda config: forecast_text(image, drawables, started, config),
                                   previewed(image, drawables), layer_count(image, drawables)):
            return cancelled(procedure)
        impasto_last.save(config)
    try:
        targets = targets_of(image, drawables, config.get_property("animation"))
        style, style_name = choose_style(config)
    except choices.PluginError as exc:
        return failure(procedure, str(exc))
    except GLib.Error as exc:
        return failure(procedure, f"Impasto could not read the style: {exc.message}")
    progress = impasto_run.progress_for(interactive, f"Impasto: {style_name}", "Connecting to the daemon…")

    def waiting() -> None:
        progress.pulse()
        if progress.cancelled:  # Cancel while the daemon starts: nothing of the run exists yet
            raise choices.PluginError("cancelled")

    try:
        impasto_daemon.connect(endpoint, settings, config.get_property("start-daemon"), on_wait=waiting,
                               on_start=lambda log: progress.say("Starting the Impasto daemon (loading VGG19)…"),
                               starting=daemon)
    except choices.PluginError as exc:
        progress.close()
        return cancelled(procedure) if progress.cancelled else failure(procedure, str(exc))
    animated = config.get_property("animation") and len(targets) > 1
    layers = [target.layer for target in targets]
    run = impasto_jobs.Run(image, targets, style, style_name,
                           [job_settings(config, target, layers) for target in targets],
                           config.get_property("keep-previews"), interactive,
                           impasto_jobs.Animation(image.get_width(), image.get_height(), interactive) if animated
                           else None)
    return impasto_jobs.run_into_layers(procedure, endpoint, run, progress)


def targets_of(image: Gimp.Image, drawables: list[Gimp.Drawable], animation: bool) -> list[impasto_jobs.Target]:
    """Every layer to stylise, bottom first, with the selection over each; animation frames are
    checked to be stylisable as one sequence."""
    targets, missed = [], None
    for layer in check_targets(image, drawables):
        try:
            targets.append(impasto_jobs.Target(layer, *selection_region(image, layer)))
        except choices.PluginError as exc:  # a layer the selection does not touch is left out
            missed = exc
    if not targets and missed is not None:
        raise missed
    if animation and len(targets) > 1:
        choices.check_frames([(t.layer.get_width(), t.layer.get_height()) for t in targets],
                             any(t.mask is not None for t in targets))
    return targets


def job_settings(config: Gimp.ProcedureConfig, target: impasto_jobs.Target, layers: list[Gimp.Layer]) -> JobParams:
    layer, region = target.layer, target.region
    layer_side = max(layer.get_width(), layer.get_height()) if target.mask is not None else 0
    return settings_of(config, choices.feather_for(region, target.mask is not None), layer_side,
                       size=size_of(layer, layers))


def save_preset(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image,
                drawables: list[Gimp.Drawable], config: Gimp.ProcedureConfig, data: object) -> Gimp.ValueArray:
    """Filters > Artistic > Save Layer as Impasto Style Preset…: the layer (or the selection in it)
    becomes a user preset of the daemon's, with a name."""
    from impasto.protocol.client import Client, DaemonError, DaemonUnavailable
    from impasto.protocol.messages import Image

    if run_mode == Gimp.RunMode.INTERACTIVE:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi

        GimpUi.init("impasto")
        dialog = GimpUi.ProcedureDialog.new(procedure, config, "Save Layer as Impasto Style Preset")
        dialog.fill(["preset-name", "description"])
        accepted = ask_preset_name(dialog, config)
        dialog.destroy()
        if not accepted:
            return cancelled(procedure)
    settings = impasto_daemon.load_settings(HERE)
    endpoint = impasto_daemon.endpoint_of(config.get_property("endpoint"), settings)
    try:
        layer = check_target(image, drawables)
        region, _ = selection_region(image, layer, context=False)
        name = choices.preset_name(config.get_property("preset-name"))
        impasto_daemon.connect(endpoint, settings, True)
    except choices.PluginError as exc:
        return failure(procedure, str(exc))
    picture = Image(region.width, region.height, 3,
                    read_pixels(layer, region.x, region.y, region.width, region.height, "R'G'B' u8"))
    try:
        with Client(endpoint, timeout=impasto_daemon.SAVE_PRESET_S) as client:
            client.add_preset(name, picture, config.get_property("description") or description_from(image.get_name()))
    except (DaemonError, DaemonUnavailable) as exc:
        return failure(procedure, f"Impasto could not save the preset: {exc}")
    if run_mode == Gimp.RunMode.INTERACTIVE:
        import impasto_help

        impasto_help.tell(None, "Impasto Preset Saved", f"Saved the style preset '{name}'.",
                          "Choose it in Impasto Style Transfer's gallery (Style from: Preset).")
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def ask_preset_name(dialog: GimpUi.ProcedureDialog, config: Gimp.ProcedureConfig) -> bool:
    """Run the dialog until OK with a name that can name a preset (a bad one is said over the
    dialog, which stays open), or Cancel."""
    import impasto_help

    while dialog.run():
        try:
            choices.preset_name(config.get_property("preset-name"))
            return True
        except choices.PluginError as exc:
            impasto_help.tell(dialog, "Impasto: Preset Name", "That name cannot name a preset.", str(exc),
                              problem=True)
    return False


def choice_of(options: dict[str, str]) -> Gimp.Choice:
    choice = Gimp.Choice.new()
    for index, (key, label) in enumerate(options.items()):
        choice.add(key, index, label, "")
    return choice


def add_style_transfer_arguments(procedure: Gimp.Procedure) -> None:
    flags = GObject.ParamFlags.READWRITE
    procedure.add_choice_argument("style-source", "Style _from", "Which style argument decides (the others are "
                                  "ignored)", choice_of(choices.STYLE_SOURCES), choices.DEFAULT_STYLE_SOURCE, flags)
    procedure.add_string_argument("style-preset", "Style _preset", "A preset of the daemon's, by name",
                                  DEFAULT_PRESET, flags)
    procedure.add_file_argument("style-file", "Style _file", "A painting to take the style from",
                                Gimp.FileChooserAction.OPEN, True, None, flags)
    procedure.add_image_argument("style-image", "Style _image", "Another open image as the style", True, flags)
    procedure.add_pattern_argument("style-pattern", "St_yle pattern", "A GIMP pattern as the style",
                                   True, None, True, flags)
    procedure.add_double_argument("strength", "S_trength", *choices.knob("strength"), flags)
    procedure.add_choice_argument("keep-colors", "Colo_urs", "Whose colours the result has",
                                  choice_of(choices.KEEP_COLORS), "none", flags)
    procedure.add_double_argument("brush-size", "_Brush size", "Size of the painting's strokes (1: as painted)",
                                  *choices.BRUSH_SIZES, 1.0, flags)
    procedure.add_choice_argument("quality", "_Quality", "The work spent on the full-resolution detail; every "
                                  "quality composes the same picture",
                                  choice_of({k: v[0] for k, v in choices.QUALITIES.items()}), choices.DEFAULT_QUALITY,
                                  flags)
    procedure.add_choice_argument("paint-size", "Si_ze", "The most pixels the detail is painted at; a larger layer's "
                                  "result is painted at that many and enlarged (quicker)",
                                  choice_of({k: v[0] for k, v in choices.PAINT_SIZES.items()}),
                                  choices.DEFAULT_PAINT_SIZE, flags)
    procedure.add_int_argument("seed", "Random see_d", "Same seed, same picture", *choices.SEEDS, JobParams().seed,
                               flags)
    procedure.add_boolean_argument("animation", "The layers are a_nimation frames", "With several layers: "
                                   "stylise them in frame order (the bottom one first), each following the one "
                                   "before, into a new image", False, flags)
    procedure.add_boolean_argument("keep-previews", "_Keep every preview",
                                   "Keep each progressive result as a layer of its own", False, flags)
    procedure.add_boolean_argument("start-daemon", "Start the daemon if _missing",
                                   "Start the Impasto daemon if it is not running", True, flags)
    procedure.add_string_argument("endpoint", "Daemon _endpoint", "Empty: the one the installer wrote", "", flags)


class Impasto(Gimp.PlugIn):
    def do_query_procedures(self) -> list[str]:
        return [PROCEDURE, SAVE_PRESET]

    def do_set_i18n(self, name: str) -> bool:
        return False

    def do_create_procedure(self, name: str) -> Gimp.Procedure:
        run = save_preset if name == SAVE_PRESET else stylize
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types("RGB*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_attribution("Impasto", "Impasto", "2026")
        procedure.set_menu_label("Save Layer as Impasto Style Preset…" if name == SAVE_PRESET else
                                 "Impasto Style Transfer…")
        procedure.add_menu_path("<Image>/Filters/Artistic")  # after the label, which it needs
        if name == SAVE_PRESET:
            procedure.set_documentation("Keep the layer as an Impasto style preset",
                                        "The layer, or the selection in it, becomes a user preset of the Impasto "
                                        "daemon's, listed in Impasto Style Transfer's gallery.", name)
            flags = GObject.ParamFlags.READWRITE
            procedure.add_string_argument("preset-name", "Preset _name", "Letters, digits, '-' and '_'; spaces "
                                          "become '-' and capitals lowercase (a preset of that name is replaced)",
                                          "my-style", flags)
            procedure.add_string_argument("description", "_Description", "Shown in the gallery", "", flags)
            procedure.add_string_argument("endpoint", "Daemon _endpoint", "Empty: the one the installer wrote", "",
                                          flags)
            return procedure
        procedure.set_documentation(
            "Paint the layer in the style of another picture",
            "Neural style transfer (Gatys et al.) through the Impasto daemon. The result becomes a new layer "
            "above the layer; with a selection, only the selection is stylised, with a soft edge. The style "
            "comes from what style-source names: style-preset, style-file, style-image or style-pattern "
            "(the others are ignored).",
            name)
        add_style_transfer_arguments(procedure)
        return procedure


if __name__ == "__main__":
    Gimp.main(Impasto.__gtype__, sys.argv)
