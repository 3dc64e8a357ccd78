"""Malformed, truncated, oversized and wrong-typed input: messages thrown at a live daemon, and
user preset folders, style-target cache entries and daemon options the probe found faults in.

Every message must get a well-formed reply and the daemon must go on serving. The count is
small in the suite; raise it for a soak run:
    IMPASTO_FUZZ_EXAMPLES=10000 .venv/bin/pytest tests/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil

import msgpack
import numpy as np
import pytest
import torch
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impasto.daemon.presets import PresetError, PresetStore
from impasto.protocol import messages as m
from impasto.protocol.client import Client

from .conftest import make_submit

EXAMPLES = int(os.environ.get("IMPASTO_FUZZ_EXAMPLES", "150"))
KEYS = ["proto", "v", "type", "job", "content", "styles", "params", "mask", "width", "height", "channels",
        "stride", "frame", "weight", "preset", "image"]
# Not "shutdown": it is a valid request, and the fuzzer would simply (and correctly) stop the daemon.
TYPES = ["hello", "submit", "cancel", "presets", "heartbeat", "launch", ""]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=True),
                    st.text(max_size=20), st.binary(max_size=40), st.sampled_from(TYPES))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
                      max_leaves=12)


@st.composite
def headers(draw) -> dict:
    header = draw(st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), values, max_size=8))
    if draw(st.booleans()):  # often speak the protocol, so validation past the version check is reached
        header.update(proto=m.PROTOCOL, v=m.VERSION, type=draw(st.sampled_from(TYPES)))
    return header


@st.composite
def messages(draw, valid_submit: list) -> list:
    kind = draw(st.sampled_from(["garbage", "header", "mutated", "truncated"]))
    if kind == "garbage":
        return draw(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
    if kind == "header":
        return [msgpack.packb(draw(headers()), use_bin_type=True),
                *draw(st.lists(st.binary(max_size=200), max_size=3))]
    header = msgpack.unpackb(valid_submit[0])
    if kind == "mutated":
        key = draw(st.sampled_from(sorted(header)))
        header[key] = draw(values)
        return [msgpack.packb(header, use_bin_type=True), *valid_submit[1:]]
    frames = list(valid_submit)
    index = draw(st.integers(0, len(frames) - 1))
    frames[index] = frames[index][: draw(st.integers(0, max(0, len(frames[index]) - 1)))]
    return frames


@pytest.fixture(scope="module")
def valid_submit(content_image, style_image) -> list:
    return [bytes(frame) for frame in m.submit_message(make_submit(content_image, style_image, iterations=2))]


def test_fuzzed_messages_get_well_formed_replies(daemon, valid_submit) -> None:
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(daemon.endpoint)
    counts: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(messages(valid_submit))
    def throw(frames: list) -> None:
        socket.send_multipart(frames)
        assert socket.poll(5000), "no reply"
        while socket.poll(0 if counts else 5000):
            reply = m.parse_reply(socket.recv_multipart())  # raises if malformed
            counts[reply.type] = counts.get(reply.type, 0) + 1
            if reply.type == m.ERROR:
                assert reply.header["code"] and reply.header["message"]
            if reply.type == m.ACCEPTED:  # a mutation that stayed valid: do not let it run
                socket.send_multipart(m.simple_message(m.CANCEL, job=reply.job))
            if reply.type in (m.ERROR, m.HELLO, m.PRESETS, m.HEARTBEAT, m.RESULT, m.CANCELLED):
                break

    try:
        throw()
    finally:
        socket.close()
    assert daemon.process.poll() is None
    with Client(daemon.endpoint) as client:
        assert client.hello()["v"] == m.VERSION
    print(f"replies to {EXAMPLES} fuzzed messages: {counts}")
    assert counts.get(m.ERROR, 0) > EXAMPLES // 3


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                                     st.text(max_size=300)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=10)
metas = st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                  st.fixed_dictionaries({}, optional={"description": json_values, "params": json_values})
                  .map(lambda v: json.dumps(v).encode()))


def test_fuzzed_preset_folders_never_break_the_store(tmp_path_factory) -> None:
    """Whatever a user preset's files hold, the store lists the good ones and the built-ins."""
    folder = tmp_path_factory.mktemp("fuzzed-presets")
    store = PresetStore(folder)
    store.add("good", np.full((8, 8, 3), 50, np.uint8), "fine", {})
    png = (folder / "good" / "style.png").read_bytes()

    count = iter(range(10**9))

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(meta=metas, cut=st.integers(0, len(png)), junk=st.binary(max_size=64))
    def check(meta: bytes, cut: int, junk: bytes) -> None:
        name = f"fuzzed-{next(count)}"  # a new preset each time: rewrites within a clock tick look alike
        fuzzed = folder / name
        fuzzed.mkdir()
        (fuzzed / "preset.json").write_bytes(meta)
        (fuzzed / "style.png").write_bytes(png[:cut] + junk)
        names = store.names()
        assert "good" in names and "starry_night" in names
        if name in names:  # it passed every check: then it must describe, and decode or say why not
            assert store.describe(name)["source"] == "user"
            with contextlib.suppress(PresetError):
                store.image(name)
        shutil.rmtree(fuzzed)

    check()


def test_fuzzed_cache_entries_are_dropped_or_fit(tmp_path_factory) -> None:
    """A cached entry is used only if it has the layers asked, each a Gram of that layer's size."""
    from impasto.daemon.model import LAYER_CHANNELS
    from impasto.daemon.targets import TargetCache

    cache = TargetCache(tmp_path_factory.mktemp("fuzzed-cache"))
    layers = {"relu1_1", "relu2_1"}
    grams = st.one_of(st.just(None), st.integers(), st.builds(lambda a, b, v: torch.full((1, a, b), v),
                                                              st.sampled_from([1, 63, 64, 128]),
                                                              st.sampled_from([64, 128]),
                                                              st.floats(allow_nan=True, width=32)))

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(entry=st.dictionaries(st.sampled_from(["relu1_1", "relu2_1", "relu9_9", "conv1_1"]), grams, max_size=3))
    def check(entry: dict) -> None:
        assert cache.folder is not None
        torch.save(entry, cache.folder / "k.pt")
        cache.memory.clear()
        got = cache.get("k", layers)
        if got is not None:
            assert set(got) == layers
            for layer, gram in got.items():
                channels = LAYER_CHANNELS[layer]
                assert gram.shape == (1, channels, channels) and bool(torch.isfinite(gram).all())

    check()


def test_fuzzed_daemon_options_are_taken_or_refused_in_words(capsys) -> None:
    from impasto.daemon.main import parse_args

    options = ["--memory-limit", "--threads", "--device", "--client-timeout", "--max-queue", "--max-pixels",
               "--hold-memory"]

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(option=st.sampled_from(options), value=st.one_of(st.text(max_size=12), st.floats().map(str),
                                                            st.integers(-10, 10**12).map(str)))
    def check(option: str, value: str) -> None:
        try:
            args = parse_args([option, value])
        except SystemExit as exit_:
            assert exit_.code == 2 and option in capsys.readouterr().err
            return
        number = getattr(args, option[2:].replace("-", "_"))
        assert isinstance(number, str) or (math.isfinite(number) and number >= 0)

    check()
