import pytest
import torch

from ttfs_lab.nn.decoders import DECODERS, build_decoder


def spikes_at(T, times):
    """[T, 1, K] output with class c firing at 1-based step times[c] (None = silent)."""
    out = torch.zeros(T, 1, len(times))
    for c, t in enumerate(times):
        if t is not None:
            out[t - 1, 0, c] = 1
    return out


@pytest.mark.parametrize("weights", ["linear", "exponential", "learnable"])
def test_twd_predicts_the_earliest_firing_class(weights):
    dec = build_decoder("twd", 6, twd_weights=weights, twd_potential=0.0)
    assert dec(spikes_at(6, [5, 2, None, 3])).argmax(1).item() == 1
    assert dec(spikes_at(6, [None, None, 6, None])).argmax(1).item() == 2


def test_spike_only_twd_ties_go_to_the_lowest_class_index():
    dec = build_decoder("twd", 6, twd_potential=0.0)
    for _ in range(3):
        assert dec(spikes_at(6, [4, 2, 2, 2])).argmax(1).item() == 1


def test_first_spike_decoder_logit_is_minus_spike_time():
    dec = build_decoder("first_spike", 4, scale=4.0)
    logits = dec(spikes_at(4, [2, None, 1]))
    assert logits.tolist() == [[-2.0, -5.0, -1.0]]


def test_partial_logits_give_the_decision_as_it_was_at_each_step():
    dec = build_decoder("twd", 4, twd_potential=0.0)
    partial = dec.partial_logits(spikes_at(4, [3, 4, None]))
    assert partial.argmax(-1).flatten().tolist() == [0, 0, 0, 0]
    partial = dec.partial_logits(spikes_at(4, [None, 2, 1]))
    assert partial[-1].argmax(-1).item() == 2


def test_twd_gradient_rewards_earlier_spikes_of_the_target():
    dec = build_decoder("twd", 4, twd_potential=0.0)
    out = spikes_at(4, [None, 2, None]).requires_grad_()
    torch.nn.functional.cross_entropy(dec(out), torch.tensor([0])).backward()
    g = out.grad[:, 0, 0]
    assert (g < 0).all() and (g[:-1] < g[1:]).all()  # earlier target spikes lower the loss more


def test_unknown_decoder_lists_choices():
    with pytest.raises(ValueError, match="unknown decoder 'rate'; choose one of: count, first_spike, membrane, twd, twd_membrane"):
        build_decoder("rate", 4)


def test_decoder_rejects_wrong_T():
    with pytest.raises(ValueError, match=r"T=4"):
        DECODERS["count"](4)(torch.zeros(5, 2, 3))


def potential_for(out, peaks):
    """A potential ``[T, 1, K]`` consistent with the spikes (theta = 1): below 1 before class c's spike, rising
    to ``peaks[c]`` >= 1 at it and staying there; a silent class ramps up to 0.5."""
    T, _, K = out.shape
    v = torch.zeros(T, 1, K)
    steps = torch.arange(1, T + 1, dtype=torch.float32)
    for c in range(K):
        if out[:, 0, c].any():
            t_c = int(out[:, 0, c].argmax())
            v[:, 0, c] = torch.where(steps <= t_c, 0.9 * steps / (t_c + 1), torch.tensor(float(peaks[c])))
        else:
            v[:, 0, c] = 0.5 * steps / T
    return v


def test_linear_spike_twd_is_the_first_spike_readout_shifted_by_a_constant():
    """The algebra behind docs/method.md: kappa (T - t + 1) / T versus -kappa t / T differ by kappa (T + 1) / T
    for every class, silent ones included, so softmax and loss are the same."""
    twd = build_decoder("twd", 6, twd_potential=0.0)
    first = build_decoder("first_spike", 6)
    torch.manual_seed(0)
    out = torch.zeros(6, 8, 5)
    times = torch.randint(0, 7, (8, 5))  # 6 = silent
    for b in range(8):
        for c in range(5):
            if times[b, c] < 6:
                out[times[b, c], b, c] = 1
    diff = twd(out) - first(out)
    torch.testing.assert_close(diff, torch.full_like(diff, 8.0 * 7 / 6))
    assert torch.allclose(twd(out).log_softmax(-1), first(out).log_softmax(-1), atol=1e-6)


def test_twd_potential_orders_classes_that_fire_at_the_same_step():
    dec = build_decoder("twd", 6)
    out = spikes_at(6, [4, 2, 2, 2])
    assert dec(out, potential_for(out, [1.1, 1.2, 1.9, 1.5])).argmax(1).item() == 2
    assert dec(out, potential_for(out, [1.1, 1.8, 1.2, 1.5])).argmax(1).item() == 1


def test_twd_potential_never_lets_a_later_class_overtake_the_first_spike():
    dec = build_decoder("twd", 6)
    out = spikes_at(6, [None, 3, 2, None])
    logits = dec(out, potential_for(out, [0, 50.0, 1.0, 0]))  # class 1 crosses late with a huge potential
    assert logits.argmax(1).item() == 2
    partial = dec.partial_logits(out, potential_for(out, [0, 50.0, 1.0, 0]))
    assert (partial[1:].argmax(-1) == 2).all()  # from the decision step on


def test_twd_potential_gives_every_class_a_gradient_at_the_decision():
    dec = build_decoder("twd", 4, twd_potential=1.0)
    out = spikes_at(4, [None, 2, None])
    v = potential_for(out, [0, 1.3, 0]).requires_grad_()
    torch.nn.functional.cross_entropy(dec(out, v), torch.tensor([0])).backward()
    g = v.grad[:, 0]
    assert g[1, 0] < 0 and g[1, 1] > 0 and g[1, 2] > 0  # at the decision step: target up, the others down
    assert (g[[0, 2, 3]] == 0).all()  # potentials before and after the decision do not enter


def test_twd_without_potential_when_it_needs_one_is_an_error():
    with pytest.raises(ValueError, match="membrane potential"):
        build_decoder("twd", 4)(spikes_at(4, [1, None]))


@pytest.mark.parametrize("weights", ["linear", "exponential"])
def test_twd_membrane_counts_each_current_by_its_arrival(weights):
    """sum_t w_t V[t] / sum_t w_t = sum_s I[s] (sum_{t >= s} w_t) / sum_t w_t: earlier currents count more."""
    T = 5
    dec = build_decoder("twd_membrane", T, twd_weights=weights, twd_decay=0.7)
    assert not dec.spiking
    currents = torch.randn(T, 2, 3, dtype=torch.float64)
    w = dec.fixed_weights.double()
    per_current = w.flip(0).cumsum(0).flip(0) / w.sum()  # sum_{t >= s} w_t / sum w
    assert per_current[0] == 1 and (per_current[1:] < per_current[:-1]).all()
    expected = (currents * per_current.view(-1, 1, 1)).sum(0)
    torch.testing.assert_close(dec(currents), expected)
    # the same current one step later is worth less
    early, late = torch.zeros(T, 1, 2), torch.zeros(T, 1, 2)
    early[1, 0, 0] = late[2, 0, 0] = 1.0
    assert dec(early)[0, 0] > dec(late)[0, 0]


def test_twd_membrane_rejects_learnable_weights():
    with pytest.raises(ValueError, match="twd_membrane"):
        build_decoder("twd_membrane", 4, twd_weights="learnable")
