"""Weight standardization of the normalized layers (docs/method.md section 3), per output unit o:

    W_hat[o] = (W[o] - mean(W[o])) / sqrt(var(W[o]) + eps) * std * gamma[o]      (biased variance over fan-in)

``weight`` is ``[O, ...]`` (a linear ``[O, K]`` or a conv ``[O, C, k, k]``), ``gamma`` ``[O]`` or None. Three ways to
compute it, as for the neuron: ``kernel`` (numba, CPU float32 / float64: one pass forward, two per row backward),
``triton`` (CUDA: one launch each way) and ``torch`` (the tensor formula, any device and dtype). Why fused: the
default MNIST network's 2048 x 6272 linear made the tensor-op version (var_mean, five elementwise passes and their
backward) cost more than the layer's own product at batch 64 on CPU, and some twenty kernel launches per layer
and step on a GPU. The fused kernels sum in another order: they agree with the formula to rounding, not bitwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ttfs_lab.functional import kernels, triton_kernels
from ttfs_lab.registry import check_choice

BACKENDS = ("auto", "kernel", "triton", "torch")


def standardize_tensor_ops(weight: Tensor, gamma: Tensor | None, std: float, eps: float) -> Tensor:
    """The formula in tensor ops (autograd through them): the ``torch`` way and the reference of the others."""
    flat = weight.flatten(1)
    var, mean = torch.var_mean(flat, dim=1, unbiased=False, keepdim=True)
    w = ((flat - mean) * (torch.rsqrt(var + eps) * std)).view_as(weight)
    return w * gamma.view(-1, *([1] * (w.dim() - 1))) if gamma is not None else w


class _NumbaKernels:
    """``kernels.standardize_*`` on CPU float32 / float64 rows ``[O, K]`` (no gamma: a length-0 array)."""

    requirement = "backend='kernel' needs numba and a CPU float32/float64 weight; use backend='torch'"

    @staticmethod
    def applies(weight: Tensor, named: bool) -> bool:
        return kernels.AVAILABLE and weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.float64)

    @staticmethod
    def forward(flat: Tensor, gamma: Tensor | None, std: float, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        kernels.set_threads(torch.get_num_threads())
        g = gamma if gamma is not None else flat.new_empty(0)
        out = torch.empty_like(flat)
        mean = flat.new_empty(flat.shape[0])
        rstd = flat.new_empty(flat.shape[0])
        kernels.standardize_forward(flat.numpy(), g.numpy(), float(std), float(eps), out.numpy(), mean.numpy(),
                                    rstd.numpy())
        return out, mean, rstd

    @staticmethod
    def backward(flat: Tensor, gamma: Tensor | None, std: float, mean: Tensor, rstd: Tensor,
                 grad: Tensor) -> tuple[Tensor, Tensor | None]:
        kernels.set_threads(torch.get_num_threads())
        g = gamma if gamma is not None else flat.new_empty(0)
        dw = torch.empty_like(flat)
        dgamma = torch.empty_like(g)
        kernels.standardize_backward(flat.numpy(), g.numpy(), float(std), mean.numpy(), rstd.numpy(), grad.numpy(),
                                     dw.numpy(), dgamma.numpy())
        return dw, (dgamma if gamma is not None else None)


class _TritonKernels:
    """``triton_kernels.standardize_*``: one program per row."""

    requirement = ("backend='triton' needs triton and a CUDA float32/float16/bfloat16 weight; "
                   "use backend='torch'")

    @staticmethod
    def applies(weight: Tensor, named: bool) -> bool:
        return triton_kernels.applies(weight, interpreted=True) if named else triton_kernels.usable(weight)

    @staticmethod
    def forward(flat: Tensor, gamma: Tensor | None, std: float, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        return triton_kernels.standardize_forward(flat, gamma, std, eps)

    @staticmethod
    def backward(flat: Tensor, gamma: Tensor | None, std: float, mean: Tensor, rstd: Tensor,
                 grad: Tensor) -> tuple[Tensor, Tensor | None]:
        return triton_kernels.standardize_backward(flat, gamma, std, mean, rstd, grad)


FUSED = {"kernel": _NumbaKernels, "triton": _TritonKernels}


class _Standardize(torch.autograd.Function):
    """The formula on one of the fused kernel pairs in ``FUSED``: rows ``[O, K]`` in, rows out."""

    @staticmethod
    def forward(ctx, weight: Tensor, gamma: Tensor | None, std: float, eps: float, fused) -> Tensor:
        flat = weight.detach().reshape(weight.shape[0], -1).contiguous()
        g = gamma.detach().contiguous() if gamma is not None else None
        out, mean, rstd = fused.forward(flat, g, std, eps)
        ctx.save_for_backward(flat, g, mean, rstd)
        ctx.std, ctx.shape, ctx.fused = std, weight.shape, fused
        return out.view(weight.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        flat, g, mean, rstd = ctx.saved_tensors
        dw, dgamma = ctx.fused.backward(flat, g, ctx.std, mean, rstd, grad.reshape(flat.shape).contiguous())
        return dw.view(ctx.shape), dgamma, None, None, None


@torch.compiler.disable  # numba / Triton kernels: a graph break under torch.compile
def _run_fused(fused, weight: Tensor, gamma: Tensor | None, std: float, eps: float) -> Tensor:
    return _Standardize.apply(weight, gamma, std, eps, fused)


def standardized_weight(weight: Tensor, gamma: Tensor | None, std: float, eps: float,
                        backend: str = "auto") -> Tensor:
    """Per output unit: (W - mean) / sqrt(var + eps) * std, times gamma if given (biased variance over fan-in).

    ``backend``: ``kernel``, ``triton``, ``torch`` by name (a ``ValueError`` if it cannot run on ``weight``), or
    ``auto``: the numba kernels on CPU float32 / float64, Triton on CUDA (the tensor formula should it fail to
    launch on this GPU), the tensor formula elsewhere.
    """
    check_choice("backend", backend, BACKENDS)
    if backend == "torch":
        return standardize_tensor_ops(weight, gamma, std, eps)
    if backend != "auto":
        fused = FUSED[backend]
        if not fused.applies(weight, named=True):
            raise ValueError(fused.requirement)
        return _run_fused(fused, weight, gamma, std, eps)
    if _NumbaKernels.applies(weight, named=False):
        return _run_fused(_NumbaKernels, weight, gamma, std, eps)
    if _TritonKernels.applies(weight, named=False):
        return triton_kernels.launch_or_fallback(lambda: _run_fused(_TritonKernels, weight, gamma, std, eps),
                                                 lambda: standardize_tensor_ops(weight, gamma, std, eps))[0]
    return standardize_tensor_ops(weight, gamma, std, eps)
