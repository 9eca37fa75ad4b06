"""Synaptic layers whose input is spikes, as sparse x dense products (CPU, numba; docs/method.md section 8).

Every layer after the first sees spikes: each presynaptic neuron fires at most once in T steps, so over the
``T * B`` rows of the parallel execution a layer's input has at most ``B * N`` nonzeros (one ANN's worth), a few
percent of its entries (measured at init on MNIST: 5.9 % into the second conv, 5.1 % into the first linear).
The forward product and the weight gradient then cost ``nnz * outputs`` multiply-adds instead of
``T * B * N * outputs``; the input gradient stays dense (the surrogate makes it nonzero nearly everywhere).

* ``spike_conv2d``: the nonzeros are grouped by input position (n, y, x); each adds v times its weight rows
  into the outputs it feeds (scatter, per image, NHWC). With the kernel's x axis reversed in the weight layout
  ``[KH, C, KW, O]``, the outputs one nonzero feeds along x (stride 1) and their weight rows are both contiguous,
  so each kernel row is one product of ``KW * O`` instead of KW of O; the nonzeros of one position feed the same
  outputs and go in fours (the accumulator read and written once for four). The weight gradient regroups each
  image's nonzeros by channel, so that those of one channel, which all add into the same kernel row of dW, go in
  fours the same way. Only the sparse input (positions, channels, values) is saved for backward.
* ``spike_linear``: by input unit (CSC): each column block of the transposed weight is read once, in order, and
  its rows added into the output rows of that unit's nonzeros (about 2x over CSR rows for the default MNIST
  network's 6272 x 2048 layer, whose weight does not fit in cache); the weight gradient is the CSC times
  ``dL/dout``.

Both fall back to the dense op where they do not apply (not CPU float32/64, numba missing) or do not pay: when
the input is denser than ``DENSITY_LIMIT`` (the break-even measured on 2 cores is about 15 %). The sums run
in another order than the dense products, so results agree to rounding (tests: float64, 1e-10), not bitwise.
The numba kernels are in ``ttfs_lab.functional.sparse_kernels``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ttfs_lab.functional import kernels

DENSITY_LIMIT = {"conv": 0.12, "linear": 0.12}

if kernels.AVAILABLE:  # numba, compiled on first use, cached
    from ttfs_lab.functional.sparse_kernels import (conv_plane_wgrad, conv_scatter_forward, csc_times_dense,
                                                    csc_transposed_times_dense, csr_of_planes, csr_of_rows,
                                                    csr_transpose)


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
        wk = weight.detach().flip(3).permute(2, 1, 3, 0).contiguous()  # [KH, C, KW reversed, O]
        b = bias.detach().contiguous() if bias is not None else x.new_empty(0)
        out = x.new_empty((N, O, Ho, Wo))
        ptr, idx, val = csr
        conv_scatter_forward(ptr, idx, val, N, C, H, W, wk.view(-1).numpy(), O, KH, KW, sh, sw, ph, pw, Ho, Wo,
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
            conv_plane_wgrad(*ctx.csr, N, C, H, W, grad.view(-1).numpy(), O, KH, KW, sh, sw, ph, pw, Ho, Wo, partial)
            dwk = torch.from_numpy(partial.sum(0))
            gw = dwk.view(KH, C, KW, O).flip(2).permute(3, 1, 0, 2).contiguous()
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
    csr = csr_of_planes(x.detach().view(-1).numpy(), N, C, H * W)
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
        csc = csr_transpose(*csr, R, K)  # by input unit: the forward and the weight gradient walk columns
        csc_times_dense(*csc, K, wt.view(-1).numpy(), O, R, b.numpy(), out.view(-1).numpy())
        ctx.csc, ctx.shape, ctx.has_bias = csc, (R, K, O), bias is not None
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
            gw = grad.new_empty((O, K))
            csc_transposed_times_dense(*ctx.csc, K, grad.view(-1).numpy(), O, gw.view(-1).numpy())
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
    csr = csr_of_rows(x.detach().view(-1).numpy(), x.shape[0], x.shape[1])
    if len(csr[2]) > limit * x.numel():
        return F.linear(x, weight, bias)
    return _SpikeLinear.apply(x, weight, bias, csr)
