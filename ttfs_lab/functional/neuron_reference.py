"""The single-spike (TTFS) integrate-and-fire neuron, step by step: the readable reference (docs/method.md section 1).

    V[t] = lam * V[t-1] + I[t]
    S[t] = H(V[t] - theta) * (1 - F[t-1])        F[t] = F[t-1] or S[t]   (F detached)

``ttfs_step`` loops over t with autograd through every step (BPTT as in the paper); every other execution of the
neuron (``ttfs_lab.functional.neuron``: the parallel backends, the fused pool, inference chunk by chunk) is held
to it by the tests. Currents ``I`` are ``[T, B, ...]``, spikes have the same shape.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ttfs_lab.functional.surrogate import SURROGATES, heaviside


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


class ResumeState(NamedTuple):
    """State of a layer between chunks of steps (inference): potential and 1 / 0 'not fired yet', ``[B, ...]``."""

    v: Tensor
    free: Tensor

    def select(self, keep: Tensor) -> "ResumeState":
        return ResumeState(self.v[keep], self.free[keep])


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
