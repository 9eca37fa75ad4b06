"""Fused CPU kernels (numba): the parallel TTFS neuron and the weight standardization of the normalized layers.

Why: on CPU the neuron is memory-bound. Written in tensor ops, every step of it (cumulative sum, comparison,
"fired before" mask, surrogate, masking) is one more full-size ``T x N`` pass and, worse, one more fresh
allocation whose pages the kernel must fault in and zero. These kernels walk the ``T`` steps of a block of
``N`` units while the block's state (potential, "not fired yet") stays in cache, and write only what is needed:

* ``forward_kernel``: the spikes (or, fused, their k x k average pool) and, when a gradient is wanted, one saved
  tensor ``X`` per unit and step: ``scale * (V[t] - theta)`` while the unit has not fired before t, ``+inf``
  after (every surrogate is 0 at +inf, so the "not fired before" gate is folded into X); optionally starting
  from and leaving a state (inference chunk by chunk);
* ``backward_kernel``: ``dL/dI[tau] = sum_{t >= tau} lam^(t - tau) dL/dS[t] g(X[t])`` in one reverse pass (the
  pooled gradient is spread back on the fly); for a constant current (``[1, N]``, e.g. the first layer under
  direct encoding) it returns the sum over tau directly, ``[N]``;
* ``standardize_forward`` / ``standardize_backward``: the normalized layers' weight standardization, per row
  (``ttfs_lab.functional.standardize``).

The tensor side of the neuron kernels (layouts, parameters) is ``ttfs_lab.functional.backends.numba_cpu``; the
kernels of the sparse products are in ``ttfs_lab.functional.sparse``, next to their autograd functions.

The neuron's arithmetic is the step reference's, in its order, in the data's dtype: ``V = V * lam + I[t]``
(``x * 1.0`` is exact, so IF needs no branch; two roundings, no fused multiply-add), spike when
``V - theta >= 0``; spikes are bit-identical to ``ttfs_step``. The sigmoid surrogate's exponential is left to
torch (vectorized): the caller applies ``sigmoid_`` to X in place and the backward uses ``alpha s (1 - s)``.
Array indices are slices and ``range`` loop variables so that numba drops its negative-index checks and LLVM
vectorizes the inner loops.

numba is optional (it comes with tonic -> librosa); without it ``AVAILABLE`` is False and everything uses its
tensor-op path.
"""

from __future__ import annotations

import math
import os

import numpy as np

try:  # pragma: no cover - exercised implicitly wherever numba is installed
    import numba

    if "NUMBA_THREADING_LAYER" not in os.environ:
        # workqueue threads sleep between kernels; an OpenMP layer would keep a second pool of threads spinning
        # beside torch's own OpenMP pool on the same cores.
        numba.config.THREADING_LAYER = "workqueue"
    from numba import njit, prange

    AVAILABLE = True
except ImportError:  # pragma: no cover
    AVAILABLE = False

# surrogate -> kernel code; X holds sigmoid(alpha (V - theta)) for 'sigmoid', (V - theta) for the others
SURROGATE_CODES = {"sigmoid": 0, "atan": 1, "triangle": 2}
BLOCK = 4096  # units per block: the block's state and one step's slices stay in L1/L2


if AVAILABLE:
    JIT = dict(parallel=True, cache=True, boundscheck=False, fastmath=False, nogil=True)  # also sparse.py's
    _inner = dict(cache=True, boundscheck=False, fastmath=False, inline="always")

    @njit(**_inner)
    def _fire(v, free, cur, s, x, theta, lam, scale, save):  # pragma: no cover - compiled
        """One step for a block of units: V = V * lam + I (x * 1.0 is exact: IF needs no branch), spike on the
        first V - theta >= 0, and the saved X = scale (V - theta) before the spike, +inf after it."""
        for j in range(v.shape[0]):
            v[j] = v[j] * lam + cur[j]
        if save:
            for j in range(v.shape[0]):
                d = v[j] - theta
                f = free[j]
                x[j] = d * scale if f > 0.0 else np.inf
                sj = f if d >= 0.0 else 0.0
                s[j] = sj
                free[j] = f - sj
        else:
            for j in range(v.shape[0]):
                f = free[j]
                sj = f if v[j] - theta >= 0.0 else 0.0
                s[j] = sj
                free[j] = f - sj

    @njit(**_inner)
    def _accumulate(acc, g, x, lam, code, alpha):  # pragma: no cover - compiled
        """acc <- acc * lam + g * surrogate(x), one loop per surrogate so that each one vectorizes."""
        if code == 0:  # x = sigmoid(alpha (V - theta)): alpha s (1 - s)
            for j in range(acc.shape[0]):
                acc[j] = acc[j] * lam + g[j] * (alpha * x[j] * (1.0 - x[j]))
        elif code == 1:  # atan: alpha / (2 (1 + (pi/2 alpha x)^2))
            c = 0.5 * math.pi * alpha
            for j in range(acc.shape[0]):
                y = c * x[j]
                acc[j] = acc[j] * lam + g[j] * (alpha / (2.0 * (1.0 + y * y)))
        else:  # triangle: alpha max(0, 1 - alpha |x|)
            for j in range(acc.shape[0]):
                acc[j] = acc[j] * lam + g[j] * (max(0.0, 1.0 - alpha * abs(x[j])) * alpha)

    @njit(**_inner)
    def _pool(s, out, H, W, k, area):  # pragma: no cover - compiled
        """k x k average pooling (stride k) of one plane of spikes s [H*W] into out [(H//k)*(W//k)]."""
        Ho, Wo = H // k, W // k
        if k == 2:
            for py in range(Ho):
                r0 = 2 * py * W
                r1 = r0 + W
                for px in range(Wo):
                    c = 2 * px
                    out[py * Wo + px] = (s[r0 + c] + s[r0 + c + 1] + s[r1 + c] + s[r1 + c + 1]) / area
        else:
            for py in range(Ho):
                for px in range(Wo):
                    acc = s[py * k * W + px * k]
                    for dy in range(k):
                        row = (py * k + dy) * W + px * k
                        for dx in range(k):
                            if dy > 0 or dx > 0:
                                acc += s[row + dx]
                    out[py * Wo + px] = acc / area

    @njit(**_inner)
    def _unpool(gp, g, H, W, k, area):  # pragma: no cover - compiled
        """Backward of ``_pool``: g [H*W] <- gp / area at each window's units (the other units are left alone)."""
        Ho, Wo = H // k, W // k
        if k == 2:
            for py in range(Ho):
                r0 = 2 * py * W
                r1 = r0 + W
                for px in range(Wo):
                    val = gp[py * Wo + px] / area
                    c = 2 * px
                    g[r0 + c] = val
                    g[r0 + c + 1] = val
                    g[r1 + c] = val
                    g[r1 + c + 1] = val
        else:
            for py in range(Ho):
                for px in range(Wo):
                    val = gp[py * Wo + px] / area
                    for dy in range(k):
                        row = (py * k + dy) * W + px * k
                        for dx in range(k):
                            g[row + dx] = val

    @njit(**JIT)
    def forward_kernel(I, const, T, planes, H, W, k, prm, P, X, save, SV, SF, HIST):  # pragma: no cover - compiled
        """The neuron over currents I ``[T, planes, H*W]`` (``[planes, H*W]`` if const: the same current at every
        step), then k x k average pooling with stride k (k = 1: none; a neuron without pooling passes H = W = 1).

        P: ``[T, planes, (H//k) * (W//k)]`` (pooled) spikes; X: ``[T, planes, H*W]`` the saved tensor, written if
        save. prm: [theta, lam, scale, k*k] in the data's dtype, so the arithmetic is the dtype's, as in torch.
        SV, SF: ``[planes * H*W]`` potential and "not fired yet" (1 / 0) to start from and to leave the final state
        in (inference continued chunk by chunk); length 0: start at rest. HIST: ``[blocks, T + 1]`` (``blocks``:
        ``block_count``), per block of units the number that first fire at each step and, last, the silent ones
        (the recorded statistics of an evaluation without the full-size spikes, ``ttfs_lab.functional.stats``);
        0 rows: not counted.
        """
        theta, lam, scale, area = prm[0], prm[1], prm[2], prm[3]
        HW = H * W
        HWo = (H // k) * (W // k)
        per = max(1, BLOCK // HW)  # planes per block
        nblocks = (planes + per - 1) // per
        for b in prange(nblocks):
            p0 = b * per
            n = min(planes, p0 + per) - p0
            m = n * HW
            resume = SV.shape[0] > 0
            v = SV[p0 * HW:p0 * HW + m] if resume else np.zeros(m, P.dtype)
            free = SF[p0 * HW:p0 * HW + m] if resume else np.ones(m, P.dtype)
            s = np.empty(m if k > 1 else 0, P.dtype)
            count = HIST.shape[0] > 0
            fired = 0.0
            for t in range(T):
                src = p0 * HW if const else (t * planes + p0) * HW
                dst = (t * planes + p0) * HW
                x = X[dst:dst + m] if save else X
                if k == 1:
                    _fire(v, free, I[src:src + m], P[dst:dst + m], x, theta, lam, scale, save)
                else:
                    _fire(v, free, I[src:src + m], s, x, theta, lam, scale, save)
                    for q in range(n):
                        o = (t * planes + p0 + q) * HWo
                        _pool(s[q * HW:(q + 1) * HW], P[o:o + HWo], H, W, k, area)
                if count:  # the block's units that fire at step t (0 / 1 spikes: an exact sum)
                    spikes = s if k > 1 else P[dst:dst + m]
                    c = 0.0
                    for j in range(m):
                        c += spikes[j]
                    HIST[b, t] = c
                    fired += c
            if count:
                HIST[b, T] = m - fired

    @njit(cache=True)
    def block_count(planes, HW):  # pragma: no cover - compiled
        """How many blocks ``forward_kernel`` splits ``planes`` planes of ``HW`` units into."""
        per = max(1, BLOCK // HW)
        return (planes + per - 1) // per

    @njit(**JIT)
    def backward_kernel(G, X, T, planes, H, W, k, prm, code, alpha, const, out):  # pragma: no cover - compiled
        """Backward of ``forward_kernel``: G ``[T, planes, (H//k) * (W//k)]`` dL/dP -> out ``[T, planes, H*W]``
        dL/dI (``[planes, H*W]``, summed over t, if const): dL/dI[tau] = sum_{t >= tau} lam^(t-tau) g(X[t]) dL/dS[t]."""
        lam, area = prm[1], prm[3]
        HW = H * W
        HWo = (H // k) * (W // k)
        per = max(1, BLOCK // HW)
        nblocks = (planes + per - 1) // per
        for b in prange(nblocks):
            p0 = b * per
            n = min(planes, p0 + per) - p0
            m = n * HW
            acc = np.zeros(m, X.dtype)
            total = np.zeros(m if const else 0, X.dtype)
            g = np.zeros(m if k > 1 else 0, X.dtype)  # unpooled dL/dS; units outside every window stay 0
            for t in range(T - 1, -1, -1):
                base = (t * planes + p0) * HW
                if k == 1:
                    _accumulate(acc, G[base:base + m], X[base:base + m], lam, code, alpha)
                else:
                    for q in range(n):
                        o = (t * planes + p0 + q) * HWo
                        _unpool(G[o:o + HWo], g[q * HW:(q + 1) * HW], H, W, k, area)
                    _accumulate(acc, g, X[base:base + m], lam, code, alpha)
                if const:
                    for j in range(m):
                        total[j] += acc[j]
                else:
                    o = out[base:base + m]
                    for j in range(m):
                        o[j] = acc[j]
            if const:
                o = out[p0 * HW:p0 * HW + m]
                for j in range(m):
                    o[j] = total[j]


    _jit_reassoc = dict(JIT, fastmath={"reassoc", "contract"})  # vectorized sums: no bit-exact reference here

    @njit(**_jit_reassoc)
    def standardize_forward(w, gamma, std, eps, out, mean, rstd):  # pragma: no cover - compiled
        """Per row o of w [O, K]: out = (w - mean) / sqrt(var + eps) * std * gamma[o]; mean, rstd saved.
        (gamma of length 0: no affine.) Sums in float64."""
        O, K = w.shape
        for o in prange(O):
            row = w[o]
            acc = 0.0
            for k in range(K):
                acc += row[k]
            m = acc / K
            acc = 0.0
            for k in range(K):
                d = row[k] - m
                acc += d * d
            r = 1.0 / math.sqrt(acc / K + eps)
            scale = r * std * (gamma[o] if gamma.shape[0] > 0 else 1.0)
            dst = out[o]
            for k in range(K):
                dst[k] = (row[k] - m) * scale
            mean[o] = m
            rstd[o] = r

    @njit(**_jit_reassoc)
    def standardize_backward(w, gamma, std, mean, rstd, g, dw, dgamma):  # pragma: no cover - compiled
        """Backward of ``standardize_forward``: with w_hat = (w - mean) rstd and gh = g std gamma,
        dw = rstd (gh - mean(gh) - w_hat mean(gh w_hat)), dgamma = std sum(g w_hat)."""
        O, K = w.shape
        for o in prange(O):
            row = w[o]
            grow = g[o]
            m = mean[o]
            r = rstd[o]
            gam = gamma[o] if gamma.shape[0] > 0 else 1.0
            sum_g = 0.0
            sum_gw = 0.0
            for k in range(K):
                gk = grow[k]
                sum_g += gk
                sum_gw += gk * ((row[k] - m) * r)
            if dgamma.shape[0] > 0:
                dgamma[o] = std * sum_gw
            c = std * gam
            mg = c * sum_g / K
            mgw = c * sum_gw / K
            dst = dw[o]
            for k in range(K):
                wh = (row[k] - m) * r
                dst[k] = r * (c * grow[k] - mg - wh * mgw)


def set_threads(n: int) -> None:
    """Use ``n`` threads in the kernels (the caller passes ``torch.get_num_threads()``)."""
    if AVAILABLE:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
