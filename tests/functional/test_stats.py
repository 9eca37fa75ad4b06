import torch

import pytest

from ttfs_lab.functional.stats import spike_summary, summary_from_histogram


def test_summary_counts_a_hand_made_trace():
    out = torch.zeros(3, 1, 4)
    out[0, 0, 0] = 1  # unit 0 at step 1
    out[2, 0, 1] = 1  # unit 1 at step 3
    out[0, 0, 2] = out[1, 0, 2] = 1  # unit 2 twice: a violation; unit 3 silent
    s = spike_summary(out)
    assert s["spikes"].item() == 4 and s["units"].item() == 4
    assert s["silent"].item() == 1 and s["violations"].item() == 1
    assert s["hist"].tolist() == [2, 0, 1, 1]


def test_summary_equals_the_argmax_definition_on_random_traces():
    torch.manual_seed(0)
    for T in (1, 4, 9):
        out = (torch.rand(T, 3, 5, 6) < 0.15).float() * torch.rand(T, 3, 5, 6).round().add(0.5)  # 0, .5, 1.5
        fired = out > 0
        first = torch.where(fired.any(0), fired.to(torch.uint8).argmax(0), torch.full(out.shape[1:], T))
        s = spike_summary(out)
        assert s["hist"].tolist() == torch.bincount(first.flatten(), minlength=T + 1).float().tolist()
        assert s["silent"].item() == (~fired.any(0)).sum().item()


@pytest.mark.parametrize("T", [1, 5, 12])
def test_summary_from_the_histogram_equals_the_summary_of_the_spikes(T):
    """A single-spike trace and its first-spike histogram give the same figures."""
    torch.manual_seed(T)
    first = torch.randint(0, T + 1, (4, 3, 7, 5))  # steps before the first spike, T: silent
    spikes = torch.zeros(T, *first.shape)
    fired = first < T
    spikes.view(T, -1)[first.flatten()[fired.flatten()], fired.flatten().nonzero().squeeze(1)] = 1.0
    expected = spike_summary(spikes)
    got = summary_from_histogram(torch.bincount(first.flatten(), minlength=T + 1), first.numel())
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
