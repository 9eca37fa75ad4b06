"""Work per step by count: tensor operations dispatched (CPU and CUDA) and kernels the GPU ran (CUDA).

At small batches a GPU step is bound by launches, so these counts explain its speed where the FLOPs do not.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from ttfs_lab.bench.memory import quiet_stderr
from ttfs_lab.bench.timing import sync

NO_WORK = {"view", "_unsafe_view", "detach", "t", "permute", "expand", "unsqueeze", "squeeze", "as_strided", "alias",
           "slice", "select", "transpose", "unbind", "split", "empty", "empty_like", "empty_strided", "new_empty",
           "new_empty_strided", "lift_fresh", "set_", "_local_scalar_dense", "_record_function_enter_new",
           "_record_function_exit"}


def dispatched_ops(fn: Callable) -> int:
    """Tensor operations one call of ``fn`` dispatches that compute something (views and allocations left out):
    on a GPU each is at least one kernel launch, so at small batches this count bounds the step's speed. The
    fused kernels (numba, Triton) are not tensor operations and are not counted."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += func.overloadpacket.__name__ not in NO_WORK
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def gpu_kernels(fn: Callable, device: torch.device) -> int:
    """Kernels (Triton's included) and memory operations the GPU runs for one call of ``fn`` (torch profiler)."""
    from torch.profiler import ProfilerActivity, profile

    sync(device)
    with warnings.catch_warnings(), quiet_stderr():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            fn()
            sync(device)
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
