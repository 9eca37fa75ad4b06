"""The ``triton`` backend of the parallel neuron: the fused GPU kernels of ``ttfs_lab.functional.triton_kernels``
on CUDA float32 / float16 / bfloat16 tensors, one launch each way (docs/method.md section 1).

Should Triton fail to compile or launch on this GPU, the forward says so once and runs the ``torch`` backend
instead (``triton_kernels.launch_or_fallback``), and that backend's backward goes with it; after a failure
``auto`` no longer picks Triton.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ttfs_lab.functional import triton_kernels
from ttfs_lab.functional.backends.tensor_ops import TorchBackend
from ttfs_lab.functional.neuron_reference import NeuronParams


class TritonBackend:
    name = "triton"
    fuses_pool = True
    requirement = (f"backend='triton' needs triton, a CUDA float32/float16/bfloat16 tensor and one of the "
                   f"surrogates {', '.join(triton_kernels.SURROGATE_CODES)}; use backend='torch'")

    def __init__(self, fallback: TorchBackend) -> None:
        self.fallback = fallback

    def applies(self, x: Tensor, p: NeuronParams, named: bool) -> bool:
        """Named: CUDA tensors, or any tensor under ``TRITON_INTERPRET=1`` (how the tests run the kernels on CPU).
        Chosen by ``auto``: CUDA tensors only, and not after a failed launch."""
        if named:
            return triton_kernels.applies(x, p.surrogate, interpreted=True)
        return triton_kernels.usable(x, p.surrogate)

    def forward(self, cur: Tensor, T: int, const: bool, p: NeuronParams, save: bool,
                k: int) -> tuple[Tensor, Optional[Tensor], TritonBackend | TorchBackend]:
        result, _ = triton_kernels.launch_or_fallback(
            lambda: (*triton_kernels.forward(cur, T, const, p.theta, p.lam, p.alpha, p.surrogate, save, k), self),
            lambda: self.fallback.forward(cur, T, const, p, save, k))
        return result

    def backward(self, grad: Tensor, x: Tensor, const: bool, p: NeuronParams, k: int, dtype: torch.dtype) -> Tensor:
        return triton_kernels.backward(grad, x, const, p.lam, p.alpha, p.surrogate, k)
