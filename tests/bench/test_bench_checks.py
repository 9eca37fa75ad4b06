"""The bench's equality checks: they pass on the benchmarked networks' structure and catch a path that differs."""

import pytest
import torch

from ttfs_lab.bench import checks
from ttfs_lab.bench.workload import default_cases
from ttfs_lab.functional import triton_kernels

CPU = torch.device("cpu")


def tiny_cases():
    """The two bench cases (direct-encoded MNIST digits, DVS event frames) with tiny networks."""
    return {c.name: c for c in default_cases(True, mnist_spec="c4-ap-fc10", dvs_size=8, dvs_batch=2,
                                             dvs_spec="c4-ap-fc11", dvs_T=4)}


@pytest.mark.parametrize("case", ["mnist", "dvsgesture"])
def test_every_execution_path_equals_the_step_reference(case):
    result = checks.equality_checks(tiny_cases()[case], CPU)
    assert set(result) == {"step_vs_parallel_spikes_equal", "step_vs_parallel_grads_close",
                           "step_vs_parallel_torch_backend_spikes_equal", "step_vs_parallel_torch_backend_grads_close",
                           "parallel_recording_path_spikes_equal", "parallel_unfused_path_spikes_equal",
                           "folded_parallel_spikes_equal",
                           "folded_step_spikes_equal", "hidden_spikes_nonzero", "early_exit_predictions_equal_full"}
    assert all(result.values()), [k for k, v in result.items() if not v]


def test_a_wrong_gradient_of_the_fused_neuron_and_pool_is_caught(monkeypatch):
    """Scale the gradient that reaches the fused neuron + pool (used by the unrecorded parallel path only): the
    gradient checks of the parallel paths fail; the spike checks, which it does not change, still pass."""
    import ttfs_lab.nn.neuron as neuron_module

    real = neuron_module.ttfs_avgpool_parallel

    def skewed(*args, **kwargs):
        out = real(*args, **kwargs)
        if out.requires_grad:
            out.register_hook(lambda g: g * 1.5)
        return out

    monkeypatch.setattr(neuron_module, "ttfs_avgpool_parallel", skewed)
    result = checks.equality_checks(tiny_cases()["mnist"], CPU)
    assert not result["step_vs_parallel_grads_close"] and not result["step_vs_parallel_torch_backend_grads_close"]
    assert result["step_vs_parallel_spikes_equal"] and result["parallel_recording_path_spikes_equal"]


def test_grads_close_needs_the_same_nonempty_parameters_within_tolerance():
    a = {"w": torch.tensor([1.0, 2.0])}
    assert checks.grads_close(a, {"w": torch.tensor([1.0, 2.0 + 1e-6])})
    assert not checks.grads_close(a, {"w": torch.tensor([1.0, 2.01])})
    assert not checks.grads_close(a, {"v": a["w"]}) and not checks.grads_close({}, {})


needs_triton = pytest.mark.skipif(not (triton_kernels.AVAILABLE and triton_kernels.INTERPRET),
                                  reason="triton is not installed or TRITON_INTERPRET is not 1")


@needs_triton
def test_triton_neuron_checks_pass_for_the_kernels_and_catch_a_wrong_gradient(monkeypatch):
    """The GPU bench's kernel checks, here on CPU tensors through Triton's interpreter: all pass for the real
    kernels, and a backward that drops the surrogate's gate is caught."""
    result = checks.triton_neuron_checks(CPU, shapes="small")
    assert len(result) == 18 and all(result.values()), [k for k, v in result.items() if not v]
    real_backward = triton_kernels.backward
    monkeypatch.setattr(triton_kernels, "backward", lambda *args, **kw: real_backward(*args, **kw) * 1.01)
    assert not any(checks.triton_neuron_checks(CPU, shapes="small").values())
