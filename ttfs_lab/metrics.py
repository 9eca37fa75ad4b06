"""Spike and latency statistics as torchmetrics Metrics (docs/method.md section 6).

All states are sums reduced by addition, so the metrics are exact under DDP: each process adds its batches and
``compute`` divides only after the reduction.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from ttfs_lab.functional.decoding import decision_steps


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
        steps = decision_steps(out) if spiking else torch.full_like(target, self.T)
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
