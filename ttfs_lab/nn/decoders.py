"""Decoder modules over the output layer's ``[T, B, K]`` sequence (docs/method.md section 4).

``forward(out)`` gives the logits ``[B, K]``; ``partial_logits(out)`` gives ``[T, B, K]``, the logits after
stopping at step k = 1..T (accuracy-vs-step, early exit). The prediction is ``argmax``, which returns the
lowest class index among equal logits: ties are broken deterministically.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ttfs_lab.functional import decoding
from ttfs_lab.registry import Registry

DECODERS: Registry[type["Decoder"]] = Registry("decoder")


class Decoder(nn.Module):
    """Base: ``spiking`` tells the model builder whether the output layer has TTFS neurons; ``uses_potential``
    whether the decoder also reads that layer's membrane potential (``partial_logits(out, potential)``)."""

    spiking = True
    uses_potential = False

    def __init__(self, T: int, scale: float = 8.0, learnable_scale: bool = False) -> None:
        super().__init__()
        self.T = T
        scale_t = torch.tensor(float(scale))
        if learnable_scale:
            self.scale = nn.Parameter(scale_t)
        else:
            self.register_buffer("scale", scale_t)

    def partial_logits(self, out: Tensor, potential: Optional[Tensor] = None) -> Tensor:
        raise NotImplementedError

    def forward(self, out: Tensor, potential: Optional[Tensor] = None) -> Tensor:
        if out.dim() != 3 or out.shape[0] != self.T:
            raise ValueError(f"decoder expects output of shape [T={self.T}, B, classes], got {tuple(out.shape)}")
        if self.uses_potential and potential is None:
            raise ValueError(f"decoder {type(self).__name__} needs the output layer's membrane potential")
        return self.partial_logits(out, potential)[-1]


@DECODERS.register("twd")
class TemporalWeightingDecoder(Decoder):
    """Temporal weighting decoder (docs/method.md, "Output decoding"):

        logits_c = kappa sum_t w_t S_c[t]  +  rho V_c[t*] / theta        (rho = ``potential``)

    with w_t strictly decreasing (``linear`` (T - t + 1)/T, ``exponential`` decay^(t-1), or ``learnable``), S the
    output spikes and V_c[t*] the output neuron's membrane potential at the sample's decision step t* (its first
    output spike; T if none). The spike term rewards early firing; on its own it is, for linear w, the first-spike
    readout shifted by a constant. The potential term orders the classes that fire at the same step (in discrete
    time up to a fifth of the test samples have such ties) and gives every class a gradient at the decision.
    The decision stays the first output spike: at t* the classes that fired have V >= theta > V of the others.
    Any rho > 0 gives the same predictions (the potential only orders classes that fired together); rho sets how
    much the potential shapes training. ``potential=0`` is the spike term alone."""

    def __init__(self, T: int, scale: float = 8.0, learnable_scale: bool = False, weights: str = "linear",
                 decay: float = 0.8, potential: float = 0.1, theta: float = 1.0) -> None:
        super().__init__(T, scale, learnable_scale)
        w = decoding.twd_weights(T, "linear" if weights == "learnable" else weights, decay)
        self.learnable = weights == "learnable"
        if potential < 0:
            raise ValueError(f"model.twd_potential={potential} is not valid; use 0 (spikes only) or a positive weight")
        self.uses_potential, self.potential_weight, self.theta = potential > 0, float(potential), theta
        if self.learnable:
            self.raw_weights = nn.Parameter(decoding.inverse_monotone_weights(w))
        else:
            self.register_buffer("fixed_weights", w)

    @property
    def weights(self) -> Tensor:
        return decoding.monotone_weights(self.raw_weights) if self.learnable else self.fixed_weights

    def partial_logits(self, out: Tensor, potential: Optional[Tensor] = None) -> Tensor:
        logits = decoding.weighted_partial_logits(out, self.weights.to(out.dtype), self.scale)
        if self.uses_potential:
            logits = logits + decoding.decision_potential_partial(out, potential) * (self.potential_weight / self.theta)
        return logits


@DECODERS.register("first_spike")
class FirstSpikeDecoder(Decoder):
    """Classic TTFS readout: logit = -(kappa / T) * spike step, T + 1 when silent."""

    def partial_logits(self, out: Tensor, potential: Optional[Tensor] = None) -> Tensor:
        return decoding.first_spike_partial_logits(out, self.scale)


@DECODERS.register("count")
class SpikeCountDecoder(Decoder):
    """Rate readout of a single-spike layer: logit = kappa * (fired or not)."""

    def partial_logits(self, out: Tensor, potential: Optional[Tensor] = None) -> Tensor:
        return out.cumsum(0) * self.scale


@DECODERS.register("membrane")
class MembraneDecoder(Decoder):
    """Non-spiking output layer (sibling paper): logits = kappa * V[t], V the integrated output current."""

    spiking = False

    def __init__(self, T: int, scale: float = 1.0, learnable_scale: bool = False) -> None:
        super().__init__(T, scale, learnable_scale)

    def partial_logits(self, out: Tensor, potential: Optional[Tensor] = None) -> Tensor:
        return out.cumsum(0) * self.scale


@DECODERS.register("twd_membrane")
class WeightedMembraneDecoder(MembraneDecoder):
    """TWD over a non-spiking output layer (docs/method.md section 4, the second reading): the temporal outputs
    are the output potentials V[t], aggregated with the strictly decreasing TWD weights,

        logits after step k = kappa sum_{t <= k} w_t V_c[t] / sum_{t <= T} w_t.

    Written in the currents, sum_t w_t V[t] = sum_s I[s] sum_{t >= s} w_t: a current counts more the earlier it
    arrives, so the layers below are pushed to fire early. Like the membrane readout it has no decision before T;
    its latency is the accuracy when stopping after step k."""

    def __init__(self, T: int, scale: float = 1.0, learnable_scale: bool = False, weights: str = "linear",
                 decay: float = 0.8) -> None:
        super().__init__(T, scale, learnable_scale)
        if weights == "learnable":
            raise ValueError("model.twd_weights=learnable is not available for decoder twd_membrane; use linear or exponential")
        self.register_buffer("fixed_weights", decoding.twd_weights(T, weights, decay))

    def partial_logits(self, out: Tensor, potential: Optional[Tensor] = None) -> Tensor:
        w = self.fixed_weights.to(out.dtype)
        return (out.cumsum(0) * w.view(-1, 1, 1)).cumsum(0) * (self.scale / w.sum())


def build_decoder(name: str, T: int, scale: float | None = None, learnable_scale: bool = False,
                  twd_weights: str = "linear", twd_decay: float = 0.8, twd_potential: float = 0.1,
                  theta: float = 1.0) -> Decoder:
    cls = DECODERS[name]
    kwargs = {} if scale is None else {"scale": scale}
    if cls is TemporalWeightingDecoder:
        kwargs.update(weights=twd_weights, decay=twd_decay, potential=twd_potential, theta=theta)
    elif cls is WeightedMembraneDecoder:
        kwargs.update(weights=twd_weights, decay=twd_decay)
    return cls(T, learnable_scale=learnable_scale, **kwargs)
