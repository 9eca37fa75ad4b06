"""The step-by-step reference of the neuron (docs/method.md section 1): small hand-computed traces of one step at a
time, the gradient through every step, and the parameter checks. Every other execution is held to it in
test_neuron.py."""

import pytest
import torch

from ttfs_lab.functional.neuron_reference import (NeuronParams, ResumeState, check_params, ttfs_step,
                                                  ttfs_step_single)


def test_one_step_at_a_time_carries_the_potential_and_the_fired_flag():
    p = NeuronParams(lam=0.5)
    state, spikes = None, []
    for current in (0.6, 0.6, 0.6, 5.0):  # V = .6, .9, 1.05 (fires), then never again
        s, state = ttfs_step_single(torch.tensor([current]), state, p)
        spikes.append(s.item())
    assert spikes == [0, 0, 1, 0]
    assert state.fired.tolist() == [True]
    torch.testing.assert_close(state.v, torch.tensor([1.05 * 0.5 + 5.0]))


def test_the_step_loop_stacks_the_steps():
    currents = torch.tensor([[0.4, 1.2], [0.4, 0.0], [0.4, 0.0]])  # unit 0 fires at t = 2, unit 1 at t = 0
    assert ttfs_step(currents).tolist() == [[0, 1], [0, 0], [1, 0]]


def test_the_gradient_flows_back_through_earlier_steps():
    """BPTT: the spike at t = 1 depends on the current at t = 0 through the potential (lam = 1: equally)."""
    currents = torch.tensor([[0.6], [0.6]], requires_grad=True)
    ttfs_step(currents)[1].sum().backward()
    assert currents.grad[0].item() > 0 and currents.grad[0].item() == currents.grad[1].item()


@pytest.mark.parametrize("bad,match", [(dict(lam=0.0), "leak=0.0 is not valid"), (dict(lam=1.5), "leak=1.5"),
                                       (dict(theta=-1.0), "theta=-1.0 is not valid"),
                                       (dict(surrogate="relu"), "unknown surrogate 'relu'")])
def test_check_params_rejects_what_the_neuron_cannot_be(bad, match):
    with pytest.raises(ValueError, match=match):
        check_params(NeuronParams(**bad))
    assert check_params(NeuronParams(lam=0.9)) == NeuronParams(lam=0.9)


def test_bad_surrogate_lists_the_choices():
    with pytest.raises(ValueError, match="unknown surrogate 'relu'.*atan, sigmoid, triangle"):
        ttfs_step(torch.zeros(3, 2), NeuronParams(surrogate="relu"))


def test_resume_state_keeps_the_selected_samples():
    state = ResumeState(torch.arange(3.0), torch.tensor([1.0, 0.0, 1.0]))
    kept = state.select(torch.tensor([True, False, True]))
    assert kept.v.tolist() == [0.0, 2.0] and kept.free.tolist() == [1.0, 1.0]
