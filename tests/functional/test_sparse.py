"""Sparse x dense products for spike inputs equal the dense ops, forward and every gradient."""

import pytest
import torch
import torch.nn.functional as F

from ttfs_lab.functional import kernels, sparse
from ttfs_lab.functional.sparse import spike_conv2d, spike_linear

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def spikes(*shape, density=0.1, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    values = torch.randint(1, 5, shape, generator=gen).to(dtype) / 4  # pooled spikes: multiples of 1/4
    return ((torch.rand(shape, generator=gen) < density).to(dtype) * values).requires_grad_()


def forward_backward(fn, tensors, seed=1):
    for t in tensors:
        t.grad = None
    out = fn()
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    (out * upstream).sum().backward()
    return [out.detach()] + [t.grad.clone() if t.grad is not None else None for t in tensors]


def assert_all_close(got, ref, dtype):
    for g, r in zip(got, ref):
        if r is None:
            assert g is None
            continue
        torch.testing.assert_close(g, r, rtol=TOL[dtype], atol=TOL[dtype] * r.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("N,C,H,W,O,k,stride,pad", [
    (6, 5, 9, 8, 7, 3, 1, 1), (4, 3, 10, 10, 6, 3, 2, 1), (3, 4, 7, 7, 5, 5, 1, 2), (2, 3, 6, 6, 4, 2, 2, 0),
    (2, 2, 5, 5, 3, 1, 1, 0), (3, 2, 6, 7, 4, 3, 1, 0), (3, 3, 8, 7, 4, 3, (2, 1), 1), (3, 3, 7, 8, 4, 3, (1, 2), 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_sparse_conv_equals_dense_conv(dtype, N, C, H, W, O, k, stride, pad, bias):
    x = spikes(N, C, H, W, dtype=dtype)
    w = torch.randn(O, C, k, k, dtype=dtype, requires_grad=True)
    b = torch.randn(O, dtype=dtype, requires_grad=True) if bias else None
    tensors = [x, w] + ([b] if bias else [])
    got = forward_backward(lambda: spike_conv2d(x, w, b, stride, pad, density_limit=1.0), tensors)
    ref = forward_backward(lambda: F.conv2d(x, w, b, stride, pad), tensors)
    assert_all_close(got, ref, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("R,K,O", [(13, 40, 300), (7, 9, 5), (1, 3, 2)])
def test_sparse_linear_equals_dense_linear(dtype, R, K, O):
    x = spikes(R, K, dtype=dtype)
    w = torch.randn(O, K, dtype=dtype, requires_grad=True)
    b = torch.randn(O, dtype=dtype, requires_grad=True)
    got = forward_backward(lambda: spike_linear(x, w, b, density_limit=1.0), [x, w, b])
    ref = forward_backward(lambda: F.linear(x, w, b), [x, w, b])
    assert_all_close(got, ref, dtype)


def test_all_zero_input_gives_bias_and_zero_weight_gradient():
    x = torch.zeros(4, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    out = spike_conv2d(x, w, b, 1, 1, density_limit=1.0)
    out.sum().backward()
    assert torch.equal(out, b.detach().view(1, 2, 1, 1).expand_as(out))
    assert w.grad.abs().max() == 0 and x.grad.abs().max() > 0


def test_input_that_needs_no_gradient_gets_none():
    x = spikes(3, 6).detach()
    w = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    spike_linear(x, w, None, density_limit=1.0).sum().backward()
    assert x.grad is None and w.grad is not None


def test_dense_input_falls_back_to_the_dense_op(monkeypatch):
    called = []
    monkeypatch.setattr(sparse._SpikeLinear, "apply", lambda *a: called.append(1))
    x = spikes(8, 10, density=0.9)
    w = torch.randn(3, 10, dtype=torch.float64)
    torch.testing.assert_close(spike_linear(x, w), F.linear(x, w))  # 90 % nonzero: above the limit
    assert not called
