"""The engine without sockets: Gram matrices, losses, layer pruning, determinism, cancel."""

from __future__ import annotations

import pytest
import torch

from impasto.daemon import engine, imaging, losses, objective
from impasto.daemon.model import CONV_NAMES, LAYER_NAMES, MaxPool
from impasto.protocol.messages import STYLE_LAYERS, JobParams
from impasto.protocol.settings import LAYER_NAMES as PROTOCOL_LAYER_NAMES


def test_gram_matrix_matches_definition() -> None:
    features = torch.randn(1, 4, 3, 5)
    flat = features[0].reshape(4, 15)
    expected = flat @ flat.T / (4 * 15)
    gram = losses.gram_matrix(features)[0]
    assert torch.allclose(gram, expected, atol=1e-6)
    assert torch.allclose(gram, gram.T)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_matrix_gradient_is_autograds(dtype, layout) -> None:
    """The Gram's own gradient, X(D + Dᵀ), is what autograd finds for the plain product, for one
    picture and for several, in either layout VGG19's features may come in."""
    for pictures in (1, 2):
        features = torch.randn(pictures, 6, 5, 7).to(dtype).contiguous(memory_format=layout).requires_grad_(True)
        weights = torch.randn(pictures, 6, 6)
        (losses.gram_matrix(features) * weights).sum().backward()
        plain = features.detach().float().requires_grad_(True)
        flat = plain.reshape(pictures, 6, 35)
        ((flat @ flat.transpose(1, 2)) / (6 * 35) * weights).sum().backward()
        assert features.grad is not None and plain.grad is not None
        assert torch.allclose(features.grad.float(), plain.grad, rtol=0.02, atol=0.02 * plain.grad.abs().max().item())


def test_features_are_the_same_in_either_layout(vgg19) -> None:
    """Channels-last (the default, for speed) changes how features are stored, not what they are;
    a convolution's output asked for keeps its negative values (the ReLUs run in place otherwise)."""
    picture = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    layers = {"conv1_1", "relu1_1", "relu2_1", "relu4_2"}
    fast = vgg19(picture, layers, edge="replicate")
    vgg19.memory_format = torch.contiguous_format
    try:
        plain = vgg19(picture, layers, edge="replicate")
    finally:
        vgg19.memory_format = torch.channels_last
    for layer in layers:
        assert torch.allclose(fast[layer], plain[layer], atol=1e-3 * plain[layer].abs().max().item())
    assert fast["conv1_1"].min() < 0 and torch.equal(fast["relu1_1"], fast["conv1_1"].clamp(min=0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("size", [(6, 8), (7, 9)])
def test_max_pooling_without_indices_is_pytorchs(dtype, layout, size) -> None:
    """Pooling that keeps no indices has PyTorch's output and gradient, ties and odd edges included."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (1, 5, *size), generator=generator).to(dtype).contiguous(memory_format=layout)
    slope = torch.randn(1, 5, size[0] // 2, size[1] // 2, generator=generator).to(dtype)
    gradients, outputs = [], []
    for pool in (MaxPool.apply, lambda t: torch.nn.functional.max_pool2d(t, 2)):
        picture = x.clone().requires_grad_(True)
        output = pool(picture)
        output.backward(slope)
        outputs.append(output.detach())
        gradients.append(picture.grad)
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(gradients[0], gradients[1])
    assert gradients[0].is_contiguous(memory_format=layout)


def test_gram_matrix_ignores_image_size() -> None:
    features = torch.randn(1, 8, 6, 6)
    tiled = features.repeat(1, 1, 2, 3)  # the same texture over a larger area
    assert torch.allclose(losses.gram_matrix(features), losses.gram_matrix(tiled), atol=1e-5)


def test_losses_vanish_at_their_targets() -> None:
    features = torch.rand(1, 8, 5, 5)
    other = torch.rand(1, 8, 5, 5)
    generator = torch.Generator().manual_seed(0)
    assert losses.ContentLoss(features)(features) == 0
    assert losses.ContentLoss(features)(other) > 0
    for loss in (losses.GramStyleLoss([(losses.gram_matrix(features), 1.0)]),
                 losses.SlicedWassersteinStyleLoss([(features, 1.0)], generator)):
        assert loss(features) < 1e-6
        assert loss(other) > 1e-3
    assert losses.total_variation(torch.full((1, 3, 4, 4), 0.3)) == 0
    assert losses.total_variation(torch.rand(1, 3, 4, 4)) > 0


def test_sliced_wasserstein_ignores_positions_and_sizes() -> None:
    """Only the distribution of feature vectors counts: shuffled or repeated, the same texture."""
    generator = torch.Generator().manual_seed(0)
    features = torch.rand(1, 8, 6, 6)
    shuffled = features.flatten(2)[..., torch.randperm(36)].reshape(1, 8, 6, 6)
    loss = losses.SlicedWassersteinStyleLoss([(features.repeat(1, 1, 2, 2), 1.0)], generator)
    assert loss(shuffled) < 1e-3


def test_model_has_the_sixteen_convolutions(vgg19) -> None:
    assert len(CONV_NAMES) == 16 and len(vgg19.convs) == 16
    features = vgg19(torch.rand(1, 3, 32, 32), {"relu1_1", "relu5_1"})
    assert set(features) == {"relu1_1", "relu5_1"}
    assert features["relu1_1"].shape == (1, 64, 32, 32)
    assert features["relu5_1"].shape == (1, 512, 2, 2)


def test_only_layers_up_to_the_deepest_run(vgg19) -> None:
    called = []
    hooks = [conv.register_forward_hook(lambda module, *_, name=name: called.append(name))
             for name, conv in vgg19.convs.items()]
    try:
        vgg19(torch.rand(1, 3, 16, 16), {"relu2_1"})
    finally:
        for hook in hooks:
            hook.remove()
    assert called == ["conv1_1", "conv1_2", "conv2_1"]


def test_caffe_preprocessing(vgg19) -> None:
    grey = torch.full((1, 3, 1, 1), 0.5)
    bgr = vgg19.preprocess(grey).flatten()
    assert torch.allclose(bgr, torch.tensor([127.5 - 103.939, 127.5 - 116.779, 127.5 - 123.68]))
    red = torch.zeros(1, 3, 1, 1)
    red[0, 0] = 1.0
    assert vgg19.preprocess(red).flatten()[2] > 0  # red lands in the last (BGR) channel


def test_layer_names_are_the_networks() -> None:
    """The protocol's layer names, which settings are checked against, are the model's layers."""
    from impasto.daemon.model import BLOCKS

    assert LAYER_NAMES is PROTOCOL_LAYER_NAMES
    for block, convs in enumerate(BLOCKS, start=1):
        assert [n for n in CONV_NAMES if n.startswith(f"conv{block}_")] == [f"conv{block}_{i}" for i in
                                                                              range(1, len(convs) + 1)]
    assert len(CONV_NAMES) == sum(len(convs) for convs in BLOCKS)
    assert [n for n in LAYER_NAMES if n.startswith("pool")] == [f"pool{b}" for b in range(1, len(BLOCKS) + 1)]


def test_unknown_layer_is_refused(vgg19) -> None:
    with pytest.raises(ValueError):
        vgg19(torch.rand(1, 3, 8, 8), {"relu6_1"})
    assert "pool5" in LAYER_NAMES


def small(seed: int, height: int = 24, width: int = 32) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


# Every test that judges the optimisation runs in both precisions, named, never through "auto":
# CI's CPUs differ (auto is bf16 where AVX512-BF16 is native, fp32 elsewhere), and bf16 runs
# emulated, slower but the same arithmetic, where it is not native.
PRECISIONS = ("fp32", "bf16")


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("optimizer, style_loss", [("lbfgs", "gram"), ("adam", "gram"), ("adam", "sliced")])
def test_optimisation_lowers_the_loss(vgg19, optimizer, style_loss, precision) -> None:
    terms = []
    params = JobParams(size=32, iterations=15, optimizer=optimizer, style_loss=style_loss, learning_rate=0.05,
                       preview_every=0, strength=0.7, precision=precision)
    result = engine.StyleTransfer(vgg19).run(small(1), [(small(2), 1.0)], params,
                                             on_progress=lambda p, terms=terms: terms.append(p.losses))
    assert len(terms) == 15
    assert terms[-1]["total"] < 0.7 * terms[0]["total"]
    assert terms[-1]["style"] < 0.7 * terms[0]["style"]
    assert result.shape == (1, 3, 24, 32) and result.min() >= 0 and result.max() <= 1


def test_scales_grow_and_warm_start(vgg19) -> None:
    assert imaging.scale_sides(384, 128) == [136, 192, 272, 384]
    assert imaging.scale_sides(100, 128) == [100]
    assert imaging.scale_sides(384, 0) == [384]
    seen = []
    params = JobParams(size=64, first_scale=30, iterations=8, coarse_iterations=6, init="noise", preview_every=0,
                       optimizer="adam", style_weight=10, style_layers=dict.fromkeys(STYLE_LAYERS, 1.0),
                       precision="fp32")
    engine.StyleTransfer(vgg19).run(small(1, 48, 64), [(small(2), 1.0)], params, on_progress=seen.append)
    assert [(p.scale, p.width, p.height) for p in seen[::6]] == [(1, 32, 24), (2, 45, 34), (3, 64, 48),
                                                                   (3, 64, 48)]
    assert [p.scale for p in seen] == [1] * 6 + [2] * 6 + [3] * 8
    assert [p.iteration for p in seen] == list(range(1, 21)) and seen[-1].total == 20
    # Warm start: scale 2 begins where scale 1 ended, far below where noise began.
    assert seen[6].losses["content"] < 0.5 * seen[0].losses["content"]


# L-BFGS's path follows the last bits of every step, so bf16 and fp32 part ways for a while
# (losses 9% apart after 10 steps) before they meet again (2.5% after 20).
@pytest.mark.parametrize("optimizer, iterations", [("adam", 10), ("lbfgs", 20)])
def test_bf16_and_fp32_agree(vgg19, optimizer, iterations) -> None:
    results, losses = {}, {}
    for precision in ("fp32", "bf16"):
        params = JobParams(size=48, iterations=iterations, precision=precision, preview_every=0, optimizer=optimizer)
        terms = []
        results[precision] = engine.StyleTransfer(vgg19).run(small(1), [(small(2), 1.0)], params,
                                                             on_progress=lambda p, terms=terms: terms.append(p.losses))
        losses[precision] = terms[-1]["total"]
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * losses["fp32"]
    assert (results["bf16"] - results["fp32"]).abs().mean() < 0.02


# More work never makes the result worse (#14). L-BFGS keeps the picture within 0..1, so the
# picture a run returns is the one whose objective it lowered; unbounded, the style term pushed
# colours past 0 and 1 and the clamp at the end took back a growing share of the gains (at 384
# px, tubingen × starry_night: the style term 21% above the one reported after 40 iterations,
# 52% after 160, and Gatys's style score, as the benches then computed it, got worse from 80 to 160).
@pytest.mark.parametrize("precision", PRECISIONS)
def test_more_iterations_never_make_the_result_worse(vgg19, precision) -> None:
    photo, styles = small(3, 36, 48), [(small(4), 1.0)]
    transfer = engine.StyleTransfer(vgg19)
    measured = {}
    for iterations in (15, 30):
        params = JobParams(size=48, iterations=iterations, precision=precision, preview_every=0)
        reported: list[dict[str, float]] = []
        result = transfer.run(photo, styles, params, on_progress=lambda p, seen=reported: seen.append(p.losses))
        measured[iterations] = transfer.objective_terms(result, photo, styles, params)
        if precision == "fp32":  # bf16 reports its own rounding of the same terms
            assert measured[iterations]["total"] == pytest.approx(reported[-1]["total"], rel=1e-3)
    assert measured[30]["total"] < measured[15]["total"]


# Strengths 0.25 and 0.75: style weights 13 times apart (objective.STRENGTH_DECADES), so the
# terms differ clearly under both precisions.
@pytest.mark.parametrize("precision", PRECISIONS)
def test_strength_trades_content_for_style(vgg19, precision) -> None:
    final = {}
    for strength in (0.25, 0.75):
        terms = []
        params = JobParams(size=48, iterations=20, strength=strength, preview_every=0, precision=precision)
        engine.StyleTransfer(vgg19).run(small(1), [(small(2), 1.0)], params,
                                        on_progress=lambda p, terms=terms: terms.append(p.losses))
        final[strength] = terms[-1]
    assert final[0.75]["style"] < 0.7 * final[0.25]["style"]
    assert final[0.75]["content"] > 1.3 * final[0.25]["content"]


def test_strength_zero_is_the_photo_and_more_strength_changes_more(vgg19) -> None:
    photo = small(1)
    transfer = engine.StyleTransfer(vgg19)
    assert torch.equal(transfer.run(photo, [(small(2), 1.0)], JobParams(size=48, strength=0.0)), photo)
    changes = []
    for strength in (0.05, 0.5, 1.0):
        result = transfer.run(photo, [(small(2), 1.0)], JobParams(size=48, iterations=10, strength=strength, detail=0))
        changes.append(float((result - photo).abs().mean() * 255))
    assert changes[0] < 4.0  # levels of 255: a touch (smoothing weakens with the strength)
    assert changes[0] < changes[1] < changes[2] and changes[2] > 2 * changes[0], changes


def test_strength_weights_the_default_layers_texture_more_only_when_strong() -> None:
    light, middle, full = (objective.style_layer_weights(JobParams(strength=s)) for s in (0.2, 0.6, 1.0))
    assert light == JobParams().style_layers
    texture = [layer for layer, weight in light.items() if weight < objective.TEXTURE_WEIGHT]
    assert texture and all(light[k] < middle[k] < full[k] == pytest.approx(objective.TEXTURE_WEIGHT) for k in texture)
    assert all(full[k] == light[k] for k in light if k not in texture)  # relu4_1 keeps its weight
    mine = {"relu1_1": 0.01, "relu4_1": 1.0}
    assert objective.style_layer_weights(JobParams(strength=1.0, style_layers=mine)) == mine


@pytest.mark.parametrize("precision", PRECISIONS)
def test_same_seed_same_picture(vgg19, precision) -> None:
    params = JobParams(size=32, iterations=4, init="noise", seed=11, preview_every=0, precision=precision)
    transfer = engine.StyleTransfer(vgg19)
    first = transfer.run(small(1), [(small(2), 1.0)], params)
    second = transfer.run(small(1), [(small(2), 1.0)], params)
    other = transfer.run(small(1), [(small(2), 1.0)], JobParams(**{**params.to_wire(), "seed": 12}))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_previews_come_at_the_cadence_asked(vgg19) -> None:
    previews = []
    params = JobParams(size=32, iterations=12, preview_every=5, pooling="avg")
    engine.StyleTransfer(vgg19).run(small(1), [(small(2), 1.0)], params,
                                    on_preview=lambda image, p: previews.append((p.iteration, image.shape)))
    assert [iteration for iteration, _ in previews] == [5, 10]  # the 12th is the result itself
    assert all(shape == (1, 3, 24, 32) for _, shape in previews)
    previews.clear()
    params = JobParams(size=64, first_scale=30, iterations=4, coarse_iterations=4, preview_every=3)
    engine.StyleTransfer(vgg19).run(small(1, 48, 64), [(small(2), 1.0)], params,
                                    on_preview=lambda image, p: previews.append((p.iteration, image.shape)))
    # Every scale also ends with a preview, so the picture visibly sharpens scale by scale.
    assert [iteration for iteration, _ in previews] == [3, 4, 7, 8, 11]


def test_working_size_never_enlarges() -> None:
    assert imaging.working_size(80, 60, 64) == (64, 48)
    assert imaging.working_size(80, 60, 512) == (80, 60)


def test_should_stop_cancels(vgg19) -> None:
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(engine.JobCancelled):
        engine.StyleTransfer(vgg19).run(small(1), [(small(2), 1.0)], JobParams(size=32, iterations=100),
                                        should_stop=should_stop)


def test_cancelling_ends_an_iteration_midway(vgg19) -> None:
    """A cancel is seen between VGG19's layers, not only between iterations (which take seconds)."""
    calls, progress = [], []

    def should_stop() -> bool:
        calls.append(1)
        # Asked after each of the 13 convolutions up to conv5_1: 10 for the content target, 13
        # for the style targets, 13 in the iteration's forward pass; the 41st is in its backward.
        return len(calls) > 40

    with pytest.raises(engine.JobCancelled):
        engine.StyleTransfer(vgg19).run(small(1), [(small(2), 1.0)], JobParams(size=32, first_scale=0, iterations=1),
                                        on_progress=progress.append, should_stop=should_stop)
    assert len(calls) == 41 and not progress  # stopped at the first yes, before the iteration ended


def test_gram_targets_blend_two_styles(vgg19) -> None:
    transfer = engine.StyleTransfer(vgg19)
    params = JobParams(style_layers={"relu1_1": 1.0}, precision="fp32")
    generator = torch.Generator()

    def target(styles):
        return transfer.style_losses(styles, params, 32, generator)["relu1_1"].target

    mixed = target([(small(1), 3.0), (small(2), 1.0)])
    assert torch.allclose(mixed, 0.75 * target([(small(1), 1.0)]) + 0.25 * target([(small(2), 1.0)]),
                          rtol=1e-4, atol=1e-3)


def colour_image(seed: int, tint: tuple[float, float, float]) -> torch.Tensor:
    return (small(seed, 48, 64) * 0.5 + torch.tensor(tint).view(1, 3, 1, 1) * 0.5).clamp(0, 1)


def test_luminance_transfer_keeps_the_photos_chroma(vgg19) -> None:
    content, style = colour_image(1, (0.9, 0.2, 0.1)), colour_image(2, (0.1, 0.3, 0.9))
    previews = []
    params = JobParams(size=64, iterations=8, keep_colors="luminance", preview_every=4, strength=0.8,
                       optimizer="adam", precision="fp32")
    result = engine.StyleTransfer(vgg19).run(content, [(style, 1.0)], params,
                                             on_preview=lambda image, p: previews.append(image))
    chroma = imaging.rgb_to_yuv(result)[:, 1:]
    expected = imaging.rgb_to_yuv(content)[:, 1:]
    assert (chroma - expected).abs().mean() < 0.02  # only clamping to 0..1 may move it
    assert (imaging.rgb_to_yuv(result)[:, :1] - imaging.rgb_to_yuv(content)[:, :1]).abs().mean() > 0.01
    assert previews and (imaging.rgb_to_yuv(previews[0])[:, 1:] - expected).abs().mean() < 0.02


def test_colour_matching_recolours_the_painting(vgg19) -> None:
    content, style = colour_image(1, (0.9, 0.2, 0.1)), colour_image(2, (0.1, 0.3, 0.9))
    matched = imaging.match_colors(style, content)
    assert (matched.mean((2, 3)) - content.mean((2, 3))).abs().max() < 0.03
    means = {}
    for keep in ("none", "match"):
        params = JobParams(size=64, iterations=10, keep_colors=keep, preview_every=0, strength=0.9, init="noise",
                           precision="fp32")
        means[keep] = engine.StyleTransfer(vgg19).run(content, [(style, 1.0)], params).mean((2, 3))
    target = content.mean((2, 3))
    assert (means["match"] - target).abs().sum() < (means["none"] - target).abs().sum()


def test_style_targets_are_cached_and_a_changed_image_misses(vgg19, tmp_path) -> None:
    from impasto.daemon.targets import TargetCache

    params = JobParams(size=48, iterations=1, preview_every=0)
    style = small(2)
    first = engine.StyleTransfer(vgg19, cache=TargetCache(tmp_path))
    first.run(small(1), [(style, 1.0)], params)
    assert (first.cache.hits, first.cache.misses) == (0, 1)
    first.run(small(1), [(style, 1.0)], params)
    assert first.cache.hits == 1
    # A new daemon finds them on disk.
    second = engine.StyleTransfer(vgg19, cache=TargetCache(tmp_path))
    second.run(small(1), [(style.clone(), 1.0)], params)
    assert (second.cache.hits, second.cache.misses) == (1, 0)
    changed = style.clone()
    changed[0, 0, 0, 0] = 1 - changed[0, 0, 0, 0]
    second.run(small(1), [(changed, 1.0)], params)
    assert second.cache.misses == 1
    second.run(small(1), [(style, 1.0)], JobParams(**{**params.to_wire(), "pooling": "avg"}))
    assert second.cache.misses == 2  # another setting, another target


def test_the_target_cache_is_best_effort_and_drops_bad_entries(vgg19, tmp_path) -> None:
    """An unwritable folder or a wrong entry costs the speed-up, never the job."""
    from impasto.daemon.targets import TargetCache

    params = JobParams(size=48, iterations=1, preview_every=0, precision="fp32")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")  # mkdir under it fails, as in a read-only or full one
    unwritable = engine.StyleTransfer(vgg19, cache=TargetCache(blocked / "targets"))
    assert unwritable.run(small(1), [(small(2), 1.0)], params).shape == (1, 3, 24, 32)
    good = engine.StyleTransfer(vgg19, cache=TargetCache(tmp_path / "cache"))
    expected = good.run(small(1), [(small(2), 1.0)], params)
    [entry] = (tmp_path / "cache").glob("*.pt")
    whole = torch.load(entry, weights_only=True)
    poisons = ({**whole, "relu1_1": torch.zeros(1, 32, 32)},  # square, but not relu1_1's size
               {**whole, "relu4_1": torch.full_like(whole["relu4_1"], 1e30)})  # finite, far past any painting's
    for bad in ({}, {"relu1_1": torch.full((1, 64, 64), float("nan"))}, {"relu1_1": torch.zeros(3)}, [1, 2], *poisons):
        torch.save(bad, entry)
        fresh = engine.StyleTransfer(vgg19, cache=TargetCache(tmp_path / "cache"))
        assert torch.equal(fresh.run(small(1), [(small(2), 1.0)], params), expected)
        assert fresh.cache.misses == 1  # dropped and recomputed
    assert not list((tmp_path / "cache").glob(".*.tmp"))


def test_the_target_cache_keeps_to_its_size(tmp_path) -> None:
    from impasto.daemon.targets import TargetCache

    cache = TargetCache(tmp_path, max_bytes=3000)
    for index in range(5):
        cache.put(f"k{index}", {"relu1_1": torch.rand(1, 16, 16)})  # about 1.2 kB on disk each
    kept = sorted(path.stem for path in tmp_path.glob("*.pt"))
    assert sum(path.stat().st_size for path in tmp_path.glob("*.pt")) <= 3000
    assert kept and kept[-1] == "k4"  # the newest stays
