"""The ``torch`` backend of the parallel neuron: tensor ops, any device and dtype (docs/method.md section 1).

A fixed handful of full-size passes each way; mixed precision (float16 / bfloat16 currents) sums the potential
and the gradient in float32. The forward finds each unit's first crossing from the running count of threshold
crossings (exact integers); the backward is the closed form, a reverse (decayed) cumulative sum. It is also what
a failed Triton launch falls back to, pooled forward and backward included (``fuses_pool`` is False: chosen by
name, the neuron and ``avg_pool2d`` run one after the other under autograd instead).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ttfs_lab.functional.neuron_reference import NeuronParams, ResumeState
from ttfs_lab.functional.surrogate import SURROGATES


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype  # mixed precision


def membrane_potential(currents: Tensor, lam: float = 1.0) -> Tensor:
    """V[t] = lam V[t-1] + I[t] for all t at once (no autograd of its own), summed in step order."""
    v = currents.clone(memory_format=torch.contiguous_format)
    for t in range(1, v.shape[0]):
        if lam == 1.0:
            v[t].add_(v[t - 1])
        else:
            v[t].add_(v[t - 1] * lam)
    return v


def surrogate_from_saved(x: Tensor, p: NeuronParams) -> Tensor:
    """The gated surrogate H'(V - theta) (1 - F[t-1]) from the forward's saved tensor (a new tensor)."""
    if p.surrogate == "sigmoid":  # x = sigmoid(alpha (V - theta)), 1 after the spike
        return (1.0 - x).mul_(x).mul_(p.alpha)
    return SURROGATES[p.surrogate](x.clone(), p.alpha)


def reverse_cumsum_(g: Tensor, lam: float = 1.0) -> Tensor:
    """In place: g[tau] <- sum_{t >= tau} lam^(t - tau) g[t] over dim 0."""
    for t in range(g.shape[0] - 2, -1, -1):
        if lam == 1.0:
            g[t].add_(g[t + 1])
        else:
            g[t].add_(g[t + 1], alpha=lam)
    return g


class TorchBackend:
    name = "torch"
    fuses_pool = False
    requirement = ""

    def applies(self, x: Tensor, p: NeuronParams, named: bool) -> bool:
        return True

    def forward(self, cur: Tensor, T: int, const: bool, p: NeuronParams, save: bool,
                k: int) -> tuple[Tensor, Optional[Tensor], "TorchBackend"]:
        """The potential, the first crossing, X = V - theta masked to +inf after the spike. On CUDA an IF potential
        is one ``cumsum`` (each op is a kernel launch there; its accumulation may round differently in the last
        bit); elsewhere it is summed step by step, in the step reference's order, so that float32 spikes match it
        bit for bit. Pooled (k > 1): the spikes, then ``avg_pool2d``."""
        acc = _accumulation_dtype(cur.dtype)
        if p.lam == 1.0 and cur.is_cuda:
            v = torch.cumsum(cur.expand(T, *cur.shape[1:]) if const else cur, 0, dtype=acc)
        elif const:  # V[t] = V[t-1] * lam + I0, the step reference's order
            v = torch.empty((T, *cur.shape[1:]), dtype=acc, device=cur.device)
            v[0] = cur[0]
            for t in range(1, T):
                if p.lam == 1.0:
                    torch.add(v[t - 1], cur[0], out=v[t])
                else:
                    torch.mul(v[t - 1], p.lam, out=v[t]).add_(cur[0])
        else:
            v = membrane_potential(cur.to(acc), p.lam)
        above = v >= p.theta  # the same test as H(V - theta): for floats, v - theta >= 0 iff v >= theta
        count = torch.uint8 if T < 256 else torch.int32  # at most T crossings: one byte per entry
        crossings = torch.cumsum(above, 0, dtype=count)  # crossings so far, this step included
        spikes = (crossings == 1).logical_and_(above).to(cur.dtype)
        if k > 1:
            pooled = F.avg_pool2d(spikes.flatten(0, 1), k, k)
            spikes = pooled.view(T, -1, *pooled.shape[1:])
        if not save:
            return spikes, None, self
        fired_before = crossings.sub_(above.to(count)) > 0
        x = v.sub_(p.theta).masked_fill_(fired_before, float("inf"))
        if p.surrogate == "sigmoid":
            x.mul_(p.alpha).sigmoid_()
        return spikes, x, self

    def backward(self, grad: Tensor, x: Tensor, const: bool, p: NeuronParams, k: int, dtype: torch.dtype) -> Tensor:
        if k > 1:  # unpool: each window's units get its gradient / k^2, the units outside every window 0
            T, B, C, H, W = x.shape
            grad = F.interpolate(grad.flatten(0, 1), scale_factor=k).div_(k * k)
            grad = F.pad(grad, (0, W % k, 0, H % k)).view(T, B, C, H, W)
        g = surrogate_from_saved(x.to(_accumulation_dtype(dtype)), p).mul_(grad)  # one new full-size tensor
        if p.lam == 1.0 and const:  # sum_tau sum_{t >= tau} g[t] = sum_t (t + 1) g[t], no temporary
            steps = torch.arange(1, g.shape[0] + 1, dtype=g.dtype, device=g.device)
            out = torch.tensordot(steps, g, dims=([0], [0])).unsqueeze(0)
        else:
            g = reverse_cumsum_(g, p.lam)  # in place (T small ops): no extra full-size tensor
            out = g.sum(0, keepdim=True) if const else g
        return out.to(dtype)

    def resume(self, cur: Tensor, T: int, const: bool, p: NeuronParams, k: int,
               state: ResumeState) -> tuple[Tensor, ResumeState]:
        """Inference, from ``state`` (updated in place): the step reference's arithmetic, one step at a time."""
        v, free = state
        spikes = cur.new_empty((T, *cur.shape[1:]))
        for t in range(T):
            v.mul_(p.lam).add_(cur[0 if const else t])  # v * 1.0 is exact: IF and leaky share the line
            s = (v >= p.theta).to(v.dtype).mul_(free)
            free.sub_(s)
            spikes[t] = s
        if k > 1:
            pooled = F.avg_pool2d(spikes.flatten(0, 1), k, k)
            spikes = pooled.view(T, -1, *pooled.shape[1:])
        return spikes, ResumeState(v, free)
