import pytest
import torch

from ttfs_lab.functional.encoding import ENCODERS, direct, frames, latency


def test_latency_one_spike_earlier_for_brighter_none_for_black():
    x = torch.tensor([[1.0, 0.5, 0.0, 0.01]])
    s = latency(x, 5)
    assert s.shape == (5, 1, 4)
    assert s.sum(0).tolist() == [[1.0, 1.0, 0.0, 1.0]]
    assert s[:, 0, 0].argmax().item() == 0  # x = 1 -> t = 0
    assert s[:, 0, 1].argmax().item() == 2  # x = .5 -> t = round(.5 * 4) = 2
    assert s[:, 0, 3].argmax().item() == 4  # dim pixel -> last step


def test_direct_is_a_single_static_step():
    x = torch.rand(2, 1, 3, 3)
    assert direct(x, 8).shape == (1, 2, 1, 3, 3)


def test_frames_checks_T():
    with pytest.raises(ValueError, match="model.T"):
        frames(torch.zeros(2, 5, 2, 4, 4), 8)
    assert frames(torch.zeros(2, 8, 2, 4, 4), 8).shape == (8, 2, 2, 4, 4)


def test_unknown_encoder_lists_choices():
    with pytest.raises(ValueError, match="unknown encoder 'rate'.*direct, frames, latency"):
        ENCODERS["rate"]
