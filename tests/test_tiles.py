"""Tiles: the geometry, the features they give against the whole picture's, and a tiled job."""

from __future__ import annotations

import pytest
import torch

from impasto.daemon import engine, memory, tiles
from impasto.daemon.model import LAYER_STRIDE
from impasto.protocol.messages import JobParams, Progress


@pytest.mark.parametrize(("width", "height", "budget"), [(1000, 700, 200_000), (333, 517, 60_000),
                                                         (4000, 3000, 2_000_000), (300, 260, tiles.SMALLEST_CROP)])
def test_cores_cover_the_picture_once_and_crops_stay_in_budget(width: int, height: int, budget: int) -> None:
    counts = tiles.counts_for(width, height, budget)
    assert counts is not None and counts != (1, 1)
    generator = torch.Generator().manual_seed(1)
    layouts = set()
    for _ in range(20):
        grid = tiles.grid(width, height, counts, generator=generator)
        covered = torch.zeros(height, width, dtype=torch.int32)
        for tile in grid:
            core, crop = tile.core, tile.crop
            covered[core.y0:core.y1, core.x0:core.x1] += 1
            assert crop.x0 <= core.x0 < core.x1 <= crop.x1 and crop.y0 <= core.y0 < core.y1 <= crop.y1
            assert crop.x0 >= 0 and crop.y0 >= 0 and crop.x1 <= width and crop.y1 <= height
            assert crop.pixels <= budget
            assert core.x0 % tiles.ALIGN == crop.x0 % tiles.ALIGN == 0
            assert core.y0 % tiles.ALIGN == crop.y0 % tiles.ALIGN == 0
            assert min(core.x1 - core.x0, core.y1 - core.y0) >= tiles.ALIGN
        assert covered.min() == covered.max() == 1
        layouts.add(tuple(tile.core for tile in grid))
    # The cuts move, wherever a sixteenth of a core spans a step of the ALIGN grid.
    movable = min(width / counts[0], height / counts[1]) * tiles.JITTER >= tiles.ALIGN
    assert len(layouts) > (10 if movable else 1)


def test_no_crop_ever_exceeds_its_budget() -> None:
    generator = torch.Generator().manual_seed(2)
    for width in range(300, 3000, 97):
        height = width * 3 // 4
        for budget in (tiles.SMALLEST_CROP, 100_000, max(tiles.SMALLEST_CROP, width * height // 3)):
            counts = tiles.counts_for(width, height, budget)
            assert counts is not None
            for _ in range(10):
                grid = tiles.grid(width, height, counts, generator=generator)
                assert max(tile.crop.pixels for tile in grid) <= budget


def test_largest_crop_bounds_every_core_the_cuts_can_make() -> None:
    """The crop bound the layouts are planned with holds for every layout the moving cuts make,
    also where a jittered core falls exactly on the grid (896 px in 3 cores: 336 px)."""
    generator = torch.Generator().manual_seed(0)
    for length, count in ((896, 3), (1000, 4), (4000, 13), (600, 2)):
        widest = max(tile.core.x1 - tile.core.x0 for _ in range(2000)
                     for tile in tiles.grid(length, 64, (count, 1), generator=generator))
        interior_margins = tiles.MARGIN if count == 2 else 2 * tiles.MARGIN
        assert widest + interior_margins <= tiles._largest_crop(length, count, tiles.MARGIN)


def test_tile_counts() -> None:
    assert tiles.counts_for(400, 300, 120_000) == (1, 1)
    assert tiles.counts_for(4000, 3000, 20_000) is None  # below any interior crop
    across, down = tiles.counts_for(4000, 3000, 2_000_000)
    assert across * down <= 16  # 12 MP in crops of 2 MP: no needless tiles


def smooth_picture(width: int, height: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 24, width // 24, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic").clamp(0, 1)


def test_core_features_match_the_whole_pictures(vgg19) -> None:
    """With the margin, a core's features are the whole picture's (relu5_1 within 0.1%)."""
    picture = smooth_picture(384, 144, seed=1)
    stylist = engine.StyleTransfer(vgg19)
    params = JobParams(precision="fp32")
    assert tiles.counts_for(384, 144, 50_000) == (2, 1)
    whole = stylist.content_target(picture, params, tiles.UNLIMITED)
    tiled = stylist.content_target(picture, params, 50_000)
    assert whole.shape == tiled.shape == (1, 512, 18, 48)
    assert float((tiled - whole).norm() / whole.norm()) < 1e-4
    generator = torch.Generator()
    whole_losses = stylist.style_losses([(picture, 1.0)], params, 384, generator, tiles.UNLIMITED)
    stylist.cache.memory.clear()
    tiled_losses = stylist.style_losses([(picture, 1.0)], params, 384, generator, 50_000)
    for layer, loss in whole_losses.items():
        gram, tiled_gram = loss.target, tiled_losses[layer].target
        assert float((tiled_gram - gram).norm() / gram.norm()) < 1e-3, layer


def test_core_of_cuts_exactly_the_cores_features() -> None:
    """Cutting a crop's features at its core lines up, at every stride, with the whole picture's."""
    width, height = 200, 130
    positions = torch.arange(width * height, dtype=torch.float32).reshape(1, 1, height, width)
    for tile in tiles.grid(width, height, (3, 2), margin=32, generator=torch.Generator().manual_seed(0)):
        for stride in (1, 2, 4, 8, 16):
            crop_features = tile.cut(positions)[..., ::stride, ::stride]  # a feature per stride block
            whole_features = positions[..., ::stride, ::stride]
            expected = tile.core_in_whole(whole_features, stride)
            got = tile.core_of(crop_features, stride)
            assert torch.equal(got, expected[..., :got.shape[-2], :got.shape[-1]])
            assert got.numel() > 0 or stride == 16


def test_tiled_and_whole_runs_agree(vgg19) -> None:
    """The same job, whole and in two tiles, gives the same picture: the tiles follow the whole
    picture's loss, the margins make their features the picture's."""
    content, style = smooth_picture(384, 144, seed=3), torch.rand(1, 3, 64, 64)
    params = JobParams(size=384, first_scale=0, iterations=3, preview_every=0, strength=0.7, optimizer="adam")
    stylist = engine.StyleTransfer(vgg19)
    whole_losses: list[Progress] = []
    whole = stylist.run(content, [(style, 1.0)], params, on_progress=whole_losses.append)
    tiled_losses: list[Progress] = []
    tiled = stylist.run(content, [(style, 1.0)], JobParams(**{**params.to_wire(), "tile_pixels": 50_000}),
                        on_progress=tiled_losses.append)
    change = float((whole - content).abs().mean())
    assert change > 0.01
    assert float((tiled - whole).abs().mean()) < 0.05 * change
    for seen_whole, seen_tiled in zip(whole_losses, tiled_losses, strict=True):
        assert seen_tiled.losses["total"] == pytest.approx(seen_whole.losses["total"], rel=0.01)
    assert tiled_losses[-1].losses["total"] < tiled_losses[0].losses["total"]


def test_memory_plan_tiles_a_large_job_within_its_limit() -> None:
    params = JobParams(size=4000)
    cpu = torch.device("cpu")
    plan = memory.memory_plan(4000, 3000, params, cpu, 8 * 2**30)
    assert plan.counts != (1, 1) and plan.peak_bytes <= 8 * 2**30
    assert memory.memory_plan(400, 300, JobParams(size=400), cpu, 8 * 2**30).counts == (1, 1)
    with pytest.raises(memory.DoesNotFit, match="GiB"):
        memory.memory_plan(4000, 3000, params, cpu, 2**30)
    with pytest.raises(memory.DoesNotFit, match="smallest tile"):
        memory.memory_plan(4000, 3000, JobParams(size=4000, tile_pixels=1000), cpu, 8 * 2**30)


def test_layer_strides() -> None:
    assert [LAYER_STRIDE[name] for name in ("relu1_1", "pool1", "relu2_1", "relu3_1", "relu4_2", "relu5_1")] == \
        [1, 2, 2, 4, 8, 16]
