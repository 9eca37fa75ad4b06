"""Synaptic layers whose input is spikes, as sparse x dense products (CPU, numba; docs/method.md section 8).

Every layer after the first sees spikes: each presynaptic neuron fires at most once in T steps, so over the
``T * B`` rows of the parallel execution a layer's input has at most ``B * N`` nonzeros (one ANN's worth), a few
percent of its entries (measured at init on MNIST: 5.9 % into the second conv, 5.1 % into the first linear).
The forward product and the weight gradient then cost ``nnz * outputs`` multiply-adds instead of
``T * B * N * outputs``; the input gradient stays dense (the surrogate makes it nonzero nearly everywhere).

* ``spike_conv2d``: the nonzeros are grouped by input position (n, y, x); each adds v times its weight rows
  into the outputs it feeds (scatter, per image, NHWC). With the kernel's x axis reversed in the weight layout
  ``[KH, C, KW, O]``, the outputs one nonzero feeds along x (stride 1) and their weight rows are both contiguous,
  so each kernel row is one product of ``KW * O`` instead of KW of O (measured 1.3-1.4x over one per tap on the
  benchmark networks). The weight gradient scatters ``v * dL/dout`` rows the same way. Only the sparse input
  (positions, channels, values) is saved for backward.
* ``spike_linear``: by input unit (CSC): each column block of the transposed weight is read once, in order, and
  its rows added into the output rows of that unit's nonzeros (about 2x over CSR rows for the default MNIST
  network's 6272 x 2048 layer, whose weight does not fit in cache); the weight gradient is the CSC times
  ``dL/dout``.

Both fall back to the dense op where they do not apply (not CPU float32/64, numba missing) or do not pay: when
the input is denser than ``DENSITY_LIMIT`` (the break-even measured on 2 cores is about 15 %). The sums run
in another order than the dense products, so results agree to rounding (tests: float64, 1e-10), not bitwise.
The numba kernels (``csr_of_planes``, ``conv_scatter_forward``, ``conv_scatter_wgrad``, ``csr_of_rows``,
``csr_transpose``, ``csc_times_dense``, ``csc_transposed_times_dense``) share the options of ``ttfs_lab.functional.kernels``.
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
    def conv_scatter_forward(ptr, idx, val, N, C, H, W, Wk, O, KH, KW, sh, sw, ph, pw, Ho, Wo, bias, out):  # pragma: no cover
        """out ``[N, O, Ho, Wo]`` = conv2d of the sparse input with Wk ``[KH, C, KW, O]`` (KW reversed), + bias
        (length 0: none). Per image, each nonzero adds its weight rows into the outputs it feeds (NHWC, local);
        with stride 1 along x those outputs and (KW reversed) their weight rows are contiguous: one product per
        kernel row instead of KW."""
        for n in prange(N):
            loc = np.zeros(Ho * Wo * O, out.dtype)
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
                            if sw == 1:  # the outputs fed along x are contiguous: one product of all of them
                                first = ix + pw - KW + 1
                                lo = max(0, first)
                                hi = min(Wo - 1, ix + pw)
                                if lo > hi:
                                    continue
                                L = (hi - lo + 1) * O
                                wb = ((dy * C + c) * KW + lo - first) * O
                                ob = (oy * Wo + lo) * O
                                dst = loc[ob:ob + L]
                                src = Wk[wb:wb + L]
                                for o in range(L):
                                    dst[o] += v * src[o]
                            else:
                                for dx in range(KW):
                                    tx = ix + pw - dx
                                    if tx < 0 or tx % sw != 0 or tx // sw >= Wo:
                                        continue
                                    wb = ((dy * C + c) * KW + KW - 1 - dx) * O
                                    ob = (oy * Wo + tx // sw) * O
                                    dst = loc[ob:ob + O]
                                    src = Wk[wb:wb + O]
                                    for o in range(O):
                                        dst[o] += v * src[o]
            for o in range(O):
                dst = out[(n * O + o) * Ho * Wo:(n * O + o + 1) * Ho * Wo]
                b = bias[o] if bias.shape[0] > 0 else 0.0
                for q in range(Ho * Wo):
                    dst[q] = loc[q * O + o] + b

    @njit(**JIT)
    def conv_scatter_wgrad(ptr, idx, val, N, C, H, W, G, O, KH, KW, sh, sw, ph, pw, Ho, Wo, dW):  # pragma: no cover
        """dW ``[chunks, KH*C*KW*O]`` (``[KH, C, KW, O]``, KW reversed; summed over chunks by the caller): the
        weight gradient for the output gradient G ``[N, O, Ho, Wo]``, one partial sum per chunk of images; each
        nonzero adds v times the (NHWC) output gradient rows it fed, merged along x as in the forward."""
        chunks = dW.shape[0]
        per = (N + chunks - 1) // chunks
        for ch in prange(chunks):
            d = dW[ch]
            gl = np.empty(Ho * Wo * O, G.dtype)
            for n in range(ch * per, min(N, (ch + 1) * per)):
                for o in range(O):
                    src = G[(n * O + o) * Ho * Wo:(n * O + o + 1) * Ho * Wo]
                    for q in range(Ho * Wo):
                        gl[q * O + o] = src[q]
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
                                if sw == 1:
                                    first = ix + pw - KW + 1
                                    lo = max(0, first)
                                    hi = min(Wo - 1, ix + pw)
                                    if lo > hi:
                                        continue
                                    L = (hi - lo + 1) * O
                                    wb = ((dy * C + c) * KW + lo - first) * O
                                    ob = (oy * Wo + lo) * O
                                    dst = d[wb:wb + L]
                                    src = gl[ob:ob + L]
                                    for o in range(L):
                                        dst[o] += v * src[o]
                                else:
                                    for dx in range(KW):
                                        tx = ix + pw - dx
                                        if tx < 0 or tx % sw != 0 or tx // sw >= Wo:
                                            continue
                                        wb = ((dy * C + c) * KW + KW - 1 - dx) * O
                                        ob = (oy * Wo + tx // sw) * O
                                        dst = d[wb:wb + O]
                                        src = gl[ob:ob + O]
                                        for o in range(O):
                                            dst[o] += v * src[o]

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
    def csc_transposed_times_dense(ptr_t, idx_t, val_t, K, G, O, out):  # pragma: no cover - compiled
        """out ``[O, K]`` = (X^T @ G)^T for X ``[R, K]`` given by columns (CSC) and G ``[R, O]``: column i of out from
        column i's nonzeros, in blocks of 256 outputs so that G's block stays in cache across columns."""
        BLK = 256
        for c0 in range(0, O, BLK):
            n = min(O, c0 + BLK) - c0
            for i in prange(K):
                acc = np.zeros(n, out.dtype)
                for q in range(ptr_t[i], ptr_t[i + 1]):
                    v = val_t[q]
                    grow = G[idx_t[q] * O + c0:idx_t[q] * O + c0 + n]
                    for j in range(n):
                        acc[j] += v * grow[j]
                for j in range(n):
                    out[(c0 + j) * K + i] = acc[j]

    @njit(**JIT)
    def csc_times_dense(ptr_t, idx_t, val_t, K, Bm, O, R, bias, out):  # pragma: no cover - compiled
        """out ``[R, O]`` = X @ Bm (+ bias, length 0: none) for X ``[R, K]`` given by columns (CSC) and Bm ``[K, O]``:
        column blocks of 256 outputs in parallel, each reading its block of Bm once, in order, and adding each
        row of it into the output rows of its column's nonzeros (a block of the output stays in L2)."""
        blk = 256
        nblk = (O + blk - 1) // blk
        for bi in prange(nblk):
            c0 = bi * blk
            n = min(O, c0 + blk) - c0
            for r in range(R):
                dst = out[r * O + c0:r * O + c0 + n]
                for j in range(n):
                    dst[j] = bias[c0 + j] if bias.shape[0] > 0 else 0.0
            for i in range(K):
                brow = Bm[i * O + c0:i * O + c0 + n]
                for q in range(ptr_t[i], ptr_t[i + 1]):
                    v = val_t[q]
                    r = idx_t[q]
                    dst = out[r * O + c0:r * O + c0 + n]
                    for j in range(n):
                        dst[j] += v * brow[j]

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
            ptr, idx, val = ctx.csr
            conv_scatter_wgrad(ptr, idx, val, N, C, H, W, grad.view(-1).numpy(), O, KH, KW, sh, sw, ph, pw, Ho, Wo,
                               partial)
            gw = torch.from_numpy(partial.sum(0)).view(KH, C, KW, O).flip(2).permute(3, 1, 0, 2).contiguous()
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
