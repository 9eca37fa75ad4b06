"""The execution plan (ttfs_lab/plan.py): compiled once from the layer list, walked by every execution."""

import pytest
import torch

from ttfs_lab import inference
from ttfs_lab.inference import early_exit
from ttfs_lab.models import TTFSNet
from ttfs_lab.nn.neuron import TTFSNeuron

SPEC, SHAPE = "c4-ap-c4-mp-fc8-fc3", (1, 8, 8)


def names(blocks):
    return [b.name for b in blocks]


def test_direct_encoding_runs_the_blocks_before_the_first_neuron_once():
    direct = TTFSNet(SPEC, SHAPE, 3, T=4).plan
    assert names(direct.once) == ["layer1_c4_syn"] and not direct.once[0].spiking_input
    latency = TTFSNet(SPEC, SHAPE, 3, T=4, encoder="latency").plan
    assert latency.once == () and latency.unfused[0].spiking_input
    fc_only = TTFSNet("fc8-fc3", SHAPE, 3, T=4).plan
    assert names(fc_only.once) == ["layer1_fc8_flat", "layer1_fc8_syn"]


def test_a_neuron_and_the_average_pool_after_it_are_one_block_and_max_pools_stay_apart():
    plan = TTFSNet(SPEC, SHAPE, 3, T=4).plan
    fused = {b.name: b.pool_k for b in plan.steps(fuse=True)}
    assert fused["layer1_c4"] == 2 and "layer2_ap" not in fused
    assert fused["layer3_c4"] == 0 and "layer4_mp" in fused  # max pooling is not fusable
    assert "layer2_ap" in names(plan.steps(fuse=False)) and all(b.pool_k == 0 for b in plan.steps(fuse=False))


def test_synapses_after_the_first_neuron_read_spikes_and_statistics_skip_the_blocks_run_once():
    plan = TTFSNet(SPEC, SHAPE, 3, T=4).plan
    synapses = {b.name: b.spiking_input for b in plan.unfused if b.kind == "synapse"}
    assert synapses == {"layer3_c4_syn": True, "layer5_fc8_syn": True, "layer6_fc3_syn": True}
    recorded = [b.name for b in plan.unfused if b.recorded]
    assert recorded == ["layer1_c4", "layer2_ap", "layer3_c4", "layer4_mp", "layer5_fc8", "layer6_fc3"]
    assert not any(b.recorded for b in plan.once)


def test_the_decoders_potential_is_read_at_the_output_neuron_only():
    plan = TTFSNet(SPEC, SHAPE, 3, T=4, decoder="twd", twd_potential=0.1).plan
    assert [b.name for b in plan.unfused if b.potential] == ["layer6_fc3"]
    assert not any(b.potential for b in TTFSNet(SPEC, SHAPE, 3, T=4, decoder="first_spike").plan.unfused)


@pytest.mark.parametrize("record,expected", [(False, [2]), (True, [])])
def test_parallel_forward_runs_the_fused_blocks_unless_statistics_are_recorded(record, expected, monkeypatch):
    calls = []
    original = TTFSNeuron.forward_pooled
    monkeypatch.setattr(TTFSNeuron, "forward_pooled", lambda self, h, k: calls.append(k) or original(self, h, k))
    torch.manual_seed(0)
    net = TTFSNet(SPEC, SHAPE, 3, T=4, init_gain=2.0).double()
    x = torch.rand(2, *SHAPE, dtype=torch.float64)
    out = net(x, record=record, mode="parallel").out
    assert calls == expected
    assert torch.equal(out, net(x, mode="step").out) and out.sum() > 0


def test_early_exit_walks_the_fused_plan(monkeypatch):
    pools = []
    original = inference.ttfs_resume
    monkeypatch.setattr(inference, "ttfs_resume",
                        lambda h, p, steps, state, k: pools.append(k) or original(h, p, steps, state, k))
    torch.manual_seed(0)
    net = TTFSNet(SPEC, SHAPE, 3, T=4, init_gain=2.0)
    x = torch.rand(5, *SHAPE)
    result = early_exit(net.fold(), x, chunk=4)  # one chunk: each neuron resumes once
    assert pools == [2, 1, 1, 1]
    assert torch.equal(result.pred, net(x).logits.argmax(-1))


def test_fold_keeps_the_plan():
    net = TTFSNet(SPEC, SHAPE, 3, T=4)
    assert net.fold().plan == net.plan
