"""Normalized conv / linear layers with a learnable affine (docs/method.md section 3).

Per output unit o, with ``std_init`` the standard deviation of the chosen initializer (ETTFS: sqrt(gain T/fan_in)):

    W_hat[o] = (W[o] - mean(W[o])) / sqrt(var(W[o]) + eps) * std_init
    y = x * (gamma[o] W_hat[o]) + beta[o]

``norm=False`` uses W as is; ``affine=False`` drops gamma and beta. With neither, the layer is a plain
conv/linear with a bias (the ablation baseline). ``fold()`` returns the plain ``nn.Conv2d`` / ``nn.Linear``
computing the same function, for inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ttfs_lab.functional import kernels, triton_kernels
from ttfs_lab.init import init_std, init_weight_


class _Standardize(torch.autograd.Function):
    """Fused CPU weight standardization (one pass forward, two per row backward); see ``standardized_weight``."""

    @staticmethod
    def forward(ctx, weight: Tensor, gamma, std: float, eps: float) -> Tensor:
        kernels.set_threads(torch.get_num_threads())
        flat = weight.detach().reshape(weight.shape[0], -1).contiguous()
        g = gamma.detach().contiguous() if gamma is not None else flat.new_empty(0)
        out = torch.empty_like(flat)
        mean = flat.new_empty(flat.shape[0])
        rstd = flat.new_empty(flat.shape[0])
        kernels.standardize_forward(flat.numpy(), g.numpy(), float(std), float(eps), out.numpy(), mean.numpy(), rstd.numpy())
        ctx.save_for_backward(flat, g, mean, rstd)
        ctx.std, ctx.shape, ctx.affine = std, weight.shape, gamma is not None
        return out.view(weight.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        kernels.set_threads(torch.get_num_threads())
        flat, g, mean, rstd = ctx.saved_tensors
        grad = grad.reshape(flat.shape).contiguous()
        dw = torch.empty_like(flat)
        dgamma = torch.empty_like(g)
        kernels.standardize_backward(flat.numpy(), g.numpy(), float(ctx.std), mean.numpy(), rstd.numpy(), grad.numpy(),
                                     dw.numpy(), dgamma.numpy())
        return dw.view(ctx.shape), (dgamma if ctx.affine else None), None, None


class _StandardizeTriton(torch.autograd.Function):
    """Fused GPU weight standardization (Triton: one launch each way); see ``standardized_weight``."""

    @staticmethod
    def forward(ctx, weight: Tensor, gamma, std: float, eps: float) -> Tensor:
        flat = weight.detach().reshape(weight.shape[0], -1).contiguous()
        g = gamma.detach().contiguous() if gamma is not None else None
        out, mean, rstd = triton_kernels.standardize_forward(flat, g, std, eps)
        ctx.save_for_backward(flat, g, mean, rstd)
        ctx.std, ctx.shape = std, weight.shape
        return out.view(weight.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        flat, g, mean, rstd = ctx.saved_tensors
        dw, dgamma = triton_kernels.standardize_backward(flat, g, ctx.std, mean, rstd,
                                                         grad.reshape(flat.shape).contiguous())
        return dw.view(ctx.shape), dgamma, None, None


@torch.compiler.disable  # numba / Triton kernels: a graph break under torch.compile
def _standardize_opaque(fn, weight, gamma, std, eps):
    return fn.apply(weight, gamma, std, eps)


def _standardize_tensor_ops(weight: Tensor, gamma: Tensor | None, std: float, eps: float) -> Tensor:
    flat = weight.flatten(1)
    var, mean = torch.var_mean(flat, dim=1, unbiased=False, keepdim=True)
    w = ((flat - mean) * (torch.rsqrt(var + eps) * std)).view_as(weight)
    return w * gamma.view(-1, *([1] * (w.dim() - 1))) if gamma is not None else w


def standardized_weight(weight: Tensor, gamma: Tensor | None, std: float, eps: float) -> Tensor:
    """Per output unit: (W - mean) / sqrt(var + eps) * std, times gamma if given (biased variance over fan-in).

    One fused kernel each way on CPU (float32/64, numba) and on CUDA (Triton): the layers are small, but the
    default MNIST network's 2048 x 6272 linear made the tensor-op version (var_mean, five elementwise passes and
    their backward) cost more than the layer's own product at batch 64 on CPU, and some twenty kernel launches
    per layer and step on a GPU. Elsewhere the same formula in tensor ops.
    """
    if kernels.AVAILABLE and weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.float64):
        return _standardize_opaque(_Standardize, weight, gamma, std, eps)
    if triton_kernels.usable(weight):
        return triton_kernels.launch_or_fallback(
            lambda: _standardize_opaque(_StandardizeTriton, weight, gamma, std, eps),
            lambda: _standardize_tensor_ops(weight, gamma, std, eps))[0]
    return _standardize_tensor_ops(weight, gamma, std, eps)


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

    def __init__(self, in_features: int, out_features: int, T: int, init: str = "ettfs", init_gain: float = 1.0,
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
                 stride: int = 1, init: str = "ettfs", init_gain: float = 1.0, norm: bool = True,
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
