"""The network configuration, defined once: ``NetConfig`` and the default spec of each dataset.

One frozen dataclass holds every setting of a TTFS network. It is the schema of the ``model:`` section of
``configs/*.yaml`` and of ``--model.<setting>`` (``TTFSClassifier(**net)`` passes its keyword arguments to
``NetConfig``; LightningCLI's parser follows them here, so every field is a flat, typed ``model.<field>`` with the
default and the help below), it is what ``TTFSNet`` is built from (``net.config``), and the sweep space types and
checks its ``model.<field>`` knobs with it (``check_setting``). The settings the data decides (``dataset``,
``input_shape``, ``num_classes``, ``frames``) stay on the LightningModule; ``resolve`` applies them.

Each setting is checked once, here or by the component built from it (the registries name the choices).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Optional

DEFAULT_SPECS = {
    "mnist5k": "c64-ap-c128-ap-fc256-fc10",
    "mnist": "c128-ap-c128-ap-fc2048-fc10",
    "fashion_mnist": "c128-ap-c128-ap-fc2048-fc10",
    "cifar10": "c64-ap-c128-ap-c256-c256-ap-c512-c512-ap-c512-c512-ap-fc512-fc10",
    "cifar100": "c64-ap-c128-ap-c256-c256-ap-c512-c512-ap-c512-c512-ap-fc512-fc100",
    "dvsgesture": "c128-ap-c128-ap-c128-ap-c128-ap-c128-ap-fc512-fc11",
}


@dataclass(frozen=True)
class NetConfig:
    """The settings of a TTFS network (docs/method.md sections 1-5 and 7).

    Args:
        spec: layer spec string (docs/method.md section 7; ``ttfs_lab/models.py``); None = the dataset's default
            (``DEFAULT_SPECS``).
        T: time steps (for event data the DataModule's ``frames`` replaces it).
        encoder: direct | latency | frames; None = direct, or frames for event data.
        decoder: twd | first_spike | count | membrane | twd_membrane (docs/method.md section 4).
        logit_scale: kappa; None = the decoder's default.
        learnable_scale: make kappa a parameter.
        twd_weights: linear | exponential | learnable: TWD's weights over time.
        twd_decay: base of the exponential weights.
        twd_potential: weight rho of the output potential at the decision step in TWD (0 = spikes only).
        init: ettfs | kaiming | default (docs/method.md section 2).
        init_gain: the initializer's gain; None = the scheme's default (ETTFS 1/2, Kaiming and default 1;
            ``ttfs_lab.init.DEFAULT_GAINS``).
        init_distribution: normal | uniform.
        ettfs_first_layer_t: under direct encoding, the first layer gets ETTFS's T factor too (default). False
            gives it variance gain / fan_in, since its analog input is there at every step (measured worse and
            later; docs/method.md section 2).
        norm: weight normalization (docs/method.md section 3).
        affine: learnable gamma / beta of the normalization.
        pool: None keeps the spec's ap / mp; avg or max replaces every pool (ablation; docs/method.md section 5).
        theta: the neuron's threshold (docs/method.md section 1).
        output_theta: the output layer's threshold; None = theta. Under a spiking decoder the decision waits for
            the first output spike, so a higher output threshold decides later on more evidence (docs/method.md
            section 4).
        leak: the neuron's leak factor lambda, 0 < leak <= 1 (1 = integrate-and-fire).
        surrogate: sigmoid | atan | triangle: the surrogate gradient.
        alpha: the surrogate's sharpness.
        mode: auto | parallel | step: the execution (``auto`` = parallel; ``ttfs_lab/plan.py``).
        sparse: in parallel mode on CPU, compute the layers whose input is spikes as sparse x dense products when
            the input is sparse enough (``ttfs_lab.functional.sparse``); False keeps every product dense.
    """

    spec: Optional[str] = None
    T: int = 8
    encoder: Optional[str] = None
    decoder: str = "twd"
    logit_scale: Optional[float] = None
    learnable_scale: bool = False
    twd_weights: str = "linear"
    twd_decay: float = 0.8
    twd_potential: float = 0.1
    init: str = "ettfs"
    init_gain: Optional[float] = None
    init_distribution: str = "normal"
    ettfs_first_layer_t: bool = True
    norm: bool = True
    affine: bool = True
    pool: Optional[str] = None
    theta: float = 1.0
    output_theta: Optional[float] = None
    leak: float = 1.0
    surrogate: str = "sigmoid"
    alpha: float = 4.0
    mode: str = "auto"
    sparse: bool = True

    def __post_init__(self) -> None:
        """The checks no component makes; the rest is checked by what is built (decoder, neuron, initializer)."""
        from ttfs_lab.functional.neuron import MODES
        from ttfs_lab.nn.pooling import POOLS
        from ttfs_lab.registry import check_choice

        if self.T < 1:
            raise ValueError(f"model.T={self.T} is not valid; use T >= 1")
        check_choice("model.mode", self.mode, MODES)
        if self.output_theta is not None and self.output_theta <= 0:
            raise ValueError(f"model.output_theta={self.output_theta} is not valid; the threshold must be > 0 (or null = model.theta)")
        if self.pool is not None:
            check_choice("model.pool", self.pool, POOLS.names())

    def resolve(self, dataset: Optional[str] = None, frames: Optional[int] = None) -> "NetConfig":
        """The configuration the network is built from: the dataset's default spec when ``spec`` is None, the init
        scheme's default gain when ``init_gain`` is None; for event data (``frames`` given) T = frames and the
        encoder defaults to ``frames``, else to ``direct``."""
        from ttfs_lab.init import default_gain

        spec = self.spec if self.spec is not None else default_spec(dataset)
        encoder = self.encoder or ("frames" if frames is not None else "direct")
        gain = default_gain(self.init) if self.init_gain is None else self.init_gain
        return dataclasses.replace(self, spec=spec, encoder=encoder, T=self.T if frames is None else frames,
                                   init_gain=gain)

    def settings(self) -> dict[str, Any]:
        """Every field by name (flat ``model.<field>`` values: hyperparameters, run records)."""
        return dataclasses.asdict(self)


def default_spec(dataset: Optional[str]) -> str:
    """The dataset's default spec; an unknown dataset is a one-line ``ValueError``."""
    if dataset not in DEFAULT_SPECS:
        raise ValueError(f"no default model.spec for dataset {dataset!r}; set model.spec or use one of: {', '.join(DEFAULT_SPECS)}")
    return DEFAULT_SPECS[dataset]


def setting_types() -> dict[str, tuple[type, bool]]:
    """Field -> (its type: int | float | bool | str, whether None is allowed), from the annotations."""
    types = {}
    for name, hint in typing.get_type_hints(NetConfig).items():
        union = typing.get_origin(hint) is typing.Union
        kind = next(a for a in typing.get_args(hint) if a is not type(None)) if union else hint
        types[name] = (kind, union)
    return types


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def check_setting(name: str, value: Any) -> None:
    """Raise a one-line ``ValueError`` unless ``value`` is a valid ``model.<name>`` network setting (its type,
    then ``NetConfig``'s checks). ``name`` must be a field (``setting_types()``)."""
    kind, optional = setting_types()[name]
    exact = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    widened = kind is float and isinstance(value, int) and not isinstance(value, bool)
    if not (exact or widened or (optional and value is None)):
        allowed = _TYPE_WORDS[kind] + (" or null" if optional else "")
        raise ValueError(f"model.{name}={value!r} is not valid; use {allowed}")
    NetConfig(**{name: value})
