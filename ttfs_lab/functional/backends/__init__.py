"""The backends of the parallel neuron by name, and the one function that chooses among them.

* ``kernel`` (``numba_cpu``): fused numba kernels, CPU float32 / float64;
* ``triton`` (``triton_gpu``): their GPU twin, CUDA float32 / float16 / bfloat16;
* ``torch`` (``tensor_ops``): tensor ops, any device and dtype.

``auto`` is the first of triton, kernel, torch that applies; ``use_backend`` changes what ``auto`` stands for
within a block (tests, benchmarks). Each backend has one forward and one backward (``base.Backend``).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

from torch import Tensor

from ttfs_lab.functional.backends.base import Backend
from ttfs_lab.functional.backends.numba_cpu import NumbaBackend
from ttfs_lab.functional.backends.tensor_ops import TorchBackend
from ttfs_lab.functional.backends.triton_gpu import TritonBackend
from ttfs_lab.functional.neuron_reference import NeuronParams
from ttfs_lab.registry import check_choice

_torch = TorchBackend()
REGISTRY: dict[str, Backend] = {"kernel": NumbaBackend(), "triton": TritonBackend(fallback=_torch), "torch": _torch}
AUTO_ORDER = ("triton", "kernel", "torch")
BACKENDS = ("auto", *REGISTRY)
_auto = contextvars.ContextVar("ttfs_lab_neuron_backend", default="auto")


@contextlib.contextmanager
def use_backend(backend: str) -> Iterator[None]:
    """Within the block, ``backend='auto'`` calls of the parallel neuron use ``backend`` (tests, benchmarks)."""
    check_choice("backend", backend, BACKENDS)
    token = _auto.set(backend)
    try:
        yield
    finally:
        _auto.reset(token)


def pick_backend(backend: str, x: Tensor, p: NeuronParams) -> Backend:
    """The backend that runs the neuron with parameters ``p`` on ``x``: ``backend`` by name (a ``ValueError`` that
    says what it needs if it cannot run here), or for ``auto`` the one ``use_backend`` set, else the first of
    ``AUTO_ORDER`` that applies."""
    check_choice("backend", backend, BACKENDS)
    if backend == "auto":
        backend = _auto.get()
    if backend == "auto":
        return next(REGISTRY[name] for name in AUTO_ORDER if REGISTRY[name].applies(x, p, named=False))
    chosen = REGISTRY[backend]
    if not chosen.applies(x, p, named=True):
        raise ValueError(chosen.requirement)
    return chosen
