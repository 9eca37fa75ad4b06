"""The neuron's executions: hand-computed traces, single-spike property, and step == parallel for every backend of
the parallel execution (fused CPU kernel, fused GPU kernel, tensor ops), with and without fused average pooling
(docs/method.md section 1). The GPU (Triton) kernels run here on CPU tensors through Triton's interpreter
(``TRITON_INTERPRET=1``, set by conftest); tests/functional/test_triton_kernels.py runs them compiled on a GPU.
The reference alone: test_neuron_reference.py; the backends' interface and choice: test_backends.py."""

import functools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ttfs_lab.functional import kernels, triton_kernels
from ttfs_lab.functional.neuron import (NeuronParams, resolve_mode, ttfs_avgpool_parallel, ttfs_avgpool_recorded,
                                        ttfs_neuron, ttfs_parallel, ttfs_resume, ttfs_step, use_backend)

needs_kernels = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")
needs_triton = pytest.mark.skipif(not (triton_kernels.AVAILABLE and triton_kernels.INTERPRET),
                                  reason="triton is not installed or TRITON_INTERPRET is not 1")
parallel_kernel = functools.partial(ttfs_parallel, backend="kernel")
parallel_triton = functools.partial(ttfs_parallel, backend="triton")
parallel_torch = functools.partial(ttfs_parallel, backend="torch")
parallel_kernel.__name__, parallel_triton.__name__, parallel_torch.__name__ = (
    "parallel_kernel", "parallel_triton", "parallel_torch")
PARALLEL = [pytest.param(parallel_kernel, marks=needs_kernels), pytest.param(parallel_triton, marks=needs_triton),
            parallel_torch]
# backends of the fused neuron and the dtypes each one runs (the Triton kernels: float32 / float16 / bfloat16)
BACKEND_DTYPES = [pytest.param("kernel", torch.float32, marks=needs_kernels),
                  pytest.param("kernel", torch.float64, marks=needs_kernels),
                  pytest.param("triton", torch.float32, marks=needs_triton),
                  ("torch", torch.float32), ("torch", torch.float64)]
EXECUTIONS = [ttfs_step, *PARALLEL]


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

    runs = [ttfs_step, parallel_torch] + ([parallel_kernel] if kernels.AVAILABLE else [])
    runs += [parallel_triton] if triton_kernels.AVAILABLE and triton_kernels.INTERPRET else []
    results = []
    for run in runs:
        currents.grad = None
        spikes = run(currents, p)
        (spikes * upstream).sum().backward()
        results.append((spikes.detach(), currents.grad.clone()))
    s_step, g_step = results[0]
    for s_par, g_par in results[1:]:
        assert torch.equal(s_step, s_par)
        assert s_par.sum(0).max() <= 1
        torch.testing.assert_close(g_par, g_step, rtol=1e-5, atol=1e-5 * g_step.abs().max().item() + 1e-12)


@pytest.mark.parametrize("run", PARALLEL)
def test_expanded_constant_current_matches_repeated_current(run):
    current = torch.randn(1, 4, 5).requires_grad_()
    spikes = run(current.expand(7, 4, 5))
    spikes.sum().backward()
    grad_expanded = current.grad.clone()
    current.grad = None
    ttfs_step(current.repeat(7, 1, 1)).sum().backward()
    torch.testing.assert_close(grad_expanded, current.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend,dtype", BACKEND_DTYPES)
@pytest.mark.parametrize("p", [NeuronParams(), NeuronParams(theta=0.7, lam=0.9, surrogate="atan"),
                               NeuronParams(lam=0.5, surrogate="triangle", alpha=1.0)])
def test_constant_current_is_read_once_and_matches_the_step_loop(backend, p, dtype):
    """A ``[1, B, ...]`` current with T given: never expanded in memory, gradient returned as ``[1, B, ...]``."""
    gen = torch.Generator().manual_seed(3)
    current = (torch.rand(1, 6, 5, generator=gen, dtype=dtype) * 0.6).requires_grad_()
    upstream = torch.randn(9, 6, 5, generator=gen, dtype=dtype)
    spikes = ttfs_parallel(current, p, T=9, backend=backend)
    (spikes * upstream).sum().backward()
    grad = current.grad.clone()
    current.grad = None
    ref = ttfs_step(current.expand(9, 6, 5), p)
    (ref * upstream).sum().backward()
    assert grad.shape == (1, 6, 5)
    assert torch.equal(spikes, ref) and ref.sum() > 0
    torch.testing.assert_close(grad, current.grad, rtol=1e-5, atol=1e-5 * current.grad.abs().max().item())


POOL_CASES = [(2, 6, 6), (3, 7, 8), (2, 5, 4)]  # odd sizes: the last row / column is outside every window


@pytest.mark.parametrize("backend,dtype", BACKEND_DTYPES)
@pytest.mark.parametrize("k,H,W", POOL_CASES)
@pytest.mark.parametrize("const", [True, False])
@pytest.mark.parametrize("p", [NeuronParams(), NeuronParams(theta=0.7, lam=0.9, surrogate="atan"),
                               NeuronParams(surrogate="triangle", alpha=1.0)])
def test_fused_neuron_and_average_pool_equal_the_two_steps(backend, k, H, W, const, p, dtype):
    T = 5
    gen = torch.Generator().manual_seed(7)
    cur = (torch.randn(1 if const else T, 3, 4, H, W, generator=gen, dtype=dtype) * 0.6 + 0.3).requires_grad_()
    pooled = ttfs_avgpool_parallel(cur, p, T, k, backend=backend)
    upstream = torch.randn(pooled.shape, generator=gen, dtype=dtype)
    (pooled * upstream).sum().backward()
    grad = cur.grad.clone()
    cur.grad = None
    spikes = ttfs_step(cur.expand(T, *cur.shape[1:]) if const else cur, p)
    ref = F.avg_pool2d(spikes.flatten(0, 1), k).view(pooled.shape)
    (ref * upstream).sum().backward()
    assert torch.equal(pooled, ref) and ref.sum() > 0
    torch.testing.assert_close(grad, cur.grad, rtol=1e-5, atol=1e-5 * cur.grad.abs().max().item())


@pytest.mark.skipif(not kernels.AVAILABLE, reason="needs numba")
@pytest.mark.parametrize("k,H,W", POOL_CASES)
@pytest.mark.parametrize("const", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_recorded_pool_gives_the_pooled_spikes_and_the_first_spike_histogram(k, H, W, const, dtype):
    T = 6
    gen = torch.Generator().manual_seed(3)
    cur = torch.randn(1 if const else T, 3, 40, H, W, generator=gen, dtype=dtype) * 0.6 + 0.3  # several blocks
    p = NeuronParams(theta=0.8, lam=0.95)
    pooled, hist = ttfs_avgpool_recorded(cur, p, T, k)
    spikes = ttfs_step(cur.expand(T, *cur.shape[1:]) if const else cur, p)
    assert torch.equal(pooled, F.avg_pool2d(spikes.flatten(0, 1), k).view(pooled.shape))
    fired = spikes.sum(0) > 0
    first = torch.where(fired, spikes.argmax(0), torch.full(fired.shape, T))
    assert torch.equal(hist, torch.bincount(first.flatten(), minlength=T + 1).float())
    assert 0 < fired.float().mean() < 1  # some fire, some stay silent
    assert ttfs_avgpool_recorded(cur.clone().requires_grad_(), p, T, k) is None  # a gradient: not this path
    with use_backend("torch"):
        assert ttfs_avgpool_recorded(cur, p, T, k) is None


@pytest.mark.parametrize("run", PARALLEL)
def test_no_grad_forward_gives_the_same_spikes(run):
    currents = torch.randn(6, 4, 7) * 0.7 + 0.3
    with torch.no_grad():
        fast = run(currents)
    assert torch.equal(fast, ttfs_step(currents))


def test_mixed_precision_input_sums_in_float32():
    currents = torch.full((4, 3), 0.3)
    spikes = ttfs_parallel(currents.to(torch.bfloat16), backend="torch")
    assert spikes.dtype == torch.bfloat16
    assert spikes.float().sum(0).tolist() == [1.0, 1.0, 1.0]  # 0.3 * 4 >= 1 summed in float32


@needs_kernels
def test_use_backend_switches_the_auto_backend(monkeypatch):
    """On a CPU float tensor ``auto`` is the fused numba kernel; inside ``use_backend("torch")`` the kernel must not
    run (the tensor ops do, with the same spikes), and after the block ``auto`` is the kernel again."""
    launches = []
    real_forward = kernels.forward_kernel
    monkeypatch.setattr(kernels, "forward_kernel", lambda *args: launches.append(1) or real_forward(*args))
    currents = torch.randn(5, 3, requires_grad=True)
    ttfs_parallel(currents)
    assert len(launches) == 1  # the premise: auto runs the kernel here
    with use_backend("torch"):
        spikes = ttfs_parallel(currents)
    assert len(launches) == 1, "use_backend('torch') still ran the fused kernel"
    assert spikes.grad_fn is not None and torch.equal(spikes, ttfs_step(currents.detach()))
    ttfs_parallel(currents)
    assert len(launches) == 2  # the block restored auto


def test_auto_mode_is_the_parallel_execution():
    assert resolve_mode("auto", "cpu", 8) == "parallel" and resolve_mode("step") == "step"


def test_bad_mode_names_the_choices():
    with pytest.raises(ValueError, match="mode='fast'.*auto"):
        ttfs_neuron(torch.zeros(3, 2), mode="fast")


def test_bad_shape_is_reported():
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        ttfs_neuron(torch.zeros(3))


def test_currents_with_the_wrong_number_of_steps_are_reported():
    with pytest.raises(ValueError, match="currents have 3 steps, expected 5"):
        ttfs_parallel(torch.zeros(3, 2), T=5)


@pytest.mark.parametrize("fused", [pytest.param(True, marks=needs_kernels), False])
@pytest.mark.parametrize("pool", [1, 2])
@pytest.mark.parametrize("p", [NeuronParams(), NeuronParams(theta=0.7, lam=0.9, surrogate="atan")])
def test_resume_chunk_by_chunk_equals_the_step_loop_over_the_window(monkeypatch, fused, pool, p):
    """Inference in chunks of 3 + 4 steps from a carried state: the spikes of ``ttfs_step`` over all 7, on the
    fused kernel (which must run) and on the tensor-op loop (numba switched off)."""
    launches = []
    real_forward = kernels.forward_kernel
    monkeypatch.setattr(kernels, "forward_kernel", lambda *args: launches.append(1) or real_forward(*args))
    if not fused:
        monkeypatch.setattr(kernels, "AVAILABLE", False)
    gen = torch.Generator().manual_seed(5)
    cur = torch.randn(7, 2, 3, 6, 6, generator=gen) * 0.6 + 0.3
    state, chunks = None, []
    for chunk in (cur[:3], cur[3:]):
        out, state = ttfs_resume(chunk, p, chunk.shape[0], state, pool)
        chunks.append(out)
    ref = ttfs_step(cur, p)
    if pool > 1:
        ref = F.avg_pool2d(ref.flatten(0, 1), pool).view(7, 2, 3, 3, 3)
    assert torch.equal(torch.cat(chunks), ref) and ref.sum() > 0
    assert torch.equal(state.free, 1 - ttfs_step(cur, p).sum(0))  # 0 where the unit has fired
    assert len(launches) == (2 if fused else 0)
