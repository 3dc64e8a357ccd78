"""Animation frames (#30): a frame that follows the previous one starts from its result warped along
the motion, so a known pan gives a painting that moves with it; `impasto animate` end to end."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from PIL import Image as PILImage

from impasto.cli import frames as frame_files
from impasto.daemon.motion import temporal_error
from impasto.protocol import messages as m
from impasto.protocol.client import Client, DaemonError, new_job_id

from .conftest import IMPASTO, ROOT, cli_env, replies_of

PAINTINGS = ROOT / "daemon" / "paintings"
STEP = 3  # the pan, in pixels a frame


def panned_frames(count: int, size: tuple[int, int] = (96, 72)) -> list[np.ndarray]:
    """A window moving STEP px right a frame across a real picture (a built-in painting as the photo)."""
    width, height = size
    picture = np.asarray(PILImage.open(PAINTINGS / "the_scream.jpg").convert("RGB").resize((2 * width, 2 * height)))
    return [np.ascontiguousarray(picture[10:10 + height, 8 + STEP * i:8 + STEP * i + width]) for i in range(count)]


def as_image(array: np.ndarray) -> m.Image:
    return m.Image(array.shape[1], array.shape[0], 3, array.tobytes())


def as_array(image: m.Image) -> np.ndarray:
    return np.frombuffer(image.packed(), np.uint8).reshape(image.height, image.width, image.channels)


def stylise(client: Client, photos: list[np.ndarray], coherent: bool, **params) -> tuple[list[np.ndarray], list[int]]:
    """Each frame through the daemon, after the previous one; the results and each job's iterations."""
    settings = m.JobParams(size=64, iterations=20, frame_iterations=8, detail=2, preview_every=0, **params)
    style = [m.Style(preset="starry_night")]
    results: list[np.ndarray] = []
    iterations = []
    for index, photo in enumerate(photos):
        link = {"previous": as_image(photos[index - 1]), "previous_result": as_image(results[-1])} \
            if coherent and index else {}
        replies = replies_of(client, m.Submit(new_job_id(), as_image(photo), style, settings, **link))
        assert replies[-1].type == m.RESULT and replies[-1].image is not None
        results.append(as_array(replies[-1].image).copy())
        iterations.append(max(r.progress.total for r in replies if r.type == m.PROGRESS))
    return results, iterations


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_panned_picture_is_painted_coherently(client, precision) -> None:
    photos = panned_frames(4)
    coherent, coherent_steps = stylise(client, photos, True, precision=precision)
    independent, independent_steps = stylise(client, photos, False, precision=precision)
    # Compensated for the pan, the coherent frames change far less than frames painted apart.
    changes = temporal_error(coherent, photos), temporal_error(independent, photos)
    assert changes[0] < 0.35 * changes[1], changes
    # A following frame starts at the working size from the last result: fewer iterations.
    assert coherent_steps[0] == independent_steps[0] and all(s < independent_steps[0] for s in coherent_steps[1:])
    # The strip the pan brings in (no previous result there) is painted, not left as the photo.
    strip = (slice(None), slice(-STEP, None))
    assert np.abs(coherent[-1][strip].astype(float) - photos[-1][strip]).mean() > 5


def test_a_still_picture_carries_the_previous_strokes_over_unblurred() -> None:
    """Camera noise gives a still background flows of a fraction of a pixel; the previous result is
    carried over as it was, not resampled (which blurred it a little every frame)."""
    from impasto.daemon.motion import FrameLink

    photo = panned_frames(1)[0]
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 3, photo.shape), 0, 255).astype(np.uint8)
    painted = np.ascontiguousarray(panned_frames(1)[0][:, ::-1])  # any other picture, full of edges
    link = FrameLink.between(photo, painted, noisy)
    carried = (link.warped[0].permute(1, 2, 0) * 255).round().byte().numpy()
    assert (carried == painted).all(-1).mean() > 0.95
    assert link.certainty.mean() > 0.9


def test_a_previous_frame_must_come_whole_and_the_contents_size(client) -> None:
    photos = panned_frames(2)
    base = m.Submit(new_job_id(), as_image(photos[1]), [m.Style(preset="starry_night")], m.JobParams(size=32))
    frames = m.submit_message(base)
    header = m.decode_header(frames)
    header["previous"] = header["content"]  # without previous_result
    with pytest.raises(m.ProtocolError, match="both"):
        m.parse_request([m.encode(header)[0], *frames[1:]])
    small = as_image(photos[0][:40, :40].copy())
    with pytest.raises(DaemonError, match="content's size"):
        replies_of(client, m.Submit(new_job_id(), as_image(photos[1]), [m.Style(preset="starry_night")],
                                    m.JobParams(size=32), previous=small, previous_result=small))
    assert client.hello()["queue"] == 0  # the daemon goes on


def run_animate(daemon, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run([*IMPASTO, "animate", *words, "--preset", "starry_night", "--size", "48",
                           "--iterations", "6", "--frame-iterations", "3", "--detail", "1"],
                          capture_output=True, text=True, env=cli_env(daemon.endpoint), timeout=300, cwd=ROOT)


def test_animate_writes_a_gif_with_the_frames_timings(daemon, tmp_path) -> None:
    source = tmp_path / "in.gif"
    pictures = [PILImage.fromarray(photo) for photo in panned_frames(3, (64, 48))]
    pictures[0].save(source, save_all=True, append_images=pictures[1:], duration=[80, 120, 160], loop=0)
    done = run_animate(daemon, str(source), "-o", str(tmp_path / "out.gif"))
    assert done.returncode == 0, done.stderr
    with PILImage.open(tmp_path / "out.gif") as result:
        assert result.n_frames == 3 and result.size == (64, 48)
        timings = []
        for index in range(3):
            result.seek(index)
            timings.append(result.info["duration"])
    assert timings == [80, 120, 160]
    assert "frame 3/3" in done.stderr and not (tmp_path / ".out.gif.frames").exists()


def test_animate_goes_on_from_the_frames_already_done(daemon, tmp_path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, photo in enumerate(panned_frames(3, (64, 48)), start=1):
        PILImage.fromarray(photo).save(folder / f"shot{index}.png")
    out = tmp_path / "out"
    first = run_animate(daemon, str(folder), "-o", str(out))
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["shot1.png", "shot2.png", "shot3.png"]
    # As if stopped after frame 2: frames 1 and 2 are kept, and only frame 3 is painted again.
    record = json.loads((out / ".impasto-animate.json").read_text())
    (out / ".impasto-animate.json").write_text(json.dumps({**record, "done": 2}))
    (out / "shot3.png").unlink()
    kept = (out / "shot2.png").stat().st_mtime_ns
    again = run_animate(daemon, str(folder), "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert "going on from frame 3" in again.stderr and (out / "shot2.png").stat().st_mtime_ns == kept
    assert (out / "shot3.png").is_file()
    # Other settings do not reuse them.
    other = run_animate(daemon, str(folder), "-o", str(out), "--independent")
    assert other.returncode == 0 and "going on" not in other.stderr


def test_animate_refuses_frames_of_several_sizes_and_unknown_outputs(daemon, tmp_path) -> None:
    photos = panned_frames(2, (64, 48))
    PILImage.fromarray(photos[0]).save(tmp_path / "a.png")
    PILImage.fromarray(photos[1][:40]).save(tmp_path / "b.png")
    mixed = run_animate(daemon, str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "o"))
    assert mixed.returncode == 2 and "differ in size" in mixed.stderr
    odd = run_animate(daemon, str(tmp_path / "a.png"), "-o", str(tmp_path / "o.txt"))
    assert odd.returncode == 2 and "cannot write an animation as .txt" in odd.stderr


def test_video_frames_round_trip(tmp_path) -> None:
    photos = panned_frames(4, (64, 48))
    frame_files.write_video(photos, [40] * 4, tmp_path / "clip.mp4")
    frames = frame_files.read_frames([tmp_path / "clip.mp4"])
    assert len(frames) == 4 and frames.size == (64, 48)
    assert frames.durations[0] == 40 and frames.names[0] == "frame-00001.png"
    decoded = [as_array(image).astype(float) for image in frames.read()]  # read as they are needed, each pass anew
    assert len(decoded) == 4 and len(list(frames.read())) == 4
    assert np.abs(decoded[2] - photos[2]).mean() < 12  # lossy, but the same picture
