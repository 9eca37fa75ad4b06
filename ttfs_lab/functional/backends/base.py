"""What a backend of the parallel neuron provides: one forward and one backward (docs/method.md section 1).

The forward runs all ``T`` steps of the neuron over currents ``[T | 1, B, ...]`` and, when ``k > 1``, the k x k
average pool (stride k) after it (``[T | 1, B, C, H, W]`` -> ``[T, B, C, H // k, W // k]``). When a gradient is
wanted it also returns one saved tensor ``X`` ``[T, B, ...]`` of the units: ``V[t] - theta`` (for the sigmoid
surrogate ``sigmoid(alpha (V[t] - theta))``) while the unit has not fired before t, ``+inf`` after (sigmoid: 1),
where every surrogate is 0. The backward turns the gradient of the (pooled) spikes and ``X`` into the gradient of
the currents, ``dL/dI[tau] = sum_{t >= tau} lam^(t - tau) dL/dS[t] H'(X[t])``; a constant current (``const``: the
``[1, B, ...]`` input of the first layer under direct encoding) gets it summed over time, ``[1, B, ...]``.
The ``kernel`` and ``torch`` backends also ``resume``: inference from a saved state, no backward.
"""

from __future__ import annotations

from typing import Optional, Protocol

import torch
from torch import Tensor

from ttfs_lab.functional.neuron_reference import NeuronParams


class Backend(Protocol):
    """One way to run the parallel neuron: ``kernel`` (numba, CPU), ``triton`` (CUDA), ``torch`` (tensor ops)."""

    name: str
    fuses_pool: bool  # whether forward / backward with k > 1 beat the neuron followed by ``avg_pool2d``
    requirement: str  # what it needs, for the error when it is named but cannot run

    def applies(self, x: Tensor, p: NeuronParams, named: bool) -> bool:
        """Whether it can run on ``x``: ``named`` when the caller asked for it by name, else chosen by ``auto``."""

    def forward(self, cur: Tensor, T: int, const: bool, p: NeuronParams, save: bool,
                k: int) -> tuple[Tensor, Optional[Tensor], "Backend"]:
        """(Pooled) spikes ``[T, B, ...]``, the saved ``X`` if ``save`` (else None), and the backend whose
        ``backward`` goes with them (itself, or the one it fell back to)."""

    def backward(self, grad: Tensor, x: Tensor, const: bool, p: NeuronParams, k: int, dtype: torch.dtype) -> Tensor:
        """dL/d(pooled spikes) and the saved ``X`` -> dL/dI ``[T | 1, B, ...]`` in ``dtype``, the currents'."""


def planes(step_shape: torch.Size, k: int) -> tuple[int, int, int]:
    """One step of units as ``planes`` of H x W: ``[B, C, H, W]`` when pooled (k > 1), else one flat plane per unit."""
    if k > 1:
        B, C, H, W = step_shape
        return B * C, H, W
    return step_shape.numel(), 1, 1


def pooled_shape(step_shape: torch.Size, k: int) -> tuple[int, ...]:
    """The shape of one step of output: ``[B, C, H // k, W // k]`` when pooled, else ``step_shape``."""
    if k > 1:
        B, C, H, W = step_shape
        return (B, C, H // k, W // k)
    return tuple(step_shape)
