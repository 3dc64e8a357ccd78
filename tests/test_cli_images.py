"""The CLI's image files: real-world inputs read right, bad ones refused in words, outputs checked first.

The fuzz target throws random, truncated and mutated PNG/JPEG/GIF/WebP/TIFF bytes at the reader:
only ImageError may come out. Raise its count for a soak run:
    IMPASTO_FUZZ_EXAMPLES=10000 .venv/bin/pytest tests/test_cli_images.py
"""

from __future__ import annotations

import io
import os
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from impasto.cli import images
from impasto.protocol import messages as m

from .conftest import IMPASTO, ROOT, cli_env

EXAMPLES = int(os.environ.get("IMPASTO_FUZZ_EXAMPLES", "150"))


def gradient(width: int = 40, height: int = 24) -> PILImage.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None, None].repeat(width, 1)
    return PILImage.fromarray(np.concatenate([x, y, 255 - x], axis=2), "RGB")


def pixels(image: m.Image) -> np.ndarray:
    return np.frombuffer(image.packed(), np.uint8).reshape(image.height, image.width, image.channels)


def test_a_phone_photo_is_read_upright(tmp_path) -> None:
    exif = PILImage.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    gradient().save(tmp_path / "phone.jpg", exif=exif)
    image = images.load_image(tmp_path / "phone.jpg")
    assert (image.width, image.height) == (24, 40)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path) -> None:
    grey = np.full((10, 12), 136 * 257, np.uint16)
    PILImage.fromarray(grey).save(tmp_path / "grey16.png")
    assert abs(pixels(images.load_image(tmp_path / "grey16.png")).mean() - 136) < 1


def test_a_palette_pngs_transparency_is_kept(tmp_path) -> None:
    picture = gradient().convert("P")
    picture.save(tmp_path / "palette.png", transparency=picture.getpixel((0, 0)))  # the corner's colour clear
    image = images.load_image(tmp_path / "palette.png", keep_alpha=True)
    assert image.channels == 4 and pixels(image)[..., 3].min() == 0


def test_an_animated_file_says_it_uses_its_first_frame(tmp_path, capsys) -> None:
    frames = [gradient(), gradient().transpose(PILImage.FLIP_LEFT_RIGHT)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    images.load_image(tmp_path / "anim.gif")
    assert "2 frames; using the first" in capsys.readouterr().err


def test_a_decompression_bomb_is_refused_in_words(tmp_path, monkeypatch) -> None:
    gradient().save(tmp_path / "bomb.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # 960 pixels is then over twice the limit
    with pytest.raises(images.ImageError, match="too large to open safely"):
        images.load_image(tmp_path / "bomb.png")


@pytest.mark.parametrize("name, channels, reason", [
    ("out.xyz", 3, "cannot write .xyz"), ("outnoext", 3, "no extension"), ("out.jpg", 4, "transparency")])
def test_an_output_that_cannot_be_written_is_refused_before_the_work(tmp_path, name, channels, reason) -> None:
    with pytest.raises(images.ImageError, match=reason):
        images.output_format(tmp_path / name, channels)
    assert images.output_format(tmp_path / "out.png", 4) == "PNG"


def test_the_cli_refuses_bad_outputs_and_files_without_starting_anything(tmp_path) -> None:
    gradient().convert("RGBA").save(tmp_path / "photo.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 10)
    endpoint = f"ipc://{tmp_path}/never/d.sock"

    def stylize(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*IMPASTO, "stylize", *args], capture_output=True, text=True,
                              env=cli_env(endpoint), timeout=60, cwd=ROOT)

    out = stylize(str(tmp_path / "photo.png"), "--style", "swirls", "--strength", "5", "-o", str(tmp_path / "o.png"))
    assert out.returncode == 2 and "'strength': 5.0 is outside 0..1" in out.stderr, out.stderr
    for output, reason in (("out.xyz", "cannot write"), ("out.jpg", "transparency"), ("outnoext", "extension")):
        out = stylize(str(tmp_path / "photo.png"), "--style", "swirls", "-o", str(tmp_path / output))
        assert out.returncode == 2 and reason in out.stderr and "Traceback" not in out.stderr, out.stderr
    out = stylize(str(tmp_path / "junk.png"), "--style", "swirls", "-o", str(tmp_path / "out.png"))
    assert out.returncode == 2 and "cannot read" in out.stderr and "Traceback" not in out.stderr
    out = stylize(str(tmp_path / "photo.png"), "--style", str(tmp_path / "junk.png"), "-o", str(tmp_path / "o.png"))
    assert out.returncode == 2 and "style image" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "never").exists()  # no daemon was started for any of them


def test_saving_is_atomic_and_leaves_an_ordinary_file(tmp_path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"the previous result")
    images.save_image(images.array_to_image(np.asarray(gradient())), target)
    assert PILImage.open(target).size == (40, 24)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def samples() -> dict[str, bytes]:
    out = {}
    for fmt, options in (("PNG", {}), ("JPEG", {"quality": 80}), ("GIF", {}), ("WEBP", {}), ("TIFF", {})):
        buffer = io.BytesIO()
        gradient(16, 12).save(buffer, fmt, **options)
        out[fmt] = buffer.getvalue()
    return out


SAMPLES = samples()


@st.composite
def damaged_files(draw) -> bytes:
    data = bytearray(SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))])
    how = draw(st.sampled_from(["truncate", "flip", "random"]))
    if how == "truncate":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    return draw(st.binary(max_size=200))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damage it survives
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=damaged_files())
def test_damaged_files_give_clear_errors_only(tmp_path, data) -> None:
    path = tmp_path / "damaged"
    path.write_bytes(data)
    try:
        image = images.load_image(path, keep_alpha=True)
    except images.ImageError as exc:
        assert str(exc)
    else:
        assert image.channels in (3, 4) and len(image.packed()) == image.width * image.height * image.channels
