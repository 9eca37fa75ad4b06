"""``ttfs-lab bench`` end to end on tiny networks (quick mode): every field of the JSON is there and sane, and the
command lines that ``bench/gpu_check.sh`` and ``make bench`` run still parse.

Timings are not checked against the targets here (the machine may be busy); ``make bench`` reports those.
"""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ttfs_lab.bench.cli import build_parser, main
from ttfs_lab.cli import main as ttfs_lab_main

ROOT = Path(__file__).parents[2]
TINY = ["--quick", "--mnist-spec", "c4-ap-fc10", "--mnist-batch", "8", "--dvs-spec", "c4-ap-fc11", "--dvs-size", "8",
        "--dvs-T", "4", "--dvs-batch", "2", "--loading-size", "16", "--loading-events", "2000",
        "--loading-workers", "0", "--loading-batches", "3", "--inference-train-steps", "2",
        "--no-fit"]  # the fit throughput: tests/bench/test_bench_fit.py
MODE_ROWS = ("step", "parallel", "auto", "ann", "plain_ann")
EVAL_ROWS = ("auto_eval", "auto_inference")  # timed in the same rounds; no memory or op counts
CASES = ["mnist", "small_T4", "small_T8", "dvsgesture"]
CASE_KEYS = {"name", "dataset", "spec", "input_shape", "classes", "T", "batch", "frames", "auto_resolves_to", "time_s",
             "times_all_s", "T_x_ann_s", "T_x_plain_ann_s", "bound", "bound_s", "memory", "dispatched_ops", "ratios",
             "equal", "bench_s"}
META_KEYS = {"date", "torch", "python", "device", "device_name", "threads", "cpu_count", "precision", "repeats",
             "warmup", "quick", "cpu_allocator", "openmp", "fused_cpu_kernels", "fused_gpu_kernels", "timing", "memory", "argv"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    no_data = tmp_path_factory.mktemp("no-data")  # not the checkout's data/: the loading test fabricates its own
    returned = main(TINY + ["--out", str(out), "--data-dir", str(no_data)])
    written = json.loads(out.read_text())
    assert written["meta"]["quick"] is True and set(written) == set(returned)
    return written


def test_the_json_has_the_documented_sections_and_keys(results):
    """The keys README, docs and bench/gpu_*.json readers rely on (a CPU run: no GPU-only rows or keys)."""
    assert set(results) == {"meta", "cases", "inference", "dvs_loading", "targets"}
    assert set(results["meta"]) == META_KEYS
    assert list(results["cases"]) == CASES
    for r in results["cases"].values():
        assert set(r) == CASE_KEYS
        assert set(r["memory"]) == set(r["dispatched_ops"]) == set(MODE_ROWS)
        assert set(r["time_s"]) == set(MODE_ROWS + EVAL_ROWS)
    assert [results["cases"][c]["T"] for c in CASES[:3]] == [8, 4, 8]


@pytest.mark.parametrize("case", CASES)
def test_every_mode_is_timed_and_measured(results, case):
    r = results["cases"][case]
    for name in MODE_ROWS + EVAL_ROWS:
        assert r["time_s"][name] > 0 and len(r["times_all_s"][name]) == results["meta"]["repeats"]
    for name in MODE_ROWS:
        assert r["time_s"][name] > 0 and len(r["times_all_s"][name]) == results["meta"]["repeats"]
        assert r["time_s"][name] == min(r["times_all_s"][name])
        mem = r["memory"][name]
        # the tiny networks' working memory can round to almost nothing; it is never negative
        assert mem["peak_bytes"] >= mem["persistent_bytes"] > 0 and mem["step_working_bytes"] >= 0
        assert mem["peak_bytes"] == mem["persistent_bytes"] + mem["step_working_bytes"]
    assert r["auto_resolves_to"] == "parallel"
    assert r["T_x_ann_s"] == pytest.approx(r["T"] * r["time_s"]["ann"])
    assert r["T_x_plain_ann_s"] == pytest.approx(r["T"] * r["time_s"]["plain_ann"])


@pytest.mark.parametrize("case", CASES)
def test_ratios_are_positive_and_consistent(results, case):
    r = results["cases"][case]
    q, t = r["ratios"], r["time_s"]
    for key in ("auto_over_step", "parallel_over_step", "step_over_parallel", "auto_over_T_ann",
                "parallel_over_T_ann", "step_over_T_ann", "memory_parallel_over_step", "memory_auto_over_step"):
        assert q[key] > 0, key
    assert q["auto_over_step"] == pytest.approx(t["auto"] / t["step"])
    assert q["auto_over_T_ann"] == pytest.approx(t["auto"] / (r["T"] * t["ann"]))
    assert q["auto_over_T_plain_ann"] == pytest.approx(t["auto"] / (r["T"] * t["plain_ann"]))
    assert q["auto_over_bound"] == pytest.approx(t["auto"] / r["bound_s"])
    assert q["eval_over_train"] == pytest.approx(t["auto_eval"] / t["auto"])
    assert 0 < q["bound_over_T_plain_ann"] == r["bound"]["bound_over_T_ann"]


@pytest.mark.parametrize("case", CASES)
def test_the_bound_counts_every_synaptic_layer(results, case):
    """One entry per synaptic layer; the first has no input gradient; no layer's work exceeds its ANN's by more
    than the T-fold input gradient allows."""
    r = results["cases"][case]
    layers = list(r["bound"]["layers"].values())
    assert len(layers) == sum(token.startswith(("c", "fc")) for token in r["spec"].split("-"))
    assert layers[0]["waiting_fraction"] == 0.0
    assert all(0 <= l["waiting_fraction"] <= 1 and 0 <= l["work_over_T_ann_layer"] <= 1 for l in layers)


@pytest.mark.parametrize("case", CASES)
def test_the_equality_checks_are_reported_and_pass(results, case):
    checks = results["cases"][case]["equal"]
    assert len(checks) == 10 and all(v is True for v in checks.values()), checks
    assert results["targets"][f"{case}: equality checks"] is True


@pytest.mark.parametrize("case", CASES)
def test_parallel_dispatches_fewer_tensor_ops_than_step(results, case):
    """The step loop dispatches each layer's ops T times; the parallel execution once (its neuron is one kernel)."""
    ops = results["cases"][case]["dispatched_ops"]
    assert 0 < ops["parallel"] < ops["step"] and 0 < ops["ann"] and 0 < ops["plain_ann"]


def test_inference_and_loading_sections(results):
    inf = results["inference"]
    assert inf["predictions_kept"] == 1.0 and 1 <= inf["mean_exit_step"] <= inf["T"]
    assert inf["speedup_vs_full_parallel"] > 0 and 0 < inf["work_fraction"] <= 1
    assert [r["chunk"] for r in inf["by_chunk"]] == [1, 2, 4]
    assert all(r["predictions_kept"] == 1.0 for r in inf["by_chunk"])
    assert inf["train_steps"] == 2
    load = results["dvs_loading"]
    assert load["samples_per_s"] > 0 and load["data"].startswith("fabricated") and load["fabricate_s"] > 0
    assert (load["size"], load["frames"], load["workers"], load["batches"]) == (16, 16, 0, 3)
    assert isinstance(results["targets"], dict) and results["targets"]
    assert "dvs loading >= 500 samples/s" not in results["targets"]  # a 16 x 16 loading run sets no target
    assert results["meta"]["cpu_allocator"] and "fused_cpu_kernels" in results["meta"]


def gpu_check_invocations() -> list[list[str]]:
    """The bench arguments of every ``python3 -m ttfs_lab.bench`` line of bench/gpu_check.sh, its loop variable
    expanded over the loop's values and ``$out`` set to ``bench``."""
    script = (ROOT / "bench" / "gpu_check.sh").read_text().replace("\\\n", " ")
    loop = re.search(r"for precision in ([^;]+);", script)
    assert loop, "gpu_check.sh no longer loops over precisions"
    lines = [line for line in script.splitlines() if "-m ttfs_lab.bench" in line]
    assert lines, "gpu_check.sh no longer runs python3 -m ttfs_lab.bench"
    invocations = []
    for precision in loop.group(1).split():
        for line in lines:
            tag = "fp32" if precision == "32" else "bf16"
            line = line.replace("$precision", precision).replace("$out", "bench").replace("$tag", tag)
            words = shlex.split(line.split("-m ttfs_lab.bench", 1)[1].split("2>&1")[0])
            invocations.append(words)
    return invocations


def test_gpu_check_script_invocations_parse():
    invocations = gpu_check_invocations()
    assert len(invocations) == 2
    for words in invocations:
        args = build_parser().parse_args(words)
        assert args.device == "cuda" and args.no_loading and args.no_inference
        assert args.precision in ("32", "bf16-mixed") and args.out.startswith("bench/gpu_")


def test_ttfs_lab_bench_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        ttfs_lab_main(["bench", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--device", "--precision", "--quick", "--cases", "--no-checks", "--loading-events", "--no-fit",
                   "--fit-batches", "--fit-val-batches", "--out"):
        assert option in text, option


def test_python_dash_m_runs_the_same_command():
    done = subprocess.run([sys.executable, "-m", "ttfs_lab.bench", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m ttfs_lab.bench") and "--no-tune-allocator" in done.stdout
