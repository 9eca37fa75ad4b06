"""Linear probes of a TTFS network's layers: how much of the class each layer's first-spike times still carry.

A TTFS unit commits at its first threshold crossing and ignores every input that arrives later
(docs/method.md section 1), so a layer can pass on less than its inputs carried. The probe measures that loss
layer by layer (docs/results.md, "Depth: why 15 layers fail"; ``inputs_seen`` how much of its input a layer has
received when it fires): each TTFS layer's code for an image is the vector of its units' first-spike steps (0 = the first step, T =
silent); a multinomial logistic regression (scikit-learn) fitted on one half of the images is scored on the
other half. A layer that keeps the class decodable scores as the input does; a silent layer scores chance.

    net.eval(); codes = first_spike_codes(net, x)          # layer -> [B, units] first-spike steps
    probe_accuracies(codes, y)                              # layer -> held-out accuracy of its linear probe
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import Tensor

from .functional.decoding import first_spike_steps
from .nn.neuron import TTFSNeuron


def first_steps(spikes: Tensor) -> Tensor:
    """``[T, B, ...]`` spikes -> ``[B, units]``: the number of steps before each unit's first spike (T when silent),
    the convention of ``spike_summary``'s histogram (``first_spike_steps`` less one)."""
    return first_spike_steps(spikes).flatten(1) - 1


@torch.no_grad()
def first_spike_codes(net, x: Tensor, batch_size: int = 256) -> dict[str, Tensor]:
    """Each TTFS layer's first-spike steps for the images ``x`` (``[N, C, H, W]`` or frames): layer name ->
    ``[N, units]`` (uint8 / int), in network order; the pools are not TTFS layers and are left out. The network
    runs in parallel mode with every stage on its own (``fuse=False``: what a forward hook on a neuron sees)."""
    layers = ttfs_layers(net)
    codes: dict[str, list[Tensor]] = {name: [] for name in layers}
    hooks = [net.stages[name].register_forward_hook(_collector(codes[name])) for name in layers]
    try:
        for start in range(0, x.shape[0], batch_size):
            net(x[start:start + batch_size], mode="parallel", fuse=False)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(parts) for name, parts in codes.items()}


def ttfs_layers(net) -> list[str]:
    """The names of the network's TTFS neuron stages, in order."""
    return [name for name, stage in net.stages.items() if isinstance(stage, TTFSNeuron)]


def _collector(parts: list):
    def hook(module, inputs, output):
        parts.append(first_steps(output).to(torch.uint8 if output.shape[0] < 255 else torch.int32).cpu())
    return hook


def probe_accuracy(code: Tensor, labels: Tensor, fit_fraction: float = 0.5, max_iter: int = 300) -> float:
    """Held-out accuracy of a multinomial logistic regression on one layer's first-spike steps: fitted on the
    first ``fit_fraction`` of the samples, scored on the rest (standardized features; constant units carry
    nothing and are dropped; a layer with no varying unit scores the majority class of the fitted half)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, y = code.double().numpy(), labels.cpu().numpy()
    n_fit = int(round(len(y) * fit_fraction))
    if not 0 < n_fit < len(y):
        raise ValueError(f"fit_fraction={fit_fraction} leaves no samples to fit or to score; use 0 < fraction < 1")
    varying = features[:n_fit].std(0) > 0
    if not varying.any():
        majority = np.bincount(y[:n_fit]).argmax()
        return float((y[n_fit:] == majority).mean())
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    model.fit(features[:n_fit, varying], y[:n_fit])
    return float(model.score(features[n_fit:, varying], y[n_fit:]))


def probe_accuracies(codes: dict[str, Tensor], labels: Tensor, layers: Iterable[str] | None = None,
                     **kw) -> dict[str, float]:
    """``probe_accuracy`` of every layer (in network order), or of ``layers``."""
    return {name: probe_accuracy(codes[name], labels, **kw) for name in (layers or codes)}


def firing(code: Tensor, T: int) -> dict[str, float]:
    """A layer's fired fraction and the mean first-spike step (1-based) of the units that fired."""
    fired = code < T
    mean_step = (code[fired].double().mean().item() + 1) if fired.any() else float("nan")
    return {"fired": fired.double().mean().item(), "mean_step": mean_step}


def inputs_seen(code_in: Tensor, code_out: Tensor, T: int) -> float:
    """When a unit fires, the fraction of its input layer's spikes (of the window) that have already arrived,
    mean over the fired units of ``code_out`` and the samples (NaN if none fired). For a layer fully connected
    to ``code_in`` (fc after fc): an input spike at step s reaches the unit at step s, and a unit committing at
    step t has seen the inputs with s <= t; the rest it ignores (docs/method.md section 1). Codes are
    ``first_steps`` ([B, units], T = silent)."""
    counts = torch.nn.functional.one_hot(code_in.long(), T + 1)[..., :T].sum(1).cumsum(1)  # [B, T]: #inputs s <= t
    total = counts[:, -1:].double()
    fired = (code_out < T) & (total > 0)
    seen = counts.gather(1, code_out.long().clamp(max=T - 1)).double() / total.clamp(min=1)
    return seen[fired].mean().item() if fired.any() else float("nan")
