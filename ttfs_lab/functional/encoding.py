"""Input encoders (docs/method.md section 1). Each maps a batch to input of shape ``[T', B, ...]``.

* ``direct``: the analog image is the first layer's input current at every step. It is returned once as
  ``[1, B, C, H, W]``: the first synaptic layer is then computed once and broadcast over T.
* ``latency``: one input spike per pixel at t = round((1 - x) (T - 1)); no spike for x = 0. ``x`` in [0, 1].
* ``frames``: event frames ``[B, T, C, H, W]`` become ``[T, B, C, H, W]``, one frame per step.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ttfs_lab.registry import Registry

Encoder = Callable[[Tensor, int], Tensor]
ENCODERS: Registry[Encoder] = Registry("encoder")


@ENCODERS.register("direct")
def direct(x: Tensor, T: int) -> Tensor:
    """``[B, C, H, W]`` -> ``[1, B, C, H, W]`` (the same current at every one of the T steps)."""
    return x.unsqueeze(0)


@ENCODERS.register("latency")
def latency(x: Tensor, T: int) -> Tensor:
    """``[B, ...]`` in [0, 1] -> ``[T, B, ...]`` binary, one spike at round((1 - x)(T - 1)), none where x = 0."""
    times = torch.round((1.0 - x.clamp(0.0, 1.0)) * (T - 1)).long()
    steps = torch.arange(T, device=x.device).view(T, *([1] * x.dim()))
    return ((steps == times.unsqueeze(0)) & (x > 0).unsqueeze(0)).to(x.dtype)


@ENCODERS.register("frames")
def frames(x: Tensor, T: int) -> Tensor:
    """Event frames ``[B, T, C, H, W]`` -> ``[T, B, C, H, W]``."""
    if x.dim() != 5 or x.shape[1] != T:
        raise ValueError(f"event frames must be [B, T={T}, C, H, W], got shape {tuple(x.shape)}; set model.T to the data's frames")
    return x.transpose(0, 1)
