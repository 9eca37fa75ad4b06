"""The TTFS neuron as a module: it holds parameters only, never state (STYLE.md example 1)."""

from __future__ import annotations

from torch import Tensor, nn

from ttfs_lab.functional.neuron import MODES, NeuronParams, NeuronState, check_params, ttfs_neuron, ttfs_step_single
from ttfs_lab.registry import check_choice


class TTFSNeuron(nn.Module):
    """Single-spike IF / leaky neuron over ``[T, B, ...]`` currents (METHOD.md section 1).

    A ``[1, B, ...]`` input (a current that is constant over time, e.g. the first layer under direct
    encoding) is broadcast to T steps without a copy.
    """

    def __init__(self, T: int, params: NeuronParams = NeuronParams(), mode: str = "auto") -> None:
        super().__init__()
        self.T = T
        self.params = check_params(params)
        self.mode = check_choice("model.mode", mode, MODES)

    def forward(self, currents: Tensor) -> Tensor:
        if currents.shape[0] == 1 and self.T > 1:
            currents = currents.expand(self.T, *currents.shape[1:])
        elif currents.shape[0] != self.T:
            raise ValueError(f"neuron expects {self.T} time steps (model.T), got input of shape {tuple(currents.shape)}")
        return ttfs_neuron(currents, self.params, self.mode)

    def step(self, current: Tensor, state: NeuronState | None) -> tuple[Tensor, NeuronState]:
        """One time step, for the step-by-step execution of a whole network."""
        return ttfs_step_single(current, state, self.params)

    def extra_repr(self) -> str:
        p = self.params
        return f"T={self.T}, theta={p.theta}, leak={p.lam}, surrogate={p.surrogate}({p.alpha}), mode={self.mode}"
