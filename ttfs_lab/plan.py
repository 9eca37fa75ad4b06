"""The execution plan: a network's layer list compiled once into blocks that every execution iterates.

``TTFSNet`` keeps its layers in ``stages`` (synapse, neuron, pool, flatten, by name); ``compile_plan`` turns that
list into a ``Plan`` when the network is built, and the three executions walk it: the parallel forward and the
step forward (``ttfs_lab/models.py``) and early-exit inference (``ttfs_lab/inference.py``). The plan decides, once:

* ``once``: under direct encoding the input current is the same at every step, so the blocks before the first
  neuron run once, on ``[1, B, ...]`` (the neuron broadcasts it over T without a copy; docs/method.md section 1);
  with spiking input (latency, event frames) ``once`` is empty;
* fusion: a neuron followed by a k x k average pool with stride k is one block in ``steps(fuse=True)``
  (``TTFSNeuron.forward_pooled``, ``ttfs_resume``: the full-size spikes are never written; docs/method.md
  section 5), recorded statistics included where the kernel counts them (``TTFSNeuron.forward_pooled_recorded``);
  ``steps(fuse=False)`` keeps every stage its own block (the step reference);
* sparse synapses: a synapse whose input is spikes may run as a sparse x dense product (``stage_rows``) when
  the network's ``sparse`` switch is on (``ttfs_lab.functional.sparse``);
* which blocks' spike statistics are recorded and which neuron's input the decoder reads as potential.

Blocks name their stage (``net.stages[block.name]``), so folding the network (``TTFSNet.fold``) keeps the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from torch import Tensor, nn

from ttfs_lab.functional.sparse import spike_conv2d, spike_linear
from ttfs_lab.nn.neuron import TTFSNeuron
from ttfs_lab.nn.synapse import NormConv2d, NormLinear

RECORDED = (TTFSNeuron, nn.AvgPool2d, nn.MaxPool2d)  # the stages whose output spikes are counted


@dataclass(frozen=True)
class Block:
    """One step of the layer walk over ``net.stages[name]``.

    kind: ``synapse`` (conv / linear) | ``neuron`` | ``pool`` | ``flatten``. ``spiking_input``: a synapse whose
    input is spikes (a sparse product may apply). ``recorded``: its output's spike statistics are recorded.
    ``potential``: the neuron whose input currents the decoder reads as the output potential. ``pool_k``: a
    neuron's fused k x k average pool (only in ``Plan.steps(fuse=True)``; 0 = none), ``pool_name`` its stage.
    """

    name: str
    kind: str
    spiking_input: bool = False
    recorded: bool = False
    potential: bool = False
    pool_k: int = 0
    pool_name: str = ""


@dataclass(frozen=True)
class Plan:
    """``once``: the blocks run once on a time-invariant input (direct encoding), before the first neuron.
    ``fused`` / ``unfused``: the other blocks, with and without neuron + average pool fusion."""

    once: tuple[Block, ...]
    fused: tuple[Block, ...]
    unfused: tuple[Block, ...]

    def steps(self, fuse: bool) -> tuple[Block, ...]:
        return self.fused if fuse else self.unfused


def compile_plan(stages: nn.ModuleDict, spiking_input: bool, potential_layer: Optional[str]) -> Plan:
    """The plan of ``stages`` (in order). ``spiking_input``: the encoder emits spikes over T steps (latency,
    frames); False: a time-invariant analog input (direct). ``potential_layer``: the output neuron whose potential
    the decoder reads (None: none)."""
    items = list(stages.items())
    first_neuron = next((i for i, (_, s) in enumerate(items) if isinstance(s, TTFSNeuron)), len(items))
    split = 0 if spiking_input else first_neuron
    spikes, spatial = spiking_input, False
    blocks, pools = [], []
    for i, (name, stage) in enumerate(items):
        kind = _kind(stage)
        blocks.append(Block(name, kind, spiking_input=spikes and kind == "synapse",
                            recorded=i >= split and isinstance(stage, RECORDED), potential=name == potential_layer))
        spikes |= kind == "neuron"
        spatial = isinstance(stage, (NormConv2d, nn.Conv2d)) if kind == "synapse" else spatial
        following = fusable_pool(items[i + 1][1]) if i + 1 < len(items) else None
        pools.append(following if kind == "neuron" and spatial else None)  # a neuron after a conv: [T, B, C, H, W]
    return Plan(tuple(blocks[:split]), _fuse(blocks[split:], pools[split:]), tuple(blocks[split:]))


def _kind(stage: nn.Module) -> str:
    if isinstance(stage, TTFSNeuron):
        return "neuron"
    if isinstance(stage, (nn.AvgPool2d, nn.MaxPool2d)):
        return "pool"
    return "flatten" if isinstance(stage, nn.Flatten) else "synapse"


def _fuse(blocks: list[Block], pools: list[Optional[int]]) -> tuple[Block, ...]:
    """Each neuron with a fusable average pool after it (``pools[i]`` = k) and that pool as one block."""
    fused, i = [], 0
    while i < len(blocks):
        fused.append(replace(blocks[i], pool_k=pools[i], pool_name=blocks[i + 1].name) if pools[i] else blocks[i])
        i += 2 if pools[i] else 1
    return tuple(fused)


def fusable_pool(stage: nn.Module) -> Optional[int]:
    """k if ``stage`` is a k x k average pool with stride k, no padding and no divisor override, else None."""
    if not isinstance(stage, nn.AvgPool2d) or stage.ceil_mode or stage.divisor_override is not None:
        return None
    k, stride, pad = (v if isinstance(v, tuple) else (v, v) for v in (stage.kernel_size, stage.stride, stage.padding))
    return k[0] if k[0] == k[1] and tuple(stride) == tuple(k) and pad == (0, 0) else None


def stage_rows(stage: nn.Module, block: Block, h: Tensor, sparse: bool) -> Tensor:
    """A synapse, pool or flatten block over ``h`` (``[steps, B, ...]``), all steps as ``steps * B`` rows; a
    synapse whose input is spikes runs as a sparse product when ``sparse`` (the network's switch) is on."""
    steps, batch = h.shape[:2]
    x = h.flatten(0, 1)
    out = synapse_forward(stage, x, sparse and block.spiking_input) if block.kind == "synapse" else stage(x)
    return out.view(steps, batch, *out.shape[1:])


def synapse_forward(stage: nn.Module, x: Tensor, sparse: bool) -> Tensor:
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
