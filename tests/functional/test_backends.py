"""The backends of the parallel neuron (``ttfs_lab.functional.backends``): every registered backend's forward and
backward against the step reference, the rules ``auto`` follows, the errors of a backend named where it cannot
run, ``use_backend``, and the layouts the numba glue keeps. (Through the public functions, every backend is held to
the step loop in test_neuron.py.)"""

import pytest
import torch
import torch.nn.functional as F

from ttfs_lab.functional import backends, kernels, triton_kernels
from ttfs_lab.functional.backends import REGISTRY, pick_backend, use_backend
from ttfs_lab.functional.neuron import NeuronParams, ttfs_parallel, ttfs_step

needs_kernels = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")
interpreted = triton_kernels.AVAILABLE and triton_kernels.INTERPRET
needs_triton = pytest.mark.skipif(not interpreted, reason="triton is not installed or TRITON_INTERPRET is not 1")
RUNNABLE = {"kernel": needs_kernels, "triton": needs_triton, "torch": []}


def test_the_registry_names_every_backend_once():
    assert set(REGISTRY) == set(RUNNABLE) and backends.BACKENDS == ("auto", *REGISTRY)
    assert all(backend.name == name for name, backend in REGISTRY.items())


@pytest.mark.parametrize("name", [pytest.param(n, marks=m) for n, m in RUNNABLE.items()])
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("const", [False, True])
def test_every_backend_s_forward_and_backward_are_the_step_loop_s(name, k, const):
    """The interface itself: forward -> (pooled) spikes, X and the backend for backward; backward -> dL/dI."""
    backend, T, p = REGISTRY[name], 5, NeuronParams(theta=0.7, lam=0.9, surrogate="atan")
    gen = torch.Generator().manual_seed(11)
    cur = torch.randn(1 if const else T, 2, 3, 5, 6, generator=gen) * 0.5 + 0.3
    out, x, used = backend.forward(cur, T, const, p, True, k)
    assert used is backend and x.shape == (T, *cur.shape[1:])
    upstream = torch.randn(out.shape, generator=gen)
    grad = backend.backward(upstream, x, const, p, k, cur.dtype)
    leaf = cur.clone().requires_grad_()
    ref = ttfs_step(leaf.expand(T, *cur.shape[1:]), p)
    ref = F.avg_pool2d(ref.flatten(0, 1), k).view(out.shape) if k > 1 else ref
    (ref * upstream).sum().backward()
    assert torch.equal(out, ref) and ref.sum() > 0
    assert grad.shape == cur.shape
    torch.testing.assert_close(grad, leaf.grad, rtol=1e-5, atol=1e-5 * leaf.grad.abs().max().item())
    assert backend.forward(cur, T, const, p, False, k)[1] is None  # nothing saved without a gradient


@needs_kernels
def test_auto_is_the_numba_kernel_for_cpu_float_tensors_and_torch_otherwise():
    p = NeuronParams()
    assert pick_backend("auto", torch.zeros(2, 3), p).name == "kernel"
    assert pick_backend("auto", torch.zeros(2, 3, dtype=torch.float64), p).name == "kernel"
    assert pick_backend("auto", torch.zeros(2, 3, dtype=torch.bfloat16), p).name == "torch"


def test_auto_backend_keeps_cpu_tensors_off_the_triton_interpreter(monkeypatch):
    """``auto`` picks Triton for CUDA tensors only: the interpreter the tests use must not slow down CPU runs."""
    launched = []
    monkeypatch.setattr(triton_kernels, "forward", lambda *args: launched.append(args))
    currents = torch.randn(4, 3, requires_grad=True)
    assert pick_backend("auto", currents, NeuronParams()).name != "triton"
    assert torch.equal(ttfs_parallel(currents), ttfs_step(currents.detach())) and not launched


@needs_triton
def test_triton_named_on_cpu_runs_the_interpreter():
    assert pick_backend("triton", torch.zeros(2, 3), NeuronParams()).name == "triton"


def test_kernel_backend_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="backend='kernel' needs"):
        ttfs_parallel(torch.zeros(3, 2, dtype=torch.int32), backend="kernel")


def test_triton_backend_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="backend='triton' needs.*use backend='torch'"):
        ttfs_parallel(torch.zeros(3, 2, dtype=torch.float64), backend="triton")


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="backend='fast'.*auto.*kernel.*triton.*torch"):
        pick_backend("fast", torch.zeros(2, 3), NeuronParams())
    with pytest.raises(ValueError, match="backend='fast'"):
        with use_backend("fast"):
            pass


@needs_kernels
def test_use_backend_nests_and_is_restored_after_an_error():
    """On a CPU float32 tensor ``auto`` is the kernel: each block's backend holds inside it, and leaving a block
    (by an error too) brings back the one outside."""
    x, half, p = torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bfloat16), NeuronParams()
    with use_backend("torch"):
        assert pick_backend("auto", x, p).name == "torch"
        with pytest.raises(RuntimeError), use_backend("kernel"):
            assert pick_backend("auto", x, p).name == "kernel"
            with pytest.raises(ValueError, match="backend='kernel' needs"):
                pick_backend("auto", half, p)  # the block's backend is checked like a named one
            raise RuntimeError
        assert pick_backend("auto", x, p).name == "torch"
    assert pick_backend("auto", x, p).name == "kernel"


@needs_kernels
def test_kernel_keeps_a_channels_last_layout():
    cur = (torch.randn(2 * 3, 4, 5, 5) + 0.5).to(memory_format=torch.channels_last).view(2, 3, 4, 5, 5)
    assert not cur.is_contiguous()
    spikes = ttfs_parallel(cur.requires_grad_(), backend="kernel")
    spikes.sum().backward()
    assert torch.equal(spikes, ttfs_step(cur.detach()))
    assert spikes.stride() == cur.stride() and cur.grad.stride() == cur.stride()  # read and written in place


@needs_kernels
def test_kernel_reads_dense_currents_whose_steps_are_not_outermost():
    """``[B, T, N]`` memory seen as ``[T, B, N]``: dense, but the kernel walks steps outermost, so it copies."""
    cur = (torch.rand(3, 5, 4) + 0.2).transpose(0, 1).requires_grad_()
    spikes = ttfs_parallel(cur, backend="kernel")
    (spikes * torch.arange(5.0).view(5, 1, 1)).sum().backward()
    grad = cur.grad.clone()
    cur.grad = None
    ref = ttfs_step(cur)
    (ref * torch.arange(5.0).view(5, 1, 1)).sum().backward()
    assert torch.equal(spikes, ref)
    torch.testing.assert_close(grad, cur.grad)
