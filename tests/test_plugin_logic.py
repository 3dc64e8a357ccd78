"""The GIMP plug-in's logic, outside GIMP (impasto_choices and impasto_daemon, imported as GIMP
imports them, from the plug-in's folder): style precedence, regions, settings, messages, the daemon."""

from __future__ import annotations

import json
import sys

import impasto_choices as choices
import impasto_daemon
import pytest

from impasto.protocol import messages as m
from impasto.protocol.client import Client


def test_style_from_alone_decides_which_style_is_used() -> None:
    for source in choices.STYLE_SOURCES:
        assert choices.check_style_source(source, True) == source
    assert choices.check_style_source("preset", False) == "preset"  # a preset name always has a default
    with pytest.raises(choices.PluginError, match="'Image file' needs a style-file"):
        choices.check_style_source("file", False)
    with pytest.raises(choices.PluginError, match="Unknown style source 'painting'"):
        choices.check_style_source("painting", True)
    assert choices.preset_style("  ") == (m.Style(preset=m.DEFAULT_PRESET), m.DEFAULT_PRESET)
    assert choices.preset_style("embers")[1] == "embers"


def test_a_presets_recommendations_become_the_dialogs_settings() -> None:
    info = m.PresetInfo("x", "", "built-in", {"strength": 0.4, "keep_colors": "luminance", "style_scale": 2.0,
                                              "iterations": 80}, None)
    assert choices.recommended(info) == {"strength": 0.4, "keep-colors": "luminance", "brush-size": 2.0}
    odd = m.PresetInfo("x", "", "user", {"strength": 3, "keep_colors": "sepia", "style_scale": "big"}, None)
    assert choices.recommended(odd) == {}
    grey = m.Image(2, 1, 1, bytes([10, 20]))
    rgba = m.Image(1, 2, 4, bytes([1, 2, 3, 255, 4, 5, 6, 0]))
    assert choices.thumbnail_rgb(grey) == (2, 1, bytes([10, 10, 10, 20, 20, 20]))
    assert choices.thumbnail_rgb(rgba) == (1, 2, bytes([1, 2, 3, 4, 5, 6]))


def test_the_gallery_shows_names_as_words() -> None:
    assert [choices.display_name(name) for name in ("woman_with_hat", "starry_night", "my-stripes", "x")] == \
        ["Woman with hat", "Starry night", "My stripes", "X"]


def test_a_new_presets_name_is_made_acceptable_or_refused() -> None:
    assert choices.preset_name("  My Oil Sketch ") == "my-oil-sketch"
    for bad in ("", "-x", "ünïcode", "a" * 65, "x/y"):
        with pytest.raises(choices.PluginError, match="cannot name a preset"):
            choices.preset_name(bad)
    # The daemon's own rule: a name the plug-in makes is one the store takes.
    from impasto.daemon.presets import check_name

    check_name(choices.preset_name("  My Oil Sketch "))


def test_the_dialogs_last_choices_are_read_back_only_where_they_still_fit() -> None:
    kept = {"style-source": "file", "style-file": "file:///home/a/b.jpg", "style-preset": "the_scream",
            "strength": 1, "quality": "draft", "paint-size": "1mp", "keep-colors": "match", "brush-size": 2.5,
            "seed": 7, "keep-previews": True, "start-daemon": False, "style-pattern": "Pine"}
    assert choices.remembered(json.loads(json.dumps(kept))) == {**kept, "strength": 1.0}
    wrong = {"style-source": "sky", "style-preset": "../x", "strength": 7.0, "quality": "best", "paint-size": "9mp",
             "keep-colors": 1,
             "brush-size": "big", "seed": -1, "keep-previews": "yes", "start-daemon": 0, "endpoint": "tcp://x:1"}
    assert choices.remembered(wrong) == {}
    assert choices.remembered(["a list"]) == {} and choices.remembered({"seed": True}) == {}


def test_a_selection_is_sent_with_context_clipped_to_the_layer() -> None:
    assert choices.region_to_send((80, 60), None) == choices.Region(0, 0, 80, 60)
    # 36×30 selection: 15% of 36 = 5 px of context each side.
    assert choices.region_to_send((80, 60), (22, 14, 58, 44)) == choices.Region(17, 9, 46, 40)
    assert choices.region_to_send((80, 60), (22, 14, 58, 44), context=False) == choices.Region(22, 14, 36, 30)
    # Near an edge the context is clipped; so is a selection reaching past the layer.
    assert choices.region_to_send((80, 60), (-10, 50, 20, 70)) == choices.Region(0, 47, 23, 13)  # 20×10: 3 px
    with pytest.raises(choices.PluginError, match="does not touch"):
        choices.region_to_send((80, 60), (90, 10, 120, 30))


def test_feather_and_settings_follow_the_quality() -> None:
    region = choices.Region(0, 0, 300, 200)
    assert choices.feather_for(region, True) == 12 and choices.feather_for(region, False) == 0
    assert choices.feather_for(choices.Region(0, 0, 5, 5), True) == 1
    composed = set()
    for quality, (_, detail) in choices.QUALITIES.items():
        params = choices.job_params(quality, 0.3, 7, 4, layer_side=1024)
        assert (params.detail, params.strength, params.seed, params.mask_feather, params.layer_size) == \
            (detail, 0.3, 7, 4, 1024)
        assert params.detail > 0  # every quality paints the layer's own resolution
        assert params.preview_every >= 5
        m.JobParams.from_wire(params.to_wire())  # a job the daemon accepts
        # Everything that shapes the composition, the look, is the same in every quality.
        composed.add((params.size, params.iterations, params.coarse_iterations, params.first_scale))
    assert composed == {(m.JobParams().size, m.JobParams().iterations, m.JobParams().coarse_iterations,
                         m.JobParams().first_scale)}
    details = [choices.job_params(quality, 0.5, 0, 0).detail for quality in ("draft", "normal", "fine")]
    assert details == sorted(set(details))  # more work from Draft to Fine
    assert choices.job_params("unknown", 0.5, 0, 0).detail == choices.QUALITIES[choices.DEFAULT_QUALITY][1]
    # Defaults come from JobParams, not from the plug-in.
    assert choices.knob("strength")[1:] == (0.0, 1.0, m.JobParams().strength)


def test_the_dialogs_preview_has_the_runs_look_small_and_quick() -> None:
    run = choices.job_params("draft", 0.6, 9, 0, 0, "luminance", 2.0)
    preview = choices.preview_params(0.6, 9, "luminance", 2.0, 3)
    assert (preview.strength, preview.seed, preview.keep_colors, preview.style_scale) == \
        (run.strength, run.seed, run.keep_colors, run.style_scale)
    assert preview.size == choices.PREVIEW_SIDE < run.size and preview.detail == 0 and preview.mask_feather == 3
    assert preview.iterations < run.iterations and preview.preview_every == 0


def test_the_submit_carries_the_mask_at_the_contents_size() -> None:
    content = m.Image(4, 3, 4, bytes(48))
    params = choices.job_params("draft", 0.5, 0, 1)
    submit = choices.build_submit("j", content, m.Style(preset="swirls"), params, bytes(12))
    assert submit.mask is not None and (submit.mask.width, submit.mask.height, submit.mask.channels) == (4, 3, 1)
    request = m.parse_request([bytes(f) for f in m.submit_message(submit)])
    assert request.submit.params.detail == choices.QUALITIES["draft"][1]
    assert choices.build_submit("j", content, m.Style(preset="swirls"), submit.params, None).mask is None


def test_what_the_user_reads() -> None:
    progress = m.Progress(scale=2, scales=4, width=192, height=144, iteration=7, total=49, losses={"total": 1.0},
                          elapsed=3.0, eta=20.4)
    # A kept preview's name and the progress line shown with it say the same numbers.
    assert choices.progress_text(progress) == "Iteration 7/49, scale 2/4 (192×144): about 20 s left"
    # Between reports the time left counts down, to a second at least.
    assert choices.progress_text(progress, since=12.0).endswith("about 8 s left")
    assert choices.progress_text(progress, since=30.0).endswith("about 1 s left")
    assert choices.preview_name(progress) == "Impasto preview: iteration 7/49, scale 2/4"


def test_a_run_over_several_layers_says_which_and_the_time_left_for_all() -> None:
    parts = choices.Parts(3)
    progress = m.Progress(scale=1, scales=1, width=96, height=72, iteration=5, total=10, losses={}, elapsed=5.0,
                          eta=5.0)
    # The first layer: the others are expected to take what it takes in all.
    assert choices.progress_text(progress, parts=parts) == \
        "Layer 1 of 3: iteration 5/10, scale 1/1 (96×72): about 25 s left"
    assert parts.fraction(progress) == pytest.approx(0.5 / 3)
    parts.done(12.0)  # the first took 12 s
    assert parts.left(progress) == pytest.approx(5.0 + 12.0)
    parts.done(4.0)  # a following animation frame is quicker: the later ones' pace counts
    frames = choices.Parts(4, "Frame", index=2, seconds=[12.0, 4.0])
    assert frames.left(progress) == pytest.approx(5.0 + 4.0)
    assert choices.progress_text(progress, parts=frames).startswith("Frame 3 of 4: iteration 5/10")
    assert choices.progress_text(progress, parts=choices.Parts(1)).startswith("Iteration 5/10")
    # The dialog's line over several layers: the time for all of them.
    estimate = {"working": [96, 72], "output": [96, 72], "seconds": 5.0, "device": "cpu"}
    assert choices.estimate_text(estimate, "", layers=3) == \
        "Composed at 96×72 in every quality: about 15 s for the 3 layers on cpu"


def test_layers_share_a_stroke_size_and_frames_one_size() -> None:
    default = m.JobParams().size
    assert choices.composed_side(2000, 2000) == default
    assert choices.composed_side(1000, 2000) == default // 2  # half the size, half the working size
    assert choices.composed_side(10, 2000) == choices.MIN_COMPOSED_SIDE
    choices.check_frames([(80, 60), (80, 60)], selected=False)
    with pytest.raises(choices.PluginError, match="same size: 40×30, 80×60"):
        choices.check_frames([(80, 60), (40, 30)], selected=False)
    with pytest.raises(choices.PluginError, match="Select > None"):
        choices.check_frames([(80, 60), (80, 60)], selected=True)


def test_settings_and_endpoint(tmp_path) -> None:
    assert impasto_daemon.load_settings(tmp_path) == {}
    (tmp_path / "impasto.json").write_text("[1, 2]")
    assert impasto_daemon.load_settings(tmp_path) == {}
    (tmp_path / "impasto.json").write_text(json.dumps({"endpoint": "ipc:///x/d.sock", "daemon_command": ["d"]}))
    settings = impasto_daemon.load_settings(tmp_path)
    assert impasto_daemon.endpoint_of("", settings, {}) == "ipc:///x/d.sock"
    assert impasto_daemon.endpoint_of("", settings, {"IMPASTO_ENDPOINT": "ipc:///e"}) == "ipc:///e"
    assert impasto_daemon.endpoint_of("ipc:///arg", settings, {"IMPASTO_ENDPOINT": "ipc:///e"}) == "ipc:///arg"
    assert impasto_daemon.endpoint_of("", {}, {}).startswith("ipc://")


def test_an_absent_daemon_is_explained(tmp_path) -> None:
    endpoint = f"ipc://{tmp_path}/none.sock"
    with pytest.raises(choices.PluginError) as caught:
        impasto_daemon.connect(endpoint, {"daemon_command": ["/opt/impasto/impasto-daemon"]}, start=False)
    # The configured command with the endpoint, and the option that would have started it.
    assert "/opt/impasto/impasto-daemon --endpoint " + endpoint in str(caught.value)
    assert "Start the daemon if missing' (under Advanced)" in str(caught.value)
    with pytest.raises(choices.PluginError, match="not found"):
        impasto_daemon.connect(endpoint, {"daemon_command": ["/nonexistent/impasto-daemon"]}, start=True)


def test_where_the_plugin_cannot_start_the_daemon_it_says_how_and_offers_no_box(tmp_path) -> None:
    """A Flatpak sandbox (no command, a hint from the installer), and a user service (the system
    starts it on the first connection: the dialog waits for it rather than starting one)."""
    endpoint = f"ipc://{tmp_path}/none.sock"
    sandboxed = {"endpoint": endpoint, "daemon_command": [], "service": False,
                 "start_hint": "on the host, run `impasto service install --endpoint X` once"}
    daemon = impasto_daemon.Daemon(endpoint, sandboxed, may_start=True)
    assert not daemon.can_start and daemon.process is None and not daemon.waiting()
    assert "To start it: on the host, run `impasto service install" in daemon.state_text()
    assert daemon.absent_text(may_start=True) == "No estimate: the Impasto daemon is not running (see above)."
    with pytest.raises(choices.PluginError, match="impasto service install"):
        impasto_daemon.connect(endpoint, sandboxed, start=True)

    served = {"endpoint": endpoint, "daemon_command": [], "service": True,
              "start_hint": "it is the system's job: systemctl --user start impasto-daemon.socket"}
    daemon = impasto_daemon.Daemon(endpoint, served, may_start=True)
    assert not daemon.can_start and daemon.process is None
    assert daemon.waiting() and "Starting the Impasto daemon" in daemon.state_text()
    assert "follows when the Impasto daemon is ready" in daemon.absent_text(may_start=False)
    startable = impasto_daemon.Daemon(endpoint, daemon_settings(tmp_path), may_start=False)
    assert startable.can_start and "starts with the first run" in startable.absent_text(may_start=True)
    assert "No estimate" in startable.absent_text(may_start=False)  # the box is off: nothing will start it


def daemon_settings(folder) -> dict:
    """impasto.json as the installer writes it, for a daemon of the test's own."""
    return {"daemon_command": [sys.executable, "-m", "impasto.daemon.launch", "--cache-dir", str(folder / "cache"),
                               "--presets-dir", str(folder / "presets")]}


def test_connect_starts_the_configured_daemon(tmp_path) -> None:
    endpoint = f"ipc://{tmp_path}/sock/d.sock"
    settings = daemon_settings(tmp_path)
    started, pulses = [], []
    impasto_daemon.connect(endpoint, settings, start=True, on_wait=lambda: pulses.append(1), on_start=started.append)
    try:
        assert started == [tmp_path / "sock" / "impasto-daemon.log"] and pulses
        with Client(endpoint) as client:
            assert client.hello()["queue"] == 0
        impasto_daemon.connect(endpoint, settings, start=True, on_start=started.append)  # running: not started again
        assert len(started) == 1
    finally:
        with Client(endpoint) as client:
            client.request(m.SHUTDOWN)


def test_the_dialogs_gallery_starts_the_daemon_and_fills_when_it_answers(tmp_path) -> None:
    endpoint = f"ipc://{tmp_path}/sock/d.sock"
    settings = daemon_settings(tmp_path)
    late = impasto_daemon.Daemon(endpoint, settings, may_start=False)  # the box turned on in the open dialog
    assert late.presets() is None and not late.waiting()
    late.start_now()
    try:
        assert late.waiting() and "Starting the Impasto daemon" in late.state_text()
        impasto_daemon.connect(endpoint, settings, True, starting=late)
        assert late.presets() is not None
    finally:
        with Client(endpoint) as client:
            client.request(m.SHUTDOWN)
        late.process.wait(30)
    absent = impasto_daemon.Daemon(f"ipc://{tmp_path}/none.sock", {"daemon_command": ["/opt/impasto-daemon"]},
                                   may_start=False)
    assert absent.presets() is None and not absent.waiting()
    assert "/opt/impasto-daemon --endpoint" in absent.state_text()
    daemon = impasto_daemon.Daemon(endpoint, settings, may_start=True)
    try:
        assert daemon.presets() is None and daemon.waiting()  # started in the background: the dialog draws on
        assert "Starting the Impasto daemon" in daemon.state_text()
        impasto_daemon.connect(endpoint, settings, True, starting=daemon)  # OK pressed meanwhile: waits for that one
        infos = daemon.presets()
        assert infos is not None and not daemon.waiting() and daemon.state_text() == ""
        by_name = {info.name: info for info in infos}
        assert {"starry_night", "the_scream", "shipwreck", "woman_with_hat", "swirls"} <= set(by_name)
        starry = by_name["starry_night"]
        assert starry.source == "built-in" and "van Gogh" in starry.description
        assert starry.thumbnail is not None and max(starry.thumbnail.width, starry.thumbnail.height) == 64
        assert choices.recommended(starry)["strength"] == pytest.approx(starry.params["strength"])
    finally:
        with Client(endpoint) as client:
            client.request(m.SHUTDOWN)


def test_the_dialog_tells_sizes_and_time_before_ok(daemon, tmp_path) -> None:
    region = choices.Region(0, 0, 2560, 1600)
    estimate = impasto_daemon.forecast(daemon.endpoint, region, choices.job_params("normal", 0.5, 0, 0))
    side = m.JobParams().size  # every quality composes at the engine's default size
    assert estimate is not None and estimate["working"] == [side, side * 5 // 8] and estimate["output"] == [2560, 1600]
    text = choices.estimate_text(estimate, "unused")
    assert text.startswith(f"Composed at {side}×{side * 5 // 8} in every quality, painted up to 2560×1600: about ")
    assert " on cpu" in text
    draft, fine = (impasto_daemon.forecast(daemon.endpoint, region, choices.job_params(quality, 0.5, 0, 0))
                   for quality in ("draft", "fine"))
    assert draft and fine and draft["working"] == fine["working"] and draft["seconds"] < estimate["seconds"] < \
        fine["seconds"]
    # A slow machine's size choice: the estimate for each size that paints another size.
    sizes = {name: impasto_daemon.forecast(daemon.endpoint, region, choices.job_params("normal", 0.5, 0, 0,
                                                                                       paint_size=name))
             for name in choices.PAINT_SIZES}
    assert sizes["full"] == estimate and sizes["1mp"]["output"] == [1264, 790]
    assert sizes["1mp"]["seconds"] < sizes["4mp"]["seconds"] < estimate["seconds"]
    assert sizes["1mp"]["working"] == estimate["working"]  # the same look, less detail
    text = choices.estimate_text(sizes["1mp"], "unused", {"full": estimate, "4mp": sizes["4mp"]})
    assert "painted up to 1264×790" in text and "(full resolution: " in text and "; at most 4 MP: " in text
    small = choices.Region(0, 0, 800, 600)  # under every cap: nothing else to say
    small_sizes = {name: impasto_daemon.forecast(daemon.endpoint, small, choices.job_params("normal", 0.5, 0, 0,
                                                                                            paint_size=name))
                   for name in choices.PAINT_SIZES}
    assert choices.estimate_text(small_sizes["full"], "unused", small_sizes) == \
        choices.estimate_text(small_sizes["full"], "unused")
    absent = f"ipc://{tmp_path}/none.sock"
    assert impasto_daemon.forecast(absent, region, choices.job_params("draft", 0.5, 0, 0)) is None
    assert choices.estimate_text(None, "absent") == "absent"
    assert [choices.duration_text(s) for s in (0.2, 59, 125, 7200)] == ["1 s", "59 s", "2 min", "2.0 h"]
