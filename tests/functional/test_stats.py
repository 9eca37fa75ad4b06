import torch

from ttfs_lab.functional.stats import spike_summary


def test_summary_counts_a_hand_made_trace():
    out = torch.zeros(3, 1, 4)
    out[0, 0, 0] = 1  # unit 0 at step 1
    out[2, 0, 1] = 1  # unit 1 at step 3
    out[0, 0, 2] = out[1, 0, 2] = 1  # unit 2 twice: a violation; unit 3 silent
    s = spike_summary(out)
    assert s["spikes"].item() == 4 and s["units"].item() == 4
    assert s["silent"].item() == 1 and s["violations"].item() == 1
    assert s["hist"].tolist() == [2, 0, 1, 1]
