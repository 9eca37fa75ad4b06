"""Weight initializers (docs/method.md section 2).

* ``ettfs``: w ~ N(0, gain * T / fan_in), gain 1/2 by default. An input neuron fires once in T steps, so a TTFS
  layer sees about T times fewer active inputs per step than an ANN layer; the T factor keeps the post-synaptic
  current, and with it the firing fraction, balanced across depth. Gain 1/2 was measured better than the first
  version's gain 1 at 4, 9 and 15 TTFS layers; at 15 only gain 1/2 learns (docs/method.md section 2).
* ``kaiming``: w ~ N(0, gain * 2 / fan_in) (He et al.; gain 1 = the ReLU setting).
* ``default``: PyTorch's own layer initialisation (kaiming-uniform with a = sqrt(5)), for comparison.

``distribution='uniform'`` draws from U(-a, a) with the same variance (a = sqrt(3) std).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from ttfs_lab.registry import Registry, check_choice

InitStd = Callable[[int, int, float], float]
INITS: Registry[InitStd] = Registry("init")
DISTRIBUTIONS = ("normal", "uniform")
# the gain each scheme takes when ``model.init_gain`` is not set (docs/method.md section 2)
DEFAULT_GAINS = {"ettfs": 0.5, "kaiming": 1.0, "default": 1.0}


@INITS.register("ettfs")
def ettfs_std(fan_in: int, T: int, gain: float = 1.0) -> float:
    """sqrt(gain * T / fan_in)."""
    return math.sqrt(gain * T / fan_in)


@INITS.register("kaiming")
def kaiming_std(fan_in: int, T: int, gain: float = 1.0) -> float:
    """sqrt(gain * 2 / fan_in); independent of T."""
    return math.sqrt(gain * 2.0 / fan_in)


@INITS.register("default")
def default_std(fan_in: int, T: int, gain: float = 1.0) -> float:
    """The std of PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)): 1 / sqrt(3 fan_in)."""
    return math.sqrt(gain / (3.0 * fan_in))


def fan_in(weight: Tensor) -> int:
    """Inputs per output unit of a linear ``[out, in]`` or conv ``[out, in, kh, kw]`` weight."""
    return weight[0].numel()


def default_gain(scheme: str) -> float:
    """The gain ``scheme`` uses when none is given (``DEFAULT_GAINS``); an unknown scheme is a one-line error."""
    INITS[scheme]
    return DEFAULT_GAINS.get(scheme, 1.0)


def init_std(scheme: str, weight: Tensor, T: int, gain: float | None = None) -> float:
    """The standard deviation the scheme gives this weight (``gain`` None: the scheme's default gain)."""
    gain = default_gain(scheme) if gain is None else gain
    if gain <= 0:
        raise ValueError(f"model.init_gain={gain} is not valid; the gain must be > 0")
    return INITS[scheme](fan_in(weight), T, gain)


@torch.no_grad()
def init_weight_(weight: Tensor, scheme: str, T: int, gain: float | None = None,
                 distribution: str = "normal") -> Tensor:
    """Fill ``weight`` in place by ``scheme``; returns it."""
    check_choice("model.init_distribution", distribution, DISTRIBUTIONS)
    std = init_std(scheme, weight, T, gain)
    if scheme == "default":
        return nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if distribution == "uniform":
        bound = math.sqrt(3.0) * std
        return weight.uniform_(-bound, bound)
    return weight.normal_(0.0, std)
