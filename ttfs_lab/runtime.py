"""Process settings that make CPU training fast (this module imports no torch: some must come before it).

**Keep freed memory for reuse instead of returning it to the OS.**

A TTFS layer in parallel mode works on ``[T * B, ...]`` tensors (hundreds of MB for a conv layer at batch 64).
glibc serves blocks that large with a fresh ``mmap`` and unmaps them on free, so every such tensor is faulted
in and zeroed by the kernel page by page, at every step: measured on 2 cores, a 205 MB ``clone`` took 93 ms
(300,000 page faults) against 10 ms for the same copy into memory already mapped; a TTFS training step of the
default MNIST network spent ~850,000 page faults. ``retain_freed_memory()`` raises glibc's mmap and trim
thresholds (``mallopt``), so freed blocks stay in the heap and the next step reuses them without faults. The
cost: the process keeps its peak heap mapped (resident memory stays at its high-water mark).

It is a no-op where the C library is not glibc (macOS, Windows, musl). Call it once at start-up, before the
first large allocation (``python -m ttfs_lab.bench`` does, so training should too, or its speed is not the
benchmark's); the environment variables ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` do the same
from outside the process.

**Let torch's OpenMP threads stop spinning sooner** (``short_openmp_spin``). After each parallel region, GNU
OpenMP's worker threads spin for ``GOMP_SPINCOUNT`` iterations (300,000 by default, a few ms) before they sleep.
A TTFS step alternates torch ops and numba kernels, whose own threads then share the cores with a spinning
torch thread: measured on 2 cores, a 0.17 ms weight standardization took 2.2 ms on average inside the training
step. With ``GOMP_SPINCOUNT=30000`` the parallel TTFS step was about 8 % (MNIST default network) and 15-25 %
(the small network, T = 8) faster, and the plain ANN, timed in the same processes, no slower (docs/method.md
section 8).
libgomp reads the variable when it loads, i.e. at ``import torch``: ``ttfs-lab`` sets it first thing, and it has
no effect in a process that imported torch before (nor on OpenMP runtimes other than GNU's). A value already in
the environment is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
_state = {"done": False, "ok": False}


def retain_freed_memory(mmap_threshold: int = 1 << 30, trim_threshold: int = (1 << 31) - 1) -> bool:
    """Make glibc keep freed blocks up to ``mmap_threshold`` bytes for reuse; True if it took effect."""
    if _state["done"]:
        return _state["ok"]
    _state["done"] = True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
    except (OSError, AttributeError):  # not glibc
        ok = False
    _state["ok"] = ok
    return ok


def allocator_setting() -> str:
    """A one-line description of the CPU allocator setting, for reports."""
    if not _state["done"]:
        return "default (glibc mmap for large blocks)"
    return "retain freed memory (glibc mallopt)" if _state["ok"] else "default (mallopt unavailable)"


OPENMP_SPIN = 30000  # GOMP_SPINCOUNT set by short_openmp_spin (measured: docs/method.md section 8)


def short_openmp_spin(count: int = OPENMP_SPIN) -> bool:
    """Set ``GOMP_SPINCOUNT`` to ``count`` unless it is set already or torch is already imported (libgomp has read
    the environment then); True if this call set it."""
    if "GOMP_SPINCOUNT" in os.environ or "torch" in sys.modules:
        return False
    os.environ["GOMP_SPINCOUNT"] = str(count)
    return True


def openmp_setting() -> str:
    """A one-line description of the OpenMP spin setting in effect, for reports."""
    value = os.environ.get("GOMP_SPINCOUNT")
    return f"GOMP_SPINCOUNT={value}" if value else "default OpenMP spin (GOMP_SPINCOUNT unset)"
