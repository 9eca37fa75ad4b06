"""Spike statistics of one layer's ``[T, B, ...]`` output, as sums that reduce by addition (docs/method.md section 6).

A unit's spike count is its output summed over time. For TTFS neurons and average pools it is <= 1; a count
above 1 (max pooling) is a single-spike violation.
"""

from __future__ import annotations

import torch
from torch import Tensor

STAT_KEYS = ("spikes", "units", "silent", "violations", "hist")


@torch.no_grad()
def spike_summary(out: Tensor) -> dict[str, Tensor]:
    """Sums over the batch: total spikes, unit-samples, silent unit-samples, violations (count > 1), and the
    first-spike-step histogram ``hist`` of length T + 1 (bin k-1 = first spike at step k, last bin = silent)."""
    T = out.shape[0]
    out = out.detach()
    counts = out.sum(0)
    fired = out > 0
    any_fired = fired.any(0)
    first = torch.where(any_fired, fired.to(torch.uint8).argmax(0), torch.full_like(counts, T, dtype=torch.long))
    return {
        "spikes": counts.sum().float(),
        "units": torch.tensor(float(counts.numel()), device=out.device),
        "silent": (~any_fired).sum().float(),
        "violations": (counts > 1 + 1e-6).sum().float(),
        "hist": torch.bincount(first.flatten(), minlength=T + 1).float(),
    }
