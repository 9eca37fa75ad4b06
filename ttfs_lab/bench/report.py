"""What ``ttfs-lab bench`` prints: one table per network, the inference and loading lines, the
targets met, and the JSON file (keys: ``meta``, ``cases``, ``inference``, ``dvs_loading``, ``targets``).

Targets (issue "Speed against the baselines"): on CPU, auto <= 0.6 x (T x plain ANN) at T = 8 for both MNIST
networks (``mnist``, ``small_T8``) and <= 0.8 x at T = 4 (``small_T4``); auto at least 3x faster than step for the
default MNIST network; auto never slower than step. On CUDA: parallel >= 5x faster than step for the MNIST network
(the parallel neuron is the fused Triton kernels; the row ``parallel_tensor_ops`` times the same mode with the
tensor-op neuron). Everywhere: peak memory of parallel <= 1.5 x step; every equality check passes; DVS frames >=
500 samples/s at 64 x 64, T = 16. The ``ttfs-lab fit`` throughput is printed, not judged here: its "before" is
other code, compared side by side with ``bench/fit_compare.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


PLAIN_ANN_LIMITS = {"mnist": 0.6, "small_T8": 0.6, "small_T4": 0.8}  # CPU: auto / (T x plain ANN) at most


def _mb(n: float) -> str:
    return f"{n / 2**20:8.1f}"


def print_case(r: dict) -> None:
    """The table of one network (``bench_case``'s result): time, peak memory and ops per mode, then the ratios."""
    print(f"\n{r['name']}: {r['spec']}  input {tuple(r['input_shape'])}  T={r['T']}  batch {r['batch']}  "
          f"(auto -> {r['auto_resolves_to']})")
    gpu = "gpu_kernels" in r
    print(f"  {'':18s} {'step time [ms]':>15s} {'peak memory [MB]':>17s} {'tensor ops':>11s}"
          + (f" {'GPU kernels':>12s}" if gpu else ""))
    for name in r["memory"]:
        t = r["time_s"][name]
        print(f"  {name:18s} {t * 1e3:15.1f} {_mb(r['memory'][name]['peak_bytes']):>17s} {r['dispatched_ops'][name]:11d}"
              + (f" {r['gpu_kernels'][name]:12d}" if gpu else ""))
    for name in ("auto_eval", "auto_inference"):
        if name in r["time_s"]:
            print(f"  {name:18s} {r['time_s'][name] * 1e3:15.1f}")
    print(f"  {'T x plain ANN':18s} {r['T_x_plain_ann_s'] * 1e3:15.1f}   (bound: {r['bound_s'] * 1e3:.1f})")
    q = r["ratios"]
    print(f"  auto/(T x plain ANN) {q['auto_over_T_plain_ann']:.3f}   auto/(T x same-layers ANN) "
          f"{q['auto_over_T_ann']:.3f}   bound/(T x plain ANN) {q['bound_over_T_plain_ann']:.3f}   "
          f"auto/bound {q['auto_over_bound']:.2f}")
    print(f"  auto/step {q['auto_over_step']:.3f}   step/parallel {q['step_over_parallel']:.2f}x   "
          f"eval/train {q['eval_over_train']:.2f}   inference/train {q['inference_over_train']:.2f}   "
          f"peak memory parallel/step {q['memory_parallel_over_step']:.3f}")
    if "tensor_ops_over_parallel" in q:
        print(f"  fused GPU kernels: parallel with the tensor-op neuron takes "
              f"{q['tensor_ops_over_parallel']:.2f}x as long")
    if "equal" in r:
        bad = [k for k, v in r["equal"].items() if not v]
        print(f"  equality checks: {'all pass' if not bad else 'FAILED: ' + ', '.join(bad)} ({len(r['equal'])} checks)")


def print_inference(inf: dict, spec: str, steps: int) -> None:
    """Early exit per chunk size (``bench_inference``'s result)."""
    print(f"\nearly-exit inference (folded {spec}, {inf['batch']} held-out digits, after {steps} training steps, "
          f"accuracy {inf.get('accuracy_full', float('nan')):.3f} kept exactly):")
    for r in inf["by_chunk"]:
        print(f"  chunk {r['chunk']}: {r['time_early_exit_s'] * 1e3:7.1f} ms vs full parallel "
              f"{r['time_full_parallel_s'] * 1e3:.1f} ms ({r['speedup_vs_full_parallel']:.2f}x), full step "
              f"{r['time_full_step_s'] * 1e3:.1f} ms ({r['speedup_vs_full_step']:.2f}x); work {r['work_fraction']:.2f}")
    print(f"  mean exit step {inf['mean_exit_step']:.2f} of {inf['T']} (= mean first output spike "
          f"{inf['mean_decision_step']:.2f}); predictions kept {inf['predictions_kept']:.3f}")


def print_loading(loading: dict) -> None:
    """The DVS Gesture frame-cache throughput (``bench_dvs_loading``'s result), or why it did not run."""
    if "error" in loading:
        print(f"\nDVS loading: {loading['error']}")
    else:
        print(f"\nDVS Gesture frame cache ({loading['data']}): {loading['samples_per_s']:.0f} samples/s at "
              f"{loading['size']}x{loading['size']}, T={loading['frames']}, batch {loading['batch']}, "
              f"{loading['workers']} workers")


def print_fit(fit: dict) -> None:
    """The ``ttfs-lab fit`` throughput (``bench_fit``'s result), or why it did not run."""
    if "error" in fit:
        print(f"\nfit throughput: {fit['error']}")
        return
    print(f"\nttfs-lab fit on Fashion-MNIST ({fit['spec']}, T={fit['T']}, batch {fit['batch']}, {fit['workers']} workers): "
          f"training {fit['train_samples_per_s']:.0f} samples/s, validation {fit['val_samples_per_s']:.0f} samples/s "
          f"({fit['val_over_train_per_sample']:.2f} of a training sample's time); a full epoch {fit['full_epoch_s'] / 60:.1f} "
          f"min = {fit['epoch_samples_per_s']:.0f} training samples/s with validation")


def targets(results: dict, device: torch.device) -> dict[str, bool]:
    """Each target that applies to this run (device, networks, loading size) -> whether it was met."""
    t: dict[str, bool] = {}
    cases = results["cases"]
    if device.type == "cpu":
        for name, limit in PLAIN_ANN_LIMITS.items():
            if name in cases:
                t[f"{name}: auto <= {limit} x (T x plain ANN)"] = cases[name]["ratios"]["auto_over_T_plain_ann"] <= limit
        if "mnist" in cases:
            t["mnist: auto >= 3x faster than step"] = cases["mnist"]["ratios"]["step_over_auto"] >= 3
    if "mnist" in cases and device.type == "cuda":
        t["mnist: parallel >= 5x faster than step"] = cases["mnist"]["ratios"]["step_over_parallel"] >= 5
    for name, r in cases.items():
        t[f"{name}: auto <= step"] = r["ratios"]["auto_over_step"] <= 1.0
        t[f"{name}: peak memory parallel <= 1.5 x step"] = r["ratios"]["memory_parallel_over_step"] <= 1.5
        if "equal" in r:
            t[f"{name}: equality checks"] = all(r["equal"].values())
    load = results.get("dvs_loading")
    if load and "samples_per_s" in load and load["size"] >= 64:
        t["dvs loading >= 500 samples/s"] = load["samples_per_s"] >= 500
    return t


def print_targets(met: dict[str, bool]) -> None:
    if met:
        print("\ntargets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in met.items()))


def write_json(results: dict, path: str | Path) -> Path:
    """The results as indented JSON at ``path`` (its folder created); numbers that are not JSON become floats."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float))
    return out
