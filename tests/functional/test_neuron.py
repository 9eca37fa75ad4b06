"""The neuron: hand-computed traces, single-spike property, and step == parallel (METHOD.md section 1)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ttfs_lab.functional.neuron import NeuronParams, ttfs_neuron, ttfs_parallel, ttfs_step

EXECUTIONS = [ttfs_step, ttfs_parallel]


def column(*values):
    return torch.tensor(values, dtype=torch.float32).view(-1, 1)


@pytest.mark.parametrize("run", EXECUTIONS)
def test_if_neuron_fires_once_at_first_crossing(run):
    spikes = run(column(0.4, 0.4, 0.4, 5.0))  # V = .4 .8 1.2 6.2: crosses at t = 2, disabled after
    assert spikes.flatten().tolist() == [0, 0, 1, 0]


@pytest.mark.parametrize("run", EXECUTIONS)
def test_leaky_neuron_trace(run):
    spikes = run(column(0.4, 0.4, 0.4, 0.8), NeuronParams(lam=0.5))  # V = .4 .6 .7 1.15
    assert spikes.flatten().tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize("run", EXECUTIONS)
def test_negative_current_delays_firing(run):
    spikes = run(column(0.9, -0.5, 0.5, 0.2))  # V = .9 .4 .9 1.1
    assert spikes.flatten().tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize("run", EXECUTIONS)
def test_gradient_stops_after_the_spike(run):
    currents = column(2.0, 0.0, 0.0).requires_grad_()
    spikes = run(currents)
    spikes[1:].sum().backward()  # only the steps after the spike are in the loss
    assert currents.grad.abs().max() == 0


adversarial = [
    torch.full((6, 3, 4), 10.0),  # far above threshold at every step
    torch.tensor([1.5, -3.0, 3.0, -3.0, 3.0, -3.0]).view(6, 1, 1).expand(6, 3, 4),  # oscillates around theta
    torch.tensor([1.0, 0.0, -1e-7, 1e-7, 0.0, 1.0]).view(6, 1, 1).expand(6, 3, 4),  # sits on theta
]


@pytest.mark.parametrize("currents", adversarial)
@pytest.mark.parametrize("run", EXECUTIONS)
def test_never_more_than_one_spike_adversarial(run, currents):
    assert run(currents).sum(0).max() <= 1


@settings(max_examples=40, deadline=None)
@given(T=st.integers(1, 12), shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       lam=st.sampled_from([1.0, 0.9, 0.5]), scale=st.floats(0.1, 3.0),
       surrogate=st.sampled_from(["sigmoid", "atan", "triangle"]), seed=st.integers(0, 10_000))
def test_step_and_parallel_are_the_same_function(T, shape, lam, scale, surrogate, seed):
    gen = torch.Generator().manual_seed(seed)
    currents = (torch.randn(T, *shape, generator=gen) * scale + 0.2).requires_grad_()
    upstream = torch.randn(T, *shape, generator=gen)
    p = NeuronParams(lam=lam, surrogate=surrogate)

    results = []
    for run in EXECUTIONS:
        currents.grad = None
        spikes = run(currents, p)
        (spikes * upstream).sum().backward()
        results.append((spikes.detach(), currents.grad.clone()))
    (s_step, g_step), (s_par, g_par) = results
    assert torch.equal(s_step, s_par)
    assert s_par.sum(0).max() <= 1
    torch.testing.assert_close(g_par, g_step, rtol=1e-5, atol=1e-5 * g_step.abs().max().item() + 1e-12)


def test_expanded_constant_current_matches_repeated_current():
    current = torch.randn(1, 4, 5).requires_grad_()
    spikes = ttfs_parallel(current.expand(7, 4, 5))
    spikes.sum().backward()
    grad_expanded = current.grad.clone()
    current.grad = None
    ttfs_step(current.repeat(7, 1, 1)).sum().backward()
    torch.testing.assert_close(grad_expanded, current.grad, rtol=1e-5, atol=1e-6)


def test_bad_mode_names_the_choices():
    with pytest.raises(ValueError, match="mode='fast'.*auto"):
        ttfs_neuron(torch.zeros(3, 2), mode="fast")


def test_bad_shape_is_reported():
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        ttfs_neuron(torch.zeros(3))


def test_bad_surrogate_lists_the_choices():
    with pytest.raises(ValueError, match="unknown surrogate 'relu'.*atan, sigmoid, triangle"):
        ttfs_step(torch.zeros(3, 2), NeuronParams(surrogate="relu"))
