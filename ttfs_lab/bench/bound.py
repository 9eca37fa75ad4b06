"""The physical limit of a TTFS training step, from the network's measured spikes (issue "Speed against the
baselines"; docs/method.md section 8).

Under single-spike coding each input unit reaches a layer once over the whole window, so per synaptic layer l,
in units of the dense MACs ``M_l`` of one ANN forward of that layer (``Synapse.dense_macs``):

* forward: the currents of all T steps cost the input's spike events times their fan-out, ``A_l`` (the
  layer's recorded ACs, ``synaptic_ops``; the first layer under direct encoding: ``M_l`` once);
* weight gradient: ``dW = sum_t dL/dI[t] s[t]^T`` touches the same (input event, weight) pairs: ``A_l`` again;
* input gradient: ``dL/ds_in[t] = W^T dL/dI[t]`` is dense in time, but needed only at the steps where the input
  unit has not fired yet (a fired unit's surrogate gradient is 0): ``T a_l M_l``, with ``a_l`` the fraction of
  (unit, step) pairs of the neuron feeding the layer that are still waiting to fire (its first-spike histogram;
  behind an average pool the pooled unit waits at least as long, so this is a lower bound). The first layer
  needs none, as in the ANN.

The ANN's step does ``3 M_l`` per layer (``2 M_l`` for the first). ``bound / (T x ANN)`` is the ratio of the two
sums over T ANN steps; multiplied by ``T x`` the plain ANN's measured step it is the bound in seconds: the time
of the synaptic work alone at the ANN's rate of MACs (neuron updates, pools and the optimizer not counted).
"""

from __future__ import annotations

import torch

from ttfs_lab.models import TTFSNet
from ttfs_lab.nn.neuron import TTFSNeuron


def waiting_fraction(hist: torch.Tensor) -> float:
    """Fraction of (unit, step) pairs before and at each unit's first spike, from its first-spike histogram
    (bin j < T: fired at step j + 1, waiting j + 1 steps; bin T: silent, all T)."""
    T = hist.numel() - 1
    steps = torch.arange(1, T + 2, dtype=torch.float64).clamp(max=T)
    return float((hist.double() * steps).sum() / (hist.double().sum() * T))


def feeding_neurons(net: TTFSNet) -> dict[str, str]:
    """Each synaptic stage -> the last neuron stage before it ('' for the first synapse)."""
    feeding, last = {}, ""
    for name, stage in net.stages.items():
        if name in net.synapses:
            feeding[name] = last
        elif isinstance(stage, TTFSNeuron):
            last = name
    return feeding


@torch.no_grad()
def step_bound(net: TTFSNet, x: torch.Tensor) -> dict:
    """The bound on ``x`` (the benchmarked batch): per layer its work, and the total as a fraction of T ANN
    steps (``bound_over_T_ann``)."""
    out = net(x, record=True)
    T, batch = net.T, x.shape[0]
    layers, ttfs, ann = {}, 0.0, 0.0
    for i, (name, upstream) in enumerate(feeding_neurons(net).items()):
        syn = net.synapses[name]
        dense = float(syn.dense_macs)
        events = float(out.ops[name].sum()) / batch  # ACs over the window (MACs once for an analog input)
        waiting = waiting_fraction(out.stats[upstream]["hist"]) if upstream else 0.0
        work = 2 * events + (T * waiting * dense if i > 0 else 0.0)
        layers[name] = {"dense_macs": dense, "events_ops": events, "waiting_fraction": waiting,
                        "work_over_T_ann_layer": work / (T * (3 if i > 0 else 2) * dense)}
        ttfs += work
        ann += (3 if i > 0 else 2) * dense
    return {"layers": layers, "bound_over_T_ann": ttfs / (T * ann)}
