"""Malformed, truncated, oversized and wrong-typed messages thrown at a live daemon.

Every message must get a well-formed reply and the daemon must go on serving. The count is
small in the suite; raise it for a soak run:
    IMPASTO_FUZZ_EXAMPLES=10000 .venv/bin/pytest tests/test_fuzz.py
"""

from __future__ import annotations

import os

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import messages as m
from protocol.client import Client

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
