"""Surrogate derivatives of the Heaviside step (docs/method.md section 1).

Each surrogate is the derivative of a smooth step with sharpness ``alpha``; all integrate to 1 over the real line.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ttfs_lab.registry import Registry

SurrogateGrad = Callable[[Tensor, float], Tensor]
SURROGATES: Registry[SurrogateGrad] = Registry("surrogate")


@SURROGATES.register("sigmoid")
def sigmoid_grad(x: Tensor, alpha: float) -> Tensor:
    """d/dx sigmoid(alpha x) = alpha s (1 - s)."""
    s = torch.sigmoid(x * alpha)
    return s.mul_(1.0 - s).mul_(alpha)


@SURROGATES.register("atan")
def atan_grad(x: Tensor, alpha: float) -> Tensor:
    """d/dx (1/pi) atan(pi/2 alpha x) = alpha / (2 (1 + (pi/2 alpha x)^2)) (SpikingJelly's ATan)."""
    return (x * (math.pi / 2 * alpha)).square_().add_(1.0).reciprocal_().mul_(alpha / 2)


@SURROGATES.register("triangle")
def triangle_grad(x: Tensor, alpha: float) -> Tensor:
    """alpha * max(0, 1 - alpha |x|): a triangle of width 2 / alpha and unit area."""
    return (x.abs() * -alpha).add_(1.0).clamp_(min=0.0).mul_(alpha)


class SurrogateHeaviside(torch.autograd.Function):
    """H(x) forward, ``surrogate'(x)`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, surrogate: str, alpha: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.grad_fn_ = SURROGATES[surrogate]
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        return grad * ctx.grad_fn_(x, ctx.alpha), None, None


def heaviside(x: Tensor, surrogate: str = "sigmoid", alpha: float = 4.0) -> Tensor:
    """Heaviside step with a surrogate gradient; ``surrogate`` is a name from ``SURROGATES``."""
    SURROGATES[surrogate]
    return SurrogateHeaviside.apply(x, surrogate, alpha)
