import torch

from ttfs_lab.functional.decoding import decision_steps, first_spike_steps, inverse_monotone_weights, monotone_weights, twd_weights


def test_twd_weights_strictly_decrease():
    for kind in ("linear", "exponential"):
        w = twd_weights(6, kind)
        assert (w[1:] < w[:-1]).all() and w[0] == 1.0


def test_learnable_weights_round_trip_and_stay_decreasing():
    w = twd_weights(5)
    torch.testing.assert_close(monotone_weights(inverse_monotone_weights(w)), w)
    assert (monotone_weights(torch.randn(7))[1:] < monotone_weights(torch.randn(7))[:-1] + 10).all()
    raw = torch.randn(7)
    m = monotone_weights(raw)
    assert (m[1:] < m[:-1]).all()


def test_first_spike_and_decision_steps():
    out = torch.zeros(4, 2, 3)
    out[2, 0, 1] = 1
    out[3, 0, 0] = 1
    assert first_spike_steps(out).tolist() == [[4, 3, 5], [5, 5, 5]]
    assert decision_steps(out).tolist() == [3, 4]  # silent sample: decided at T
