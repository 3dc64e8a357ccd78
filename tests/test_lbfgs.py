"""The engine's L-BFGS: indifferent to the loss's scale, and never keeps a step that made things worse."""

import itertools

import pytest
import torch

from daemon.lbfgs import LBFGS


def minimise(loss_of, start: torch.Tensor, steps: int) -> tuple[LBFGS, list[float], int]:
    """The optimiser, the loss it reported at each step, and how many steps it undid."""
    image = start.clone().requires_grad_(True)
    optimizer = LBFGS(image)

    def closure() -> torch.Tensor:
        image.grad = None
        loss = loss_of(image)
        loss.backward()
        return loss

    losses, undone = [], 0
    for _ in range(steps):
        losses.append(optimizer.step(closure))
        undone += optimizer.undone
    return optimizer, losses, undone


@pytest.mark.parametrize("scale", [1e-9, 1.0, 1e9])
def test_converges_whatever_the_loss_scale(scale) -> None:
    # An ill-conditioned quadratic over a small "image": curvatures from 1 to 100.
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 8, 8, generator=generator)
    curvature = torch.logspace(0, 2, target.numel()).view_as(target)

    def loss_of(image: torch.Tensor) -> torch.Tensor:
        return scale * (curvature * (image - target).pow(2)).sum()

    _, losses, _ = minimise(loss_of, torch.zeros_like(target), 60)
    assert losses[-1] < 1e-6 * losses[0]


def test_steps_that_raise_the_loss_are_undone() -> None:
    # Rosenbrock's valley: a quasi-Newton step without a line search overshoots in it.
    def loss_of(image: torch.Tensor) -> torch.Tensor:
        x, y = image.flatten()
        return (1 - x).pow(2) + 100 * (y - x * x).pow(2)

    optimizer, losses, undone = minimise(loss_of, torch.tensor([[[[-1.2, 1.0]]]]), 400)
    assert undone > 0
    assert all(later <= earlier for earlier, later in itertools.pairwise(losses))
    assert losses[-1] < 1e-4
    assert torch.allclose(optimizer.accepted.flatten(), torch.ones(2), atol=0.02)
