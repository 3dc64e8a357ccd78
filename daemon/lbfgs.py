"""Limited-memory BFGS for one image, one loss evaluation per step.

torch.optim.LBFGS without a line search does not suit our losses: it keeps a curvature pair only
when yᵀs > 1e-10 and opens with a step of 1/‖g‖₁, both absolute. For losses near 1 over pixels
in 0..1, it dropped the first pairs, then stepped along the bare gradient with a unit step, and
the picture blew up before it recovered (bench/RESULTS.md, findings). Everything here is
relative instead, so the loss's and the pixels' scales do not matter.

The direction is the two-loop recursion (Nocedal & Wright, "Numerical Optimization", 2nd ed.,
2006, Algorithm 7.4) with the initial Hessian γ = sᵀy / yᵀy of the latest pair (their eq. 7.20).
There is no line search, which would cost evaluations. Instead, two guards. No step moves a
pixel further than a bound, because early on, from a pair or two of small gradient steps, γ can
be wildly large. And a step whose loss
comes out higher than before is undone: the history is forgotten, the bound halves, and the
optimiser starts again from the better point; each kept step doubles the bound back towards
its start.

Given `bounds` (pixels run 0..1), the gradient of a pixel held at a bound that points outward
is left out of the direction, the direction's components that would push such a pixel further
out are dropped, and every step ends projected into the bounds: the losses it compares are
those of pictures that can be shown. Unbounded, the style term pushed saturated colours past 0
and 1, and clamping the result afterwards took back a growing share of the gains.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import torch

# The opening step (and each restart's) moves the pixel with the steepest gradient this far,
# and each further gradient step, taken while no curvature pair could be kept, twice as far.
# No step moves any pixel further than MAX_MOVE (pixels run 0..1).
OPENING_MOVE = 2 / 255
MAX_MOVE = 32 / 255


class LBFGS:
    """Minimises a loss over `image` in place; `step` as torch's optimisers have it."""

    def __init__(self, image: torch.Tensor, history: int = 50, opening_move: float = OPENING_MOVE,
                 bounds: tuple[float, float] | None = None) -> None:
        self.image = image
        self.bounds = bounds
        self.pairs: deque[tuple[torch.Tensor, torch.Tensor, float]] = deque(maxlen=history)  # s, y, 1/yᵀs
        self.max_move = MAX_MOVE
        self.opening_move = opening_move  # the next gradient step's, doubling while no pair is kept
        self.previous: tuple[torch.Tensor, torch.Tensor, float] | None = None  # x, g, loss
        self.undone = False  # whether the last step was undone

    def step(self, closure: Callable[[], torch.Tensor]) -> float:
        """Evaluate the loss and its gradient at the image, then move the image; returns the loss
        at the point the step starts from (the previous one when the last step was undone)."""
        loss = float(closure().detach())
        x = self.image.detach().flatten()
        assert self.image.grad is not None  # the closure leaves the gradient there
        g = self.image.grad.detach().flatten().float()
        self.undone = False
        if self.previous is not None:
            x_before, g_before, loss_before = self.previous
            if not (loss <= loss_before):  # also when the loss is not finite
                self.undone = True
                self.image.data.copy_(x_before.view_as(self.image))
                x, g, loss = x_before, g_before, loss_before
                self.pairs.clear()
                self.max_move /= 2
                self.opening_move = min(OPENING_MOVE, self.max_move)
            else:
                self.max_move = min(MAX_MOVE, self.max_move * 2)
                s, y = x - x_before, g - g_before
                ys = float(y @ s)
                # Only pairs with positive curvature keep the inverse Hessian positive definite;
                # the bound is relative to the pair's own size.
                if ys > 1e-10 * float(y @ y) ** 0.5 * float(s @ s) ** 0.5:
                    self.pairs.append((s, y, 1.0 / ys))
        if self.bounds is not None:  # a pixel at a bound moves only back inside
            low, high = self.bounds
            pinned = ((x <= low) & (g > 0)) | ((x >= high) & (g < 0))
            direction = self._direction(torch.where(pinned, 0.0, g))
            direction[((x <= low) & (direction < 0)) | ((x >= high) & (direction > 0))] = 0
        else:
            direction = self._direction(g)
        direction *= min(1.0, self.max_move / max(float(direction.abs().max()), 1e-30))
        self.previous = (x.clone(), g, loss)
        with torch.no_grad():
            self.image.add_(direction.view_as(self.image).to(self.image.dtype))
            if self.bounds is not None:
                self.image.clamp_(*self.bounds)
        return loss

    @property
    def accepted(self) -> torch.Tensor:
        """The last point whose loss was evaluated and kept: the image before the step just taken."""
        if self.previous is None:
            return self.image.detach()
        return self.previous[0].view_as(self.image)

    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        if not self.pairs:
            move, self.opening_move = self.opening_move, min(self.max_move, 2 * self.opening_move)
            return -g * (move / max(float(g.abs().max()), 1e-30))
        q = g.clone()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            alpha = rho * float(s @ q)
            q.sub_(y, alpha=alpha)
            alphas.append(alpha)
        s, y, rho = self.pairs[-1]
        q.mul_(1.0 / (rho * float(y @ y)))  # γ = sᵀy / yᵀy
        for (s, y, rho), alpha in zip(self.pairs, reversed(alphas), strict=True):
            beta = rho * float(y @ q)
            q.add_(s, alpha=alpha - beta)
        return q.neg_()
