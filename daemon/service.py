"""The daemon's ZeroMQ service: a ROUTER socket in front of a one-at-a-time job queue.

Threads and sockets (ZeroMQ sockets belong to one thread each):
- the main thread owns the ROUTER. It answers hello/presets/heartbeat at once, validates and
  queues submissions, flags cancellations, and notices clients that stopped sending heartbeats;
- one worker thread runs jobs through the engine. It never touches the ROUTER: what it has to say
  goes through an inproc PUSH socket that the main thread drains and forwards;
- one chores thread (chores.py) does the preset work that reads or writes large pictures.
So the daemon keeps answering while a job computes (torch releases the GIL in its kernels).
"""

from __future__ import annotations

import collections
import importlib.metadata
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import zmq

from impasto.protocol import messages as m

from . import pixels
from .chores import PresetChores
from .delivery import MAY, MUST, PREVIEW, Delivery
from .engine import JobCancelled, StyleTransfer
from .memory import DoesNotFit, HeldMemory, available_bytes, memory_plan
from .motion import FLOW_MISSING, flow_available
from .presets import PresetError, PresetStore

log = logging.getLogger("impasto.daemon")

VERSION = importlib.metadata.version("impasto")
OUTBOX = "inproc://impasto-outbox"
PROGRESS_INTERVAL_S = 0.1  # progress replies at most this often (the last one always goes)


@dataclass
class Job:
    identity: bytes
    submit: m.Submit
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = m.CANCELLED
    previews_in_flight: int = 0  # sent, not yet acknowledged by the client
    previews_skipped: int = 0


class Service:
    def __init__(self, engine: StyleTransfer, socket: zmq.Socket, context: zmq.Context, *, device_name: str,
                 model_name: str, max_queue: int = 16, max_pixels: int = m.MAX_PIXELS,
                 client_timeout: float = m.CLIENT_TIMEOUT_S, memory_limit: int = 0, hold_memory: float = 60.0,
                 presets: PresetStore | None = None, keep_endpoint: Callable[[], bool] = lambda: True) -> None:
        self.engine = engine
        self.keep_endpoint = keep_endpoint  # False: another daemon holds the endpoint now
        self.socket = socket  # a bound ROUTER
        self.context = context
        self.device_name = device_name
        self.model_name = model_name
        self.max_queue = max_queue
        self.max_pixels = max_pixels
        self.client_timeout = client_timeout
        self.memory_limit = memory_limit  # bytes a job may add; 0: what the device has free
        self.held = HeldMemory(hold_memory)  # the last job's, for the next
        self.presets = presets or PresetStore()
        self.queue: collections.deque[Job] = collections.deque()
        self.running: Job | None = None
        self.lock = threading.Condition()
        self.last_seen: dict[bytes, float] = {}
        self.stopping = threading.Event()
        self.outbox = context.socket(zmq.PULL)
        self.outbox.bind(OUTBOX)
        self.worker = threading.Thread(target=self._work, name="impasto-worker", daemon=True)
        self.chores = PresetChores(self.presets, context, OUTBOX)
        # A preview a client's full queue could not take counts as read, so the next can go.
        self.delivery = Delivery(socket, on_preview_dropped=self._acknowledge)

    # --- main thread -------------------------------------------------------------------

    def serve(self) -> None:
        """Run until `stop()`; then cancel what is left and tell its clients."""
        self.worker.start()
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.outbox, zmq.POLLIN)
        while not self.stopping.is_set():
            events = dict(poller.poll(100))
            if not self.keep_endpoint():
                self.stop()
            if self.outbox in events:
                self._forward_outbox()
            if self.socket in events:
                self._receive()
            if self.delivery.pending:
                self.delivery.retry()
            self._cancel_silent_clients()
        self._shut_down()

    def stop(self) -> None:
        self.stopping.set()

    def _forward_outbox(self) -> None:
        """The worker's and the chores' messages: [kind, identity, *frames] (see delivery.py)."""
        while True:
            try:
                frames = self.outbox.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.delivery.send(frames[1].bytes, frames[2:], frames[0].bytes)

    def _send(self, identity: bytes, frames: list, kind: bytes = MUST) -> None:
        self.delivery.send(identity, frames, kind)

    def _receive(self) -> None:
        for _ in range(100):  # drain a burst, but come back to the outbox in between
            try:
                raw = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity, frames = raw[0].bytes, [frame.buffer for frame in raw[1:]]
            self.last_seen[identity] = time.monotonic()
            try:
                self._handle(identity, m.parse_request(frames, self.max_pixels))
            except m.ProtocolError as exc:
                log.info("refused a request: %s [%s]", exc.message[:300], exc.code)
                self._send(identity, m.error_message(exc.code, exc.message, exc.job))
            except Exception as exc:  # a bug must not take the daemon down
                log.error("error handling a request:\n%s", traceback.format_exc())
                self._send(identity, m.error_message(m.Code.INTERNAL, f"internal error: {exc}"))

    def _handle(self, identity: bytes, request: m.Request) -> None:
        if request.type == m.HELLO:
            self._send(identity, m.simple_message(
                m.HELLO, daemon=VERSION, device=self.device_name, model=self.model_name,
                queue=self._queue_length(), max_pixels=self.max_pixels, presets=self.presets.names()))
        elif request.type == m.HEARTBEAT:
            if request.seen is not None:
                self._acknowledge(identity, request.job)
            self._send(identity, m.simple_message(m.HEARTBEAT), MAY)
        elif request.type == m.ESTIMATE:
            estimate = request.estimate
            assert estimate is not None  # parse_request sets it for this type
            try:
                forecast = self.engine.estimate(estimate.width, estimate.height, estimate.params,
                                                self.job_memory_limit(), estimate.whole)
            except DoesNotFit as exc:
                raise m.ProtocolError(m.Code.TOO_LARGE, str(exc)) from None
            self._send(identity, m.simple_message(m.ESTIMATE, device=self.device_name, **forecast))
        elif request.type == m.PRESETS:
            self.chores.gallery(identity)
        elif request.type == m.SUBMIT and request.submit is not None:
            self._enqueue(identity, request.submit)
        elif request.type == m.CANCEL and request.job is not None:
            self._cancel(identity, request.job)
        elif request.type in (m.PRESET_ADD, m.PRESET_REMOVE):
            self.chores.change(identity, request)
        elif request.type == m.SHUTDOWN:
            log.info("shutdown requested by a client")
            self._send(identity, m.simple_message(m.SHUTDOWN))
            self.stop()

    def _jobs(self) -> list[Job]:
        """The queued jobs and the running one; call with the lock held."""
        return [*self.queue, *([self.running] if self.running else [])]

    def _queue_length(self) -> int:
        with self.lock:
            return len(self.queue) + (self.running is not None)

    def _enqueue(self, identity: bytes, submit: m.Submit) -> None:
        for style in submit.styles:
            if style.preset is not None and style.preset not in self.presets:
                raise m.ProtocolError(m.Code.UNKNOWN_PRESET, f"no preset named {style.preset!r}; "
                                      f"known: {', '.join(self.presets.names())}", submit.job)
        if submit.previous is not None and not flow_available():
            raise m.ProtocolError(m.Code.UNAVAILABLE, FLOW_MISSING, submit.job)
        try:  # refused at the door if not even the smallest tiles would fit
            memory_plan(submit.content.width, submit.content.height, submit.params, self.engine.device,
                        self.job_memory_limit())
        except DoesNotFit as exc:
            raise m.ProtocolError(m.Code.TOO_LARGE, str(exc), submit.job) from None
        with self.lock:
            jobs = self._jobs()
            if any(job.identity == identity and job.submit.job == submit.job for job in jobs):
                raise m.ProtocolError(m.Code.DUPLICATE_JOB, f"job {submit.job!r} is already queued", submit.job)
            if len(self.queue) >= self.max_queue:
                raise m.ProtocolError(m.Code.BUSY, f"the queue is full ({self.max_queue} jobs); try again later",
                                      submit.job)
            position = len(self.queue) + (self.running is not None)
            self.queue.append(Job(identity, submit))
            self.lock.notify()
        whole = f", a part of a {submit.params.layer_size} px whole sent with it" if submit.whole is not None else \
            ", an animation frame following the previous one" if submit.previous is not None else ""
        log.info("job %s queued at position %d (%dx%d%s)", submit.job, position, submit.content.width,
                 submit.content.height, whole)
        self._send(identity, m.simple_message(m.ACCEPTED, job=submit.job, position=position))

    def job_memory_limit(self) -> int:
        """Bytes a job may add: --memory-limit, else most of what the device has free now and
        what the daemon holds from the last job (see HeldMemory).

        A fifth stays free for the rest of the machine and for the error in our predictions.
        """
        device = self.engine.device
        return self.memory_limit or int((available_bytes(device) + self.held.bytes(device)) * 0.8)

    def _cancel(self, identity: bytes, job_id: str) -> None:
        with self.lock:
            jobs = self._jobs()
        for job in jobs:
            if job.identity == identity and job.submit.job == job_id:
                self._stop(job, m.CANCELLED)
                return
        raise m.ProtocolError(m.Code.UNKNOWN_JOB, f"no job {job_id!r} is queued or running", job_id)

    def style_tensor(self, style: m.Style) -> torch.Tensor:
        if style.preset is not None:
            return pixels.array_to_tensor(self.presets.image(style.preset))
        assert style.image is not None  # a style is a preset or an image
        return pixels.to_tensor(style.image)

    def _acknowledge(self, identity: bytes, job_id: str | None = None) -> None:
        """A preview of the running job read by its client (or dropped for it: `job_id` None)."""
        with self.lock:
            job = self.running
            if job is not None and job.identity == identity and job_id in (None, job.submit.job):
                job.previews_in_flight = max(0, job.previews_in_flight - 1)

    def _stop(self, job: Job, reason: str) -> None:
        """Flag a running job for the worker; take a queued one off the queue and answer at once."""
        with self.lock:
            job.cancel_reason = reason
            job.cancel.set()
            queued = job in self.queue
            if queued:
                self.queue.remove(job)
        if queued:
            self._send(job.identity, stopped_message(job))

    def _cancel_silent_clients(self) -> None:
        """Cancel the jobs of clients whose heartbeats stopped (killed, crashed, unplugged)."""
        now = time.monotonic()
        with self.lock:
            jobs = self._jobs()
        for job in jobs:
            silent = now - self.last_seen.get(job.identity, now)
            if silent > self.client_timeout and not job.cancel.is_set():
                log.info("client of job %s silent for %.1f s; cancelling it", job.submit.job, silent)
                self._stop(job, m.Code.CLIENT_GONE)
        active = {job.identity for job in jobs}
        for identity in [i for i, seen in self.last_seen.items() if i not in active and now - seen > 60]:
            del self.last_seen[identity]
            self.delivery.forget(identity)

    def _shut_down(self) -> None:
        with self.lock:
            jobs = self._jobs()
            for job in jobs:
                job.cancel_reason = m.Code.SHUTTING_DOWN
                job.cancel.set()
            self.lock.notify()
        self.worker.join(timeout=10)
        self.chores.close()
        self._forward_outbox()
        self.outbox.close(linger=0)

    # --- worker thread -----------------------------------------------------------------

    def _work(self) -> None:
        outbox = self.context.socket(zmq.PUSH)
        outbox.connect(OUTBOX)
        try:
            while True:
                with self.lock:
                    while not self.queue and not self.stopping.is_set() and not self.held.due():
                        self.lock.wait(0.5)
                    job = self.running = self.queue.popleft() if self.queue else None
                if job is None:
                    if self.stopping.is_set():
                        return
                    log.info("memory held since the last job given back")
                    self.held.release()
                    continue
                last = self._run(job, outbox)
                # Off the books before the client hears the end, so a status it asks for next
                # no longer counts this job.
                with self.lock:
                    self.running = None
                self.held.hold()
                outbox.send_multipart([MUST, job.identity, *last], copy=False)
        finally:
            outbox.close(linger=1000)

    def _run(self, job: Job, outbox: zmq.Socket) -> list:
        """Run one job, streaming progress and previews; returns its last message, unsent."""
        submit = job.submit

        def send(frames: list, kind: bytes = MAY) -> None:
            outbox.send_multipart([kind, job.identity, *frames], copy=False)

        if job.cancel.is_set():
            return stopped_message(job)
        log.info("job %s started", submit.job)
        started = time.monotonic()
        last_progress = [0.0, 0]  # when, and at which scale

        def on_progress(progress: m.Progress) -> None:
            now = time.monotonic()
            new_scale = progress.scale != last_progress[1]  # every scale is told, however fast
            if now - last_progress[0] < PROGRESS_INTERVAL_S and progress.iteration < progress.total and not new_scale:
                return
            last_progress[:] = [now, progress.scale]
            send(m.progress_message(submit.job, progress))

        def on_preview(image: torch.Tensor, progress: m.Progress) -> None:
            with self.lock:
                if job.previews_in_flight >= m.PREVIEWS_IN_FLIGHT:
                    job.previews_skipped += 1  # the client is behind: it gets a fresher one later
                    return
                job.previews_in_flight += 1
            send(m.image_message(m.PREVIEW, pixels.finish(image, submit), job=submit.job,
                                 iteration=progress.iteration, total=progress.total, scale=progress.scale), PREVIEW)

        try:
            content = pixels.to_tensor(submit.content)
            styles = [(self.style_tensor(style), style.weight) for style in submit.styles]
            whole = pixels.to_tensor(submit.whole) if submit.whole is not None else None
            result = self.engine.run(content, styles, submit.params, on_progress, on_preview, job.cancel.is_set,
                                     memory_limit=self.job_memory_limit(), whole=whole, link=pixels.link_of(submit))
            log.info("job %s done in %.1f s (%d previews skipped for a slow client)", submit.job,
                     time.monotonic() - started, job.previews_skipped)
            return m.image_message(m.RESULT, pixels.finish(result, submit), job=submit.job,
                                   seconds=time.monotonic() - started)
        except JobCancelled:
            return stopped_message(job)
        except PresetError as exc:  # a user preset whose pixels turned out unreadable
            return m.error_message(m.Code.UNKNOWN_PRESET, str(exc), submit.job)
        except DoesNotFit as exc:  # memory grew short since the job was accepted
            return m.error_message(m.Code.TOO_LARGE, str(exc), submit.job)
        except torch.cuda.OutOfMemoryError:
            log.warning("job %s ran out of device memory", submit.job)
            return m.error_message(m.Code.OUT_OF_MEMORY, "the device ran out of memory; try a smaller size",
                                   submit.job)
        except Exception as exc:
            log.error("job %s failed:\n%s", submit.job, traceback.format_exc())
            return m.error_message(m.Code.INTERNAL, f"the job failed: {exc}", submit.job)


def stopped_message(job: Job) -> list:
    """The last message of a job that was cancelled, or stopped for `job.cancel_reason`."""
    if job.cancel_reason == m.CANCELLED:
        log.info("job %s cancelled", job.submit.job)
        return m.simple_message(m.CANCELLED, job=job.submit.job)
    log.info("job %s stopped: %s", job.submit.job, job.cancel_reason)
    return m.error_message(job.cancel_reason, "the job was stopped: " + job.cancel_reason.replace("_", " "),
                           job.submit.job)
