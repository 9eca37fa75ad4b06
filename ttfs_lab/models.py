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

The network is built from a ``NetConfig`` (``ttfs_lab/netconfig.py``: every setting, defined once). Both
executions walk the same execution plan (``ttfs_lab/plan.py``), compiled once from the layer list: the first
synaptic layer under direct encoding runs once (``[1, B, ...]``, broadcast by the neuron without a copy); in
parallel each layer runs over ``[T * B, ...]`` rows, a neuron followed by an average pool is one fused op
(``TTFSNeuron.forward_pooled``) unless spike statistics are recorded, and on CPU the neuron is a fused numba kernel
and the layers whose input is spikes run as sparse x dense products when the input is sparse enough
(``sparse=True``, ``functional.sparse``). ``make bench`` measures it.
"""

from __future__ import annotations

import contextlib
import copy
import re
from dataclasses import dataclass, replace
from typing import Any, Iterator, NamedTuple, Optional, Union

import torch
from torch import Tensor, nn

from ttfs_lab.functional.decoding import membrane_potential
from ttfs_lab.functional.encoding import ENCODERS
from ttfs_lab.functional.neuron import MODES, NeuronParams
from ttfs_lab.functional.ops import Synapse, synaptic_ops
from ttfs_lab.functional.stats import spike_summary, summary_from_histogram
from ttfs_lab.netconfig import DEFAULT_SPECS, NetConfig
from ttfs_lab.nn.decoders import build_decoder
from ttfs_lab.nn.neuron import TTFSNeuron
from ttfs_lab.nn.pooling import POOL_TOKENS, POOLS
from ttfs_lab.nn.synapse import NormConv2d, NormLinear
from ttfs_lab.plan import RECORDED, compile_plan, stage_rows
from ttfs_lab.registry import check_choice

__all__ = ["DEFAULT_SPECS", "LayerSpec", "NetOutput", "TTFSNet", "build_network", "parse_spec"]
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
    """A TTFS network built from a spec string and a ``NetConfig`` (``ttfs_lab/netconfig.py`` documents every
    setting).

    ``TTFSNet(config, input_shape, num_classes)``, or ``TTFSNet(spec, input_shape, num_classes, **settings)`` with
    the ``NetConfig`` fields as keywords (``T=4, decoder='first_spike', ...``); settings given next to a config
    replace its fields. ``input_shape``: (C, H, W) of one image or frame; ``num_classes`` must equal the width of the
    last ``fc``. ``net.config`` is the resolved configuration (``encoder`` None = ``direct``).
    """

    def __init__(self, spec: Union[str, NetConfig, None], input_shape: tuple[int, int, int], num_classes: int,
                 **settings: Any) -> None:
        super().__init__()
        config = replace(spec, **settings) if isinstance(spec, NetConfig) else NetConfig(spec=spec, **settings)
        self.config = config = config.resolve()
        self.encoder = ENCODERS[config.encoder]
        params = NeuronParams(config.theta, config.leak, config.surrogate, config.alpha)
        self.output_params = params._replace(theta=config.output_theta or config.theta)  # the output layer's neuron
        self.decoder = build_decoder(config.decoder, config.T, config.logit_scale, config.learnable_scale,
                                     config.twd_weights, config.twd_decay, config.twd_potential,
                                     self.output_params.theta)
        layers = parse_spec(config.spec)
        if layers[-1].width != num_classes:
            raise ValueError(f"model.spec {config.spec!r} ends in {layers[-1].token} but the dataset has {num_classes} classes; end it with fc{num_classes}")
        synapse_kw = dict(T=config.T, init=config.init, init_gain=config.init_gain, norm=config.norm,
                          affine=config.affine, distribution=config.init_distribution)
        self.stages = nn.ModuleDict()
        self.synapses: dict[str, Synapse] = {}  # synaptic layer -> its geometry, for operation counts (section 10)
        self._build(layers, tuple(input_shape), params, synapse_kw, config.pool)
        last = list(self.stages)[-1]
        # the output neuron whose potential the decoder reads (None: the decoder reads spikes only)
        self.potential_layer = last if self.decoder.spiking and self.decoder.uses_potential else None
        self.plan = compile_plan(self.stages, config.encoder != "direct", self.potential_layer)

    # the settings the executions read, from the one configuration (``sparse`` and ``set_mode`` replace it)
    T = property(lambda self: self.config.T)
    mode = property(lambda self: self.config.mode)
    encoder_name = property(lambda self: self.config.encoder)

    @property
    def sparse(self) -> bool:
        return self.config.sparse

    @sparse.setter
    def sparse(self, value: bool) -> None:
        self.config = replace(self.config, sparse=bool(value))

    def _build(self, layers, shape, params, synapse_kw, pool_override) -> None:
        first_kw = dict(synapse_kw)
        if self.encoder_name == "direct" and not self.config.ettfs_first_layer_t:
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
                self.stages[name] = TTFSNeuron(self.T, self.output_params if last else params, self.mode)

    def _add_synapse(self, name: str, kind: str, in_shape, out_shape, events: int, layer: LayerSpec) -> None:
        analog = not self.synapses and self.encoder_name == "direct"  # the first layer reads the analog image
        geometry = dict(kernel=layer.kernel, stride=layer.stride, padding=layer.padding) if kind == "conv" else {}
        self.synapses[name] = Synapse(kind, tuple(in_shape), tuple(out_shape), events_per_unit=events,
                                      analog=analog, **geometry)

    # --- execution: both walk ``self.plan`` (ttfs_lab/plan.py) ----------------------------------------------
    def forward(self, x: Tensor, record: bool = False, mode: Optional[str] = None, fuse: bool = True) -> NetOutput:
        """``x``: ``[B, C, H, W]`` (or ``[B, T, C, H, W]`` frames) -> logits ``[B, K]`` (+ output, stats).
        ``fuse=False`` (parallel mode): every stage runs on its own, each neuron's ``forward`` on its currents
        (what a forward hook on it sees: ETTFS calibration), never a neuron + pool kernel; same results."""
        h = self.encode(x)
        mode = check_choice("mode", mode, MODES) if mode else self.mode
        ops = {} if record else None
        if mode == "step":
            out, stats, currents = self._forward_step(h, record, ops)
        else:
            out, stats, currents = self._forward_parallel(h, record, ops, fuse)
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

    def _forward_parallel(self, h: Tensor, record: bool, ops: Optional[dict] = None, fuse: bool = True):
        """Each block over all T steps at once (``[T * B, ...]`` rows; ``[1, B, ...]`` for the blocks run once);
        neuron + average pool fused (``_pooled_block`` when statistics are recorded). ``ops`` (when recording)
        collects each synaptic layer's operations per step (``_record_ops``)."""
        stats = {} if record else None
        currents = None
        for block in self.plan.once + self.plan.steps(fuse):
            stage = self.stages[block.name]
            if block.potential:
                currents = h.expand(self.T, *h.shape[1:]) if h.shape[0] == 1 else h
            if block.kind == "neuron" and block.pool_k and record:
                h = self._pooled_block(block, h, stats)
                continue
            if block.kind == "neuron":
                h = stage.forward_pooled(h, block.pool_k) if block.pool_k else stage(h)
            else:
                self._record_ops(ops, block.name, h)
                h = stage_rows(stage, block, h, self.sparse)
            if record and block.recorded:
                stats[block.name] = spike_summary(h)
        return h, stats, currents

    def _pooled_block(self, block, h: Tensor, stats: dict) -> Tensor:
        """A neuron + average pool block with both stages' statistics: in one pass where the fused kernel counts
        the first spikes per step (evaluation on CPU), else the neuron's full-size spikes, then the pool."""
        neuron, pool = self.stages[block.name], self.stages[block.pool_name]
        fused = neuron.forward_pooled_recorded(h, block.pool_k)
        if fused is not None:
            pooled, hist = fused
            stats[block.name] = summary_from_histogram(hist, h.shape[1:].numel())
        else:
            spikes = neuron(h)
            stats[block.name] = spike_summary(spikes)
            pooled = stage_rows(pool, block, spikes, False)  # a pool block: the stage over steps * B rows
        stats[block.pool_name] = spike_summary(pooled)
        return pooled

    def _forward_step(self, h: Tensor, record: bool, ops: Optional[dict] = None):
        """All blocks advance together, one step at a time (the reference); the blocks of ``plan.once`` run once
        on the time-invariant input."""
        z0 = h[0]
        for block in self.plan.once:
            self._record_ops(ops, block.name, z0.unsqueeze(0))
            z0 = self.stages[block.name](z0)
        states: dict[str, object] = {}
        seqs: dict[str, list[Tensor]] = {}
        for t in range(self.T):
            z = z0 if h.shape[0] == 1 else h[t]
            for block in self.plan.steps(fuse=False):
                stage = self.stages[block.name]
                if block.potential:
                    seqs.setdefault("__currents__", []).append(z)
                if block.kind == "neuron":
                    z, states[block.name] = stage.step(z, states.get(block.name))
                else:
                    self._record_ops(ops, block.name, z.unsqueeze(0))
                    z = stage(z)
                if record and block.recorded:
                    seqs.setdefault(block.name, []).append(z)
            seqs.setdefault("__out__", []).append(z)
        out = torch.stack(seqs.pop("__out__"))
        currents = torch.stack(seqs.pop("__currents__")) if "__currents__" in seqs else None
        stats = {name: spike_summary(torch.stack(seq)) for name, seq in seqs.items()} if record else None
        return out, stats, currents

    def _record_ops(self, ops: Optional[dict], name: str, h: Tensor) -> None:
        """Append the operations of synaptic layer ``name`` on its input ``h`` (``[steps, B, ...]``) to ``ops``."""
        if ops is not None and name in self.synapses:
            ops.setdefault(name, []).append(synaptic_ops(self.synapses[name], h))

    # --- introspection and inference -------------------------------------------------------------------------
    def recorded_layers(self) -> list[str]:
        return [n for n, s in self.stages.items() if isinstance(s, RECORDED)]

    def hold_weights(self, hold: bool = True) -> None:
        """From now on the normalized layers compute their weights once and reuse them in every forward without
        gradients (an evaluation epoch: the parameters do not change); ``hold=False`` forgets them."""
        for stage in self.stages.values():
            if isinstance(stage, (NormConv2d, NormLinear)):
                stage.hold_weight() if hold else stage.release_weight()

    @contextlib.contextmanager
    def held_weights(self) -> Iterator["TTFSNet"]:
        """``hold_weights`` for the block."""
        self.hold_weights()
        try:
            yield self
        finally:
            self.hold_weights(False)

    def set_mode(self, mode: str) -> "TTFSNet":
        self.config = replace(self.config, mode=mode)  # checked by NetConfig
        for stage in self.stages.values():
            if isinstance(stage, TTFSNeuron):
                stage.mode = mode
        return self

    def fold(self) -> "TTFSNet":
        """A copy whose normalized layers are folded into plain ``nn.Conv2d`` / ``nn.Linear`` (same spikes; the
        plan names the stages, so it holds for the copy)."""
        folded = copy.deepcopy(self)
        for name, stage in folded.stages.items():
            if isinstance(stage, (NormConv2d, NormLinear)):
                folded.stages[name] = stage.fold()
        return folded


def build_network(dataset: Optional[str] = None, spec: Optional[str] = None, *, input_shape: tuple[int, int, int],
                  num_classes: int, **settings: Any) -> TTFSNet:
    """``TTFSNet`` with the dataset's default spec when ``spec`` is None."""
    return TTFSNet(NetConfig(spec=spec, **settings).resolve(dataset), input_shape, num_classes)
