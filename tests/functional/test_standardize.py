"""Weight standardization (``ttfs_lab.functional.standardize``, docs/method.md section 3): the fused kernels (numba
on CPU; Triton, here through its interpreter) against the tensor formula, forward and backward; the choice of
``auto``; the errors of a way named where it cannot run."""

import pytest
import torch

from ttfs_lab.functional import kernels, standardize, triton_kernels
from ttfs_lab.functional.standardize import standardize_tensor_ops, standardized_weight

FUSED = [pytest.param("kernel", torch.float64, 1e-10, marks=pytest.mark.skipif(not kernels.AVAILABLE, reason="numba")),
         pytest.param("triton", torch.float32, 2e-5, marks=pytest.mark.skipif(
             not (triton_kernels.AVAILABLE and triton_kernels.INTERPRET), reason="triton interpreter"))]


def test_the_formula_by_hand():
    w = torch.tensor([[1.0, 3.0], [0.0, 4.0]])  # rows: mean 2 / 2, biased std 1 / 2
    out = standardize_tensor_ops(w, torch.tensor([1.0, 0.5]), std=2.0, eps=0.0)
    assert out.tolist() == [[-2.0, 2.0], [-1.0, 1.0]]


@pytest.mark.parametrize("backend,dtype,tol", FUSED)
@pytest.mark.parametrize("shape", [(8, 3, 3, 3), (5, 7), (3, 5000)])  # 5000: a fan-in longer than one block
@pytest.mark.parametrize("affine", [True, False])
def test_fused_standardization_equals_the_tensor_formula(backend, dtype, tol, shape, affine, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    w = (torch.randn(*shape, generator=gen, dtype=dtype) * 3 + 1).requires_grad_()
    gamma = (torch.rand(shape[0], generator=gen, dtype=dtype) + 0.5).requires_grad_() if affine else None
    upstream = torch.randn(*shape, generator=gen, dtype=dtype)
    ran = []
    real = standardize.FUSED[backend].forward
    monkeypatch.setattr(standardize.FUSED[backend], "forward", lambda *a: ran.append(1) or real(*a))
    results = []
    for way in (backend, "torch"):
        w.grad = None
        if gamma is not None:
            gamma.grad = None
        out = standardized_weight(w, gamma, 0.3, 1e-5, backend=way)
        (out * upstream).sum().backward()
        results.append((out.detach(), w.grad.clone(), None if gamma is None else gamma.grad.clone()))
    assert ran == [1]  # the fused kernels ran once, the formula did not use them
    for got, ref in zip(*results):
        if ref is not None:
            torch.testing.assert_close(got, ref, rtol=tol, atol=tol * ref.abs().max().item())


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba")
def test_auto_is_the_numba_kernel_on_cpu_floats_and_the_formula_otherwise(monkeypatch):
    ran = []
    real = standardize.FUSED["kernel"].forward
    monkeypatch.setattr(standardize.FUSED["kernel"], "forward", lambda *a: ran.append(1) or real(*a))
    w = torch.randn(4, 6)
    standardized_weight(w, None, 0.5, 1e-5)
    assert ran == [1]
    half = w.to(torch.bfloat16)
    assert torch.equal(standardized_weight(half, None, 0.5, 1e-5), standardize_tensor_ops(half, None, 0.5, 1e-5))
    assert ran == [1]


def test_a_way_named_where_it_cannot_run_is_refused():
    with pytest.raises(ValueError, match="backend='kernel' needs numba"):
        standardized_weight(torch.zeros(2, 3, dtype=torch.bfloat16), None, 1.0, 1e-5, backend="kernel")
    with pytest.raises(ValueError, match="backend='triton' needs triton"):
        standardized_weight(torch.zeros(2, 3, dtype=torch.float64), None, 1.0, 1e-5, backend="triton")
    with pytest.raises(ValueError, match="backend='fast'.*torch"):
        standardized_weight(torch.zeros(2, 3), None, 1.0, 1e-5, backend="fast")
