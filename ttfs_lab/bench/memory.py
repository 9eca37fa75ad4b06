"""Peak memory of one training step: bytes held by live tensors, for every mode alike.

On CUDA ``torch.cuda.max_memory_allocated``. On CPU there is no allocator counter, so the step runs once more
(untimed) under ``torch.profiler`` with ``profile_memory=True``: every tensor allocation and free is recorded,
and the peak of their running sum is the step's working memory. The persistent state (parameters, optimizer
state, batch) is added. RSS would also count the allocator's retained heap and the interpreter, and cannot
separate modes run in one process.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Callable

import torch
from torch import nn

from ttfs_lab.bench.timing import sync


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct tensors among ``tensors`` (by storage pointer; non-tensors are skipped)."""
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def persistent_bytes(model: nn.Module, optimizer: torch.optim.Optimizer, batch) -> int:
    """Parameters, optimizer state and the batch: what is held before a step starts (gradients are freed)."""
    state = [v for s in optimizer.state.values() for v in s.values()]
    return tensor_bytes([*model.parameters(), *model.buffers(), *state, *batch])


@contextlib.contextmanager
def quiet_stderr():
    """Silence the profiler's C++ start/stop lines on file descriptor 2 for the duration."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured by a test runner)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def cpu_step_peak_bytes(fn: Callable) -> int:
    """Peak, over one call of ``fn``, of the bytes allocated by tensors during it (torch profiler memory events)."""
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings(), quiet_stderr():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    running = peak = 0  # frees of blocks allocated before the profiler started are not reported: never below 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    return peak


def peak_memory(fn: Callable, model: nn.Module, optimizer, batch, device: torch.device) -> dict[str, int]:
    """``peak_bytes`` = ``persistent_bytes`` (before the step) + ``step_working_bytes`` (the step's own peak)."""
    base = persistent_bytes(model, optimizer, batch)
    if device.type == "cuda":
        sync(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        extra = torch.cuda.max_memory_allocated(device) - start
    else:
        extra = cpu_step_peak_bytes(fn)
    return {"peak_bytes": base + extra, "step_working_bytes": extra, "persistent_bytes": base}
