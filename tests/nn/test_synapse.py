import pytest
import torch

from ttfs_lab.functional import kernels, triton_kernels
from ttfs_lab.init import ettfs_std
from ttfs_lab.nn.synapse import NormConv2d, NormLinear
from ttfs_lab.nn.synapse import _standardize_tensor_ops as _reference_standardized


def test_normalized_weight_has_the_ettfs_statistics_per_output_unit():
    layer = NormConv2d(16, 8, T=8, kernel_size=3)
    with torch.no_grad():
        layer.weight.mul_(5).add_(3)  # drift the raw weights
    w = layer.effective_weight().flatten(1)
    torch.testing.assert_close(w.mean(1), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(w.std(1, unbiased=False), torch.full((8,), ettfs_std(144, 8)), rtol=1e-3, atol=0)


def test_affine_scales_and_shifts():
    layer = NormLinear(10, 4, T=4)
    x = torch.randn(3, 10)
    base = layer(x)
    with torch.no_grad():
        layer.gamma.fill_(2.0)
        layer.bias.fill_(0.5)
    torch.testing.assert_close(layer(x), 2 * base + 0.5)


def test_switches_change_parameters():
    assert NormLinear(4, 2, T=4, norm=True, affine=False).bias is None
    plain = NormLinear(4, 2, T=4, norm=False, affine=False)
    assert plain.bias is not None and plain.gamma is None
    x = torch.randn(3, 4)
    torch.testing.assert_close(plain(x), x @ plain.weight.T + plain.bias)


@pytest.mark.parametrize("norm,affine", [(True, True), (True, False), (False, True), (False, False)])
def test_fold_gives_identical_outputs(norm, affine):
    for layer, x in ((NormConv2d(3, 5, T=8, norm=norm, affine=affine), torch.randn(2, 3, 6, 6)),
                     (NormLinear(7, 3, T=8, norm=norm, affine=affine), torch.randn(4, 7))):
        if layer.gamma is not None:
            with torch.no_grad():
                layer.gamma.uniform_(0.5, 2)
                layer.bias.uniform_(-1, 1)
        folded = layer.fold()
        assert type(folded) in (torch.nn.Conv2d, torch.nn.Linear)
        assert torch.equal(folded(x), layer(x))


def _fused(backend: str):
    from ttfs_lab.nn.synapse import _standardize_opaque, _StandardizeTriton, standardized_weight

    if backend == "kernel":
        return standardized_weight  # numba on CPU tensors
    return lambda w, gamma, std, eps: _standardize_opaque(_StandardizeTriton, w, gamma, std, eps)


FUSED = [pytest.param("kernel", torch.float64, 1e-10, marks=pytest.mark.skipif(not kernels.AVAILABLE, reason="numba")),
         pytest.param("triton", torch.float32, 2e-5, marks=pytest.mark.skipif(
             not (triton_kernels.AVAILABLE and triton_kernels.INTERPRET), reason="triton interpreter"))]


@pytest.mark.parametrize("backend,dtype,tol", FUSED)
@pytest.mark.parametrize("shape", [(8, 3, 3, 3), (5, 7), (3, 5000)])  # 5000: a fan-in longer than one block
@pytest.mark.parametrize("affine", [True, False])
def test_fused_standardization_equals_the_tensor_formula(backend, dtype, tol, shape, affine):
    """The fused kernels (numba on CPU; Triton, here through its interpreter) against the tensor formula."""
    gen = torch.Generator().manual_seed(0)
    w = (torch.randn(*shape, generator=gen, dtype=dtype) * 3 + 1).requires_grad_()
    gamma = (torch.rand(shape[0], generator=gen, dtype=dtype) + 0.5).requires_grad_() if affine else None
    upstream = torch.randn(*shape, generator=gen, dtype=dtype)
    results = []
    for fn in (_fused(backend), _reference_standardized):
        w.grad = None
        if gamma is not None:
            gamma.grad = None
        out = fn(w, gamma, 0.3, 1e-5)
        (out * upstream).sum().backward()
        results.append((out.detach(), w.grad.clone(), None if gamma is None else gamma.grad.clone()))
    for got, ref in zip(*results):
        if ref is not None:
            torch.testing.assert_close(got, ref, rtol=tol, atol=tol * ref.abs().max().item())


@pytest.mark.parametrize("mallopt_ok", [1, 0])
def test_retain_freed_memory_is_idempotent(monkeypatch, mallopt_ok):
    """The first call sets glibc's mmap and trim thresholds (one mallopt each), later calls return its result
    without calling mallopt again, and the report line says what took effect."""
    import ctypes

    from ttfs_lab.nn import runtime

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return mallopt_ok

    monkeypatch.setattr(runtime, "_state", {"done": False, "ok": False})  # a fresh process
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    assert runtime.allocator_setting() == "default (glibc mmap for large blocks)"
    first = runtime.retain_freed_memory(mmap_threshold=1 << 20, trim_threshold=1 << 21)
    assert first is bool(mallopt_ok)
    assert calls[0] == (runtime.M_MMAP_THRESHOLD, 1 << 20)
    if mallopt_ok:
        assert calls == [(runtime.M_MMAP_THRESHOLD, 1 << 20), (runtime.M_TRIM_THRESHOLD, 1 << 21)]
    made = len(calls)
    assert runtime.retain_freed_memory() is first and len(calls) == made  # idempotent: no second mallopt
    assert runtime.allocator_setting() == ("retain freed memory (glibc mallopt)" if mallopt_ok
                                           else "default (mallopt unavailable)")
