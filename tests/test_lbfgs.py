"""The engine's L-BFGS: indifferent to the loss's scale, and never keeps a step that made things worse."""

import itertools

import pytest
import torch

from impasto.daemon.lbfgs import LBFGS


def minimise(loss_of, start: torch.Tensor, steps: int,
             bounds: tuple[float, float] | None = None) -> tuple[LBFGS, list[float], int]:
    """The optimiser, the loss it reported at each step, and how many steps it undid."""
    image = start.clone().requires_grad_(True)
    optimizer = LBFGS(image, bounds=bounds)

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


def test_bounded_it_stays_within_the_bounds_and_finds_the_best_picture_inside() -> None:
    # A coupled quadratic whose unconstrained minimum has half its pixels outside 0..1.
    generator = torch.Generator().manual_seed(1)
    target = torch.rand(1, 3, 8, 8, generator=generator) * 2 - 0.5
    mixing = torch.eye(target.numel()) + 0.3 * torch.rand(target.numel(), target.numel(), generator=generator)

    def loss_of(image: torch.Tensor) -> torch.Tensor:
        return (mixing @ (image - target).flatten()).pow(2).sum()

    seen: list[torch.Tensor] = []
    _, losses, _ = minimise(lambda image: seen.append(image.detach().clone()) or loss_of(image),
                            torch.full_like(target, 0.5), 300, bounds=(0.0, 1.0))
    assert all(float(picture.min()) >= 0 and float(picture.max()) <= 1 for picture in seen)
    assert all(later <= earlier for earlier, later in itertools.pairwise(losses))
    # The best picture within the box, by projected gradient descent run long.
    best = torch.full_like(target, 0.5)
    step = 0.5 / float(torch.linalg.matrix_norm(mixing, 2)) ** 2
    for _ in range(20000):
        gradient = 2 * (mixing.T @ (mixing @ (best - target).flatten())).view_as(best)
        best = (best - step * gradient).clamp(0, 1)
    assert losses[-1] <= float(loss_of(best)) * 1.01  # a hard case: every pixel coupled to every other
    unbounded = minimise(loss_of, torch.full_like(target, 0.5), 300)[0].accepted
    assert float(loss_of(unbounded.clamp(0, 1))) > 1.5 * float(loss_of(best))  # why the bounds matter
