"""``python -m ttfs_lab.bench`` end to end on tiny networks (quick mode): every field is there and sane.

Timings are not checked against the targets here (the machine may be busy); ``make bench`` reports those.
"""

import json

import pytest

from ttfs_lab import bench

TINY = ["--quick", "--mnist-spec", "c4-ap-fc10", "--mnist-batch", "8", "--dvs-spec", "c4-ap-fc11", "--dvs-size", "8",
        "--dvs-T", "4", "--dvs-batch", "2", "--loading-size", "16", "--loading-events", "2000",
        "--loading-workers", "0", "--loading-batches", "3", "--inference-train-steps", "2"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    returned = bench.main(TINY + ["--out", str(out)])
    written = json.loads(out.read_text())
    assert written["meta"]["quick"] is True and set(written) == set(returned)
    return written


@pytest.mark.parametrize("case", ["mnist", "dvsgesture"])
def test_every_mode_is_timed_and_measured(results, case):
    r = results["cases"][case]
    for name in ("step", "parallel", "auto", "ann"):
        assert r["time_s"][name] > 0 and len(r["times_all_s"][name]) == results["meta"]["repeats"]
        mem = r["memory"][name]
        # the tiny networks' working memory can round to almost nothing; it is never negative
        assert mem["peak_bytes"] >= mem["persistent_bytes"] > 0 and mem["step_working_bytes"] >= 0
    assert r["auto_resolves_to"] == "parallel"
    assert r["T_x_ann_s"] == pytest.approx(r["T"] * r["time_s"]["ann"])


@pytest.mark.parametrize("case", ["mnist", "dvsgesture"])
def test_ratios_are_positive_and_consistent(results, case):
    r = results["cases"][case]
    q, t = r["ratios"], r["time_s"]
    for key in ("auto_over_step", "parallel_over_step", "step_over_parallel", "auto_over_T_ann",
                "parallel_over_T_ann", "step_over_T_ann", "memory_parallel_over_step", "memory_auto_over_step"):
        assert q[key] > 0, key
    assert q["auto_over_step"] == pytest.approx(t["auto"] / t["step"])
    assert q["auto_over_T_ann"] == pytest.approx(t["auto"] / (r["T"] * t["ann"]))


@pytest.mark.parametrize("case", ["mnist", "dvsgesture"])
def test_every_equality_check_passes(results, case):
    checks = results["cases"][case]["equal"]
    for key in ("step_vs_parallel_spikes_equal", "step_vs_parallel_grads_close",
                "step_vs_parallel_torch_backend_spikes_equal", "step_vs_parallel_torch_backend_grads_close",
                "parallel_recording_path_spikes_equal", "folded_parallel_spikes_equal", "folded_step_spikes_equal",
                "hidden_spikes_nonzero", "early_exit_predictions_equal_full"):
        assert checks[key] is True, key


def test_inference_and_loading_sections(results):
    inf = results["inference"]
    assert inf["predictions_kept"] == 1.0 and 1 <= inf["mean_exit_step"] <= inf["T"]
    assert inf["speedup_vs_full_parallel"] > 0 and 0 < inf["work_fraction"] <= 1
    assert [r["chunk"] for r in inf["by_chunk"]] == [1, 2, 4]
    assert all(r["predictions_kept"] == 1.0 for r in inf["by_chunk"])
    load = results["dvs_loading"]
    assert load["samples_per_s"] > 0 and load["data"].startswith("fabricated")
    assert isinstance(results["targets"], dict) and results["targets"]
    assert results["meta"]["cpu_allocator"] and "fused_cpu_kernels" in results["meta"]


needs_triton = pytest.mark.skipif(not (bench.triton_kernels.AVAILABLE and bench.triton_kernels.INTERPRET),
                                  reason="triton is not installed or TRITON_INTERPRET is not 1")


@needs_triton
def test_triton_neuron_checks_pass_for_the_kernels_and_catch_a_wrong_gradient(monkeypatch):
    """The GPU bench's kernel checks, here on CPU tensors through Triton's interpreter: all pass for the real
    kernels, and a backward that drops the surrogate's gate is caught."""
    import torch

    checks = bench.triton_neuron_checks(torch.device("cpu"), shapes="small")
    assert len(checks) == 18 and all(checks.values()), [k for k, v in checks.items() if not v]
    real_backward = bench.triton_kernels.backward
    monkeypatch.setattr(bench.triton_kernels, "backward", lambda *args, **kw: real_backward(*args, **kw) * 1.01)
    assert not any(bench.triton_neuron_checks(torch.device("cpu"), shapes="small").values())


@pytest.mark.parametrize("case", ["mnist", "dvsgesture"])
def test_parallel_dispatches_fewer_tensor_ops_than_step(results, case):
    """The step loop dispatches each layer's ops T times; the parallel execution once (its neuron is one kernel)."""
    ops = results["cases"][case]["dispatched_ops"]
    assert set(ops) >= {"step", "parallel", "auto", "ann"}
    assert 0 < ops["parallel"] < ops["step"] and 0 < ops["ann"]


def test_dispatched_ops_counts_computing_ops_only():
    import torch

    x = torch.ones(4, 3)
    assert bench.dispatched_ops(lambda: (x.view(3, 4).t() + 1).sum()) == 2  # add, sum; the views are free
