"""The single-spike (TTFS) integrate-and-fire neuron as pure functions (METHOD.md section 1).

    V[t] = lam * V[t-1] + I[t]
    S[t] = H(V[t] - theta) * (1 - F[t-1])        F[t] = F[t-1] or S[t]   (F detached)

All functions take input currents ``I`` of shape ``[T, B, ...]`` and return spikes of the same shape. Two
executions of the same function:

* ``ttfs_step`` loops over t with autograd through every step: the readable reference (BPTT as in the paper);
* ``ttfs_parallel`` is one fused autograd function over all t. Its backward is the closed form
  dL/dV[t] = dL/dS[t] H'(V[t] - theta) (1 - F[t-1]);  dL/dI[tau] = sum_{t >= tau} lam^(t - tau) dL/dV[t],
  a reverse (decayed) cumulative sum. Only one full-size tensor (the gated surrogate) is kept for backward.

Both produce identical spikes for identical currents (same summation order) and gradients equal to float
tolerance; tests/functional/test_neuron.py holds them to it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ttfs_lab.functional.surrogate import SURROGATES, heaviside
from ttfs_lab.registry import check_choice

MODES = ("step", "parallel", "auto")


class NeuronParams(NamedTuple):
    """Parameters of the TTFS neuron: threshold, leak factor (1 = IF), surrogate name and sharpness."""

    theta: float = 1.0
    lam: float = 1.0
    surrogate: str = "sigmoid"
    alpha: float = 4.0


class NeuronState(NamedTuple):
    """Per-step state of the step-by-step execution: membrane potential and the 'already fired' flag."""

    v: Tensor
    fired: Tensor


def check_params(p: NeuronParams) -> NeuronParams:
    SURROGATES[p.surrogate]
    if not 0.0 < p.lam <= 1.0:
        raise ValueError(f"leak={p.lam} is not valid; use 0 < leak <= 1 (1 = integrate-and-fire)")
    if p.theta <= 0:
        raise ValueError(f"theta={p.theta} is not valid; the threshold must be > 0")
    return p


def ttfs_step_single(current: Tensor, state: NeuronState | None, p: NeuronParams) -> tuple[Tensor, NeuronState]:
    """One step of the neuron: ``current`` is ``[B, ...]``; returns the spikes of this step and the new state."""
    if state is None:
        v = current
        fired = torch.zeros_like(current, dtype=torch.bool)
    else:
        v = state.v * p.lam + current if p.lam != 1.0 else state.v + current
        fired = state.fired
    spikes = heaviside(v - p.theta, p.surrogate, p.alpha) * (~fired).to(v.dtype)
    return spikes, NeuronState(v, fired | (spikes.detach() > 0))


def ttfs_step(currents: Tensor, p: NeuronParams = NeuronParams()) -> Tensor:
    """Reference execution: loop over t, autograd through every step. ``currents``: ``[T, B, ...]``."""
    state, out = None, []
    for current in currents:
        spikes, state = ttfs_step_single(current, state, p)
        out.append(spikes)
    return torch.stack(out)


def membrane_potential(currents: Tensor, lam: float = 1.0) -> Tensor:
    """V[t] = lam V[t-1] + I[t] for all t at once (no autograd of its own), summed in step order."""
    v = currents.clone(memory_format=torch.contiguous_format)
    for t in range(1, v.shape[0]):
        if lam == 1.0:
            v[t].add_(v[t - 1])
        else:
            v[t].add_(v[t - 1], alpha=lam)
    return v


def first_crossing(v: Tensor, theta: float) -> tuple[Tensor, Tensor]:
    """Spikes at the first step with V >= theta, and the mask 'not fired before t' (1 - F[t-1]), both bool."""
    above = v >= theta
    not_fired = torch.empty_like(above)
    not_fired[0] = True
    if v.shape[0] > 1:
        torch.logical_not(above[:-1], out=not_fired[1:])
        for t in range(2, v.shape[0]):
            not_fired[t].logical_and_(not_fired[t - 1])
    return above.logical_and_(not_fired), not_fired


def reverse_cumsum_(g: Tensor, lam: float = 1.0) -> Tensor:
    """In place: g[tau] <- sum_{t >= tau} lam^(t - tau) g[t] over dim 0."""
    for t in range(g.shape[0] - 2, -1, -1):
        if lam == 1.0:
            g[t].add_(g[t + 1])
        else:
            g[t].add_(g[t + 1], alpha=lam)
    return g


class _TTFSParallel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, currents: Tensor, p: NeuronParams) -> Tensor:
        v = membrane_potential(currents, p.lam)
        spikes, not_fired = first_crossing(v, p.theta)
        if ctx.needs_input_grad[0]:
            gate = SURROGATES[p.surrogate](v.sub_(p.theta), p.alpha).mul_(not_fired)
            ctx.save_for_backward(gate)
            ctx.lam = p.lam
        return spikes.to(currents.dtype)

    @staticmethod
    def backward(ctx, grad_spikes: Tensor):
        (gate,) = ctx.saved_tensors
        return reverse_cumsum_(grad_spikes * gate, ctx.lam), None


def ttfs_parallel(currents: Tensor, p: NeuronParams = NeuronParams()) -> Tensor:
    """All steps at once as one fused autograd function. ``currents``: ``[T, B, ...]`` (may be expanded)."""
    return _TTFSParallel.apply(currents, p)


def ttfs_neuron(currents: Tensor, p: NeuronParams = NeuronParams(), mode: str = "parallel") -> Tensor:
    """Dispatch to the step or parallel execution (``auto`` = parallel: it is never slower, see ``make bench``)."""
    check_choice("mode", mode, MODES)
    if currents.dim() < 2:
        raise ValueError(f"currents must be [T, B, ...], got shape {tuple(currents.shape)}")
    return ttfs_step(currents, p) if mode == "step" else ttfs_parallel(currents, p)
