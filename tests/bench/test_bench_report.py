"""The bench's report: the targets that apply per device, the GPU columns, the JSON file."""

import json

import torch

from ttfs_lab.bench.report import print_case, targets, write_json


def fake_case(name="mnist", gpu=False, equal=True, auto_over_step=0.5, step_over_parallel=6.0, plain=0.55,
              step_over_auto=2.0):
    rows = ("step", "parallel", "auto", "ann", "plain_ann") + (("parallel_tensor_ops",) if gpu else ())
    r = {"name": name, "spec": "c4-ap-fc10", "input_shape": [1, 28, 28], "T": 8, "batch": 64,
         "auto_resolves_to": "parallel", "time_s": {k: 0.01 for k in rows + ("auto_eval", "auto_inference")},
         "T_x_ann_s": 0.08, "T_x_plain_ann_s": 0.08, "bound_s": 0.03,
         "memory": {k: {"peak_bytes": 2**20} for k in rows}, "dispatched_ops": {k: 10 for k in rows},
         "ratios": {"auto_over_step": auto_over_step, "step_over_parallel": step_over_parallel,
                    "step_over_auto": step_over_auto, "auto_over_T_ann": 0.7, "auto_over_T_plain_ann": plain,
                    "bound_over_T_plain_ann": 0.35, "auto_over_bound": plain / 0.35, "eval_over_train": 0.4,
                    "inference_over_train": 0.2, "memory_parallel_over_step": 1.2},
         "equal": {"step_vs_parallel_spikes_equal": equal}}
    if gpu:
        r["gpu_kernels"] = {k: 5 for k in rows}
        r["ratios"]["tensor_ops_over_parallel"] = 2.0
    return r


def test_targets_depend_on_the_device_and_report_failures():
    cases = {"mnist": fake_case(equal=False), "small_T4": fake_case("small_T4", plain=0.75),
             "small_T8": fake_case("small_T8", plain=0.75, auto_over_step=1.1)}
    cpu = targets({"cases": cases, "dvs_loading": {"samples_per_s": 400, "size": 64}}, torch.device("cpu"))
    assert cpu == {"mnist: auto <= 0.6 x (T x plain ANN)": True, "small_T8: auto <= 0.6 x (T x plain ANN)": False,
                   "small_T4: auto <= 0.8 x (T x plain ANN)": True, "mnist: auto >= 3x faster than step": False,
                   "mnist: auto <= step": True, "small_T4: auto <= step": True, "small_T8: auto <= step": False,
                   "mnist: peak memory parallel <= 1.5 x step": True,
                   "small_T4: peak memory parallel <= 1.5 x step": True,
                   "small_T8: peak memory parallel <= 1.5 x step": True, "mnist: equality checks": False,
                   "small_T4: equality checks": True, "small_T8: equality checks": True,
                   "dvs loading >= 500 samples/s": False}
    cuda = targets({"cases": {"mnist": fake_case(gpu=True, step_over_parallel=3.0)}}, torch.device("cuda"))
    assert cuda["mnist: parallel >= 5x faster than step"] is False
    assert not any("plain ANN" in k or "3x" in k for k in cuda)


def test_print_case_shows_gpu_kernels_and_failed_checks(capsys):
    print_case(fake_case(gpu=True, equal=False))
    text = capsys.readouterr().out
    assert "GPU kernels" in text and "parallel_tensor_ops" in text and "tensor-op neuron takes 2.00x" in text
    assert "equality checks: FAILED: step_vs_parallel_spikes_equal" in text
    print_case(fake_case())
    text = capsys.readouterr().out
    assert "GPU kernels" not in text and "equality checks: all pass (1 checks)" in text


def test_write_json_creates_the_folder_and_writes_numbers(tmp_path):
    out = write_json({"meta": {"x": torch.tensor(1.5).item()}, "t": torch.tensor(2.0)}, tmp_path / "new" / "r.json")
    assert json.loads(out.read_text()) == {"meta": {"x": 1.5}, "t": 2.0}
