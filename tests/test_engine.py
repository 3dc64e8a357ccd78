"""The engine without sockets: Gram matrices, losses, layer pruning, determinism, cancel."""

from __future__ import annotations

import pytest
import torch

from daemon import engine
from daemon.model import CONV_NAMES, LAYER_NAMES
from protocol.messages import JobParams


def test_gram_matrix_matches_definition() -> None:
    features = torch.randn(1, 4, 3, 5)
    flat = features[0].reshape(4, 15)
    expected = flat @ flat.T / (4 * 15)
    gram = engine.gram_matrix(features)[0]
    assert torch.allclose(gram, expected, atol=1e-6)
    assert torch.allclose(gram, gram.T)


def test_gram_matrix_ignores_image_size() -> None:
    features = torch.randn(1, 8, 6, 6)
    tiled = features.repeat(1, 1, 2, 3)  # the same texture over a larger area
    assert torch.allclose(engine.gram_matrix(features), engine.gram_matrix(tiled), atol=1e-5)


def test_losses_vanish_at_their_targets() -> None:
    features = torch.rand(1, 8, 5, 5)
    assert engine.ContentLoss(features)(features) == 0
    assert engine.StyleLoss(engine.gram_matrix(features))(features) == 0
    other = torch.rand(1, 8, 5, 5)
    assert engine.ContentLoss(features)(other) > 0
    assert engine.StyleLoss(engine.gram_matrix(features))(other) > 0
    assert engine.total_variation(torch.full((1, 3, 4, 4), 0.3)) == 0
    assert engine.total_variation(torch.rand(1, 3, 4, 4)) > 0


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


def test_unknown_layer_is_refused(vgg19) -> None:
    with pytest.raises(ValueError):
        vgg19(torch.rand(1, 3, 8, 8), {"relu6_1"})
    assert "pool5" in LAYER_NAMES


def small(seed: int) -> torch.Tensor:
    return torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimisation_lowers_the_loss(vgg19, optimizer) -> None:
    totals = []
    params = JobParams(size=32, iterations=15, optimizer=optimizer, learning_rate=0.05, preview_every=0)
    result = engine.StyleTransfer(vgg19).run(small(1), [(small(2), 1.0)], params,
                                             on_progress=lambda p: totals.append(p.losses["total"]))
    assert len(totals) == 15
    assert totals[-1] < 0.7 * totals[0]
    assert result.shape == (1, 3, 24, 32) and result.min() >= 0 and result.max() <= 1


def test_same_seed_same_picture(vgg19) -> None:
    params = JobParams(size=32, iterations=4, init="noise", seed=11, preview_every=0)
    transfer = engine.StyleTransfer(vgg19)
    first = transfer.run(small(1), [(small(2), 1.0)], params)
    second = transfer.run(small(1), [(small(2), 1.0)], params)
    other = transfer.run(small(1), [(small(2), 1.0)], JobParams(**{**params.to_wire(), "seed": 12}))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_previews_come_at_the_cadence_asked(vgg19) -> None:
    previews = []
    params = JobParams(size=32, iterations=12, preview_every=4, pooling="avg")
    engine.StyleTransfer(vgg19).run(small(1), [(small(2), 1.0)], params,
                                    on_preview=lambda image, p: previews.append((p.iteration, image.shape)))
    assert [iteration for iteration, _ in previews] == [4, 8]  # the 12th is the result itself
    assert all(shape == (1, 3, 24, 32) for _, shape in previews)


def test_working_size_never_enlarges() -> None:
    assert engine.working_size(80, 60, 64) == (64, 48)
    assert engine.working_size(80, 60, 512) == (80, 60)


def test_should_stop_cancels(vgg19) -> None:
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(engine.JobCancelled):
        engine.StyleTransfer(vgg19).run(small(1), [(small(2), 1.0)], JobParams(size=32, iterations=100),
                                        should_stop=should_stop)


def test_style_targets_blend_two_styles(vgg19) -> None:
    transfer = engine.StyleTransfer(vgg19)
    params = JobParams(style_layers={"relu1_1": 1.0})
    a = transfer.style_targets([(small(1), 1.0)], params, 32)["relu1_1"]
    b = transfer.style_targets([(small(2), 1.0)], params, 32)["relu1_1"]
    mixed = transfer.style_targets([(small(1), 3.0), (small(2), 1.0)], params, 32)["relu1_1"]
    assert torch.allclose(mixed, 0.75 * a + 0.25 * b, rtol=1e-4, atol=1e-3)
