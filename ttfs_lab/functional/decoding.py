"""Output decoders (docs/method.md section 4), as functions of the output layer's ``[T, B, K]`` sequence.

Every decoder gives ``partial_logits``: the logits it would output if inference stopped after step k, for
k = 1..T, shape ``[T, B, K]``; the final logits are the last of them. This gives the accuracy-vs-step curve for
free and defines early exit.

* temporal weighting (TWD): logits_c = kappa sum_t w_t S_c[t], w strictly decreasing in t;
* first-spike time: logits_c = -kappa/T * t_c, t_c the 1-based spike step, T + 1 when silent;
* spike count: logits_c = kappa sum_t S_c[t];
* membrane potential: ``out`` holds a non-spiking layer's currents, logits = V[t] = sum_{s <= t} I[s].
"""

from __future__ import annotations

import torch
from torch import Tensor

from ttfs_lab.registry import check_choice

TWD_WEIGHTS = ("linear", "exponential", "learnable")


def twd_weights(T: int, kind: str = "linear", decay: float = 0.8) -> Tensor:
    """w_t for t = 1..T: linear (T - t + 1) / T, or exponential decay^(t - 1). Strictly decreasing."""
    check_choice("model.twd_weights", kind, TWD_WEIGHTS)
    t = torch.arange(T, dtype=torch.float32)
    if kind == "exponential":
        if not 0.0 < decay < 1.0:
            raise ValueError(f"model.twd_decay={decay} is not valid; use 0 < decay < 1")
        return decay**t
    return (T - t) / T


def monotone_weights(raw: Tensor) -> Tensor:
    """Learnable strictly decreasing weights: w_t = sum_{s >= t} softplus(raw_s) (a reverse cumsum)."""
    return torch.nn.functional.softplus(raw).flip(0).cumsum(0).flip(0)


def inverse_monotone_weights(w: Tensor) -> Tensor:
    """The ``raw`` for which ``monotone_weights(raw) == w`` (w strictly decreasing, positive)."""
    steps = w - torch.cat([w[1:], w.new_zeros(1)])
    return torch.log(torch.expm1(steps))


def weighted_partial_logits(out: Tensor, weights: Tensor, scale: float | Tensor) -> Tensor:
    """cumsum_t (scale * w_t * S[t]) over ``[T, B, K]``."""
    return (out * (weights.view(-1, 1, 1) * scale)).cumsum(0)


def first_spike_partial_logits(out: Tensor, scale: float | Tensor) -> Tensor:
    """-scale/T * t_c with t_c the 1-based first spike step seen so far, T + 1 when silent so far.

    Written as a weighted sum so that it is differentiable through the spikes:
    -(t_c) = sum_{s <= k} (T + 1 - s) S_c[s] - (T + 1).
    """
    T = out.shape[0]
    w = torch.arange(T, 0, -1, dtype=out.dtype, device=out.device)  # T + 1 - s for s = 1..T
    return (out * w.view(-1, 1, 1)).cumsum(0).sub(T + 1).mul(scale / T)


def membrane_potential(currents: Tensor, lam: float = 1.0) -> Tensor:
    """V[t] = lam V[t-1] + I[t] over ``[T, B, K]`` currents, summed in the neuron's step order (no reset: the
    decoders read V only up to the first output spike)."""
    if lam == 1.0:
        return currents.cumsum(0)
    steps, v = [], None
    for current in currents:
        v = current if v is None else v * lam + current
        steps.append(v)
    return torch.stack(steps)


def decision_potential_partial(out: Tensor, potential: Tensor) -> Tensor:
    """``[T, B, K]``: after step k, each class's potential V_c at the step ``min(k, t*)``, t* = the sample's first
    output spike (0-based). Frozen at the decision: among the classes that fire first, the highest potential leads;
    classes that have not fired are below the threshold there, so they stay below the ones that have."""
    T = out.shape[0]
    first = decision_steps(out) - 1  # 0-based first output spike, T - 1 if none
    steps = torch.arange(T, device=out.device).view(-1, 1)
    index = torch.minimum(steps, first.view(1, -1))  # [T, B]
    return potential.gather(0, index.unsqueeze(-1).expand(-1, -1, potential.shape[-1]))


def first_spike_steps(out: Tensor) -> Tensor:
    """1-based step of each unit's first spike in ``[T, B, ...]``, T + 1 when silent; shape ``[B, ...]``."""
    T = out.shape[0]
    fired = out.detach() > 0
    first = fired.to(torch.uint8).argmax(0) + 1
    return torch.where(fired.any(0), first, torch.full_like(first, T + 1))


def decision_steps(out: Tensor, spiking: bool = True) -> Tensor:
    """Per sample, the step at which the decision is made: the first output spike (1-based), T if none; always T
    for a non-spiking output (the membrane readout decides at the end of the window)."""
    T = out.shape[0]
    if not spiking:
        return torch.full((out.shape[1],), T, dtype=torch.long, device=out.device)
    return first_spike_steps(out).amin(-1).clamp(max=T)
