"""The fused GPU (Triton) kernels: mixed precision, the fallback when Triton fails on a GPU, and, on a machine with
CUDA, the compiled kernels against the step loop and the tensor formula (the interpreted kernels are held to them
with every other backend in test_neuron.py and test_standardize.py)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ttfs_lab.functional import standardize, triton_kernels
from ttfs_lab.functional.backends import pick_backend
from ttfs_lab.functional.neuron import NeuronParams, ttfs_avgpool_parallel, ttfs_parallel, ttfs_step

needs_triton = pytest.mark.skipif(not (triton_kernels.AVAILABLE and triton_kernels.INTERPRET),
                                  reason="triton is not installed or TRITON_INTERPRET is not 1")


@needs_triton
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_sums_in_float32_and_matches_the_tensor_ops(dtype):
    """The potential is summed in float32 (0.3 * 4 reaches theta; in bfloat16 it would not), spikes and gradients
    come back in the input's dtype and equal the tensor-op backend's."""
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(6, 5, 7, generator=gen) * 0.5
    base[:, 0] = 0.3
    results = []
    for backend in ("triton", "torch"):
        currents = base.to(dtype).requires_grad_()
        spikes = ttfs_parallel(currents, backend=backend)
        (spikes * torch.arange(6.0).view(6, 1, 1).to(dtype)).sum().backward()
        results.append((spikes, currents.grad))
    (spikes, grad), (ref_spikes, ref_grad) = results
    assert spikes.dtype == grad.dtype == dtype
    assert spikes[:, 0].float().sum(0).tolist() == [1.0] * 7
    assert torch.equal(spikes, ref_spikes)
    torch.testing.assert_close(grad.float(), ref_grad.float(), rtol=2e-2, atol=2e-2)


class FakeTritonError(RuntimeError):
    """Stands for a compiler error raised by triton (the fallback tells triton's errors by their module)."""


FakeTritonError.__module__ = "triton.compiler.errors"


def _failing_launch(*args, **kwargs):
    raise FakeTritonError("PassManager::run failed")


@needs_triton
@pytest.mark.parametrize("pooled", [False, True])
def test_a_failed_triton_launch_warns_once_and_falls_back_to_the_same_function(monkeypatch, pooled):
    monkeypatch.setattr(triton_kernels, "FAILED", [])
    monkeypatch.setattr(triton_kernels, "forward", _failing_launch)
    monkeypatch.setattr(triton_kernels, "applies", lambda *args, **kwargs: True)  # as on a GPU
    gen = torch.Generator().manual_seed(1)
    currents = (torch.randn(5, 2, 3, 6, 7, generator=gen) * 0.6 + 0.3).requires_grad_()
    run = (lambda c: ttfs_avgpool_parallel(c, T=5)) if pooled else (lambda c: ttfs_parallel(c))
    with pytest.warns(RuntimeWarning, match="Triton kernels failed on this GPU.*PassManager"):
        out = run(currents)
    out.sum().backward()
    grad = currents.grad.clone()
    currents.grad = None
    spikes = ttfs_step(currents)
    ref = F.avg_pool2d(spikes.flatten(0, 1), 2).view(out.shape) if pooled else spikes
    ref.sum().backward()
    assert torch.equal(out, ref)
    torch.testing.assert_close(grad, currents.grad)
    assert pick_backend("auto", currents, NeuronParams()).name != "triton"  # auto stays off Triton


def test_a_failed_standardization_kernel_falls_back_to_the_tensor_formula(monkeypatch):
    monkeypatch.setattr(triton_kernels, "FAILED", [])
    monkeypatch.setattr(triton_kernels, "standardize_forward", _failing_launch)
    monkeypatch.setattr(triton_kernels, "applies", lambda *args, **kwargs: True)  # as on a GPU
    monkeypatch.setattr(standardize.kernels, "AVAILABLE", False)  # not the CPU kernel
    w = torch.randn(4, 9)
    with pytest.warns(RuntimeWarning, match="Triton kernels failed"):
        out = standardize.standardized_weight(w, None, 0.5, 1e-5)
    assert torch.equal(out, standardize.standardize_tensor_ops(w, None, 0.5, 1e-5))
    assert triton_kernels.FAILED and not triton_kernels.usable(w)


def test_any_error_raised_inside_triton_falls_back(monkeypatch):
    """E.g. a KeyError from a Triton version that lacks an option: raised in triton's files, so it falls back."""
    inside = compile("raise KeyError('enable_fp_fusion')", os.path.join(triton_kernels._TRITON_DIR, "fake.py"), "exec")
    monkeypatch.setattr(triton_kernels, "FAILED", [])
    with pytest.warns(RuntimeWarning, match="enable_fp_fusion"):
        result, launched = triton_kernels.launch_or_fallback(lambda: exec(inside), lambda: "tensor ops")
    assert (result, launched) == ("tensor ops", False)


def test_errors_that_are_not_triton_s_are_raised(monkeypatch):
    monkeypatch.setattr(triton_kernels, "forward", lambda *args: 1 / 0)
    monkeypatch.setattr(triton_kernels, "applies", lambda *args, **kwargs: True)
    with pytest.raises(ZeroDivisionError):
        ttfs_parallel(torch.randn(3, 4, requires_grad=True), backend="triton")


COMPILED_CHECK = textwrap.dedent("""
    import torch
    from ttfs_lab.bench.checks import triton_neuron_checks
    from ttfs_lab.functional import triton_kernels
    from ttfs_lab.functional.standardize import standardize_tensor_ops, standardized_weight
    checks = triton_neuron_checks(torch.device("cuda"))
    assert all(checks.values()), [k for k, v in checks.items() if not v]
    w = (torch.randn(2048, 6272, device="cuda") * 3 + 1).requires_grad_()
    gamma = (torch.rand(2048, device="cuda") + 0.5).requires_grad_()
    up = torch.randn_like(w)
    got = torch.autograd.grad((standardized_weight(w, gamma, 0.3, 1e-5, backend="triton") * up).sum(), (w, gamma))
    ref = torch.autograd.grad((standardize_tensor_ops(w, gamma, 0.3, 1e-5) * up).sum(), (w, gamma))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())
    assert not triton_kernels.FAILED, triton_kernels.FAILED
    print(f"compiled triton kernels == step loop ({len(checks)} neuron checks) and the tensor formula")
""")


def _without_interpreter(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return {**env, **extra}


@pytest.mark.skipif(not triton_kernels.AVAILABLE, reason="triton is not installed")
def test_every_kernel_variant_compiles_for_hopper_and_ampere_without_a_gpu(tmp_path):
    """Ahead-of-time compilation to cubin (sm_90: H100 / H200, sm_80: A100) in a fresh cache: catches what the
    interpreter lets pass, and the fp32 neuron's PTX has no fused multiply-add (the step reference's rounding)."""
    script = Path(__file__).with_name("compile_triton_kernels.py")
    env = _without_interpreter(TRITON_CACHE_DIR=str(tmp_path), PYTHONPATH=str(Path(__file__).parents[2]))
    done = subprocess.run([sys.executable, str(script), "90", "80"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sm_90: 98 kernel variants compiled" in done.stdout and "sm_80: 98" in done.stdout, done.stdout


@pytest.mark.skipif(not (torch.cuda.is_available() and triton_kernels.AVAILABLE), reason="needs a CUDA GPU")
def test_compiled_kernels_equal_the_step_loop_on_the_gpu():
    """In a subprocess without ``TRITON_INTERPRET``, so that Triton compiles the kernels for the GPU."""
    done = subprocess.run([sys.executable, "-c", COMPILED_CHECK], env=_without_interpreter(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "compiled triton kernels == step loop" in done.stdout, done.stdout[-3000:]
