"""Linear probes of each TTFS layer's first-spike steps: the codes match the recorded spikes, the probe reads what
the code carries and nothing it does not."""

import math

import pytest
import torch

from ttfs_lab.models import TTFSNet
from ttfs_lab.probe import first_spike_codes, first_steps, firing, probe_accuracy, probe_accuracies, ttfs_layers


def test_first_steps_counts_the_steps_before_the_first_spike_and_T_for_silence():
    spikes = torch.zeros(4, 2, 3)  # [T, B, units]
    spikes[1, 0, 0] = 1
    spikes[3, 0, 0] = 1  # a second spike does not move the first
    spikes[0, 1, 2] = 1
    assert first_steps(spikes).tolist() == [[1, 4, 4], [4, 4, 0]]


def test_codes_of_every_ttfs_layer_agree_with_the_networks_own_spike_histograms():
    torch.manual_seed(0)
    net = TTFSNet("c6-ap-c8-ap-fc16-fc10", (1, 12, 12), 10, T=6, init_gain=2.0).eval()
    x = torch.rand(40, 1, 12, 12)
    codes = first_spike_codes(net, x, batch_size=16)  # three batches, one short
    recorded = net(x, record=True).stats
    assert list(codes) == ttfs_layers(net) == ["layer1_c6", "layer3_c8", "layer5_fc16", "layer6_fc10"]
    for name, code in codes.items():
        assert code.shape[0] == 40
        assert torch.bincount(code.flatten().long(), minlength=net.T + 1).tolist() == recorded[name]["hist"].tolist()
    assert all(not stage._forward_hooks for stage in net.stages.values())  # the hooks are gone


def test_probe_reads_a_code_that_carries_the_label_and_not_one_that_does_not():
    torch.manual_seed(0)
    labels = torch.randint(0, 5, (400,))
    informative = torch.randint(0, 8, (400, 20), dtype=torch.uint8)
    informative[:, :5] = 8  # units 0-4 silent, but unit k fires at step 2 for the images of class k
    informative[torch.arange(400), labels] = 2
    noise = torch.randint(0, 8, (400, 20), dtype=torch.uint8)
    assert probe_accuracy(informative, labels) > 0.95
    assert probe_accuracy(noise, labels) < 0.4


def test_a_silent_layer_scores_the_majority_class_of_the_fitted_half():
    labels = torch.tensor([1, 1, 1, 0] * 10)
    silent = torch.full((40, 5), 6, dtype=torch.uint8)
    assert probe_accuracy(silent, labels) == pytest.approx(0.75)
    assert firing(silent, 6) == {"fired": 0.0, "mean_step": pytest.approx(float("nan"), nan_ok=True)}


def test_firing_gives_the_fired_fraction_and_the_one_based_mean_step():
    code = torch.tensor([[0, 2, 4], [4, 4, 1]])  # T = 4: three silent units, the others before steps 0, 2, 1
    assert firing(code, 4) == {"fired": pytest.approx(3 / 6), "mean_step": pytest.approx(1 + 3 / 3)}


def test_probe_refuses_a_split_with_nothing_to_score():
    with pytest.raises(ValueError, match="fit_fraction"):
        probe_accuracy(torch.zeros(10, 2), torch.zeros(10, dtype=torch.long), fit_fraction=1.0)


def test_probe_accuracies_keeps_the_networks_layer_order():
    labels = torch.arange(20) % 2
    codes = {"b": labels[:, None].to(torch.uint8), "a": torch.zeros(20, 1, dtype=torch.uint8)}
    assert list(probe_accuracies(codes, labels)) == ["b", "a"]


def test_inputs_seen_counts_the_input_spikes_before_each_units_first_spike():
    from ttfs_lab.probe import inputs_seen

    T = 4
    code_in = torch.tensor([[0, 1, 2, T], [3, 3, 3, 3]])  # sample 0: three inputs fire, at steps 0, 1, 2
    code_out = torch.tensor([[1, T], [0, 3]])             # sample 1: every input at the last step
    # sample 0: the unit at step 1 has seen 2 of 3 (the silent one is left out); sample 1: 0 of 4, then 4 of 4
    assert inputs_seen(code_in, code_out, T) == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert math.isnan(inputs_seen(code_in, torch.full((2, 2), T), T))  # no unit fired
    assert inputs_seen(code_in, torch.full((2, 2), T - 1), T) == 1.0
