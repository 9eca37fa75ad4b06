"""The ``kernel`` backend of the parallel neuron: the fused numba kernels of ``ttfs_lab.functional.kernels`` on CPU
float32 / float64 tensors, one pass over memory each way (docs/method.md section 1).

This module is the glue between tensors and the kernels' flat numpy arrays: layouts (any dense layout of the
neuron's currents is read in place, channels-last included; the pooled kernel reads NCHW planes), the kernel's
parameter vector, the thread count. Spikes are bit-identical to ``ttfs_step``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from ttfs_lab.functional import kernels
from ttfs_lab.functional.backends.base import planes, pooled_shape
from ttfs_lab.functional.neuron_reference import NeuronParams, ResumeState


def _is_dense(x: Tensor) -> bool:
    """Non-overlapping and dense: some permutation of the dims is contiguous (contiguous or channels-last)."""
    order = sorted(range(x.dim()), key=lambda d: -x.stride(d))
    return x.permute(order).is_contiguous()


def _steps_outermost(x: Tensor) -> bool:
    """Dense with the steps (dim 0) outermost in memory, as the kernels walk it: step t at ``t * x[0].numel()``."""
    return _is_dense(x) and (x.shape[0] == 1 or x.stride(0) == x[0].numel())


def _flat(x: Tensor) -> Tensor:
    """A 1-D view of a dense tensor's memory in storage order."""
    return x.permute(sorted(range(x.dim()), key=lambda d: -x.stride(d))).view(-1)


def _steps_like(step: Tensor, T: int) -> Tensor:
    """An empty ``[T, *step.shape]`` tensor, each step laid out like the dense tensor ``step``."""
    return torch.empty_strided((T, *step.shape), (step.numel(), *step.stride()), dtype=step.dtype, device=step.device)


def _kernel_params(p: NeuronParams, dtype: torch.dtype, area: int = 1):
    """[theta, lam, scale of the saved X, pooling area] in the data's dtype (torch computes in it too)."""
    scale = p.alpha if p.surrogate == "sigmoid" else 1.0
    return torch.tensor([p.theta, p.lam, scale, area], dtype=dtype).numpy()


def _launch_forward(cur: Tensor, T: int, const: bool, p: NeuronParams, k: int, out: Tensor, x: Tensor, save: bool,
                    state: Optional[ResumeState] = None, count: bool = False) -> Optional[Tensor]:
    """``kernels.forward_kernel`` over dense ``cur``, writing ``out`` (and ``x`` if ``save``; ``state`` in place);
    with ``count``, returns the first-spike histogram ``[T + 1]`` (units first firing at each step, then silent)."""
    kernels.set_threads(torch.get_num_threads())
    n_planes, H, W = planes(cur.shape[1:], k)
    sv, sf = (cur.new_empty(0), cur.new_empty(0)) if state is None else state
    hist = np.zeros((kernels.block_count(n_planes, H * W) if count else 0, T + 1), dtype=out.numpy().dtype)
    kernels.forward_kernel(_flat(cur).numpy(), const, T, n_planes, H, W, k, _kernel_params(p, cur.dtype, k * k),
                           _flat(out).numpy(), _flat(x).numpy(), save, sv.view(-1).numpy(), sf.view(-1).numpy(), hist)
    return torch.from_numpy(hist.sum(0, dtype=np.float64)).float() if count else None


class NumbaBackend:
    name = "kernel"
    fuses_pool = True
    requirement = (f"backend='kernel' needs numba, a CPU float32/float64 tensor and one of the surrogates "
                   f"{', '.join(kernels.SURROGATE_CODES)}; use backend='torch'")

    def applies(self, x: Tensor, p: NeuronParams, named: bool = False) -> bool:
        """numba, a CPU float32 / float64 tensor, a surrogate the kernels know (named or chosen alike)."""
        return (kernels.AVAILABLE and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
                and p.surrogate in kernels.SURROGATE_CODES)

    def forward(self, cur: Tensor, T: int, const: bool, p: NeuronParams, save: bool,
                k: int) -> tuple[Tensor, Optional[Tensor], "NumbaBackend"]:
        if k > 1:  # the pool reads NCHW planes
            cur = cur.contiguous()
            out = cur.new_empty((T, *pooled_shape(cur.shape[1:], k)))
            x = cur.new_empty((T, *cur.shape[1:])) if save else cur.new_empty(0)
        else:  # any dense layout is read in place; the spikes (and X) are laid out like the currents
            if not _steps_outermost(cur):
                cur = cur.contiguous()
            out = _steps_like(cur[0], T) if const else torch.empty_like(cur)
            x = torch.empty_like(out) if save else out.new_empty(0)
        _launch_forward(cur, T, const, p, k, out, x, save)
        if not save:
            return out, None, self
        if p.surrogate == "sigmoid":  # the exponential is torch's (vectorized): X = sigmoid(alpha (V - theta))
            x.sigmoid_()
        return out, x, self

    def backward(self, grad: Tensor, x: Tensor, const: bool, p: NeuronParams, k: int, dtype: torch.dtype) -> Tensor:
        kernels.set_threads(torch.get_num_threads())
        if k > 1:  # x is NCHW-contiguous
            grad = grad.contiguous()
            out = x.new_empty((1 if const else x.shape[0], *x.shape[1:]))
        else:
            if grad.stride() != x.stride():
                grad = torch.empty_like(x).copy_(grad)
            out = _steps_like(x[0], 1) if const else torch.empty_like(x)
        n_planes, H, W = planes(x.shape[1:], k)
        kernels.backward_kernel(_flat(grad).numpy(), _flat(x).numpy(), x.shape[0], n_planes, H, W, k,
                                _kernel_params(p, x.dtype, k * k), kernels.SURROGATE_CODES[p.surrogate],
                                float(p.alpha), const, _flat(out).numpy())
        return out

    def recorded(self, cur: Tensor, T: int, const: bool, p: NeuronParams, k: int) -> tuple[Tensor, Tensor]:
        """Evaluation: the (pooled) spikes and the units' first-spike histogram ``[T + 1]`` (bin t: first spike at
        step t + 1; last bin: silent) in one pass; the full-size spikes are never written."""
        cur = cur.contiguous()
        out = cur.new_empty((T, *pooled_shape(cur.shape[1:], k)))
        hist = _launch_forward(cur, T, const, p, k, out, cur.new_empty(0), False, count=True)
        return out, hist

    def resume(self, cur: Tensor, T: int, const: bool, p: NeuronParams, k: int,
               state: ResumeState) -> tuple[Tensor, ResumeState]:
        """Inference: ``T`` more steps from ``state`` (its tensors updated in place when contiguous)."""
        cur = cur.contiguous()
        state = ResumeState(state.v.contiguous(), state.free.contiguous())
        out = cur.new_empty((T, *pooled_shape(cur.shape[1:], k)))
        _launch_forward(cur, T, const, p, k, out, cur.new_empty(0), False, state)
        return out, state
