"""Decoder modules over the output layer's ``[T, B, K]`` sequence (METHOD.md section 4).

``forward(out)`` gives the logits ``[B, K]``; ``partial_logits(out)`` gives ``[T, B, K]``, the logits after
stopping at step k = 1..T (accuracy-vs-step, early exit). The prediction is ``argmax``, which returns the
lowest class index among equal logits: ties are broken deterministically.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ttfs_lab.functional import decoding
from ttfs_lab.registry import Registry

DECODERS: Registry[type["Decoder"]] = Registry("decoder")


class Decoder(nn.Module):
    """Base: ``spiking`` tells the model builder whether the output layer has TTFS neurons."""

    spiking = True

    def __init__(self, T: int, scale: float = 8.0, learnable_scale: bool = False) -> None:
        super().__init__()
        self.T = T
        scale_t = torch.tensor(float(scale))
        if learnable_scale:
            self.scale = nn.Parameter(scale_t)
        else:
            self.register_buffer("scale", scale_t)

    def partial_logits(self, out: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, out: Tensor) -> Tensor:
        if out.dim() != 3 or out.shape[0] != self.T:
            raise ValueError(f"decoder expects output of shape [T={self.T}, B, classes], got {tuple(out.shape)}")
        return self.partial_logits(out)[-1]


@DECODERS.register("twd")
class TemporalWeightingDecoder(Decoder):
    """logits_c = kappa sum_t w_t S_c[t]; weights ``linear`` (T - t + 1)/T, ``exponential`` decay^(t-1), or
    ``learnable`` (initialized linear, kept strictly decreasing by a softplus reverse-cumsum)."""

    def __init__(self, T: int, scale: float = 8.0, learnable_scale: bool = False, weights: str = "linear",
                 decay: float = 0.8) -> None:
        super().__init__(T, scale, learnable_scale)
        w = decoding.twd_weights(T, "linear" if weights == "learnable" else weights, decay)
        self.learnable = weights == "learnable"
        if self.learnable:
            self.raw_weights = nn.Parameter(decoding.inverse_monotone_weights(w))
        else:
            self.register_buffer("fixed_weights", w)

    @property
    def weights(self) -> Tensor:
        return decoding.monotone_weights(self.raw_weights) if self.learnable else self.fixed_weights

    def partial_logits(self, out: Tensor) -> Tensor:
        return decoding.weighted_partial_logits(out, self.weights.to(out.dtype), self.scale)


@DECODERS.register("first_spike")
class FirstSpikeDecoder(Decoder):
    """Classic TTFS readout: logit = -(kappa / T) * spike step, T + 1 when silent."""

    def partial_logits(self, out: Tensor) -> Tensor:
        return decoding.first_spike_partial_logits(out, self.scale)


@DECODERS.register("count")
class SpikeCountDecoder(Decoder):
    """Rate readout of a single-spike layer: logit = kappa * (fired or not)."""

    def partial_logits(self, out: Tensor) -> Tensor:
        return out.cumsum(0) * self.scale


@DECODERS.register("membrane")
class MembraneDecoder(Decoder):
    """Non-spiking output layer (sibling paper): logits = kappa * V[t], V the integrated output current."""

    spiking = False

    def __init__(self, T: int, scale: float = 1.0, learnable_scale: bool = False) -> None:
        super().__init__(T, scale, learnable_scale)

    def partial_logits(self, out: Tensor) -> Tensor:
        return out.cumsum(0) * self.scale


def build_decoder(name: str, T: int, scale: float | None = None, learnable_scale: bool = False,
                  twd_weights: str = "linear", twd_decay: float = 0.8) -> Decoder:
    cls = DECODERS[name]
    kwargs = {} if scale is None else {"scale": scale}
    if cls is TemporalWeightingDecoder:
        kwargs.update(weights=twd_weights, decay=twd_decay)
    return cls(T, learnable_scale=learnable_scale, **kwargs)
