"""The GIMP plug-in's logic, outside GIMP: style precedence, regions, settings, messages, the daemon."""

from __future__ import annotations

import json
import sys

import pytest

from plugin import impasto_job as job
from protocol import messages as m
from protocol.client import Client


def test_style_from_alone_decides_which_style_is_used() -> None:
    for source in job.STYLE_SOURCES:
        assert job.check_style_source(source, True) == source
    assert job.check_style_source("preset", False) == "preset"  # a preset name always has a default
    with pytest.raises(job.PluginError, match="'Image file' needs a style-file"):
        job.check_style_source("file", False)
    with pytest.raises(job.PluginError, match="Unknown style source 'painting'"):
        job.check_style_source("painting", True)
    assert job.preset_style("  ") == (m.Style(preset=m.DEFAULT_PRESET), m.DEFAULT_PRESET)
    assert job.preset_style("embers")[1] == "embers"


def test_a_presets_recommendations_become_the_dialogs_settings() -> None:
    info = m.PresetInfo("x", "", "built-in", {"strength": 0.4, "keep_colors": "luminance", "style_scale": 2.0,
                                              "iterations": 80}, None)
    assert job.recommended(info) == {"strength": 0.4, "keep-colors": "luminance", "brush-size": 2.0}
    odd = m.PresetInfo("x", "", "user", {"strength": 3, "keep_colors": "sepia", "style_scale": "big"}, None)
    assert job.recommended(odd) == {}
    grey = m.Image(2, 1, 1, bytes([10, 20]))
    rgba = m.Image(1, 2, 4, bytes([1, 2, 3, 255, 4, 5, 6, 0]))
    assert job.thumbnail_rgb(grey) == (2, 1, bytes([10, 10, 10, 20, 20, 20]))
    assert job.thumbnail_rgb(rgba) == (1, 2, bytes([1, 2, 3, 4, 5, 6]))


def test_a_new_presets_name_is_made_acceptable_or_refused() -> None:
    assert job.preset_name("  My Oil Sketch ") == "my-oil-sketch"
    for bad in ("", "-x", "ünïcode", "a" * 65, "x/y"):
        with pytest.raises(job.PluginError, match="cannot name a preset"):
            job.preset_name(bad)
    # The daemon's rule, spelt twice (the plug-in cannot import the daemon): kept equal here.
    from daemon.presets import NAME_PATTERN

    assert job.PRESET_NAME.pattern == NAME_PATTERN.pattern


def test_a_selection_is_sent_with_context_clipped_to_the_layer() -> None:
    assert job.region_to_send((80, 60), None) == job.Region(0, 0, 80, 60)
    # 36×30 selection: 15% of 36 = 5 px of context each side.
    assert job.region_to_send((80, 60), (22, 14, 58, 44)) == job.Region(17, 9, 46, 40)
    assert job.region_to_send((80, 60), (22, 14, 58, 44), context=False) == job.Region(22, 14, 36, 30)
    # Near an edge the context is clipped; so is a selection reaching past the layer.
    assert job.region_to_send((80, 60), (-10, 50, 20, 70)) == job.Region(0, 47, 23, 13)  # 20×10: 3 px
    with pytest.raises(job.PluginError, match="does not touch"):
        job.region_to_send((80, 60), (90, 10, 120, 30))


def test_feather_and_settings_follow_the_quality() -> None:
    region = job.Region(0, 0, 300, 200)
    assert job.feather_for(region, True) == 12 and job.feather_for(region, False) == 0
    assert job.feather_for(job.Region(0, 0, 5, 5), True) == 1
    composed = set()
    for quality, (_, detail) in job.QUALITIES.items():
        params = job.job_params(quality, 0.3, 7, 4, layer_side=1024)
        assert (params.detail, params.strength, params.seed, params.mask_feather, params.layer_size) == \
            (detail, 0.3, 7, 4, 1024)
        assert params.detail > 0  # every quality paints the layer's own resolution
        assert params.preview_every >= 5
        m.JobParams.from_wire(params.to_wire())  # a job the daemon accepts
        # Everything that shapes the composition, the look, is the same in every quality.
        composed.add((params.size, params.iterations, params.coarse_iterations, params.first_scale))
    assert composed == {(m.JobParams().size, m.JobParams().iterations, m.JobParams().coarse_iterations,
                         m.JobParams().first_scale)}
    details = [job.job_params(quality, 0.5, 0, 0).detail for quality in ("draft", "normal", "fine")]
    assert details == sorted(set(details))  # more work from Draft to Fine
    assert job.job_params("unknown", 0.5, 0, 0).detail == job.QUALITIES[job.DEFAULT_QUALITY][1]
    # Defaults come from JobParams, not from the plug-in.
    assert job.knob("strength")[1:] == (0.0, 1.0, m.JobParams().strength)


def test_the_submit_carries_the_mask_at_the_contents_size() -> None:
    content = m.Image(4, 3, 4, bytes(48))
    submit = job.build_submit("j", content, m.Style(preset="swirls"), job.job_params("draft", 0.5, 0, 1), bytes(12))
    assert submit.mask is not None and (submit.mask.width, submit.mask.height, submit.mask.channels) == (4, 3, 1)
    request = m.parse_request([bytes(f) for f in m.submit_message(submit)])
    assert request.submit.params.detail == job.QUALITIES["draft"][1]
    assert job.build_submit("j", content, m.Style(preset="swirls"), submit.params, None).mask is None


def test_what_the_user_reads() -> None:
    progress = m.Progress(scale=2, scales=4, width=192, height=144, iteration=7, total=49, losses={"total": 1.0},
                          elapsed=3.0, eta=20.4)
    # A kept preview's name and the progress line shown with it say the same numbers.
    assert job.progress_text(progress) == "Iteration 7/49, scale 2/4 (192×144): about 20 s left"
    assert job.preview_name(progress) == "Impasto preview: iteration 7/49, scale 2/4"


def test_settings_and_endpoint(tmp_path) -> None:
    assert job.load_settings(tmp_path) == {}
    (tmp_path / "impasto.json").write_text("[1, 2]")
    assert job.load_settings(tmp_path) == {}
    (tmp_path / "impasto.json").write_text(json.dumps({"endpoint": "ipc:///x/d.sock", "daemon_command": ["d"]}))
    settings = job.load_settings(tmp_path)
    assert job.endpoint_of("", settings, {}) == "ipc:///x/d.sock"
    assert job.endpoint_of("", settings, {"IMPASTO_ENDPOINT": "ipc:///e"}) == "ipc:///e"
    assert job.endpoint_of("ipc:///arg", settings, {"IMPASTO_ENDPOINT": "ipc:///e"}) == "ipc:///arg"
    assert job.endpoint_of("", {}, {}).startswith("ipc://")


def test_an_absent_daemon_is_explained(tmp_path) -> None:
    endpoint = f"ipc://{tmp_path}/none.sock"
    with pytest.raises(job.PluginError) as caught:
        job.connect(endpoint, {"daemon_command": ["/opt/impasto/impasto-daemon"]}, start=False)
    # The configured command with the endpoint, and the option that would have started it.
    assert "/opt/impasto/impasto-daemon --endpoint " + endpoint in str(caught.value)
    assert "Start the daemon if missing' (under Advanced)" in str(caught.value)
    with pytest.raises(job.PluginError, match="not found"):
        job.connect(endpoint, {"daemon_command": ["/nonexistent/impasto-daemon"]}, start=True)


def daemon_settings(folder) -> dict:
    """impasto.json as the installer writes it, for a daemon of the test's own."""
    return {"daemon_command": [sys.executable, "-m", "daemon.main", "--cache-dir", str(folder / "cache"),
                               "--presets-dir", str(folder / "presets")]}


def test_connect_starts_the_configured_daemon(tmp_path) -> None:
    endpoint = f"ipc://{tmp_path}/sock/d.sock"
    settings = daemon_settings(tmp_path)
    started, pulses = [], []
    job.connect(endpoint, settings, start=True, on_wait=lambda: pulses.append(1), on_start=started.append)
    try:
        assert started == [tmp_path / "sock" / "impasto-daemon.log"] and pulses
        with Client(endpoint) as client:
            assert client.hello()["queue"] == 0
        job.connect(endpoint, settings, start=True, on_start=started.append)  # already running: not started again
        assert len(started) == 1
    finally:
        with Client(endpoint) as client:
            client.request(m.SHUTDOWN)


def test_the_dialogs_gallery_starts_the_daemon_and_fills_when_it_answers(tmp_path) -> None:
    endpoint = f"ipc://{tmp_path}/sock/d.sock"
    settings = daemon_settings(tmp_path)
    absent = job.Daemon(f"ipc://{tmp_path}/none.sock", {"daemon_command": ["/opt/impasto-daemon"]}, may_start=False)
    assert absent.presets() is None and not absent.waiting()
    assert "/opt/impasto-daemon --endpoint" in absent.state_text()
    daemon = job.Daemon(endpoint, settings, may_start=True)
    try:
        assert daemon.presets() is None and daemon.waiting()  # started in the background: the dialog draws on
        assert "Starting the Impasto daemon" in daemon.state_text()
        job.connect(endpoint, settings, True, starting=daemon)  # OK pressed meanwhile: waits for that one
        infos = daemon.presets()
        assert infos is not None and not daemon.waiting() and daemon.state_text() == ""
        by_name = {info.name: info for info in infos}
        assert {"starry_night", "the_scream", "shipwreck", "woman_with_hat", "swirls"} <= set(by_name)
        starry = by_name["starry_night"]
        assert starry.source == "built-in" and "van Gogh" in starry.description
        assert starry.thumbnail is not None and max(starry.thumbnail.width, starry.thumbnail.height) == 64
        assert job.recommended(starry)["strength"] == pytest.approx(starry.params["strength"])
    finally:
        with Client(endpoint) as client:
            client.request(m.SHUTDOWN)


def test_the_dialog_tells_sizes_and_time_before_ok(daemon, tmp_path) -> None:
    region = job.Region(0, 0, 2560, 1600)
    estimate = job.forecast(daemon.endpoint, region, job.job_params("normal", 0.5, 0, 0))
    side = m.JobParams().size  # every quality composes at the engine's default size
    assert estimate is not None and estimate["working"] == [side, side * 5 // 8] and estimate["output"] == [2560, 1600]
    text = job.estimate_text(estimate)
    assert text.startswith(f"Composed at {side}×{side * 5 // 8} in every quality, painted up to 2560×1600: about ")
    assert " on cpu" in text
    draft, fine = (job.forecast(daemon.endpoint, region, job.job_params(quality, 0.5, 0, 0)) for quality in
                   ("draft", "fine"))
    assert draft and fine and draft["working"] == fine["working"] and draft["seconds"] < estimate["seconds"] < \
        fine["seconds"]
    assert job.forecast(f"ipc://{tmp_path}/none.sock", region, job.job_params("draft", 0.5, 0, 0)) is None
    assert "not running" in job.estimate_text(None)
    assert [job.duration_text(s) for s in (0.2, 59, 125, 7200)] == ["1 s", "59 s", "2 min", "2.0 h"]
