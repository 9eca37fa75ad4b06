"""The TTFS neuron as a module: it holds parameters only, never state (STYLE.md example 1)."""

from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from ttfs_lab.functional.neuron import (MODES, NeuronParams, NeuronState, check_params, resolve_mode, ttfs_avgpool_parallel,
                                        ttfs_avgpool_recorded, ttfs_neuron, ttfs_step_single)
from ttfs_lab.registry import check_choice


class TTFSNeuron(nn.Module):
    """Single-spike IF / leaky neuron over ``[T, B, ...]`` currents (docs/method.md section 1).

    A ``[1, B, ...]`` input (a current that is constant over time, e.g. the first layer under direct
    encoding) is broadcast to T steps without a copy: the parallel execution reads it once per step and returns
    its gradient summed over time.
    """

    def __init__(self, T: int, params: NeuronParams = NeuronParams(), mode: str = "auto") -> None:
        super().__init__()
        self.T = T
        self.params = check_params(params)
        self.mode = check_choice("model.mode", mode, MODES)

    def forward(self, currents: Tensor) -> Tensor:
        if currents.shape[0] not in (1, self.T):
            raise ValueError(f"neuron expects {self.T} time steps (model.T), got input of shape {tuple(currents.shape)}")
        return ttfs_neuron(currents, self.params, self.mode, T=self.T)

    def forward_pooled(self, currents: Tensor, kernel_size: int) -> Tensor:
        """The neuron followed by ``kernel_size`` average pooling (stride = kernel), fused in parallel mode:
        ``[T | 1, B, C, H, W]`` -> ``[T, B, C, H // k, W // k]``, equal to ``avg_pool2d(self(currents))``."""
        if currents.shape[0] not in (1, self.T):
            raise ValueError(f"neuron expects {self.T} time steps (model.T), got input of shape {tuple(currents.shape)}")
        if resolve_mode(self.mode, currents.device, self.T) == "parallel":
            return ttfs_avgpool_parallel(currents, self.params, self.T, kernel_size)
        spikes = self(currents)
        pooled = F.avg_pool2d(spikes.flatten(0, 1), kernel_size, kernel_size)
        return pooled.view(self.T, -1, *pooled.shape[1:])

    def forward_pooled_recorded(self, currents: Tensor, kernel_size: int) -> Optional[tuple[Tensor, Tensor]]:
        """Evaluation with statistics in parallel mode: ``forward_pooled``'s output and the units' first-spike
        histogram (``ttfs_avgpool_recorded``); None where that does not apply (step mode, a gradient wanted, no
        fused kernel)."""
        if resolve_mode(self.mode, currents.device, self.T) != "parallel":
            return None
        return ttfs_avgpool_recorded(currents, self.params, self.T, kernel_size)

    def step(self, current: Tensor, state: NeuronState | None) -> tuple[Tensor, NeuronState]:
        """One time step, for the step-by-step execution of a whole network."""
        return ttfs_step_single(current, state, self.params)

    def extra_repr(self) -> str:
        p = self.params
        return f"T={self.T}, theta={p.theta}, leak={p.lam}, surrogate={p.surrogate}({p.alpha}), mode={self.mode}"
