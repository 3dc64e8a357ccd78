"""The protocol module alone: encoding, decoding and validation (no torch, no sockets)."""

from __future__ import annotations

import math

import msgpack
import pytest

from impasto.protocol import messages as m


def tiny(width=3, height=2, channels=3, stride=0) -> m.Image:
    stride = stride or width * channels
    return m.Image(width, height, channels, bytes(range(stride * height)), stride)


def submit(**params) -> m.Submit:
    return m.Submit("job-1", tiny(), [m.Style(image=tiny(2, 2)), m.Style(weight=0.5, preset="swirls")],
                    m.JobParams(**params), mask=tiny(channels=1))


def as_received(frames: list) -> list:
    return [bytes(frame) for frame in frames]


def test_submit_round_trip() -> None:
    original = submit(iterations=7, optimizer="adam")
    request = m.parse_request(as_received(m.submit_message(original)))
    assert request.type == m.SUBMIT and request.job == "job-1"
    got = request.submit
    assert got.params == original.params
    assert bytes(got.content.data) == bytes(original.content.data)
    assert bytes(got.styles[0].image.data) == bytes(original.styles[0].image.data)
    assert got.styles[1].preset == "swirls" and got.styles[1].weight == 0.5
    assert got.mask.channels == 1


def test_a_part_goes_with_its_whole_and_a_forecast_with_its_size() -> None:
    part = m.Submit("job-1", tiny(), [m.Style(preset="swirls")], m.JobParams(layer_size=9, part_x=4, part_y=1),
                    whole=tiny(width=5, height=4))
    got = m.parse_request(as_received(m.submit_message(part))).submit
    assert (got.whole.width, got.whole.height) == (5, 4) and bytes(got.whole.data) == bytes(part.whole.data)
    assert (got.params.part_x, got.params.part_y) == (4, 1)
    with pytest.raises(m.ProtocolError, match="layer_size"):  # where would the part be in it?
        m.parse_request(as_received(m.submit_message(m.Submit("j", tiny(), part.styles, m.JobParams(),
                                                              whole=tiny()))))
    with pytest.raises(m.ProtocolError, match="RGB"):
        m.parse_request(as_received(m.submit_message(m.Submit("j", tiny(), part.styles, part.params,
                                                              whole=tiny(channels=1)))))
    forecast = m.parse_request(as_received(m.estimate_message(m.Estimate(3, 2, m.JobParams(), (640, 480)))))
    assert forecast.estimate.whole == (640, 480)
    assert m.parse_request(as_received(m.estimate_message(m.Estimate(3, 2, m.JobParams())))).estimate.whole is None
    bad = m.simple_message(m.ESTIMATE, width=3, height=2, params={}, whole=[640, "x"])
    with pytest.raises(m.ProtocolError, match="whole"):
        m.parse_request(as_received(bad))


def test_padded_rows_survive() -> None:
    padded = tiny(width=3, height=2, channels=3, stride=12)
    request = m.parse_request(as_received(m.submit_message(
        m.Submit("j", padded, [m.Style(preset="p")], m.JobParams()))))
    assert request.submit.content.stride == 12
    assert request.submit.content.packed() == bytes(range(0, 9)) + bytes(range(12, 21))


def header(frames: list) -> dict:
    return msgpack.unpackb(frames[0])


def reencode(frames: list, **changes) -> list:
    raw = header(frames)
    raw.update(changes)
    return [msgpack.packb(raw), *frames[1:]]


@pytest.mark.parametrize("frames, code", [
    ([b"\xc1garbage"], m.Code.BAD_MESSAGE),
    ([msgpack.packb([1, 2])], m.Code.BAD_MESSAGE),
    ([], m.Code.BAD_MESSAGE),
    ([msgpack.packb({"proto": "impasto", "v": 99, "type": "hello"})], m.Code.BAD_VERSION),
    ([msgpack.packb({"proto": "other", "v": 1, "type": "hello"})], m.Code.BAD_VERSION),
    ([msgpack.packb({"proto": "impasto", "v": 1, "type": "launch"})], m.Code.BAD_REQUEST),
    ([msgpack.packb({"proto": "impasto", "v": 1, "type": "cancel"})], m.Code.BAD_REQUEST),
])
def test_malformed_messages_are_refused(frames, code) -> None:
    with pytest.raises(m.ProtocolError) as caught:
        m.parse_request(frames)
    assert caught.value.code == code


def test_image_byte_count_must_match() -> None:
    frames = as_received(m.submit_message(submit()))
    frames[1] = frames[1][:-1]
    with pytest.raises(m.ProtocolError) as caught:
        m.parse_request(frames)
    assert caught.value.code == m.Code.BAD_IMAGE and caught.value.job == "job-1"


@pytest.mark.parametrize("content, code", [
    ({"width": 3, "height": 2, "channels": 3, "stride": 5, "frame": 1}, m.Code.BAD_IMAGE),
    ({"width": 3, "height": 2, "channels": 2, "stride": 6, "frame": 1}, m.Code.BAD_IMAGE),
    ({"width": 0, "height": 2, "channels": 3, "stride": 9, "frame": 1}, m.Code.BAD_IMAGE),
    ({"width": 3, "height": 2, "channels": 3, "stride": 9, "frame": 9}, m.Code.BAD_IMAGE),
    ({"width": "3", "height": 2, "channels": 3, "stride": 9, "frame": 1}, m.Code.BAD_IMAGE),
    ({"width": 9000, "height": 9000, "channels": 3, "stride": 27000, "frame": 1}, m.Code.TOO_LARGE),
])
def test_bad_image_descriptions(content, code) -> None:
    frames = reencode(as_received(m.submit_message(submit())), content=content)
    with pytest.raises(m.ProtocolError) as caught:
        m.parse_request(frames, max_pixels=10_000_000)
    assert caught.value.code == code


@pytest.mark.parametrize("params", [
    {"iterations": 0}, {"iterations": True}, {"iterations": 2.5}, {"style_weight": math.nan},
    {"style_weight": math.inf}, {"optimizer": "sgd"}, {"wings": 2}, {"content_layer": "relu9_9"},
    {"style_layers": {"relu1_1": -1}}, {"style_layers": []}, {"size": 10**9},
])
def test_bad_parameters_are_refused(params) -> None:
    with pytest.raises(m.ProtocolError) as caught:
        m.JobParams.from_wire(params)
    assert caught.value.code == m.Code.BAD_REQUEST


def test_parameters_are_normalised() -> None:
    params = m.JobParams.from_wire({"style_weight": 5, "style_layers": {"relu2_1": 1}})
    assert params.style_weight == 5.0 and isinstance(params.style_weight, float)
    assert params.style_layers == {"relu2_1": 1.0}


@pytest.mark.parametrize("styles", [[], [{"weight": 1}], [{"preset": "a", "image": {}}], [{"preset": "a", "weight": 0}],
                                    [{"preset": "a"}] * (m.MAX_STYLES + 1)])
def test_bad_style_lists(styles) -> None:
    frames = reencode(as_received(m.submit_message(submit())), styles=styles)
    with pytest.raises(m.ProtocolError) as caught:
        m.parse_request(frames)
    assert caught.value.code == m.Code.BAD_REQUEST


def test_reply_with_image_round_trip() -> None:
    frames = as_received(m.image_message(m.PREVIEW, tiny(), job="j", iteration=5))
    reply = m.parse_reply(frames)
    assert reply.type == m.PREVIEW and reply.job == "j" and reply.header["iteration"] == 5
    assert reply.image.packed() == tiny().packed()


def test_protocol_module_needs_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, protocol.messages, protocol.client; sys.exit('torch' in sys.modules or 'numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_recipe_sets_what_it_says_and_explicit_values_win() -> None:
    params = m.JobParams.from_wire({"recipe": "pytorch-course"})
    assert params.optimizer == "adam" and params.init == "content" and params.content_layer == "conv4_2"
    assert list(params.style_layers.values()) == [1.0, 0.75, 0.2, 0.2, 0.2]
    assert m.JobParams.from_wire({"recipe": "tf-gatys"}).pooling == "avg"
    assert m.JobParams.from_wire({"recipe": "keras-lbfgs"}).content_layer == "conv5_2"
    assert m.JobParams.from_wire({"recipe": "tf2-tutorial"}).tv_weight > 0
    # Every recipe runs at one scale, with the style weight its all-layer weights were balanced for.
    assert all(m.JobParams.from_wire({"recipe": name}).first_scale == 0 for name in m.RECIPES)
    assert all(m.JobParams.from_wire({"recipe": name}).style_weight < m.JobParams().style_weight for name in m.RECIPES)
    assert m.JobParams.from_wire({"recipe": "keras-lbfgs", "optimizer": "adam"}).optimizer == "adam"
    # What goes over the wire re-reads the same.
    assert m.JobParams.from_wire(params.to_wire()) == params
    with pytest.raises(m.ProtocolError):
        m.JobParams.from_wire({"recipe": "../etc"})
