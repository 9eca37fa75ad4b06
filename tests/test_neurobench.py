"""Cross-check of the operation counts (docs/method.md section 10) with NeuroBench's SynapticOperations and
ActivationSparsity on the same small trained network and the same inputs.

NeuroBench hooks every ``nn.Conv2d`` / ``nn.Linear`` call, binarizes its input and weights and sums the binarized
layer's output: an input of only 0 / +-1 is spikes (ACs), anything else analog (MACs), counted per nonzero input.
Where the two definitions agree (a layer whose input is spikes) the counts are equal; they differ, exactly as
checked below, in three places:

1. the analog first layer: NeuroBench counts only its nonzero pixels (effective MACs), ttfs-lab the dense
   product (as the ANN of the same layers does);
2. a layer behind an average pool: its input is a fraction, so NeuroBench counts MACs, one per nonzero pooled
   unit; ttfs-lab counts ACs, one per spike of the window (the pool folded into the layer), which is exactly
   NeuroBench's AC count of the layer with the pool folded in, fed the spikes before the pool;
3. NeuroBench's ``Dense`` counts every step of the window and leaves out products with the padding; the ANN
   reference counts one pass with the usual ``H_out W_out C_out C_in k^2``.

NeuroBench is a test-only dependency, installed without its declared dependencies (torchaudio would pin an
older torch): ``tests/requirements-neurobench.txt``, installed by ``make install``.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ttfs_lab.data.mnist5k import load_mnist5k
from ttfs_lab.functional.ops import Synapse, fanout_map, synaptic_ops
from ttfs_lab.models import TTFSNet
from ttfs_lab.nn.neuron import TTFSNeuron

nb_workload = pytest.importorskip(
    "neurobench.metrics.workload",
    reason="neurobench is not installed: pip install --no-deps -r tests/requirements-neurobench.txt")
from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.utils.layers import single_layer_MACs  # noqa: E402
from neurobench.models import TorchModel  # noqa: E402

SPEC, T, B = "c4-mp-c8-ap-fc10", 4, 16
L1, L3, L5 = "layer1_c4_syn", "layer3_c8_syn", "layer5_fc10_syn"  # analog conv | conv on spikes | fc behind ap


class _Logits(nn.Module):
    """The folded network as NeuroBench sees it; keeps the recorded output of the same forward pass. Unfused:
    NeuroBench's hooks count each neuron module's own forward call, which a fused neuron + pool kernel skips."""

    def __init__(self, net):
        super().__init__()
        self.net, self.last = net, None

    def forward(self, x):
        self.last = self.net(x, record=True, mode="parallel", fuse=False)
        return self.last.logits


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    images, labels = load_mnist5k()
    net = TTFSNet(SPEC, (1, 28, 28), 10, T=T)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for i in range(30):
        idx = torch.arange(i * 64, (i + 1) * 64)
        loss = F.cross_entropy(net(images[idx]).logits, labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    folded = net.fold().double().eval()
    folded.sparse = False  # every product through the layer's own forward, where NeuroBench's hooks see it
    return folded, images[-B:].double(), labels[-B:]


@pytest.fixture(scope="module")
def both(trained):
    net, x, y = trained
    inputs = {}  # each layer's input, [T * B | B, ...] (the hook returns None: it must not replace the input)
    hooks = [net.stages[n].register_forward_pre_hook(lambda m, a, n=n: None if n in inputs else
                                                     inputs.update({n: a[0].detach().clone()}))
             for n in (L1, L3, L5)]
    wrapper = _Logits(net)
    model = TorchModel(wrapper)
    model.add_activation_module(TTFSNeuron)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=B)
    bench = Benchmark(model, loader, [], [], [[], [nb_workload.SynapticOperations, nb_workload.ActivationSparsity]])
    with torch.no_grad():
        results = bench.run(quiet=True)
    for h in hooks:
        h.remove()
    return net, wrapper.last, inputs, results


def _total(out, name):
    return out.ops[name].sum().item()


def test_spiking_layers_agree(both):
    net, out, inputs, results = both
    ops = results["SynapticOperations"]
    assert _total(out, L3) > 0, "the trained network must fire for the check to mean something"
    # the only layer NeuroBench sees spikes at is the conv behind the max pool: its ACs are ours, exactly
    assert ops["Effective_ACs"] * B == _total(out, L3)


def test_analog_first_layer_differs_by_its_zero_pixels(both):
    net, out, inputs, results = both
    syn = net.synapses[L1]
    assert syn.analog and _total(out, L1) == B * syn.dense_macs  # ours: dense, once per sample
    nonzero = (inputs[L1] != 0).to(torch.float64).unsqueeze(0)  # [1, B, 1, 28, 28]: run once
    effective = synaptic_ops(Synapse(syn.kind, syn.in_shape, syn.out_shape, syn.kernel, syn.stride, syn.padding),
                             nonzero).sum().item()
    pooled = inputs[L5]  # the fc's input: average-pooled spikes, a fraction -> NeuroBench counts MACs
    per_unit = (pooled != 0).sum().item() * net.synapses[L5].out_shape[0]
    assert 0 < effective < B * syn.dense_macs
    assert results["SynapticOperations"]["Effective_MACs"] * B == effective + per_unit


def test_average_pooled_layer_is_neurobench_acs_with_the_pool_folded_in(both):
    net, out, inputs, results = both
    fc = net.stages[L5]
    spikes = net.stages["layer3_c8"](net.stages[L3](inputs[L3]).view(T, B, 8, 14, 14))  # the spikes before the pool
    w = fc.weight.view(10, 8, 7, 7).repeat_interleave(2, 2).repeat_interleave(2, 3) / 4  # pool folded into fc
    folded_fc = nn.Linear(8 * 14 * 14, 10, bias=False).double()
    folded_fc.weight.data = w.reshape(10, -1)
    assert torch.allclose(folded_fc(spikes.flatten(2)), fc(inputs[L5]).view(T, B, 10) - fc.bias, atol=1e-12)
    acs, spiking = single_layer_MACs(spikes.flatten(0, 1).flatten(1), folded_fc)
    assert spiking and acs == _total(out, L5) > 0
    # NeuroBench counts the pooled input once per nonzero pooled unit instead: fewer operations
    assert (inputs[L5] != 0).sum().item() * 10 < _total(out, L5)


def test_dense_counts_steps_and_excludes_padding(both):
    net, out, inputs, results = both
    border = {n: net.synapses[n].in_shape[0] * net.synapses[n].out_shape[0] * fanout_map(net.synapses[n]).sum().item()
              for n in (L1, L3)}
    dense_fc = net.synapses[L5].dense_macs
    assert results["SynapticOperations"]["Dense"] == border[L1] + T * (border[L3] + dense_fc)
    ann = sum(s.dense_macs for s in net.synapses.values())
    assert border[L1] < net.synapses[L1].dense_macs and ann == 28 * 28 * 4 * 9 + 14 * 14 * 8 * 4 * 9 + 392 * 10


def test_activation_sparsity_is_one_minus_spikes_per_neuron_step(both):
    net, out, inputs, results = both
    neurons = [n for n, s in net.stages.items() if isinstance(s, TTFSNeuron)]
    spikes = sum(out.stats[n]["spikes"].item() for n in neurons)
    units = sum(out.stats[n]["units"].item() for n in neurons)
    assert results["ActivationSparsity"] == pytest.approx(1 - spikes / (T * units), rel=1e-12, abs=1e-12)
    assert 0.5 < results["ActivationSparsity"] < 1
