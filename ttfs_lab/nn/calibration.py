"""Data-calibrated ETTFS-init: balance every TTFS unit's membrane potential on a batch (docs/method.md section 2).

The paper's stated aim for ETTFS-init is a membrane-potential distribution that is balanced in every layer:
neither below the threshold everywhere (silence) nor above it (saturation). A fixed variance rule cannot see the
mean: TTFS inputs are non-negative (pixels, spikes), so a unit's potential carries an offset ``W[o] . E[x]`` that
is as large as its fluctuation, and makes units that fire at step 1 for every input or never. Calibration measures
instead. Layer by layer, in order, on one batch ``x``, with ``V_o`` the potential of unit ``o`` at the end of the
window (without the firing gate, so it is a linear function of the parameters):

    V_o = a_o (W[o] . X) + c_T b_o,         c_T = sum_t lam^(T - t)   (the bias enters every step)

it rescales unit ``o``'s weights (or its affine gain) by ``a_o = target_std theta / std(V_o)`` and sets its bias so
that ``mean(V_o) = target_mean theta``: statistics over the batch (and the positions of a conv map). Each layer is
calibrated on the spikes of the layers already calibrated before it, so depth cannot drift.

Parameters it can move: a layer without normalization scales its raw weight; a normalized layer with the affine
scales gamma; both shift the bias. A normalized layer without the affine has no free gain or shift (the
normalization fixes the unit's weight mean and variance), so it is left as initialized. The output layer of a
non-spiking decoder (``membrane``) is not a TTFS neuron and is left too.

``layers='unnormalized'`` (the default of ``model.ettfs_calibrate``) calibrates only the layers without weight
normalization: the normalization's centering already removes the offset there, and on real Fashion-MNIST
re-scaling the normalized layers as well made decisions a step later and cost 1.6 points (docs/method.md section 9).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ttfs_lab.nn.neuron import TTFSNeuron
from ttfs_lab.nn.synapse import _NormalizedSynapse
from ttfs_lab.registry import check_choice


class LayerCalibration(NamedTuple):
    """What calibration measured for one TTFS layer (potential at T, in units of theta, over batch and units)."""

    layer: str
    mean_before: float
    std_before: float
    calibrated: bool


def _pairs(net: nn.Module) -> list[tuple[str, _NormalizedSynapse, str, TTFSNeuron]]:
    """(synapse name, synapse, neuron name, neuron) for each synapse that feeds a TTFS neuron, in order."""
    pairs, last = [], None
    for name, stage in net.stages.items():
        if isinstance(stage, _NormalizedSynapse):
            last = (name, stage)
        elif isinstance(stage, TTFSNeuron) and last is not None:
            pairs.append((*last, name, stage))
            last = None
    return pairs


def _final_potential(currents: Tensor, T: int, lam: float) -> tuple[Tensor, float]:
    """``V[T] = sum_t lam^(T - t) I[t]`` per sample and unit, and ``c_T = sum_t lam^(T - t)``; ``[1, B, ...]``
    currents are the same at every step."""
    decay = currents.new_tensor([lam ** (T - 1 - t) for t in range(T)])
    c_T = float(decay.sum())
    if currents.shape[0] == 1:
        return currents[0] * c_T, c_T
    return torch.einsum("t...,t->...", currents, decay), c_T


def _unit_moments(v: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and std per unit (dim 1 of ``[B, units, ...]``) over the batch and the positions."""
    flat = v.transpose(0, 1).reshape(v.shape[1], -1)
    std, mean = torch.std_mean(flat, dim=1, unbiased=False)
    return mean, std


def _capture_input(net: nn.Module, neuron: TTFSNeuron, x: Tensor) -> Tensor:
    """The currents ``neuron`` receives when ``net`` runs on ``x`` (``fuse=False``: its own ``forward`` runs)."""
    seen: list[Tensor] = []
    handle = neuron.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    try:
        net(x, mode="parallel", fuse=False)
    finally:
        handle.remove()
    return seen[0]


CALIBRATED_LAYERS = ("unnormalized", "all")


def _movable(synapse: _NormalizedSynapse, layers: str) -> bool:
    if synapse.norm and layers == "unnormalized":
        return False
    return synapse.bias is not None and (not synapse.norm or synapse.gamma is not None)


@torch.no_grad()
def _apply(synapse: _NormalizedSynapse, scale: Tensor, bias: Tensor) -> None:
    shape = (-1, *([1] * (synapse.weight.dim() - 1)))
    if synapse.norm:
        synapse.gamma.mul_(scale)
    else:
        synapse.weight.mul_(scale.view(shape))
    synapse.bias.copy_(bias)


@torch.no_grad()
def calibrate_potentials_(net: nn.Module, x: Tensor, target_mean: float = 0.0, target_std: float = 1.0,
                          layers: str = "all") -> list[LayerCalibration]:
    """Calibrate ``net`` (a ``TTFSNet``) in place on the batch ``x``; returns what each layer measured before.
    ``layers``: ``all`` the layers that have a free gain and shift, or only the ``unnormalized`` ones."""
    check_choice("model.ettfs_calibrate", layers, CALIBRATED_LAYERS)
    if target_std <= 0:
        raise ValueError(f"model.calibrate_std={target_std} is not valid; use a positive potential spread")
    was_training = net.training
    net.eval()
    report = []
    try:
        for syn_name, synapse, neuron_name, neuron in _pairs(net):
            theta, lam = neuron.params.theta, neuron.params.lam
            v, c_T = _final_potential(_capture_input(net, neuron, x), neuron.T, lam)
            mean, std = _unit_moments(v)
            report.append(LayerCalibration(neuron_name, float(mean.mean() / theta), float(std.mean() / theta),
                                           _movable(synapse, layers)))
            if not _movable(synapse, layers):
                continue
            scale = target_std * theta / std.clamp_min(1e-6 * theta)
            weight_part = mean - c_T * synapse.bias
            _apply(synapse, scale, (target_mean * theta - scale * weight_part) / c_T)
    finally:
        net.train(was_training)
    return report
