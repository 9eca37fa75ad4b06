"""What the TTFS step is measured against: the plain ANN a user would write, an ANN of the same (weight-standardized)
layers, and the parallel mode without its kernels."""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ttfs_lab.bench.workload import autocast
from ttfs_lab.functional.neuron import use_backend
from ttfs_lab.models import TTFSNet, parse_spec
from ttfs_lab.nn.neuron import TTFSNeuron


def build_plain_ann(spec: str, input_shape: tuple[int, int, int]) -> nn.Sequential:
    """The ANN a user would write for ``spec``: ``nn.Conv2d`` / ``nn.Linear`` (PyTorch's default init and bias)
    + ``nn.ReLU``, the spec's pools as ``nn.AvgPool2d`` / ``nn.MaxPool2d``, no ReLU after the output layer, no
    weight standardization. The headline baseline of the bench (issue "Speed against the baselines")."""
    layers: list[nn.Module] = []
    channels, spatial = input_shape[0], True
    for layer in parse_spec(spec):
        if layer.kind == "conv":
            layers += [nn.Conv2d(channels, layer.width, layer.kernel, layer.stride, layer.padding), nn.ReLU()]
            channels = layer.width
        elif layer.kind == "pool":
            layers.append((nn.AvgPool2d if layer.pool == "avg" else nn.MaxPool2d)(layer.kernel, layer.stride))
        else:
            if spatial:
                layers.append(nn.Flatten())
                spatial = False
            layers += [nn.LazyLinear(layer.width), nn.ReLU()]
    layers = layers[:-1]  # the logits
    ann = nn.Sequential(*layers)
    with torch.no_grad():  # materialize the lazy layers' shapes
        ann(torch.zeros(1, *input_shape))
    return ann


def build_ann(net: TTFSNet) -> nn.Sequential:
    """The same conv / linear / pool modules as ``net`` (copied), ReLU in place of each TTFS neuron, no output
    neuron: the logits are the last layer's output."""
    layers = [nn.ReLU() if isinstance(m, TTFSNeuron) else copy.deepcopy(m) for m in net.stages.values()]
    if isinstance(layers[-1], nn.ReLU):
        layers = layers[:-1]
    return nn.Sequential(*layers)


def ann_train_step(ann: nn.Module, batch, device: torch.device, precision: str, frames: bool,
                   lr: float = 1e-3) -> Callable[[], torch.Tensor]:
    """One step of the ANN: same batch, cross-entropy and (fused) Adam as the TTFS module; event frames are seen
    once (the first frame), where the TTFS network sees T of them."""
    optimizer = torch.optim.Adam(ann.parameters(), lr=lr, fused=True)  # as the TTFS module's
    x, y = batch
    x = x[:, 0] if frames else x

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = F.cross_entropy(ann(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def with_backend(backend: str, fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """``fn`` run with the parallel neuron's ``auto`` backend set to ``backend`` (``torch``: the tensor-op neuron,
    the row ``parallel_tensor_ops`` on CUDA that shows what the fused kernels gain)."""

    def run() -> torch.Tensor:
        with use_backend(backend):
            return fn()

    return run
