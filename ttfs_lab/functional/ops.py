"""Synaptic operation counts and their energy, from recorded activity (docs/method.md section 10).

A synaptic layer (conv / linear) does one of two kinds of work per inference:

* **AC** (accumulate) where its input is spikes: each input spike adds the unit's fan-out weights once,

      AC = sum_t sum_i n_i[t] * fanout_i,      fanout_i = synapses unit i actually has (conv borders included)

  with n_i[t] the spikes unit i carries at step t. Behind a k x k average pool a pooled unit's value is the mean
  of its window's spikes, so it carries n = value * k^2 spikes (the pool folded into the layer: each spike of
  the window reaches the pooled unit's fan-out, with weight w / k^2). A max-pooled unit can fire at several
  steps: each of its spikes counts.
* **MAC** (multiply-accumulate) where its input is analog (the first layer under direct encoding): the dense
  product, once per sample (the input is constant over the window and the network computes it once).

The ANN of the same layers does its dense MACs once per sample (no T): conv ``H_out W_out C_out C_in k^2``,
linear ``in * out``. Energy: E = AC e_AC + MAC e_MAC, with the 45 nm, 32-bit figures of M. Horowitz,
"Computing's energy problem (and what we can do about it)", ISSCC 2014: e_AC = 0.9 pJ (add), e_MAC = 4.6 pJ
(multiply 3.7 pJ + add 0.9 pJ). Biases, pools and neuron updates are not synaptic operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

E_AC_PJ = 0.9  # pJ per 32-bit accumulate, 45 nm (Horowitz 2014)
E_MAC_PJ = 4.6  # pJ per 32-bit multiply-accumulate, 45 nm (Horowitz 2014)


@dataclass(frozen=True)
class Synapse:
    """The geometry of one synaptic layer, for counting.

    ``in_shape`` is what the layer receives per sample ((C, H, W) for conv, (F,) for linear); ``events_per_unit``
    is how many spikes one unit of that input stands for per unit of value (k^2 behind a k x k average pool, the
    product over a chain of them, 1 otherwise); ``analog``: the input is not spikes (MACs, computed once)."""

    kind: str  # "conv" | "fc"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    events_per_unit: int = 1
    analog: bool = False

    @property
    def dense_macs(self) -> int:
        """MACs of the dense layer on one sample: ``H_out W_out C_out C_in k^2`` or ``in * out``."""
        if self.kind == "conv":
            c_out, h, w = self.out_shape
            return h * w * c_out * self.in_shape[0] * self.kernel * self.kernel
        return self.in_shape[0] * self.out_shape[0]


def axis_fanout(n_in: int, n_out: int, kernel: int, stride: int, padding: int) -> Tensor:
    """``[n_in]``: along one axis, how many output positions each input position feeds (borders included)."""
    i = torch.arange(n_in).unsqueeze(1)
    start = torch.arange(n_out).unsqueeze(0) * stride - padding
    return ((i >= start) & (i < start + kernel)).sum(1)


def fanout_map(syn: Synapse) -> Tensor:
    """``[H, W]`` for conv: output positions fed by each input position (times C_out: the unit's fan-out)."""
    _, h, w = syn.in_shape
    _, ho, wo = syn.out_shape
    fh = axis_fanout(h, ho, syn.kernel, syn.stride, syn.padding)
    fw = axis_fanout(w, wo, syn.kernel, syn.stride, syn.padding)
    return torch.outer(fh, fw)


@torch.no_grad()
def synaptic_ops(syn: Synapse, x: Tensor) -> Tensor:
    """Operations of ``syn`` on its input ``x`` (``[steps, B, *in_shape]``), per step and sample: ``[steps, B]``
    float64. Spiking input: ACs; analog input: the dense MACs, ``[1, B]`` (computed once)."""
    steps, batch = x.shape[:2]
    if syn.analog:
        return torch.full((1, batch), float(syn.dense_macs), dtype=torch.float64, device=x.device)
    events = x.detach()
    if events.dtype not in (torch.float32, torch.float64):
        events = events.float()  # half precision cannot sum hundreds of events exactly
    if syn.events_per_unit != 1:
        events = torch.round(events * syn.events_per_unit)  # spikes per pooled unit (exact integers)
    if syn.kind == "conv":
        per_position = events.sum(2).double()  # [steps, B, H, W]: spikes at each position, over channels
        fan = fanout_map(syn).to(device=x.device, dtype=torch.float64)
        return (per_position * fan).sum((-2, -1)) * syn.out_shape[0]
    return events.flatten(2).sum(-1).double() * syn.out_shape[0]


def ops_until(ops: Tensor, steps: Tensor) -> Tensor:
    """``[B]``: the operations of ``ops`` (``[T', B]``) at steps <= each sample's ``steps`` (1-based; early exit
    at the decision). A layer computed once (``T' = 1``) counts in full."""
    if ops.shape[0] == 1:
        return ops[0]
    t = torch.arange(1, ops.shape[0] + 1, device=ops.device).unsqueeze(1)
    return (ops * (t <= steps.unsqueeze(0))).sum(0)


def energy_pj(ac: float, mac: float, e_ac: float = E_AC_PJ, e_mac: float = E_MAC_PJ) -> float:
    """E = AC e_AC + MAC e_MAC, in pJ."""
    return ac * e_ac + mac * e_mac
