"""Fault and load soak against a real daemon; prints figures, asserts nothing.

1. N clients, each a separate process, SIGKILLed mid-job one after another: how many jobs are
   still running 2 s after the last kill, and the daemon's RSS against its start.
2. The daemon SIGKILLed under a connected client: how long until the client reports it.
3. C concurrent clients × J jobs each: do all complete, in submission order per client?
4. M mixed jobs (user presets added, used and removed among them): does the daemon's RSS stay flat?

    .venv/bin/python bench/soak.py [--kills 100] [--clients 8] [--jobs 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import start_daemon  # noqa: E402
from bench.results import Results  # noqa: E402
from impasto.daemon import artwork  # noqa: E402
from impasto.daemon.tiles import SMALLEST_CROP  # noqa: E402
from impasto.protocol import messages as m  # noqa: E402
from impasto.protocol.client import Client, DaemonUnavailable, new_job_id  # noqa: E402

CLIENT = """
import sys
sys.path.insert(0, {root!r})
from impasto.protocol import messages as m
from impasto.protocol.client import Client, new_job_id
import numpy as np
from impasto.daemon import artwork
picture = np.ascontiguousarray(np.asarray(artwork.landscape(160, 120)))
content = m.Image(160, 120, 3, picture.tobytes())
submit = m.Submit(new_job_id(), content, [m.Style(preset="swirls")], m.JobParams(iterations=5000, preview_every=5))
for reply in Client({endpoint!r}).run_job(submit):
    if reply.type == m.PROGRESS:
        print("running", flush=True)
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def small_submit(iterations: int, width: int = 64, height: int = 48) -> m.Submit:
    import numpy as np

    picture = np.ascontiguousarray(np.asarray(artwork.landscape(width, height)))
    return m.Submit(new_job_id(), m.Image(width, height, 3, picture.tobytes()), [m.Style(preset="embers")],
                    m.JobParams(iterations=iterations, preview_every=0))


def kill_clients(endpoint: str, daemon: subprocess.Popen, count: int) -> None:
    with Client(endpoint) as client:  # the baseline: after one finished job like the ones to be killed
        list(client.run_job(small_submit(20, 160, 120)))
    start_rss = rss_mib(daemon.pid)
    script = CLIENT.format(root=str(ROOT), endpoint=endpoint)
    started = time.monotonic()
    for _ in range(count):
        client = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        client.stdout.readline()  # "running": its job is on the device
        client.kill()
        client.wait()
    last_kill = time.monotonic()
    time.sleep(2)
    with Client(endpoint) as client:
        left = client.hello()["queue"]
    end_rss = rss_mib(daemon.pid)
    print(f"{count} clients killed mid-job in {last_kill - started:.0f} s; jobs still queued or running 2 s after "
          f"the last kill: {left}; daemon RSS {start_rss:.0f} MiB → {end_rss:.0f} MiB "
          f"({(end_rss / start_rss - 1) * 100:+.1f}%)", flush=True)


def concurrent_clients(endpoint: str, clients: int, jobs: int) -> None:
    order: dict[int, list[str]] = {}
    submitted: dict[int, list[str]] = {}

    def run(index: int) -> None:
        order[index], submitted[index] = [], []
        with Client(endpoint) as client:
            for _ in range(jobs):
                submit = small_submit(10)
                submitted[index].append(submit.job)
                for reply in client.run_job(submit):
                    if reply.type == m.RESULT:
                        order[index].append(reply.job)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = sum(len(v) for v in order.values())
    in_order = all(order[i] == submitted[i] for i in order)
    print(f"{clients} clients × {jobs} jobs: {done}/{clients * jobs} completed in {time.monotonic() - started:.0f} s, "
          f"per-client order kept: {in_order}", flush=True)


def mixed_jobs(endpoint: str, daemon: subprocess.Popen, count: int) -> None:
    """`count` jobs of every kind in turn (sizes, built-in and user presets added and removed,
    style images, sliced loss, tiles), the daemon's RSS read every 20: does it stay flat?"""
    import numpy as np

    readings = []
    with Client(endpoint, timeout=30) as client:
        for index in range(count):
            side = (64, 96, 128, 160)[index % 4]
            submit = small_submit(3, side, side * 3 // 4)
            kind = index % 5
            if kind == 1:  # a user preset of its own, used once and removed: its pixels must go too
                pixels = np.random.default_rng(index).integers(0, 255, (512, 512, 3), np.uint8)
                client.add_preset(f"soak-{index}", m.Image(512, 512, 3, pixels.tobytes()))
                submit.styles = [m.Style(preset=f"soak-{index}")]
            elif kind == 2:
                picture = np.random.default_rng(index).integers(0, 255, (200, 300, 3), np.uint8)
                submit.styles = [m.Style(image=m.Image(300, 200, 3, picture.tobytes()))]
            elif kind == 3:
                submit.params = m.JobParams(iterations=3, preview_every=0, style_loss="sliced")
            elif kind == 4:  # in tiles, with a preview every iteration
                submit = small_submit(2, 256, 192)
                submit.params = m.JobParams(iterations=2, preview_every=1, tile_pixels=SMALLEST_CROP)
            list(client.run_job(submit))
            if kind == 1:
                client.remove_preset(f"soak-{index}")
            if index % 20 == 19:
                readings.append(rss_mib(daemon.pid))
    print(f"{count} mixed jobs: daemon RSS every 20 jobs (MiB): {', '.join(f'{r:.0f}' for r in readings)}; "
          f"last against the first reading {(readings[-1] / readings[0] - 1) * 100:+.1f}%", flush=True)


def kill_daemon(endpoint: str, daemon: subprocess.Popen) -> None:
    with Client(endpoint) as client:
        replies = client.run_job(small_submit(20000))
        next(replies)
        daemon.kill()
        killed = time.monotonic()
        try:
            for _ in replies:
                pass
        except DaemonUnavailable as exc:
            print(f"daemon SIGKILLed: the client reported it after {time.monotonic() - killed:.1f} s ({exc})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--mixed", type=int, default=200, help="mixed jobs whose memory is followed")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="impasto-soak-"))
    daemon, endpoint, _ = start_daemon(folder, "--log-level", "warning")
    try:
        kill_clients(endpoint, daemon, args.kills)
        concurrent_clients(endpoint, args.clients, args.jobs)
        mixed_jobs(endpoint, daemon, args.mixed)
        kill_daemon(endpoint, daemon)
    finally:
        daemon.kill()
        daemon.wait()


if __name__ == "__main__":
    with Results("soak"):
        main()
