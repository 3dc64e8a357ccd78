"""Preset work off the socket thread: adding a preset and listing them with thumbnails read and
write large pictures (seconds for a large one), and heartbeats must keep flowing
meanwhile. One thread does it, in order, and answers through a PUSH socket of its own into the
service's outbox, which the main thread forwards to the client.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import zmq

from impasto.protocol import messages as m

from . import pixels
from .delivery import MUST
from .presets import PresetError, PresetStore, StorageError, UnknownPreset

log = logging.getLogger("impasto.daemon")


class PresetChores:
    def __init__(self, presets: PresetStore, context: zmq.Context, outbox: str) -> None:
        self.presets = presets
        self.context = context
        self.outbox_address = outbox
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="impasto-chores")
        self._outbox: zmq.Socket | None = None  # the chores thread's own

    def gallery(self, identity: bytes) -> None:
        self._in_background(identity, self._presets_message)

    def change(self, identity: bytes, request: m.Request) -> None:
        """PRESET_ADD or PRESET_REMOVE."""
        self._in_background(identity, lambda: self._change_presets(request))

    def close(self) -> None:
        """Finish what is queued; the thread's socket closes last, before the context ends."""
        self.pool.submit(self._close_outbox)
        self.pool.shutdown(wait=True)

    def _in_background(self, identity: bytes, work: Callable[[], list]) -> None:
        """Run `work` on the chores thread; its message, or its error, goes to `identity`."""
        def chore() -> None:
            try:
                frames = work()
            except m.ProtocolError as exc:
                frames = m.error_message(exc.code, exc.message, exc.job)
            except Exception as exc:
                log.error("error in a preset request:\n%s", traceback.format_exc())
                frames = m.error_message(m.Code.INTERNAL, f"internal error: {exc}")
            if self._outbox is None:
                self._outbox = self.context.socket(zmq.PUSH)
                self._outbox.connect(self.outbox_address)
            self._outbox.send_multipart([MUST, identity, *frames], copy=False)

        self.pool.submit(chore)

    def _close_outbox(self) -> None:
        if self._outbox is not None:
            self._outbox.close(linger=1000)

    def _change_presets(self, request: m.Request) -> list:
        upload = request.preset
        assert upload is not None  # parse_request sets it for these two types
        try:
            if request.type == m.PRESET_ADD:
                assert upload.image is not None
                array = pixels.to_array(upload.image)[..., :3]
                self.presets.add(upload.name, np.ascontiguousarray(array), upload.description, upload.params)
                log.info("user preset %s added (%dx%d)", upload.name, upload.image.width, upload.image.height)
            else:
                self.presets.remove(upload.name)
        except UnknownPreset as exc:
            raise m.ProtocolError(m.Code.UNKNOWN_PRESET, str(exc)) from None
        except StorageError as exc:
            raise m.ProtocolError(m.Code.STORAGE, str(exc)) from None
        except PresetError as exc:
            raise m.ProtocolError(m.Code.BAD_REQUEST, str(exc)) from None
        return m.simple_message(request.type, name=upload.name)

    def _presets_message(self) -> list:
        entries, images = [], []
        for name in self.presets.names():
            try:  # a preset that breaks only now (its pixels) is left out, not the listing
                thumb, entry = pixels.from_array(self.presets.thumbnail(name)), self.presets.describe(name)
            except PresetError as exc:
                log.warning("user preset %s left out of the listing: %s", name, exc)
                continue
            images.append(thumb)
            entries.append({**entry, "thumbnail": thumb.describe(len(images))})
        return m.encode({"type": m.PRESETS, "presets": entries}, images)
