"""Seconds per training step, interleaved: every round runs each step once, so that they share the machine's load."""

from __future__ import annotations

import time
from typing import Callable

import torch


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing to wait for on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(steps: dict[str, Callable], repeats: int, warmup: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds per call of each function, round-robin: every round runs each function once, so they share the
    machine's load; ``warmup`` untimed rounds first (JIT, autotuning, allocator)."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
        sync(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times
