"""Spec string -> TTFS network (docs/method.md section 7).

A spec is tokens joined by ``-``:

* ``c<channels>[k<kernel>][p<padding>][s<stride>]``: normalized conv (default 3x3, 'same' padding) + TTFS neuron;
* ``ap[<k>]`` / ``mp[<k>]``: average / max pooling (window and stride k, default 2) of the spike maps;
* ``fc<units>``: normalized linear + TTFS neuron; the last token is the output layer (units = classes).

Example: ``c32-ap-c64-ap-fc256-fc10``. The network maps a batch (``[B, C, H, W]`` images, or
``[B, T, C, H, W]`` event frames with ``encoder='frames'``) through an encoder, the layers over ``[T, B, ...]``
and a decoder to logits, in one of two executions that compute the same function:
``parallel`` (each layer over all T at once) or ``step`` (all layers advance together, one step at a time, the
paper's plain reference); ``auto`` (the default) is ``parallel`` (``functional.neuron.resolve_mode``).

The parallel execution (``make bench`` measures it): the first synaptic layer under direct encoding runs once
(``[1, B, ...]``, broadcast by the neuron without a copy); each layer runs over ``[T * B, ...]`` rows; a neuron
followed by an average pool is one fused op (``TTFSNeuron.forward_pooled``) unless spike statistics are
recorded; on CPU the neuron is a fused numba kernel and the layers whose input is spikes run as sparse x dense
products when the input is sparse enough (``sparse=True``, ``functional.sparse``).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from ttfs_lab.functional.decoding import membrane_potential
from ttfs_lab.functional.encoding import ENCODERS
from ttfs_lab.functional.neuron import MODES, NeuronParams
from ttfs_lab.functional.ops import Synapse, synaptic_ops
from ttfs_lab.functional.sparse import spike_conv2d, spike_linear
from ttfs_lab.functional.stats import spike_summary
from ttfs_lab.nn.decoders import build_decoder
from ttfs_lab.nn.neuron import TTFSNeuron
from ttfs_lab.nn.pooling import POOL_TOKENS, POOLS
from ttfs_lab.nn.synapse import NormConv2d, NormLinear
from ttfs_lab.registry import check_choice

DEFAULT_SPECS = {
    "mnist5k": "c64-ap-c128-ap-fc256-fc10",
    "mnist": "c128-ap-c128-ap-fc2048-fc10",
    "fashion_mnist": "c128-ap-c128-ap-fc2048-fc10",
    "cifar10": "c64-ap-c128-ap-c256-c256-ap-c512-c512-ap-c512-c512-ap-fc512-fc10",
    "cifar100": "c64-ap-c128-ap-c256-c256-ap-c512-c512-ap-c512-c512-ap-fc512-fc100",
    "dvsgesture": "c128-ap-c128-ap-c128-ap-c128-ap-c128-ap-fc512-fc11",
}
SPEC_GRAMMAR = "c<channels>[k<kernel>][p<padding>][s<stride>], ap[<k>], mp[<k>], fc<units>"
_TOKEN = re.compile(
    r"^(?:c(?P<c>[1-9]\d*)(?:k(?P<k>[1-9]\d*))?(?:p(?P<p>\d+))?(?:s(?P<s>[1-9]\d*))?"
    r"|(?P<pool>ap|mp)(?P<pk>[1-9]\d*)?|fc(?P<fc>[1-9]\d*))$"
)


@dataclass(frozen=True)
class LayerSpec:
    """One parsed token: kind 'conv' | 'pool' | 'fc'."""

    token: str
    kind: str
    width: int = 0
    kernel: int = 3
    padding: int = 1
    stride: int = 1
    pool: str = "avg"


def parse_spec(spec: str) -> list[LayerSpec]:
    """Parse a spec string; a bad one raises a one-line ``ValueError`` naming the token and the grammar."""
    tokens = [t for t in spec.strip().split("-")] if spec.strip() else []
    layers: list[LayerSpec] = []
    for token in tokens:
        m = _TOKEN.match(token)
        if m is None:
            raise ValueError(f"invalid model.spec {spec!r}: token {token!r} is not one of {SPEC_GRAMMAR}")
        if m["c"]:
            k = int(m["k"] or 3)
            layers.append(LayerSpec(token, "conv", int(m["c"]), k, int(m["p"] if m["p"] is not None else k // 2), int(m["s"] or 1)))
        elif m["pool"]:
            k = int(m["pk"] or 2)
            layers.append(LayerSpec(token, "pool", kernel=k, stride=k, padding=0, pool=POOL_TOKENS[m["pool"]]))
        else:
            layers.append(LayerSpec(token, "fc", int(m["fc"])))
    if not layers or layers[-1].kind != "fc":
        raise ValueError(f"invalid model.spec {spec!r}: it must end with the output layer fc<classes>, e.g. c32-ap-fc10")
    seen_fc = False
    for layer in layers:
        if seen_fc and layer.kind != "fc":
            raise ValueError(f"invalid model.spec {spec!r}: {layer.token!r} after a fully connected layer; convs and pools come first")
        seen_fc |= layer.kind == "fc"
    return layers


class NetOutput(NamedTuple):
    logits: Tensor  # [B, K]
    out: Tensor  # [T, B, K]: output spikes (or currents for the membrane decoder)
    stats: Optional[dict[str, dict[str, Tensor]]]  # layer name -> spike_summary, when recorded
    potential: Optional[Tensor] = None  # [T, B, K]: the spiking output layer's potential, if the decoder reads it
    ops: Optional[dict[str, Tensor]] = None  # synaptic layer -> [T | 1, B] operations per step, when recorded

    def partial_logits(self, decoder) -> Tensor:
        """``[T, B, K]``: the logits had inference stopped after step k (detached)."""
        potential = None if self.potential is None else self.potential.detach()
        return decoder.partial_logits(self.out.detach(), potential)


class TTFSNet(nn.Module):
    """A TTFS network built from a spec string; every component is chosen by a typed argument.

    Args:
        spec: layer spec string (see module docstring).
        input_shape: (C, H, W) of one image or frame.
        num_classes: classes; must equal the width of the last ``fc``.
        T: time steps.
        encoder: ``direct`` | ``latency`` | ``frames`` (event data).
        decoder: ``twd`` | ``first_spike`` | ``count`` | ``membrane``.
        logit_scale: kappa; None = the decoder's default. learnable_scale: make kappa a parameter.
        twd_weights: ``linear`` | ``exponential`` | ``learnable``; twd_decay: base of the exponential.
        twd_potential: weight rho of the output potential at the decision step in TWD (0 = spikes only; docs/method.md).
        init: ``ettfs`` | ``kaiming`` | ``default``; init_gain: its gain; init_distribution: normal | uniform.
        ettfs_first_layer_t: under direct encoding, the first layer gets ETTFS's T factor too (default). False
            gives it variance gain / fan_in, since its analog input is there at every step (measured worse and
            later; docs/method.md section 2).
        norm: weight normalization; affine: learnable gamma / beta.
        pool: None keeps the spec's ``ap``/``mp``; ``avg`` or ``max`` replaces every pool (ablation).
        theta, leak, surrogate, alpha: the neuron (docs/method.md section 1).
        mode: ``auto`` | ``parallel`` | ``step``.
        sparse: in parallel mode on CPU, compute the layers whose input is spikes as sparse x dense products when
            the input is sparse enough (``ttfs_lab.functional.sparse``); False keeps every product dense.
    """

    def __init__(self, spec: str, input_shape: tuple[int, int, int], num_classes: int, T: int = 8,
                 encoder: str = "direct", decoder: str = "twd", logit_scale: Optional[float] = None,
                 learnable_scale: bool = False, twd_weights: str = "linear", twd_decay: float = 0.8,
                 twd_potential: float = 0.1, init: str = "ettfs", init_gain: float = 1.0,
                 init_distribution: str = "normal", ettfs_first_layer_t: bool = True, norm: bool = True,
                 affine: bool = True, pool: Optional[str] = None, theta: float = 1.0, leak: float = 1.0,
                 surrogate: str = "sigmoid", alpha: float = 4.0, mode: str = "auto", sparse: bool = True) -> None:
        super().__init__()
        if T < 1:
            raise ValueError(f"model.T={T} is not valid; use T >= 1")
        self.T, self.encoder_name, self.sparse = T, encoder, sparse
        self.ettfs_first_layer_t = ettfs_first_layer_t
        self.encoder = ENCODERS[encoder]
        self.mode = check_choice("model.mode", mode, MODES)
        if pool is not None:
            check_choice("model.pool", pool, POOLS.names())
        self.decoder = build_decoder(decoder, T, logit_scale, learnable_scale, twd_weights, twd_decay, twd_potential,
                                     theta)
        layers = parse_spec(spec)
        if layers[-1].width != num_classes:
            raise ValueError(f"model.spec {spec!r} ends in {layers[-1].token} but the dataset has {num_classes} classes; end it with fc{num_classes}")
        params = NeuronParams(theta, leak, surrogate, alpha)
        synapse_kw = dict(T=T, init=init, init_gain=init_gain, norm=norm, affine=affine, distribution=init_distribution)
        self.stages = nn.ModuleDict()
        self.synapses: dict[str, Synapse] = {}  # synaptic layer -> its geometry, for operation counts (section 10)
        self._build(layers, tuple(input_shape), params, synapse_kw, pool)
        self.output_params = params
        last = list(self.stages)[-1]
        # the output neuron whose potential the decoder reads (None: the decoder reads spikes only)
        self.potential_layer = last if self.decoder.spiking and self.decoder.uses_potential else None

    def _build(self, layers, shape, params, synapse_kw, pool_override) -> None:
        first_kw = dict(synapse_kw)
        if self.encoder_name == "direct" and not self.ettfs_first_layer_t:
            first_kw["T"] = 1  # the analog input is there at every step: no T factor (the option; section 2)
        events = 1  # spikes one input unit stands for: k^2 per average pool since the last synapse (section 10)
        for i, layer in enumerate(layers, start=1):
            kw = first_kw if i == 1 else synapse_kw
            name = f"layer{i}_{layer.token}"
            last = i == len(layers)
            if layer.kind == "pool":
                kind = pool_override or layer.pool
                self.stages[name] = POOLS[kind](layer.kernel, layer.stride)
                shape = (shape[0], shape[1] // layer.kernel, shape[2] // layer.kernel)
                events *= layer.kernel ** 2 if kind == "avg" else 1
            elif layer.kind == "conv":
                self.stages[f"{name}_syn"] = NormConv2d(shape[0], layer.width, kernel_size=layer.kernel,
                                                        padding=layer.padding, stride=layer.stride, **kw)
                h = (shape[1] + 2 * layer.padding - layer.kernel) // layer.stride + 1
                w = (shape[2] + 2 * layer.padding - layer.kernel) // layer.stride + 1
                self._add_synapse(f"{name}_syn", "conv", shape, (layer.width, h, w), events, layer)
                shape, events = (layer.width, h, w), 1
            else:
                if len(shape) == 3:
                    self.stages[f"{name}_flat"] = nn.Flatten()
                    shape = (shape[0] * shape[1] * shape[2],)
                self.stages[f"{name}_syn"] = NormLinear(shape[0], layer.width, **kw)
                self._add_synapse(f"{name}_syn", "fc", shape, (layer.width,), events, layer)
                shape, events = (layer.width,), 1
            if min(shape) < 1:
                raise ValueError(f"model.spec: {layer.token} ({name}) shrinks the input to nothing {shape}; use fewer pools or a larger input")
            if layer.kind != "pool" and not (last and not self.decoder.spiking):
                self.stages[name] = TTFSNeuron(self.T, params, self.mode)

    def _add_synapse(self, name: str, kind: str, in_shape, out_shape, events: int, layer: LayerSpec) -> None:
        analog = not self.synapses and self.encoder_name == "direct"  # the first layer reads the analog image
        geometry = dict(kernel=layer.kernel, stride=layer.stride, padding=layer.padding) if kind == "conv" else {}
        self.synapses[name] = Synapse(kind, tuple(in_shape), tuple(out_shape), events_per_unit=events,
                                      analog=analog, **geometry)

    # --- execution -------------------------------------------------------------------------------------------
    def forward(self, x: Tensor, record: bool = False, mode: Optional[str] = None) -> NetOutput:
        """``x``: ``[B, C, H, W]`` (or ``[B, T, C, H, W]`` frames) -> logits ``[B, K]`` (+ output, stats)."""
        h = self.encode(x)
        mode = check_choice("mode", mode or self.mode, MODES)
        ops = {} if record else None
        out, stats, currents = (self._forward_step if mode == "step" else self._forward_parallel)(h, record, ops)
        if out.shape[0] == 1:
            out = out.expand(self.T, *out.shape[1:])
        potential = None if currents is None else membrane_potential(currents, self.output_params.lam)
        ops = None if ops is None else {name: torch.cat(seq) for name, seq in ops.items()}
        return NetOutput(self.decoder(out, potential), out, stats, potential, ops)

    def encode(self, x: Tensor) -> Tensor:
        expected = 5 if self.encoder_name == "frames" else 4
        if x.dim() != expected:
            layout = "[B, T, C, H, W]" if expected == 5 else "[B, C, H, W]"
            raise ValueError(f"input must be {layout} for encoder {self.encoder_name!r}, got shape {tuple(x.shape)}")
        return self.encoder(x, self.T)

    def _forward_parallel(self, h: Tensor, record: bool, ops: Optional[dict] = None):
        """Each layer over all T steps at once (``[T * B, ...]``); a neuron followed by an average pool is one fused
        op unless statistics are recorded; layers whose input is spikes may run as sparse products. ``ops`` (when
        recording) collects each synaptic layer's operations per step (``_record_ops``)."""
        stats = {} if record else None
        stages = list(self.stages.items())
        spikes = self.encoder_name != "direct"  # latency spikes and event frames are sparse too
        currents = None
        i = 0
        while i < len(stages):
            name, stage = stages[i]
            pool_k = _fusable_pool(stages[i + 1][1]) if i + 1 < len(stages) and not record else None
            if name == self.potential_layer:
                currents = h.expand(self.T, *h.shape[1:]) if h.shape[0] == 1 else h
            if isinstance(stage, TTFSNeuron):
                if pool_k and h.dim() == 5:
                    h = stage.forward_pooled(h, pool_k)  # neuron + average pool in one pass
                    i += 1
                else:
                    h = stage(h)
                spikes = True
            else:
                self._record_ops(ops, name, h)
                steps, batch = h.shape[:2]
                h = _synapse_forward(stage, h.flatten(0, 1), spikes and self.sparse)
                h = h.view(steps, batch, *h.shape[1:])
            if record and self._is_recorded(name, stage) and h.shape[0] == self.T:
                stats[name] = spike_summary(h)
            i += 1
        return h, stats, currents

    def _forward_step(self, h: Tensor, record: bool, ops: Optional[dict] = None):
        stages = list(self.stages.items())
        start = 0
        if h.shape[0] == 1:  # time-invariant input: the stages before the first neuron run once
            z0 = h[0]
            while start < len(stages) and not isinstance(stages[start][1], TTFSNeuron):
                self._record_ops(ops, stages[start][0], z0.unsqueeze(0))
                z0 = stages[start][1](z0)
                start += 1
        states: dict[str, object] = {}
        seqs: dict[str, list[Tensor]] = {}
        for t in range(self.T):
            z = z0 if h.shape[0] == 1 else h[t]
            for name, stage in stages[(start if h.shape[0] == 1 else 0):]:
                if name == self.potential_layer:
                    seqs.setdefault("__currents__", []).append(z)
                if isinstance(stage, TTFSNeuron):
                    z, states[name] = stage.step(z, states.get(name))
                else:
                    self._record_ops(ops, name, z.unsqueeze(0))
                    z = stage(z)
                if record and self._is_recorded(name, stage):
                    seqs.setdefault(name, []).append(z)
            seqs.setdefault("__out__", []).append(z)
        out = torch.stack(seqs.pop("__out__"))
        currents = torch.stack(seqs.pop("__currents__")) if "__currents__" in seqs else None
        stats = {name: spike_summary(torch.stack(seq)) for name, seq in seqs.items()} if record else None
        return out, stats, currents

    def _record_ops(self, ops: Optional[dict], name: str, h: Tensor) -> None:
        """Append the operations of synaptic layer ``name`` on its input ``h`` (``[steps, B, ...]``) to ``ops``."""
        if ops is not None and name in self.synapses:
            ops.setdefault(name, []).append(synaptic_ops(self.synapses[name], h))

    @staticmethod
    def _is_recorded(name: str, stage: nn.Module) -> bool:
        return isinstance(stage, (TTFSNeuron, nn.AvgPool2d, nn.MaxPool2d))

    # --- introspection and inference -------------------------------------------------------------------------
    def recorded_layers(self) -> list[str]:
        return [n for n, s in self.stages.items() if self._is_recorded(n, s)]

    def set_mode(self, mode: str) -> "TTFSNet":
        self.mode = check_choice("model.mode", mode, MODES)
        for stage in self.stages.values():
            if isinstance(stage, TTFSNeuron):
                stage.mode = mode
        return self

    def fold(self) -> "TTFSNet":
        """A copy whose normalized layers are folded into plain ``nn.Conv2d`` / ``nn.Linear`` (same spikes)."""
        folded = copy.deepcopy(self)
        for name, stage in folded.stages.items():
            if isinstance(stage, (NormConv2d, NormLinear)):
                folded.stages[name] = stage.fold()
        return folded


def _synapse_forward(stage: nn.Module, x: Tensor, sparse: bool) -> Tensor:
    """``stage(x)``; for a conv / linear layer whose input ``x`` is spikes, the sparse product where it applies."""
    if sparse:
        if isinstance(stage, NormConv2d):
            return spike_conv2d(x, stage.effective_weight(), stage.bias, stage.stride, stage.padding)
        if isinstance(stage, NormLinear):
            return spike_linear(x, stage.effective_weight(), stage.bias)
        if (isinstance(stage, nn.Conv2d) and stage.groups == 1 and stage.dilation == (1, 1)
                and stage.padding_mode == "zeros" and not isinstance(stage.padding, str)):
            return spike_conv2d(x, stage.weight, stage.bias, stage.stride, stage.padding)
        if isinstance(stage, nn.Linear):
            return spike_linear(x, stage.weight, stage.bias)
    return stage(x)


def _fusable_pool(stage: nn.Module) -> Optional[int]:
    """k if ``stage`` is a k x k average pool with stride k, no padding and no divisor override, else None."""
    if not isinstance(stage, nn.AvgPool2d) or stage.ceil_mode or stage.divisor_override is not None:
        return None
    k, stride, pad = (v if isinstance(v, tuple) else (v, v) for v in (stage.kernel_size, stage.stride, stage.padding))
    return k[0] if k[0] == k[1] and tuple(stride) == tuple(k) and pad == (0, 0) else None


def build_network(dataset: Optional[str] = None, spec: Optional[str] = None, **kwargs) -> TTFSNet:
    """``TTFSNet`` with the dataset's default spec when ``spec`` is None."""
    if spec is None:
        if dataset not in DEFAULT_SPECS:
            raise ValueError(f"no default model.spec for dataset {dataset!r}; set model.spec or use one of: {', '.join(DEFAULT_SPECS)}")
        spec = DEFAULT_SPECS[dataset]
    return TTFSNet(spec, **kwargs)
