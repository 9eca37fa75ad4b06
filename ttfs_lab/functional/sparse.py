"""Synaptic layers whose input is spikes, as sparse x dense products (CPU, numba; docs/method.md section 8).

Every layer after the first sees spikes: each presynaptic neuron fires at most once in T steps, so over the
``T * B`` rows of the parallel execution a layer's input has at most ``B * N`` nonzeros (one ANN's worth), a few
percent of its entries (measured at init on MNIST: 5.9 % into the second conv, 5.1 % into the first linear).
The forward product and the weight gradient then cost ``nnz * outputs`` multiply-adds instead of
``T * B * N * outputs``; the input gradient stays dense (the surrogate makes it nonzero nearly everywhere).

* ``spike_conv2d``: the nonzeros are grouped by input position (n, y, x); each output position accumulates its
  window's nonzeros times the weight row ``W[dy, dx, c, :]``; the weight gradient scatters ``v * dL/dout`` rows
  into ``dW[dy, dx, c, :]``. Only the sparse input (positions, channels, values) is saved for backward.
* ``spike_linear``: CSR rows times the transposed weight; the weight gradient is the transposed CSR (CSC) times
  ``dL/dout``.

Both fall back to the dense op where they do not apply (not CPU float32/64, numba missing) or do not pay: when
the input is denser than ``DENSITY_LIMIT`` (the break-even measured on 2 cores is about 15 %). The sums run
in another order than the dense products, so results agree to rounding (tests: float64, 1e-10), not bitwise.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ttfs_lab.functional import kernels

DENSITY_LIMIT = {"conv": 0.12, "linear": 0.12}


def sparse_applies(x: Tensor) -> bool:
    """Whether the sparse kernels can run on ``x`` (numba present, CPU float32/float64)."""
    return kernels.AVAILABLE and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _SpikeConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor], stride, padding, csr) -> Tensor:
        kernels.set_threads(torch.get_num_threads())
        N, C, H, W = x.shape
        O, _, KH, KW = weight.shape
        (sh, sw), (ph, pw) = stride, padding
        Ho, Wo = (H + 2 * ph - KH) // sh + 1, (W + 2 * pw - KW) // sw + 1
        wr = weight.detach().permute(2, 3, 1, 0).contiguous()  # [KH, KW, C, O]
        b = bias.detach().contiguous() if bias is not None else x.new_empty(0)
        out = x.new_empty((N, O, Ho, Wo))
        ptr, idx, val = csr
        kernels.sparse_conv_forward(ptr, idx, val, N, C, H, W, wr.view(-1).numpy(), O, KH, KW, sh, sw, ph, pw, Ho, Wo,
                                    b.numpy(), out.view(-1).numpy())
        ctx.csr, ctx.geometry = csr, (N, C, H, W, O, KH, KW, sh, sw, ph, pw, Ho, Wo)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(weight)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        kernels.set_threads(torch.get_num_threads())
        (weight,) = ctx.saved_tensors
        N, C, H, W, O, KH, KW, sh, sw, ph, pw, Ho, Wo = ctx.geometry
        grad = grad.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.nn.grad.conv2d_input((N, C, H, W), weight, grad, (sh, sw), (ph, pw))
        if ctx.needs_input_grad[1]:
            chunks = max(1, min(N, torch.get_num_threads()))
            partial = np.zeros((chunks, KH * KW * C * O), dtype=grad.numpy().dtype)
            ptr, idx, val = ctx.csr
            kernels.sparse_conv_wgrad(ptr, idx, val, N, C, H, W, grad.view(-1).numpy(), O, KH, KW, sh, sw, ph, pw,
                                      Ho, Wo, partial)
            gw = torch.from_numpy(partial.sum(0)).view(KH, KW, C, O).permute(3, 2, 0, 1).contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum((0, 2, 3))
        return gx, gw, gb, None, None, None


@torch.compiler.disable  # numba kernels: a graph break under torch.compile
def spike_conv2d(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0,
                 density_limit: Optional[float] = None) -> Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)`` (groups 1, dilation 1) as a sparse product when x is sparse."""
    limit = DENSITY_LIMIT["conv"] if density_limit is None else density_limit
    if not sparse_applies(x) or x.dim() != 4 or weight.dtype != x.dtype:
        return F.conv2d(x, weight, bias, stride, padding)
    x = x.contiguous()
    N, C, H, W = x.shape
    kernels.set_threads(torch.get_num_threads())
    csr = kernels.csr_of_planes(x.detach().view(-1).numpy(), N, C, H * W)
    if len(csr[2]) > limit * x.numel():
        return F.conv2d(x, weight, bias, stride, padding)
    return _SpikeConv2d.apply(x, weight, bias, _pair(stride), _pair(padding), csr)


class _SpikeLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor], csr) -> Tensor:
        kernels.set_threads(torch.get_num_threads())
        R, K = x.shape
        O = weight.shape[0]
        wt = weight.detach().t().contiguous()  # [K, O]
        b = bias.detach().contiguous() if bias is not None else x.new_empty(0)
        out = x.new_empty((R, O))
        ptr, idx, val = csr
        kernels.sparse_rows_times_dense(ptr, idx, val, R, wt.view(-1).numpy(), O, b.numpy(), out.view(-1).numpy(), False)
        ctx.csr, ctx.shape, ctx.has_bias = csr, (R, K, O), bias is not None
        ctx.save_for_backward(weight)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        kernels.set_threads(torch.get_num_threads())
        (weight,) = ctx.saved_tensors
        R, K, O = ctx.shape
        grad = grad.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = grad @ weight
        if ctx.needs_input_grad[1]:
            ptr_t, idx_t, val_t = kernels.csr_transpose(*ctx.csr, R, K)
            gw = grad.new_empty((O, K))
            kernels.sparse_rows_times_dense(ptr_t, idx_t, val_t, K, grad.view(-1).numpy(), O, grad.new_empty(0).numpy(),
                                            gw.view(-1).numpy(), True)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum(0)
        return gx, gw, gb, None


@torch.compiler.disable
def spike_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, density_limit: Optional[float] = None) -> Tensor:
    """``F.linear(x, weight, bias)`` for ``x`` ``[R, K]`` as a sparse product when x is sparse."""
    limit = DENSITY_LIMIT["linear"] if density_limit is None else density_limit
    if not sparse_applies(x) or x.dim() != 2 or weight.dtype != x.dtype:
        return F.linear(x, weight, bias)
    x = x.contiguous()
    kernels.set_threads(torch.get_num_threads())
    csr = kernels.csr_of_rows(x.detach().view(-1).numpy(), x.shape[0], x.shape[1])
    if len(csr[2]) > limit * x.numel():
        return F.linear(x, weight, bias)
    return _SpikeLinear.apply(x, weight, bias, csr)
