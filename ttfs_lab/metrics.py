"""Spike, latency and synaptic-operation statistics as torchmetrics Metrics (docs/method.md sections 6, 10).

All states are sums reduced by addition, so the metrics are exact under DDP: each process adds its batches and
``compute`` divides only after the reduction.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from ttfs_lab.functional.decoding import decision_steps
from ttfs_lab.functional.ops import E_AC_PJ, E_MAC_PJ, Synapse, energy_pj, ops_until


class SpikeStatistics(Metric):
    """Per recorded layer: spikes per neuron, silent fraction, single-spike violations, first-spike-step histogram.

    ``update`` takes the ``stats`` dict of ``TTFSNet(x, record=True)`` (layer -> ``spike_summary``).
    """

    full_state_update = False

    def __init__(self, layers: list[str], T: int) -> None:
        super().__init__()
        self.layers, self.T = list(layers), T
        n = len(self.layers)
        for key in ("spikes", "units", "silent", "violations"):
            self.add_state(key, default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("hist", default=torch.zeros(n, T + 1, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, stats: dict[str, dict[str, Tensor]]) -> None:
        for i, layer in enumerate(self.layers):
            s = stats[layer]
            for key in ("spikes", "units", "silent", "violations"):
                getattr(self, key)[i] += s[key].to(torch.float64)
            self.hist[i] += s["hist"].to(torch.float64)

    def compute(self) -> dict[str, dict[str, object]]:
        units = self.units.clamp(min=1)
        return {
            "spikes": dict(zip(self.layers, (self.spikes / units).tolist())),
            "silent": dict(zip(self.layers, (self.silent / units).tolist())),
            "violations": dict(zip(self.layers, self.violations.tolist())),
            "hist": {layer: row for layer, row in zip(self.layers, self.hist.tolist())},
            "spikes_per_neuron": (self.spikes.sum() / units.sum()).item(),
        }


class DecisionLatency(Metric):
    """Mean decision step (first output spike, 1-based, T when silent) and accuracy when stopping at step k.

    A sample counts as correct at step k only once its decision is made (its first output spike is at or
    before k; the membrane decoder decides at every step); at k = T every sample is decided, so the curve
    ends at the accuracy.
    """

    full_state_update = False

    def __init__(self, T: int) -> None:
        super().__init__()
        self.T = T
        self.add_state("step_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("correct_at", default=torch.zeros(T, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, partial_logits: Tensor, out: Tensor, target: Tensor, spiking: bool = True) -> None:
        """``partial_logits``: ``[T, B, K]``; ``out``: output ``[T, B, K]``; ``target``: ``[B]``."""
        steps = decision_steps(out, spiking)
        self.step_sum += steps.sum().to(torch.float64)
        self.count += target.numel()
        correct = partial_logits.argmax(-1) == target.unsqueeze(0)  # [T, B]
        if spiking:
            k = torch.arange(1, self.T + 1, device=target.device).unsqueeze(1)
            correct &= (steps.unsqueeze(0) <= k) | (k == self.T)
        self.correct_at += correct.sum(1).to(torch.float64)

    def compute(self) -> dict[str, object]:
        count = self.count.clamp(min=1)
        return {"decision_step": (self.step_sum / count).item(), "acc_vs_step": (self.correct_at / count).tolist()}


class SynapticOperations(Metric):
    """Per synaptic layer: operations per inference over the window and until the decision (early exit), with
    the energy estimate and the ANN of the same layers (docs/method.md section 10).

    ``update`` takes the ``ops`` of ``TTFSNet(x, record=True)`` (layer -> ``[T | 1, B]``) and each sample's
    decision step ``[B]`` (first output spike, 1-based; T when silent or for a non-spiking output). A layer whose
    input is spikes does ACs, the analog first layer MACs; the ANN does every layer's dense MACs.
    """

    full_state_update = False

    def __init__(self, synapses: dict[str, Synapse], e_ac: float = E_AC_PJ, e_mac: float = E_MAC_PJ) -> None:
        super().__init__()
        self.layers = list(synapses)
        self.analog = [synapses[n].analog for n in self.layers]
        self.ann = [float(synapses[n].dense_macs) for n in self.layers]
        self.e_ac, self.e_mac = e_ac, e_mac
        n = len(self.layers)
        for key in ("ops", "ops_exit"):
            self.add_state(key, default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, ops: dict[str, Tensor], steps: Tensor) -> None:
        for i, layer in enumerate(self.layers):
            x = ops[layer].to(torch.float64)
            self.ops[i] += x.sum()
            self.ops_exit[i] += ops_until(x, steps).sum()
        self.count += steps.numel()

    def compute(self) -> dict[str, object]:
        """Per inference: per-layer ``{kind, ops, ops_exit, ann_mac}``; totals ``ac``, ``mac`` (and ``_exit``),
        ``ann_mac``; energies in pJ and their ratio to the ANN's."""
        count = self.count.clamp(min=1)
        ops, ops_exit = (self.ops / count).tolist(), (self.ops_exit / count).tolist()
        layers = {name: {"kind": "mac" if a else "ac", "ops": o, "ops_exit": e, "ann_mac": d}
                  for name, a, o, e, d in zip(self.layers, self.analog, ops, ops_exit, self.ann)}
        out: dict[str, object] = {"layers": layers, "ann_mac": sum(self.ann)}
        for suffix, values in (("", ops), ("_exit", ops_exit)):
            out[f"ac{suffix}"] = sum(v for v, a in zip(values, self.analog) if not a)
            out[f"mac{suffix}"] = sum(v for v, a in zip(values, self.analog) if a)
            out[f"energy_pj{suffix}"] = energy_pj(out[f"ac{suffix}"], out[f"mac{suffix}"], self.e_ac, self.e_mac)
        out["ann_energy_pj"] = energy_pj(0.0, out["ann_mac"], self.e_ac, self.e_mac)
        ann = out["ann_energy_pj"] or float("nan")
        out["energy_ratio_ann"], out["energy_ratio_ann_exit"] = out["energy_pj"] / ann, out["energy_pj_exit"] / ann
        return out
