"""Normalized conv / linear layers with a learnable affine (docs/method.md section 3).

Per output unit o, with ``std_init`` the standard deviation of the chosen initializer (ETTFS: sqrt(gain T/fan_in)):

    W_hat[o] = (W[o] - mean(W[o])) / sqrt(var(W[o]) + eps) * std_init
    y = x * (gamma[o] W_hat[o]) + beta[o]

``norm=False`` uses W as is; ``affine=False`` drops gamma and beta. With neither, the layer is a plain
conv/linear with a bias (the ablation baseline). ``fold()`` returns the plain ``nn.Conv2d`` / ``nn.Linear``
computing the same function, for inference. The standardization itself (and its fused kernels) is
``ttfs_lab.functional.standardize``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ttfs_lab.functional.standardize import standardized_weight
from ttfs_lab.init import init_std, init_weight_

__all__ = ["NormConv2d", "NormLinear", "standardized_weight"]


class _NormalizedSynapse(nn.Module):
    eps = 1e-5

    def _setup(self, weight_shape, T, init, init_gain, norm, affine, distribution) -> None:
        out_units = weight_shape[0]
        self.weight = nn.Parameter(torch.empty(weight_shape))
        init_weight_(self.weight, init, T, init_gain, distribution)
        self.norm, self.affine = norm, affine
        self.target_std = init_std(init, self.weight, T, init_gain)
        self.gamma = nn.Parameter(torch.ones(out_units)) if affine else None
        has_bias = affine or not norm
        self.bias = nn.Parameter(torch.zeros(out_units)) if has_bias else None

    def effective_weight(self) -> Tensor:
        """The weight the layer applies; between ``hold_weight()`` and ``release_weight()`` (an evaluation
        epoch, when the parameters cannot change) computed once, without gradients, and reused by every
        forward that needs no gradient."""
        holding = getattr(self, "_holding", False)  # modules unpickled from before the attribute existed
        if not holding or (torch.is_grad_enabled() and self.weight.requires_grad):
            return self._effective_weight()  # training never reads a held weight
        if self._held_weight is None:
            with torch.no_grad():
                self._held_weight = self._effective_weight()
        return self._held_weight

    def hold_weight(self) -> None:
        self._holding, self._held_weight = True, None

    def release_weight(self) -> None:
        self._holding, self._held_weight = False, None

    def _effective_weight(self) -> Tensor:
        if self.norm:
            return standardized_weight(self.weight, self.gamma, self.target_std, self.eps)
        w = self.weight
        if self.gamma is not None:
            w = w * self.gamma.view(-1, *([1] * (w.dim() - 1)))
        return w

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, norm={self.norm}, affine={self.affine}, std={self.target_std:.4g}"


class NormLinear(_NormalizedSynapse):
    """Normalized linear layer, ``[N, in] -> [N, out]``."""

    def __init__(self, in_features: int, out_features: int, T: int, init: str = "ettfs", init_gain: Optional[float] = None,
                 norm: bool = True, affine: bool = True, distribution: str = "normal") -> None:
        super().__init__()
        self._setup((out_features, in_features), T, init, init_gain, norm, affine, distribution)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.effective_weight(), self.bias)

    @torch.no_grad()
    def fold(self) -> nn.Linear:
        out, inp = self.weight.shape
        layer = nn.Linear(inp, out, bias=self.bias is not None).to(self.weight)
        layer.weight.copy_(self.effective_weight())
        if self.bias is not None:
            layer.bias.copy_(self.bias)
        return layer


class NormConv2d(_NormalizedSynapse):
    """Normalized 2-D convolution, ``[N, C, H, W] -> [N, out, H', W']``."""

    def __init__(self, in_channels: int, out_channels: int, T: int, kernel_size: int = 3, padding: int = 1,
                 stride: int = 1, init: str = "ettfs", init_gain: Optional[float] = None, norm: bool = True,
                 affine: bool = True, distribution: str = "normal") -> None:
        super().__init__()
        self._setup((out_channels, in_channels, kernel_size, kernel_size), T, init, init_gain, norm, affine, distribution)
        self.padding, self.stride = padding, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, self.stride, self.padding)

    @torch.no_grad()
    def fold(self) -> nn.Conv2d:
        out, inp, k, _ = self.weight.shape
        layer = nn.Conv2d(inp, out, k, self.stride, self.padding, bias=self.bias is not None).to(self.weight)
        layer.weight.copy_(self.effective_weight())
        if self.bias is not None:
            layer.bias.copy_(self.bias)
        return layer
