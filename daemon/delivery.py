"""Replies to clients, with a bound on what one client can make the daemon hold.

A client that stops reading (or acknowledges previews it never read) used to make the daemon
queue every preview for it, its memory growing until ZeroMQ dropped replies, the job's end
among them. Now each client's queue in the ROUTER holds at most SEND_QUEUE messages (its send
high-water mark, with ROUTER_MANDATORY a full queue says EAGAIN instead of growing), and what
does not fit is handled by kind:
- progress, previews and heartbeats may be dropped: newer ones follow (a dropped preview is
  counted as acknowledged, so the next can go);
- everything else (answers, a job's end) must arrive: it waits here, at most PENDING_PER_CLIENT
  messages per client for PENDING_WAIT_S each, and goes as soon as the client reads again.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable

import zmq

log = logging.getLogger("impasto.daemon")

SEND_QUEUE = 4  # messages per client in the ROUTER (its SNDHWM)
PENDING_PER_CLIENT = 16
PENDING_WAIT_S = 60.0
# What an outbox message starts with: how much its arrival matters.
MUST = b"!"
MAY = b"~"
PREVIEW = b"P"  # may be dropped; then counts as read


class Delivery:
    def __init__(self, socket: zmq.Socket, on_preview_dropped: Callable[[bytes], None]) -> None:
        self.socket = socket
        self.on_preview_dropped = on_preview_dropped
        self.pending: dict[bytes, collections.deque[tuple[float, list]]] = {}
        self.dropped: collections.Counter[bytes] = collections.Counter()

    def send(self, identity: bytes, frames: list, kind: bytes = MUST) -> None:
        """Send now, or drop, or keep for later, by `kind` (MUST, MAY or PREVIEW)."""
        if identity not in self.pending and self._try(identity, frames):
            return
        if kind != MUST:
            if not self.dropped[identity]:
                log.warning("a client is not reading its replies: its progress and previews are dropped")
            self.dropped[identity] += 1
            if kind == PREVIEW:
                self.on_preview_dropped(identity)
            return
        queue = self.pending.setdefault(identity, collections.deque())
        if len(queue) >= PENDING_PER_CLIENT:
            log.warning("a client is not reading its replies: dropped an answer (%d already wait)", len(queue))
            return
        queue.append((time.monotonic() + PENDING_WAIT_S, frames))

    def retry(self) -> None:
        """Send what waits, in order, for each client that reads again; give up on what waited too long."""
        now = time.monotonic()
        for identity in list(self.pending):
            queue = self.pending[identity]
            while queue:
                deadline, frames = queue[0]
                sent = self._try(identity, frames)
                if not sent and now < deadline:
                    break
                if not sent:
                    log.warning("a client read nothing for %.0f s: dropped an answer", PENDING_WAIT_S)
                queue.popleft()
            if not queue:
                del self.pending[identity]

    def _try(self, identity: bytes, frames: list) -> bool:
        """True when sent (or undeliverable for good: the client has gone); False when its queue is full."""
        try:
            self.socket.send_multipart([identity, *frames], copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:  # EHOSTUNREACH: the client has gone (ROUTER_MANDATORY)
            log.debug("reply not delivered: %s", exc)
        return True

    def forget(self, identity: bytes) -> None:
        self.pending.pop(identity, None)
        self.dropped.pop(identity, None)
