"""Fused GPU kernels (Triton): the parallel TTFS neuron, alone or fused with the k x k average pool after it,
and the weight standardization of the normalized layers.

The GPU twin of ``ttfs_lab.functional.kernels`` (numba, CPU), with the same contract:

* ``forward``: one launch walks the ``T`` steps of a block of units with the potential and the "not fired yet"
  flag in registers, and writes the spikes (or, fused, their k x k average pool, stride k) and, when a gradient
  is wanted, the saved ``X``: ``sigmoid(alpha (V[t] - theta))`` for the sigmoid surrogate, ``V[t] - theta`` for
  the others, while the unit has not fired before t; after it ``+inf`` (sigmoid: 1), where every surrogate is 0;
* ``backward``: one launch, ``dL/dI[tau] = sum_{t >= tau} lam^(t - tau) dL/dS[t] g(X[t])`` in one reverse
  pass (the pooled gradient is spread back on the fly); a constant current (``[1, ...]``, the first layer under
  direct encoding) is read once and its gradient comes back summed over time.

Why: at the batch sizes SNN papers train with, the GPU step of a TTFS network is bound by kernel launches, and
the tensor-op neuron costs about fifteen of them per layer and direction, plus the pool's (measured on an H200:
274 launches in a 9.4 ms step of the MNIST network, 17 % of its GPU time in ``avg_pool2d_backward``). Here a
neuron layer is one launch each way and the full-size spikes of a pooled layer are never written.

The arithmetic is the step reference's (docs/method.md section 1): ``V = V * lam + I[t]`` in float32 (half-precision
currents are widened; the spikes and ``X`` are stored in the currents' dtype, as the step execution's autograd
keeps them) without fused multiply-add, spike when ``V - theta >= 0``. With ``TRITON_INTERPRET=1`` the same
kernels run on CPU tensors (numpy): that is how the test suite checks them on machines without a GPU.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable, TypeVar

import torch
from torch import Tensor

from ttfs_lab.errors import first_line

try:  # pragma: no cover - exercised implicitly wherever triton is installed
    import triton
    import triton.language as tl

    AVAILABLE = True
except ImportError:  # pragma: no cover
    AVAILABLE = False

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
_TRITON_DIR = os.path.dirname(triton.__file__) + os.sep if AVAILABLE else ""
SURROGATE_CODES = {"sigmoid": 0, "atan": 1, "triangle": 2}
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TILE = 1024  # units per program: BLOCK pooled outputs x their k x k windows (padded to a power of 2)


def applies(x: Tensor, surrogate: str | None = None, interpreted: bool = False) -> bool:
    """Whether these kernels can run on ``x``: triton, a CUDA tensor (with ``interpreted``, any tensor when
    ``TRITON_INTERPRET=1``), float32 / float16 / bfloat16, and (for the neuron) a surrogate they know."""
    on_device = x.is_cuda or (interpreted and INTERPRET)
    known = surrogate is None or surrogate in SURROGATE_CODES
    return AVAILABLE and on_device and x.dtype in DTYPES and known


FAILED: list[str] = []  # the error of a failed launch: automatic choices then keep to the tensor ops
R = TypeVar("R")


def launch_or_fallback(run_triton: Callable[[], R], run_other: Callable[[], R]) -> tuple[R, bool]:
    """``(run_triton(), True)``; should Triton fail to compile or launch a kernel on this GPU, say so once and
    return ``(run_other(), False)``: the tensor ops compute the same function, slower. After a failure
    ``usable`` is False, so automatic choices stop trying. Errors not raised by triton itself propagate."""
    try:
        return run_triton(), True
    except Exception as error:  # noqa: BLE001 - filtered below: only errors raised inside triton are caught
        if not _raised_by_triton(error):
            raise
        if not FAILED:
            warnings.warn(f"the Triton kernels failed on this GPU ({first_line(error)}); using tensor ops "
                          f"(slower, same results)", RuntimeWarning, stacklevel=3)
        FAILED.append(first_line(error))
        return run_other(), False


def _raised_by_triton(error: BaseException) -> bool:
    """A triton error type (compiler, resources), or any error raised from inside the triton package."""
    if type(error).__module__.split(".")[0] == "triton":
        return True
    tb = error.__traceback__
    while tb is not None:
        if _TRITON_DIR and tb.tb_frame.f_code.co_filename.startswith(_TRITON_DIR):
            return True
        tb = tb.tb_next
    return False


def usable(x: Tensor, surrogate: str | None = None) -> bool:
    """``applies`` for automatic choices: CUDA tensors only, and no earlier failure."""
    return applies(x, surrogate) and not FAILED


if AVAILABLE:

    @triton.jit
    def _window(pid, planes, H, W, K: tl.constexpr, KKP: tl.constexpr, BLOCK: tl.constexpr):
        """Pooled outputs q ``[BLOCK]`` of this program and the unit offsets ``[BLOCK, KKP]`` of their k x k
        windows inside one step of ``[planes, H, W]`` (window slots past k * k are masked)."""
        Ho = H // K
        Wo = W // K
        q = pid * BLOCK + tl.arange(0, BLOCK)
        q_ok = q < planes * Ho * Wo
        plane = q // (Ho * Wo)
        r = q % (Ho * Wo)
        j = tl.arange(0, KKP)
        row = (r // Wo)[:, None] * K + (j // K)[None, :]
        col = (r % Wo)[:, None] * K + (j % K)[None, :]
        offs = plane[:, None] * (H * W) + row * W + col
        mask = q_ok[:, None] & (j < K * K)[None, :]
        return q, q_ok, offs, mask

    @triton.jit
    def _forward(I, P, X, T, planes, H, W, theta, lam, scale,
                 CONST: tl.constexpr, SAVE: tl.constexpr, SIGMOID: tl.constexpr,
                 K: tl.constexpr, KKP: tl.constexpr, BLOCK: tl.constexpr):
        q, q_ok, offs, mask = _window(tl.program_id(0), planes, H, W, K, KKP, BLOCK)
        n = planes * H * W  # units per step
        n_out = planes * (H // K) * (W // K)  # pooled outputs per step
        v = tl.zeros([BLOCK, KKP], dtype=tl.float32)
        free = tl.full([BLOCK, KKP], 1.0, dtype=tl.float32)
        if CONST:
            cur0 = tl.load(I + offs, mask=mask, other=0.0).to(tl.float32)
        for t in range(T):
            step = tl.cast(t, tl.int64)
            if CONST:
                cur = cur0
            else:
                cur = tl.load(I + step * n + offs, mask=mask, other=0.0).to(tl.float32)
            v = v * lam + cur
            d = v - theta
            s = tl.where(d >= 0.0, free, 0.0)
            if SAVE:
                x = tl.where(free > 0.0, d * scale, float("inf"))
                if SIGMOID:
                    x = tl.sigmoid(x)
                tl.store(X + step * n + offs, x.to(X.dtype.element_ty), mask=mask)
            free = free - s
            pooled = tl.sum(s, axis=1) / (K * K)
            tl.store(P + step * n_out + q, pooled.to(P.dtype.element_ty), mask=q_ok)

    @triton.jit
    def _backward(G, X, OUT, T, planes, H, W, lam, alpha,
                  CONST: tl.constexpr, SURROGATE: tl.constexpr,
                  K: tl.constexpr, KKP: tl.constexpr, BLOCK: tl.constexpr):
        q, q_ok, offs, mask = _window(tl.program_id(0), planes, H, W, K, KKP, BLOCK)
        n = planes * H * W
        n_out = planes * (H // K) * (W // K)
        acc = tl.zeros([BLOCK, KKP], dtype=tl.float32)
        total = tl.zeros([BLOCK, KKP], dtype=tl.float32)
        for i in range(T):
            step = tl.cast(T - 1 - i, tl.int64)
            g = tl.load(G + step * n_out + q, mask=q_ok, other=0.0).to(tl.float32) / (K * K)
            x = tl.load(X + step * n + offs, mask=mask, other=0.0).to(tl.float32)
            if SURROGATE == 0:  # x = sigmoid(alpha (V - theta)): alpha s (1 - s)
                sg = alpha * x * (1.0 - x)
            elif SURROGATE == 1:  # atan: alpha / (2 (1 + (pi/2 alpha x)^2))
                y = (0.5 * 3.141592653589793) * alpha * x
                sg = alpha / (2.0 * (1.0 + y * y))
            else:  # triangle: alpha max(0, 1 - alpha |x|)
                sg = tl.maximum(1.0 - alpha * tl.abs(x), 0.0) * alpha
            acc = acc * lam + g[:, None] * sg
            if CONST:
                total += acc
            else:
                tl.store(OUT + step * n + offs, acc.to(OUT.dtype.element_ty), mask=mask)
        if CONST:
            tl.store(OUT + offs, total.to(OUT.dtype.element_ty), mask=mask)


def _tiling(planes: int, H: int, W: int, k: int) -> tuple[tuple[int], dict]:
    """The launch grid and the tile's constexprs: KKP window slots (k * k padded to a power of 2), BLOCK outputs."""
    kkp = triton.next_power_of_2(k * k)
    block = max(16, TILE // kkp)
    return (triton.cdiv(max(1, planes * (H // k) * (W // k)), block),), dict(K=k, KKP=kkp, BLOCK=block)


def _planes(step_shape: torch.Size, k: int) -> tuple[int, int, int]:
    """A step of units as ``planes`` of H x W: ``[B, C, H, W]`` when pooled (k > 1), else one flat plane per unit."""
    if k > 1:
        B, C, H, W = step_shape
        return B * C, H, W
    return step_shape.numel(), 1, 1


def _launch_options() -> dict:
    """No fused multiply-add on the GPU (the step reference rounds twice); the interpreter takes no options."""
    return {} if INTERPRET else {"enable_fp_fusion": False}


def forward(cur: Tensor, T: int, const: bool, theta: float, lam: float, alpha: float, surrogate: str,
            save: bool, k: int = 1) -> tuple[Tensor, Tensor | None]:
    """The neuron over ``cur`` ``[T | 1, B, ...]`` (``[T | 1, B, C, H, W]`` if k > 1), then k x k average pooling.

    Returns the (pooled) spikes ``[T, B, ...]`` and, if ``save``, the saved ``X`` ``[T, ...]`` of the units."""
    cur = cur.contiguous()
    step_shape = cur.shape[1:]
    planes, H, W = _planes(step_shape, k)
    out_shape = (*step_shape[:2], H // k, W // k) if k > 1 else tuple(step_shape)
    spikes = cur.new_empty((T, *out_shape))
    x = cur.new_empty((T, *step_shape)) if save else spikes  # not written when not save
    sigmoid = surrogate == "sigmoid"
    grid, tile = _tiling(planes, H, W, k)
    _forward[grid](cur, spikes, x, T, planes, H, W, float(theta), float(lam), float(alpha) if sigmoid else 1.0,
                   CONST=const, SAVE=save, SIGMOID=sigmoid, **tile, **_launch_options())
    return spikes, (x if save else None)


def backward(grad: Tensor, x: Tensor, const: bool, lam: float, alpha: float, surrogate: str, k: int = 1) -> Tensor:
    """Backward of ``forward``: ``grad`` ``[T, B, ...]`` dL/d(pooled spikes), ``x`` the saved ``[T, ...]`` ->
    dL/dI ``[T, ...]`` (``[1, ...]`` summed over time if ``const``)."""
    grad = grad.contiguous()
    T = x.shape[0]
    planes, H, W = _planes(x.shape[1:], k)
    outside = k > 1 and (H % k or W % k)  # units outside every window get no gradient: start from zeros
    shape = (1 if const else T, *x.shape[1:])
    out = x.new_zeros(shape) if outside else x.new_empty(shape)
    grid, tile = _tiling(planes, H, W, k)
    _backward[grid](grad, x, out, T, planes, H, W, float(lam), float(alpha),
                    CONST=const, SURROGATE=SURROGATE_CODES[surrogate], **tile, **_launch_options())
    return out


# --- weight standardization of the normalized layers (the GPU twin of kernels.standardize_*) ---------------------
if AVAILABLE:

    @triton.jit
    def _row_mean_rstd(Wp, base, K, eps, BLOCK: tl.constexpr):
        """Mean and 1 / sqrt(biased variance + eps) of the row ``Wp[base : base + K]`` (float32, two passes)."""
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for k0 in range(0, K, BLOCK):
            cols = k0 + tl.arange(0, BLOCK)
            acc += tl.load(Wp + base + cols, mask=cols < K, other=0.0).to(tl.float32)
        mean = tl.sum(acc, axis=0) / K
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for k0 in range(0, K, BLOCK):
            cols = k0 + tl.arange(0, BLOCK)
            w = tl.load(Wp + base + cols, mask=cols < K, other=0.0).to(tl.float32)
            d = tl.where(cols < K, w - mean, 0.0)
            acc += d * d
        return mean, 1.0 / tl.sqrt(tl.sum(acc, axis=0) / K + eps)

    @triton.jit
    def _standardize_forward(Wp, Gam, OUT, MEAN, RSTD, K, std, eps, AFFINE: tl.constexpr, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        base = tl.cast(row, tl.int64) * K
        mean, rstd = _row_mean_rstd(Wp, base, K, eps, BLOCK)
        scale = rstd * std
        if AFFINE:
            scale = scale * tl.load(Gam + row).to(tl.float32)
        for k0 in range(0, K, BLOCK):
            cols = k0 + tl.arange(0, BLOCK)
            w = tl.load(Wp + base + cols, mask=cols < K, other=0.0).to(tl.float32)
            tl.store(OUT + base + cols, ((w - mean) * scale).to(OUT.dtype.element_ty), mask=cols < K)
        tl.store(MEAN + row, mean)
        tl.store(RSTD + row, rstd)

    @triton.jit
    def _standardize_backward(Wp, Gam, G, MEAN, RSTD, DW, DGAM, K, std, AFFINE: tl.constexpr, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        base = tl.cast(row, tl.int64) * K
        mean = tl.load(MEAN + row)
        rstd = tl.load(RSTD + row)
        acc_g = tl.zeros([BLOCK], dtype=tl.float32)
        acc_gw = tl.zeros([BLOCK], dtype=tl.float32)
        for k0 in range(0, K, BLOCK):
            cols = k0 + tl.arange(0, BLOCK)
            g = tl.load(G + base + cols, mask=cols < K, other=0.0).to(tl.float32)
            w = tl.load(Wp + base + cols, mask=cols < K, other=0.0).to(tl.float32)
            acc_g += g
            acc_gw += g * ((w - mean) * rstd)
        sum_g = tl.sum(acc_g, axis=0)
        sum_gw = tl.sum(acc_gw, axis=0)
        c = std
        if AFFINE:
            c = c * tl.load(Gam + row).to(tl.float32)
            tl.store(DGAM + row, (std * sum_gw).to(DGAM.dtype.element_ty))
        mg = c * sum_g / K
        mgw = c * sum_gw / K
        for k0 in range(0, K, BLOCK):
            cols = k0 + tl.arange(0, BLOCK)
            g = tl.load(G + base + cols, mask=cols < K, other=0.0).to(tl.float32)
            w = tl.load(Wp + base + cols, mask=cols < K, other=0.0).to(tl.float32)
            dw = rstd * (c * g - mg - ((w - mean) * rstd) * mgw)
            tl.store(DW + base + cols, dw.to(DW.dtype.element_ty), mask=cols < K)


def _row_block(K: int) -> int:
    return min(4096, max(16, triton.next_power_of_2(K)))


def standardize_forward(flat: Tensor, gamma: Tensor | None, std: float, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per row o of ``flat`` ``[O, K]``: ``(w - mean) / sqrt(var + eps) * std * gamma[o]`` (docs/method.md section 3),
    one program per row; returns it with the rows' mean and 1 / sqrt(var + eps) (float32) for the backward."""
    O, K = flat.shape
    out = torch.empty_like(flat)
    mean = flat.new_empty(O, dtype=torch.float32)
    rstd = flat.new_empty(O, dtype=torch.float32)
    _standardize_forward[(O,)](flat, flat if gamma is None else gamma, out, mean, rstd, K, float(std), float(eps),
                               AFFINE=gamma is not None, BLOCK=_row_block(K))
    return out, mean, rstd


def standardize_backward(flat: Tensor, gamma: Tensor | None, std: float, mean: Tensor, rstd: Tensor,
                         grad: Tensor) -> tuple[Tensor, Tensor | None]:
    """Backward of ``standardize_forward``: with w_hat = (w - mean) rstd and gh = g std gamma,
    dw = rstd (gh - mean(gh) - w_hat mean(gh w_hat)), dgamma = std sum(g w_hat)."""
    O, K = flat.shape
    dw = torch.empty_like(flat)
    dgamma = torch.empty_like(gamma) if gamma is not None else None
    _standardize_backward[(O,)](flat, flat if gamma is None else gamma, grad, mean, rstd, dw,
                                dw if dgamma is None else dgamma, K, float(std),
                                AFFINE=gamma is not None, BLOCK=_row_block(K))
    return dw, dgamma
