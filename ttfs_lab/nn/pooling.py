"""Pooling of spike maps, applied per step (docs/method.md section 5).

Average pooling is linear: a pooled unit's output summed over time is the mean of its window's spike counts,
so it stays <= 1 and feeds the next layer as current. Max pooling is kept for the ablation only: a pooled unit
whose window fires at different steps emits several spikes (counted as single-spike violations).
"""

from __future__ import annotations

from torch import nn

from ttfs_lab.registry import Registry

POOLS: Registry[type[nn.Module]] = Registry("pool")
POOLS.add("avg", nn.AvgPool2d)
POOLS.add("max", nn.MaxPool2d)
POOL_TOKENS = {"ap": "avg", "mp": "max"}
