"""Full resolution: the detail scales above the working size paint the photo's own size."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from impasto.daemon import artwork, engine, losses
from impasto.daemon.imaging import binomial_blur, detail_kept, resize, rgb_to_yuv
from impasto.daemon.plan import Schedule
from impasto.protocol import messages as m
from impasto.protocol.messages import JobParams

from .conftest import image_of, make_submit, replies_of


def tensor_of(picture, size: tuple[int, int]) -> torch.Tensor:
    array = np.asarray(picture.convert("RGB").resize(size), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


def fine_detail(image: torch.Tensor) -> float:
    """Mean |Laplacian| of luma: what a result at 100% zoom shows of strokes and edges."""
    luma = (image * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3)
    return float(F.conv2d(luma, kernel).abs().mean())


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return tensor_of(artwork.landscape(), (192, 144))


@pytest.fixture(scope="module")
def painting() -> torch.Tensor:
    return tensor_of(artwork.swirls(), (128, 128))


def run(vgg19, photo, painting, **settings) -> tuple[torch.Tensor, list[m.Progress]]:
    seen: list[m.Progress] = []
    params = JobParams(**{"size": 48, "iterations": 6, "preview_every": 0, "precision": "fp32", **settings})
    result = engine.StyleTransfer(vgg19).run(photo, [(painting, 1.0)], params, on_progress=seen.append)
    return result, seen


def test_detail_scales_reach_the_photos_size_and_paint_its_detail(vgg19, photo, painting) -> None:
    enlarged, _ = run(vgg19, photo, painting, detail=0)
    assert enlarged.shape[-2:] == (36, 48)  # the working size: the service enlarges it
    painted, seen = run(vgg19, photo, painting, detail=3)
    assert painted.shape[-2:] == (144, 192)
    # 48 → 96 → 192 (DETAIL_STEP 2), three iterations, and at the top (the photo's size) two.
    assert [(p.width, p.height) for p in seen[-5:]] == [(96, 72)] * 3 + [(192, 144)] * 2
    assert seen[-1].iteration == seen[-1].total
    plain = F.interpolate(enlarged, size=(144, 192), mode="bicubic", align_corners=False).clamp(0, 1)
    assert fine_detail(painted) > 2 * fine_detail(plain)
    # The look is the working size's: shrunk back, the two are close (much closer than to the photo).
    shrunk = resize(painted, 48, 36)
    assert (shrunk - enlarged).abs().mean() < 0.5 * (resize(photo, 48, 36) - enlarged).abs().mean()


def test_one_iteration_a_scale_leaves_the_photos_own_size_unpainted(vgg19, photo, painting) -> None:
    """A Draft (one iteration a detail scale): the photo's own size gets none, and is the scale
    below enlarged with the photo's detail added back: sharp at 100%, and no pass at that size."""
    assert Schedule.of(48, 36, JobParams(size=48, detail=1), (192, 144)).steps[-2:] == [1, 0]
    drafted, seen = run(vgg19, photo, painting, detail=1)
    assert drafted.shape[-2:] == (144, 192)
    sizes = {(p.width, p.height) for p in seen}
    assert (96, 72) in sizes and (192, 144) not in sizes and seen[-1].iteration == seen[-1].total
    enlarged, _ = run(vgg19, photo, painting, detail=0)
    plain = F.interpolate(enlarged, size=(144, 192), mode="bicubic", align_corners=False).clamp(0, 1)
    assert fine_detail(drafted) > 1.5 * fine_detail(plain)
    estimate = engine.StyleTransfer(vgg19).estimate(192, 144, JobParams(size=48, detail=1))
    assert estimate["output"] == [192, 144] and estimate["seconds"] >= 0


def checkerboard(height: int, width: int, period: int) -> torch.Tensor:
    rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
    return torch.cos(2 * torch.pi * rows / period) * torch.cos(2 * torch.pi * cols / period)


def test_the_binomial_filter_removes_a_two_pixel_grid_and_halves_a_four_pixel_one() -> None:
    for period, left in ((2, 0.0), (4, 0.25)):  # 0.5 each way
        grid = checkerboard(32, 32, period)[None, None].repeat(1, 3, 1, 1)
        inner = binomial_blur(grid)[..., 2:-2, 2:-2]
        assert torch.allclose(inner, left * grid[..., 2:-2, 2:-2], atol=1e-6)


def test_a_detail_scale_keeps_the_coarse_band_of_where_it_started_and_smooths_its_colour() -> None:
    """detail_kept: shrunk to the scale below, the result is where the scale started; its fine
    band is the painted picture's in luma, while fine colour (the speckle) is smoothed away."""
    generator = torch.Generator().manual_seed(0)
    # Smooth and dark (a coarse picture enlarged), painted with fine noise and a colour cast over
    # everything (a coarse change), within 0..1.
    start = 0.2 + 0.4 * resize(torch.rand(1, 3, 24, 32, generator=generator), 64, 48)
    painted = start + 0.3 * torch.rand(1, 3, 48, 64, generator=generator) - 0.15
    painted[:, 2] += 0.2
    kept = detail_kept(start, 32, 24)(painted)

    def coarse(image: torch.Tensor) -> torch.Tensor:
        return resize(image, 32, 24)

    def fine(image: torch.Tensor) -> torch.Tensor:
        return rgb_to_yuv(image - F.interpolate(coarse(image), size=(48, 64), mode="bicubic"))

    assert (coarse(kept) - coarse(start)).abs().mean() < 0.2 * (coarse(painted) - coarse(start)).abs().mean()
    def speckle(image: torch.Tensor) -> torch.Tensor:  # colour at the scale of a pixel or two
        colour = rgb_to_yuv(image)[:, 1:]
        return colour - binomial_blur(colour)

    assert (fine(kept)[:, :1] - fine(painted)[:, :1]).abs().mean() < 0.3 * fine(painted)[:, :1].abs().mean()
    assert speckle(kept - start).abs().mean() < 0.2 * speckle(painted - start).abs().mean()


def test_a_detail_scale_steps_along_a_smoothed_gradient(vgg19, photo, painting) -> None:
    """A detail scale's few long steps painted the poolings' grid, a cross-hatch: its gradient is
    the binomial filter's of the plain one (bench/dark_areas.py measures the result)."""
    params = dataclasses.replace(JobParams(size=48, precision="fp32"), style_layers=dict(engine.DETAIL_STYLE_LAYERS),
                                 content_layer=engine.DETAIL_CONTENT_LAYER)
    objective = engine.StyleTransfer(vgg19)._objective(photo, photo, [(painting, 1.0)], params,
                                                       torch.Generator().manual_seed(0), 10**9, detail=True)
    assert objective.smooth
    gradients = []
    for smooth in (False, True):
        objective.smooth = smooth
        objective()
        assert objective.image.grad is not None
        gradients.append(objective.image.grad)
    plain, smoothed = gradients
    assert float(plain.abs().max()) > 0
    assert torch.allclose(smoothed, binomial_blur(plain), rtol=1e-4, atol=1e-9 * float(plain.abs().max()))


def test_every_quality_of_the_plugin_composes_the_same_picture(vgg19, photo, painting) -> None:
    """Draft and Fine differ only in their detail work: shrunk to the composition's size, both stay
    near the composition and each other, a small share of how far the composition is from the photo
    (before the detail kept the scale below, Fine drifted 1.2 times that far here)."""
    import impasto_choices as choices

    composed, _ = run(vgg19, photo, painting, detail=0)
    draft, _ = run(vgg19, photo, painting, detail=choices.QUALITIES["draft"][1])
    previews: list[torch.Tensor] = []  # what GIMP's layer shows while the detail is painted
    params = JobParams(size=48, iterations=6, preview_every=1, precision="fp32", detail=choices.QUALITIES["fine"][1])
    fine = engine.StyleTransfer(vgg19).run(photo, [(painting, 1.0)], params,
                                           on_preview=lambda picture, progress: previews.append(picture)
                                           if progress.width > 48 else None)
    from_photo = (resize(photo, 48, 36) - composed).abs().mean()
    draft, fine = resize(draft, 48, 36), resize(fine, 48, 36)
    assert (draft - fine).abs().mean() < 0.3 * from_photo
    assert max((draft - composed).abs().mean(), (fine - composed).abs().mean()) < 0.3 * from_photo
    assert len(previews) > 8 and max((resize(p, 48, 36) - composed).abs().mean() for p in previews) < 0.3 * from_photo


def test_detail_in_tiles_matches_detail_whole(vgg19, painting) -> None:
    """Tiles at a detail scale see exact features and the whole picture's Gram: no seam to hide."""
    photo = tensor_of(artwork.landscape(), (320, 240))
    whole, _ = run(vgg19, photo, painting, detail=2, size=80)
    tiled, _ = run(vgg19, photo, painting, detail=2, size=80, tile_pixels=40_000)  # 320×240: two tiles or more
    difference = (whole - tiled).abs()
    assert float(difference.mean()) < 1e-4  # measured: 1e-9, fp32 rounding
    # Along a tile border it is no larger than elsewhere (cuts fall on multiples of 16 px).
    columns = difference.mean(dim=(0, 1, 2))
    assert float(columns.max()) < 1e-3


def test_the_time_left_is_estimated_with_the_detail_scales(vgg19, photo, painting) -> None:
    _, seen = run(vgg19, photo, painting, detail=3)
    assert seen[0].eta > 0 and seen[-1].eta == 0
    first_detail = next(p for p in seen if p.width == 96)
    assert first_detail.scale > 1 and first_detail.scales == seen[-1].scale


def test_the_daemon_returns_the_painted_full_size(client) -> None:
    content = image_of(artwork.landscape(), (160, 120))
    style = image_of(artwork.swirls(), (64, 64))
    replies = replies_of(client, make_submit(content, style, size=48, iterations=4, detail=2, preview_every=2))
    result = replies[-1]
    assert result.type == m.RESULT and (result.image.width, result.image.height) == (160, 120)
    sizes = {(r.header["width"], r.header["height"]) for r in replies if r.type == m.PROGRESS}
    assert (160, 120) in sizes and (80, 60) in sizes


def test_a_cap_on_painted_pixels_paints_the_detail_smaller_and_the_daemon_enlarges(vgg19, photo, painting,
                                                                                    client) -> None:
    """A slow machine's choice: the detail painted up to a cap, the result enlarged to the photo."""
    capped, seen = run(vgg19, photo, painting, detail=3, paint_pixels=96 * 72)
    assert capped.shape[-2:] == (72, 96) and max(p.width for p in seen) == 96  # 48 → 96, not 192
    estimate = engine.StyleTransfer(vgg19).estimate(192, 144, JobParams(size=48, detail=3, paint_pixels=96 * 72))
    assert estimate["output"] == [96, 72]
    content = image_of(artwork.landscape(), (160, 120))
    replies = replies_of(client, make_submit(content, image_of(artwork.swirls(), (64, 64)), size=48, iterations=4,
                                             detail=2, paint_pixels=80 * 60))
    assert (replies[-1].image.width, replies[-1].image.height) == (160, 120)
    assert max(r.header["width"] for r in replies if r.type == m.PROGRESS) == 80


def test_a_part_is_painted_as_the_whole_would_be(vgg19, painting) -> None:
    """A selection sent with its layer's size gets the whole run's strokes, not larger ones."""
    whole_photo = tensor_of(artwork.landscape(), (192, 144))
    part = whole_photo[..., 36:108, 48:144].contiguous()  # the middle 96×72
    settings = {"size": 96, "detail": 0, "iterations": 12, "first_scale": 0}
    whole, _ = run(vgg19, whole_photo, painting, **settings)
    region = whole[..., 18:54, 24:72]  # the part, at the whole's working size
    as_part, _ = run(vgg19, part, painting, layer_size=192, **settings)
    alone, _ = run(vgg19, part, painting, **settings)
    assert as_part.shape[-2:] == region.shape[-2:]  # composed at its share of the whole's size
    assert alone.shape[-2:] == (72, 96)
    # Strokes of another size show as another amount of fine detail at the same scale.
    target = fine_detail(region)
    as_part_error, alone_error = abs(fine_detail(as_part) - target), abs(fine_detail(resize(alone, 48, 36)) - target)
    print(f"fine detail: the whole's region {target:.4f}, the part as a part {fine_detail(as_part):.4f}, "
          f"alone {fine_detail(resize(alone, 48, 36)):.4f}")
    assert as_part_error < 0.6 * alone_error  # measured: 0.024 against 0.053


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_part_sent_with_its_whole_is_cut_from_the_wholes_composition(vgg19, painting, precision) -> None:
    """A selection with its layer (reduced) gets the whole run's composition, colours and brightness
    included; painted from its own statistics alone, a part comes out in other colours."""
    whole_photo = tensor_of(artwork.landscape(), (192, 144))
    part = whole_photo[..., 36:108, 48:144].contiguous()  # the middle 96×72
    settings = {"size": 96, "detail": 2, "iterations": 12, "first_scale": 48, "precision": precision, "seed": 5}
    whole, _ = run(vgg19, whole_photo, painting, **settings)
    region = whole[..., 36:108, 48:144]
    reduced = resize(whole_photo, 96, 72)  # as the plug-in sends it: at about the working size
    params = JobParams(**{**settings, "preview_every": 0}, layer_size=192, part_x=48, part_y=36)
    seen: list[m.Progress] = []
    transfer = engine.StyleTransfer(vgg19)
    cut = transfer.run(part, [(painting, 1.0)], params, on_progress=seen.append, whole=reduced)
    alone, _ = run(vgg19, part, painting, layer_size=192, **settings)
    assert cut.shape[-2:] == alone.shape[-2:] == (72, 96)
    # The whole's scales (48, then 96 wide), then the part's own detail scale at its size.
    assert [(p.width, p.height) for p in seen[::6]][:3] == [(48, 36), (96, 72), (96, 72)]
    assert {(p.width, p.height) for p in seen if p.scale == p.scales} == {(96, 72)}

    def off(picture: torch.Tensor) -> float:  # colour difference from the whole's region, 0..255
        return float((resize(picture, 24, 18) - resize(region, 24, 18)).abs().mean() * 255)

    print(f"{precision}: the part's colours off the whole's by {off(cut):.1f} (cut from the whole), "
          f"{off(alone):.1f} (alone)")
    assert off(cut) < 0.5 * off(alone)

    # Another part of the same whole, same settings: cut from the kept composition, only its own
    # scale painted, as a fresh engine would paint it.
    other = dataclasses.replace(params, part_x=0, part_y=0)
    again: list[m.Progress] = []
    kept = transfer.run(whole_photo[..., :72, :96], [(painting, 1.0)], other, on_progress=again.append, whole=reduced)
    fresh = engine.StyleTransfer(vgg19).run(whole_photo[..., :72, :96], [(painting, 1.0)], other, whole=reduced)
    assert {(p.width, p.height, p.scales) for p in again} == {(96, 72, 1)}
    assert float((kept - fresh).abs().mean() * 255) < 1.0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("max_crop", [10**9, 40_000])  # whole, and in tiles
def test_a_detail_scales_content_target_is_taken_from_its_first_evaluation(vgg19, painting, max_crop: int,
                                                                            precision: str) -> None:
    """No pass of its own: the first evaluation's features of the starting picture are the target,
    the same as a pass over it would give."""
    photo = tensor_of(artwork.landscape(), (320, 240))
    params = dataclasses.replace(JobParams(size=48, precision=precision), style_layers=dict(engine.DETAIL_STYLE_LAYERS),
                                 content_layer=engine.DETAIL_CONTENT_LAYER)
    transfer = engine.StyleTransfer(vgg19)
    objective = transfer._objective(photo, photo, [(painting, 1.0)], params, torch.Generator().manual_seed(0),
                                    max_crop, detail=True)
    assert (objective.counts == (1, 1)) == (max_crop > photo.numel())
    objective()
    assert float(objective.last_terms["content"]) == 0
    with torch.no_grad():
        objective.image.add_(0.05 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(1)))
    objective()
    target = transfer.content_target(photo, params, 10**9)
    features = transfer.features(objective.image.detach(), {engine.DETAIL_CONTENT_LAYER}, params)
    expected = float(losses.ContentLoss(target, 4)(features[engine.DETAIL_CONTENT_LAYER]))
    assert expected > 0
    assert float(objective.last_terms["content"]) == pytest.approx(expected, rel=1e-4 if precision == "fp32" else 1e-2)
