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
The numba kernels (``csr_of_planes``, ``sparse_conv_forward``, ``sparse_conv_wgrad``, ``csr_of_rows``,
``csr_transpose``, ``sparse_rows_times_dense``) share the options of ``ttfs_lab.functional.kernels``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ttfs_lab.functional import kernels

DENSITY_LIMIT = {"conv": 0.12, "linear": 0.12}

if kernels.AVAILABLE:  # the kernels (numba, compiled on first use, cached)
    from numba import njit, prange

    from ttfs_lab.functional.kernels import JIT

    @njit(**JIT)
    def csr_of_planes(x, N, C, HW):  # pragma: no cover - compiled
        """Nonzeros of x ``[N, C, HW]`` (NCHW) grouped by position (n, p): ptr ``[N*HW + 1]`` (int64), channel
        idx (int32, increasing within a position) and values."""
        ptr = np.zeros(N * HW + 1, np.int64)
        for n in prange(N):
            for c in range(C):
                base = (n * C + c) * HW
                row = x[base:base + HW]
                cnt = ptr[n * HW + 1:(n + 1) * HW + 1]
                for p in range(HW):
                    if row[p] != 0:
                        cnt[p] += 1
        for i in range(N * HW):
            ptr[i + 1] += ptr[i]
        idx = np.empty(ptr[N * HW], np.int32)
        val = np.empty(ptr[N * HW], x.dtype)
        for n in prange(N):
            cursor = ptr[n * HW:(n + 1) * HW].copy()
            for c in range(C):
                base = (n * C + c) * HW
                for p in range(HW):
                    v = x[base + p]
                    if v != 0:
                        k = cursor[p]
                        idx[k] = c
                        val[k] = v
                        cursor[p] = k + 1
        return ptr, idx, val

    @njit(**JIT)
    def sparse_conv_forward(ptr, idx, val, N, C, H, W, Wr, O, KH, KW, sh, sw, ph, pw, Ho, Wo, bias, out):  # pragma: no cover
        """out ``[N, O, Ho, Wo]`` = conv2d of the sparse input with Wr ``[KH, KW, C, O]``, + bias (length 0: none).
        Per image: accumulate each output position's O channels over its window's nonzeros, then transpose."""
        for n in prange(N):
            loc = np.empty((Ho * Wo, O), out.dtype)
            for oy in range(Ho):
                for ox in range(Wo):
                    acc = loc[oy * Wo + ox]
                    for o in range(O):
                        acc[o] = 0
                    for dy in range(KH):
                        iy = oy * sh + dy - ph
                        if iy < 0 or iy >= H:
                            continue
                        for dx in range(KW):
                            ix = ox * sw + dx - pw
                            if ix < 0 or ix >= W:
                                continue
                            p = (n * H + iy) * W + ix
                            for k in range(ptr[p], ptr[p + 1]):
                                v = val[k]
                                wb = ((dy * KW + dx) * C + idx[k]) * O
                                wrow = Wr[wb:wb + O]
                                for o in range(O):
                                    acc[o] += v * wrow[o]
            for o in range(O):
                dst = out[(n * O + o) * Ho * Wo:(n * O + o + 1) * Ho * Wo]
                b = bias[o] if bias.shape[0] > 0 else 0.0
                for q in range(Ho * Wo):
                    dst[q] = loc[q, o] + b

    @njit(**JIT)
    def sparse_conv_wgrad(ptr, idx, val, N, C, H, W, G, O, KH, KW, sh, sw, ph, pw, Ho, Wo, dW):  # pragma: no cover
        """dW ``[chunks, KH*KW*C*O]`` (summed over chunks by the caller): the weight gradient of the conv for the
        output gradient G ``[N, O, Ho, Wo]`` (NCHW), one partial sum per chunk of images."""
        chunks = dW.shape[0]
        per = (N + chunks - 1) // chunks
        for ch in prange(chunks):
            d = dW[ch]
            gl = np.empty((Ho * Wo, O), G.dtype)
            for n in range(ch * per, min(N, (ch + 1) * per)):
                for o in range(O):
                    src = G[(n * O + o) * Ho * Wo:(n * O + o + 1) * Ho * Wo]
                    for q in range(Ho * Wo):
                        gl[q, o] = src[q]
                for iy in range(H):
                    for ix in range(W):
                        p = (n * H + iy) * W + ix
                        for k in range(ptr[p], ptr[p + 1]):
                            v = val[k]
                            c = idx[k]
                            for dy in range(KH):
                                ty = iy + ph - dy
                                if ty < 0 or ty % sh != 0 or ty // sh >= Ho:
                                    continue
                                oy = ty // sh
                                for dx in range(KW):
                                    tx = ix + pw - dx
                                    if tx < 0 or tx % sw != 0 or tx // sw >= Wo:
                                        continue
                                    grow = gl[oy * Wo + tx // sw]
                                    wb = ((dy * KW + dx) * C + c) * O
                                    drow = d[wb:wb + O]
                                    for o in range(O):
                                        drow[o] += v * grow[o]

    @njit(**JIT)
    def csr_of_rows(x, R, K):  # pragma: no cover - compiled
        """Nonzeros of x ``[R, K]`` by row: ptr ``[R + 1]``, column idx (int32, increasing), values."""
        ptr = np.zeros(R + 1, np.int64)
        for r in prange(R):
            row = x[r * K:(r + 1) * K]
            cnt = 0
            for k in range(K):
                if row[k] != 0:
                    cnt += 1
            ptr[r + 1] = cnt
        for r in range(R):
            ptr[r + 1] += ptr[r]
        idx = np.empty(ptr[R], np.int32)
        val = np.empty(ptr[R], x.dtype)
        for r in prange(R):
            j = ptr[r]
            row = x[r * K:(r + 1) * K]
            for k in range(K):
                v = row[k]
                if v != 0:
                    idx[j] = k
                    val[j] = v
                    j += 1
        return ptr, idx, val

    @njit(**JIT)
    def sparse_rows_times_dense(ptr, idx, val, R, B, O, bias, out, transposed):  # pragma: no cover - compiled
        """sparse ``[R, K]`` (CSR) @ B ``[K, O]`` (+ bias, length 0: none) into out ``[R, O]``, or ``[O, R]`` if
        transposed; in column blocks of 256 so that B's block stays in cache across rows."""
        BLK = 256
        for c0 in range(0, O, BLK):
            n = min(O, c0 + BLK) - c0
            for r in prange(R):
                acc = np.empty(n, out.dtype)
                for j in range(n):
                    acc[j] = bias[c0 + j] if bias.shape[0] > 0 else 0.0
                for k in range(ptr[r], ptr[r + 1]):
                    v = val[k]
                    brow = B[idx[k] * O + c0:idx[k] * O + c0 + n]
                    for j in range(n):
                        acc[j] += v * brow[j]
                if transposed:
                    for j in range(n):
                        out[(c0 + j) * R + r] = acc[j]
                else:
                    dst = out[r * O + c0:r * O + c0 + n]
                    for j in range(n):
                        dst[j] = acc[j]

    @njit(cache=True, boundscheck=False, nogil=True)
    def csr_transpose(ptr, idx, val, R, K):  # pragma: no cover - compiled
        """The CSR of the transpose ``[K, R]`` of a CSR ``[R, K]`` (row indices increasing within a column)."""
        ptr_t = np.zeros(K + 1, np.int64)
        for j in range(ptr[R]):
            ptr_t[idx[j] + 1] += 1
        for k in range(K):
            ptr_t[k + 1] += ptr_t[k]
        cursor = ptr_t[:K].copy()
        idx_t = np.empty(ptr[R], np.int32)
        val_t = np.empty(ptr[R], val.dtype)
        for r in range(R):
            for j in range(ptr[r], ptr[r + 1]):
                k = idx[j]
                q = cursor[k]
                idx_t[q] = r
                val_t[q] = val[j]
                cursor[k] = q + 1
        return ptr_t, idx_t, val_t


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
        sparse_conv_forward(ptr, idx, val, N, C, H, W, wr.view(-1).numpy(), O, KH, KW, sh, sw, ph, pw, Ho, Wo,
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
            sparse_conv_wgrad(ptr, idx, val, N, C, H, W, grad.view(-1).numpy(), O, KH, KW, sh, sw, ph, pw,
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
        ptr, idx, val = csr
        sparse_rows_times_dense(ptr, idx, val, R, wt.view(-1).numpy(), O, b.numpy(), out.view(-1).numpy(), False)
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
            ptr_t, idx_t, val_t = csr_transpose(*ctx.csr, R, K)
            gw = grad.new_empty((O, K))
            sparse_rows_times_dense(ptr_t, idx_t, val_t, K, grad.view(-1).numpy(), O, grad.new_empty(0).numpy(),
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
    csr = csr_of_rows(x.detach().view(-1).numpy(), x.shape[0], x.shape[1])
    if len(csr[2]) > limit * x.numel():
        return F.linear(x, weight, bias)
    return _SpikeLinear.apply(x, weight, bias, csr)
