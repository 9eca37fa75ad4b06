import torch

from ttfs_lab.functional.stats import spike_summary
from ttfs_lab.metrics import DecisionLatency, SpikeStatistics
from ttfs_lab.nn.decoders import build_decoder


def test_decision_latency_counts_a_sample_only_once_decided():
    T = 4
    out = torch.zeros(T, 3, 2)
    out[0, 0, 0] = 1  # sample 0: class 0 at step 1 (correct)
    out[2, 1, 1] = 1  # sample 1: class 1 at step 3 (correct)
    # sample 2: silent; the forced guess (class 0) is wrong
    target = torch.tensor([0, 1, 1])
    metric = DecisionLatency(T)
    metric.update(build_decoder("twd", T, twd_potential=0.0).partial_logits(out), out, target)
    result = metric.compute()
    assert result["decision_step"] == (1 + 3 + 4) / 3
    assert result["acc_vs_step"] == [1 / 3, 1 / 3, 2 / 3, 2 / 3]


def test_spike_statistics_accumulate_over_batches_exactly():
    a, b = torch.zeros(2, 1, 3), torch.zeros(2, 2, 3)
    a[0, 0, 0] = 1
    b[1, 1, 2] = 1
    b[1, 0, 1] = 1
    metric = SpikeStatistics(["layer"], T=2)
    metric.update({"layer": spike_summary(a)})
    metric.update({"layer": spike_summary(b)})
    result = metric.compute()
    assert result["spikes"]["layer"] == 3 / 9
    assert result["silent"]["layer"] == 6 / 9
    assert result["hist"]["layer"] == [1, 2, 6]
