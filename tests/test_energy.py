"""Operation counts and energy per inference, by hand on a 3-layer network, and in a fit's record and last line
(docs/method.md section 10)."""

import json
from pathlib import Path

import pytest
import torch

from ttfs_lab.energy import energy_line, format_energy, summary_figures
from ttfs_lab.metrics import SynapticOperations
from ttfs_lab.models import TTFSNet


def hand_net() -> TTFSNet:
    """1x4x4 image -> 1x1 conv (w = 1) + neuron -> 2x2 max pool -> 3x3 'same' conv (w = 1) + neuron -> fc2.

    With theta = 1 a pixel x fires at step ceil(1 / x): 1.0 -> 1, 0.5 -> 2, 0.4 -> 3, 0.3 -> 4, 0 never. A
    pooled unit fires at every step at which one of its window fires; the 3x3 conv sees all four pooled units
    from each of its four positions (fan-out 4), so all four fire at the first pooled spike; output class 0
    (w = 0.3: 4 x 0.3 >= 1) fires then, class 1 (w = 0.2) never."""
    net = TTFSNet("c1k1p0-mp2-c1-fc2", (1, 4, 4), 2, T=4, decoder="first_spike", norm=False, affine=False,
                  init="default")
    with torch.no_grad():
        net.stages["layer1_c1k1p0_syn"].weight.fill_(1.0)
        net.stages["layer3_c1_syn"].weight.fill_(1.0)
        net.stages["layer4_fc2_syn"].weight[0].fill_(0.3)
        net.stages["layer4_fc2_syn"].weight[1].fill_(0.2)
        for stage in net.stages.values():
            if getattr(stage, "bias", None) is not None:
                stage.bias.zero_()
    return net


def hand_inputs() -> torch.Tensor:
    x = torch.zeros(3, 1, 4, 4)
    a, b = x[0, 0], x[1, 0]  # the third image is blank: nothing fires, the decision is at T
    # A: window TL fires at steps 1 and 2 (two pooled spikes: max pooling's extra spike), TR at 2, BL at 3
    a[0, 0], a[0, 1], a[0, 2], a[0, 3], a[2, 0] = 1.0, 0.5, 0.5, 0.5, 0.4
    # B: TL at 4, TR at 3 (two pixels, one pooled spike), BR at 2
    b[0, 0], b[0, 2], b[0, 3], b[2, 2] = 0.3, 0.4, 0.4, 0.5
    return x


@pytest.mark.parametrize("mode", ["parallel", "step"])
def test_hand_counts_per_layer_and_step(mode):
    out = hand_net()(hand_inputs(), record=True, mode=mode)
    ops = {k: v.tolist() for k, v in out.ops.items()}
    # the first layer reads the analog image: its dense MACs (4 x 4 x 1 x 1 x 1), once per sample, not T times
    assert ops["layer1_c1k1p0_syn"] == [[16.0, 16.0, 16.0]]
    # pooled spikes per step x fan-out 4: A 1, 2, 1, 0 spikes; B 0, 1, 1, 1 spikes
    assert ops["layer3_c1_syn"] == [[4.0, 0.0, 0.0], [8.0, 4.0, 0.0], [4.0, 4.0, 0.0], [0.0, 4.0, 0.0]]
    # four layer-3 spikes x fan-out 2, at A's step 1 and B's step 2
    assert ops["layer4_fc2_syn"] == [[8.0, 0.0, 0.0], [0.0, 8.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert out.stats["layer2_mp2"]["spikes"].item() == 7 and out.stats["layer2_mp2"]["violations"].item() == 1


def test_hand_counts_per_inference_with_early_exit_and_energy():
    net = hand_net()
    out = net(hand_inputs(), record=True)
    metric = SynapticOperations(net.synapses)
    metric.update(out.ops, torch.tensor([1, 2, 4]))  # decisions: A step 1, B step 2, blank image T
    r = metric.compute()
    layers = r["layers"]
    assert layers["layer1_c1k1p0_syn"] == {"kind": "mac", "ops": 16.0, "ops_exit": 16.0, "ann_mac": 16.0}
    assert layers["layer3_c1_syn"]["ops"] == pytest.approx(28 / 3)  # (16 + 12 + 0) / 3
    assert layers["layer3_c1_syn"]["ops_exit"] == pytest.approx(8 / 3)  # A's step 1, B's steps 1-2: 4 + 4
    assert layers["layer3_c1_syn"]["ann_mac"] == 2 * 2 * 1 * 1 * 9
    assert layers["layer4_fc2_syn"]["ops"] == layers["layer4_fc2_syn"]["ops_exit"] == pytest.approx(16 / 3)
    assert r["ac"] == pytest.approx(44 / 3) and r["ac_exit"] == pytest.approx(24 / 3) and r["mac"] == 16.0
    assert r["ann_mac"] == 16 + 36 + 8
    assert r["energy_pj"] == pytest.approx(44 / 3 * 0.9 + 16 * 4.6)
    assert r["energy_pj_exit"] == pytest.approx(8 * 0.9 + 16 * 4.6)
    assert r["energy_ratio_ann"] == pytest.approx((44 / 3 * 0.9 + 16 * 4.6) / (60 * 4.6))


def test_metric_sums_batches_exactly():
    """Sum states: two batches give the figures of their concatenation (so DDP's sum reduction is exact)."""
    net = hand_net()
    x, steps = hand_inputs(), torch.tensor([1, 2, 4])
    whole, split = SynapticOperations(net.synapses), SynapticOperations(net.synapses, e_ac=0.1, e_mac=1.0)
    whole.update(net(x, record=True).ops, steps)
    for part in (slice(0, 1), slice(1, 3)):
        split.update(net(x[part], record=True).ops, steps[part])
    a, b = whole.compute(), split.compute()
    assert a["layers"] == b["layers"] and a["ac_exit"] == b["ac_exit"]
    assert b["energy_pj"] == pytest.approx(b["ac"] * 0.1 + b["mac"] * 1.0)


def test_latency_input_is_counted_as_acs():
    net = TTFSNet("fc3", (1, 2, 2), 3, T=4, encoder="latency", decoder="first_spike")
    x = torch.tensor([[[[1.0, 0.0], [0.5, 0.0]]]])  # two pixels spike (once each): 2 x 3 ACs, no MAC
    out = net(x, record=True)
    assert out.ops["layer1_fc3_syn"].sum().item() == 6.0 and not net.synapses["layer1_fc3_syn"].analog


def test_summary_figures_and_line():
    ops = {"layers": {"l1": {"kind": "mac", "ops": 10.0, "ops_exit": 10.0, "ann_mac": 10.0}},
           "ac": 2000.0, "mac": 10.0, "ac_exit": 1000.0, "mac_exit": 10.0, "ann_mac": 5000.0,
           "energy_pj": 1846.0, "energy_pj_exit": 946.0, "ann_energy_pj": 23000.0,
           "energy_ratio_ann": 1846 / 23000, "energy_ratio_ann_exit": 946 / 23000}
    s = summary_figures("test", ops)
    assert s["test/energy_nj"] == pytest.approx(1.846) and s["test/ann_energy_nj"] == pytest.approx(23.0)
    assert s["test/synops_ac"] == 2000.0 and s["test/ops_per_layer"]["l1"]["kind"] == "mac"
    assert energy_line(s) == "energy 1.85 nJ per inference (0.080 of the ANN's 23 nJ; 946 pJ with early exit)"
    assert summary_figures("test", None) == {} and energy_line({}) is None
    assert format_energy(2.14e7) == "21.4 uJ"


def test_fit_records_energy(tiny_config, capsys):
    """``c4-ap-fc16-fc10`` on 28 x 28: the ANN does 28*28*4*9 + 784*16 + 16*10 MACs; the TTFS net the first
    layer's MACs once and ACs elsewhere; the printed last line quotes the energy."""
    from ttfs_lab.train import train

    summary = train(tiny_config)
    assert summary["test/ann_mac"] == 28 * 28 * 4 * 9 + 784 * 16 + 16 * 10
    assert summary["test/synops_mac"] == summary["test/synops_mac_exit"] == 28 * 28 * 4 * 9
    assert 0 < summary["test/synops_ac_exit"] <= summary["test/synops_ac"]
    assert summary["test/energy_nj"] == pytest.approx(
        (summary["test/synops_ac"] * 0.9 + summary["test/synops_mac"] * 4.6) / 1000)
    assert summary["test/energy_ratio_ann"] == pytest.approx(summary["test/energy_nj"] / summary["test/ann_energy_nj"])
    assert set(summary["test/ops_per_layer"]) == {"layer1_c4_syn", "layer3_fc16_syn", "layer4_fc10_syn"}
    run = Path(tiny_config["run"]["dir"]) / next(p.name for p in Path(tiny_config["run"]["dir"]).iterdir())
    assert json.loads((run / "summary.json").read_text())["test/energy_nj"] == summary["test/energy_nj"]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "| energy " in last and "of the ANN's" in last and "with early exit" in last


def test_a_negative_energy_cost_is_a_one_line_config_error():
    from ttfs_lab.errors import ConfigError
    from ttfs_lab.module import TTFSClassifier

    with pytest.raises(ConfigError, match=r"model.energy_mac_pj=-4.6 is not valid; use an energy in pJ >= 0"):
        TTFSClassifier(spec="c4-ap-fc16-fc10", T=4, energy_mac_pj=-4.6)
    model = TTFSClassifier(spec="c4-ap-fc16-fc10", T=4, energy_ac_pj=0.03, energy_mac_pj=0.2)
    assert (model.synops["test_"].e_ac, model.synops["test_"].e_mac) == (0.03, 0.2)
