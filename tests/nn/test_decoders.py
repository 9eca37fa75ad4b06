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
    dec = build_decoder("twd", 6, twd_weights=weights)
    assert dec(spikes_at(6, [5, 2, None, 3])).argmax(1).item() == 1
    assert dec(spikes_at(6, [None, None, 6, None])).argmax(1).item() == 2


def test_twd_ties_go_to_the_lowest_class_index():
    dec = build_decoder("twd", 6)
    for _ in range(3):
        assert dec(spikes_at(6, [4, 2, 2, 2])).argmax(1).item() == 1


def test_first_spike_decoder_logit_is_minus_spike_time():
    dec = build_decoder("first_spike", 4, scale=4.0)
    logits = dec(spikes_at(4, [2, None, 1]))
    assert logits.tolist() == [[-2.0, -5.0, -1.0]]


def test_partial_logits_give_the_decision_as_it_was_at_each_step():
    dec = build_decoder("twd", 4)
    partial = dec.partial_logits(spikes_at(4, [3, 4, None]))
    assert partial.argmax(-1).flatten().tolist() == [0, 0, 0, 0]
    partial = dec.partial_logits(spikes_at(4, [None, 2, 1]))
    assert partial[-1].argmax(-1).item() == 2


def test_twd_gradient_rewards_earlier_spikes_of_the_target():
    dec = build_decoder("twd", 4)
    out = spikes_at(4, [None, 2, None]).requires_grad_()
    torch.nn.functional.cross_entropy(dec(out), torch.tensor([0])).backward()
    g = out.grad[:, 0, 0]
    assert (g < 0).all() and (g[:-1] < g[1:]).all()  # earlier target spikes lower the loss more


def test_unknown_decoder_lists_choices():
    with pytest.raises(ValueError, match="unknown decoder 'rate'; choose one of: count, first_spike, membrane, twd"):
        build_decoder("rate", 4)


def test_decoder_rejects_wrong_T():
    with pytest.raises(ValueError, match=r"T=4"):
        DECODERS["count"](4)(torch.zeros(5, 2, 3))
