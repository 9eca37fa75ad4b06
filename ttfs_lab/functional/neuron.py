"""The single-spike (TTFS) neuron: its executions and the function that dispatches among them
(docs/method.md section 1).

The math and the step-by-step reference are in ``ttfs_lab.functional.neuron_reference`` (re-exported here); this
module runs the same function faster:

* ``ttfs_parallel``: all steps at once as one fused autograd function. Its backward is the closed form
  dL/dV[t] = dL/dS[t] H'(V[t] - theta) (1 - F[t-1]);  dL/dI[tau] = sum_{t >= tau} lam^(t - tau) dL/dV[t],
  a reverse (decayed) cumulative sum. One full-size tensor is kept for backward: X = V - theta before the
  unit's spike, +inf from the step after it (every surrogate is 0 at +inf, so X carries the "not fired before"
  gate); for the sigmoid surrogate X is stored as sigmoid(alpha X), so backward needs no exponential.
  Three backends compute it (``ttfs_lab.functional.backends``): ``kernel`` (numba, CPU), ``triton`` (CUDA) and
  ``torch`` (tensor ops, any device and dtype; mixed precision sums in float32). A current that is the same at
  every step (``[1, B, ...]`` with ``T`` given: the first layer under direct encoding) is read once and its
  gradient is returned summed over time, ``[1, B, ...]``.
* ``ttfs_avgpool_parallel`` fuses the neuron with the average pool that follows it (the full-size spikes and
  their gradient are never written);
* ``ttfs_avgpool_recorded`` (evaluation) adds the first-spike histogram, from which the recorded statistics
  follow without the full-size spikes;
* ``ttfs_resume`` continues a neuron from a saved state for inference chunk by chunk (early exit).

Every execution produces identical spikes for identical currents: the potential is summed in the step
reference's order (on CUDA the ``torch`` backend uses one ``cumsum``, whose rounding may differ in the last bit)
and gradients agree to float tolerance; tests/functional/test_neuron.py holds every backend to it.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ttfs_lab.functional.backends import BACKENDS, REGISTRY, Backend, pick_backend, use_backend
from ttfs_lab.functional.neuron_reference import (NeuronParams, NeuronState, ResumeState, check_params, ttfs_step,
                                                  ttfs_step_single)
from ttfs_lab.registry import check_choice

__all__ = ["BACKENDS", "MODES", "NeuronParams", "NeuronState", "ResumeState", "check_params", "resolve_mode",
           "ttfs_avgpool_parallel", "ttfs_avgpool_recorded", "ttfs_neuron", "ttfs_parallel", "ttfs_resume", "ttfs_step", "ttfs_step_single",
           "use_backend"]

MODES = ("step", "parallel", "auto")


def resolve_mode(mode: str, device: torch.device | str | None = None, T: int | None = None) -> str:
    """The execution ``auto`` stands for: ``parallel`` on every device and T.

    This is a rule, checked by ``python -m ttfs_lab.bench`` (which times step, parallel and auto side by side):
    the parallel execution does the same arithmetic in T times fewer, T times larger products and a fused neuron,
    and it was the faster one for every network, device and T measured (CPU and CUDA). T = 1 makes the two the
    same computation.
    """
    check_choice("mode", mode, MODES)
    return "parallel" if mode == "auto" else mode


@torch.compiler.disable
def _opaque(fn, *args):
    """Run ``fn`` eagerly under ``torch.compile`` (a graph break): the numba kernels are opaque to it, and
    dynamo (torch 2.11, CUDA) failed to trace the neuron's autograd Function; the layers around it compile."""
    return fn(*args)


class _FusedNeuron(torch.autograd.Function):
    """The neuron over all steps, then k x k average pooling if k > 1, on one backend's forward and backward."""

    @staticmethod
    def forward(ctx, currents: Tensor, p: NeuronParams, T: int, k: int, backend: Backend, save_dtype) -> Tensor:
        const = currents.shape[0] == 1 and T > 1
        save = ctx.needs_input_grad[0]
        out, x, backend = backend.forward(currents, T, const, p, save, k)  # the backend that ran (a fallback?)
        if save:
            ctx.save_for_backward(x if save_dtype is None else x.to(save_dtype))
            ctx.p, ctx.const, ctx.k, ctx.backend, ctx.in_dtype = p, const, k, backend, currents.dtype
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        return ctx.backend.backward(grad, x, ctx.const, ctx.p, ctx.k, ctx.in_dtype), None, None, None, None, None


def _steps(currents: Tensor, T: Optional[int]) -> int:
    steps = currents.shape[0] if T is None else T
    if currents.shape[0] not in (1, steps):
        raise ValueError(f"currents have {currents.shape[0]} steps, expected {steps} (or 1 for a constant current)")
    return steps


def ttfs_parallel(currents: Tensor, p: NeuronParams = NeuronParams(), T: Optional[int] = None,
                  backend: str = "auto") -> Tensor:
    """All steps at once as one fused autograd function.

    ``currents``: ``[T, B, ...]``; or ``[1, B, ...]`` with ``T`` given, a current that is the same at every step
    (computed once, never expanded in memory; its gradient comes back as ``[1, B, ...]``). ``backend``: ``kernel``
    (fused CPU kernels), ``triton`` (fused CUDA kernels), ``torch`` (tensor ops, any device), ``auto`` (triton on
    CUDA, kernel on CPU, where they apply; torch otherwise).
    """
    steps = _steps(currents, T)
    # mixed precision: the potential and the gradient are summed in float32, the spikes and the saved surrogate
    # input kept in half precision, as the step execution's autograd keeps its tensors
    half = currents.dtype in (torch.float16, torch.bfloat16)
    return _opaque(_FusedNeuron.apply, currents, p, steps, 1, pick_backend(backend, currents, p),
                   currents.dtype if half else None)


def ttfs_avgpool_parallel(currents: Tensor, p: NeuronParams = NeuronParams(), T: Optional[int] = None,
                          kernel_size: int = 2, backend: str = "auto") -> Tensor:
    """The neuron followed by k x k average pooling with stride k, fused: ``[T | 1, B, C, H, W]`` currents ->
    ``[T, B, C, H // k, W // k]`` pooled spikes, equal to ``avg_pool2d`` of ``ttfs_parallel``'s spikes.

    The fused kernels (``kernel`` on CPU, ``triton`` on CUDA) never write the full-size spikes nor their gradient;
    with ``backend='torch'`` the two steps run one after the other.
    """
    steps = currents.shape[0] if T is None else T
    if currents.dim() != 5:
        raise ValueError(f"currents must be [T, B, C, H, W], got shape {tuple(currents.shape)}")
    chosen = pick_backend(backend, currents, p)
    if chosen.fuses_pool:  # X is kept as the backend returns it (a Triton fallback's: in float32)
        return _opaque(_FusedNeuron.apply, currents, p, steps, kernel_size, chosen, None)
    spikes = ttfs_parallel(currents, p, steps, chosen.name)
    pooled = torch.nn.functional.avg_pool2d(spikes.flatten(0, 1), kernel_size, kernel_size)
    return pooled.view(steps, -1, *pooled.shape[1:])


def ttfs_avgpool_recorded(currents: Tensor, p: NeuronParams, T: int,
                          kernel_size: int) -> Optional[tuple[Tensor, Tensor]]:
    """Evaluation with statistics: ``ttfs_avgpool_parallel``'s pooled spikes and the units' first-spike histogram
    ``[T + 1]`` (bin t: first spike at step t + 1, last bin: silent; ``stats.summary_from_histogram``), from one
    pass that never writes the full-size spikes. None where it does not apply (a gradient wanted, or a backend
    other than ``kernel``): the caller runs the neuron and the pool one after the other."""
    if torch.is_grad_enabled() and currents.requires_grad:
        return None
    chosen = pick_backend("auto", currents, p)
    if not hasattr(chosen, "recorded") or currents.dim() != 5:
        return None
    return chosen.recorded(currents, T, currents.shape[0] == 1 and T > 1, p, kernel_size)


@torch.no_grad()
def ttfs_resume(currents: Tensor, p: NeuronParams, T: int, state: Optional[ResumeState] = None,
                pool: int = 1) -> tuple[Tensor, ResumeState]:
    """Inference only: ``T`` more steps of the neuron (then ``pool`` x ``pool`` average pooling if > 1) from
    ``state`` (None: at rest), so that a network can run chunk by chunk of steps and stop early. ``currents``:
    ``[T | 1, B, ...]``. Returns the (pooled) spikes ``[T, B, ...]`` and the state after the last step. The
    arithmetic is the step reference's, so the spikes equal ``ttfs_step`` over the whole window. The state's
    tensors are updated in place (and returned). Runs on the ``kernel`` backend where it applies, else ``torch``."""
    const = currents.shape[0] == 1 and T > 1
    if state is None:
        state = ResumeState(currents.new_zeros(currents.shape[1:]), currents.new_ones(currents.shape[1:]))
    kernel = REGISTRY["kernel"]
    fused = kernel.applies(currents, p, named=False) and (pool == 1 or currents.dim() == 5)
    return (kernel if fused else REGISTRY["torch"]).resume(currents, T, const, p, pool, state)


def ttfs_neuron(currents: Tensor, p: NeuronParams = NeuronParams(), mode: str = "parallel",
                T: Optional[int] = None) -> Tensor:
    """Dispatch to the step or parallel execution (``auto``: see ``resolve_mode``).

    A ``[1, B, ...]`` constant current with ``T`` > 1 is broadcast to T steps (without a copy in parallel mode).
    """
    check_choice("mode", mode, MODES)
    if currents.dim() < 2:
        raise ValueError(f"currents must be [T, B, ...], got shape {tuple(currents.shape)}")
    mode = resolve_mode(mode, currents.device, T)
    if mode == "step":
        if T is not None and currents.shape[0] == 1 and T > 1:
            currents = currents.expand(T, *currents.shape[1:])
        return ttfs_step(currents, p)
    return ttfs_parallel(currents, p, T)
