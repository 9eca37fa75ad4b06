"""One network: the training step of every mode and of the baselines timed, measured, counted and checked."""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict

import torch

from ttfs_lab.bench.baselines import ann_train_step, build_ann, build_plain_ann, with_backend
from ttfs_lab.bench.bound import step_bound
from ttfs_lab.bench.checks import equality_checks, triton_neuron_checks
from ttfs_lab.bench.memory import peak_memory, tensor_bytes
from ttfs_lab.bench.ops import dispatched_ops, gpu_kernels
from ttfs_lab.bench.timing import sync, time_interleaved
from ttfs_lab.bench.workload import MODES, Case, build_classifier, eval_step, inference_step, make_batch, ttfs_train_step
from ttfs_lab.functional import triton_kernels
from ttfs_lab.functional.neuron import resolve_mode


def ratios(best: dict[str, float], memory: dict[str, dict], T: int, bound: float) -> dict[str, float]:
    """Speed and memory of the modes relative to each other, to T steps of the plain ANN (the headline), to T
    steps of the same-layers ANN, and to the bound (``bound.py``); evaluation relative to training (the JSON's
    ``ratios``)."""
    plain = T * best["plain_ann"]
    q = {
        "auto_over_step": best["auto"] / best["step"],
        "parallel_over_step": best["parallel"] / best["step"],
        "step_over_parallel": best["step"] / best["parallel"],
        "step_over_auto": best["step"] / best["auto"],
        "auto_over_T_plain_ann": best["auto"] / plain,
        "parallel_over_T_plain_ann": best["parallel"] / plain,
        "step_over_T_plain_ann": best["step"] / plain,
        "auto_over_T_ann": best["auto"] / (T * best["ann"]),
        "parallel_over_T_ann": best["parallel"] / (T * best["ann"]),
        "step_over_T_ann": best["step"] / (T * best["ann"]),
        "bound_over_T_plain_ann": bound,
        "auto_over_bound": best["auto"] / (bound * plain),
        "eval_over_train": best["auto_eval"] / best["auto"],
        "inference_over_train": best["auto_inference"] / best["auto"],
        "memory_parallel_over_step": memory["parallel"]["peak_bytes"] / memory["step"]["peak_bytes"],
        "memory_auto_over_step": memory["auto"]["peak_bytes"] / memory["step"]["peak_bytes"],
    }
    if "parallel+compile" in best:
        q["compiled_over_parallel"] = best["parallel+compile"] / best["parallel"]
    if "parallel_tensor_ops" in best:
        q["tensor_ops_over_parallel"] = best["parallel_tensor_ops"] / best["parallel"]
    return q


def bench_case(case: Case, device: torch.device, precision: str, repeats: int, warmup: int, compile: bool,
               check: bool = True) -> dict:
    """Every mode (and both ANNs; on CUDA the tensor-op neuron; with ``compile`` the compiled parallel mode) on one
    batch, and auto's evaluation (validation step with statistics) and inference (plain forward) steps: minimum
    time over interleaved rounds, peak memory, dispatched ops, the bound, ratios, equality checks."""
    warnings.filterwarnings("ignore", message=".*self.log.*")
    batch = make_batch(case, device)
    modules, steps = {}, {}
    for mode in MODES:
        module, opt = build_classifier(case, mode, device)
        modules[mode] = (module, opt)
        steps[mode] = ttfs_train_step(module, opt, batch, device, precision)
    if device.type == "cuda":  # the parallel mode again with the tensor-op neuron, to show what the kernels gain
        modules["parallel_tensor_ops"] = build_classifier(case, "parallel", device)
        steps["parallel_tensor_ops"] = with_backend("torch", ttfs_train_step(
            *modules["parallel_tensor_ops"], batch, device, precision))
    anns = {"ann": build_ann(modules["parallel"][0].net).to(device),
            "plain_ann": build_plain_ann(case.spec, case.input_shape).to(device)}
    for name, ann in anns.items():
        steps[name] = ann_train_step(ann, batch, device, precision, case.frames)
    evals = {"auto_eval": eval_step(modules["auto"][0], batch, precision, device),
             "auto_inference": inference_step(modules["auto"][0], batch, precision, device)}
    if compile:
        module, opt = build_classifier(case, "parallel", device, compile=True)
        modules["parallel+compile"] = (module, opt)
        steps["parallel+compile"] = ttfs_train_step(module, opt, batch, device, precision)
        t0 = time.perf_counter()
        steps["parallel+compile"]()
        steps["parallel+compile"]()  # compile warm-up (forward and backward graphs), excluded from the timing
        sync(device)
        compile_warmup = time.perf_counter() - t0
    times = time_interleaved({**steps, **evals}, repeats, warmup, device)
    best = {name: min(ts) for name, ts in times.items()}
    memory = {}
    for name, fn in steps.items():
        if name in modules:
            memory[name] = peak_memory(fn, *modules[name], batch, device)
        else:  # the ANN's optimizer lives in its closure: count parameters twice more (Adam's moments)
            ann = anns[name]
            memory[name] = peak_memory(fn, ann, torch.optim.Adam(ann.parameters()), batch, device)
            memory[name]["persistent_bytes"] += 2 * tensor_bytes(ann.parameters())
            memory[name]["peak_bytes"] += 2 * tensor_bytes(ann.parameters())
    bound = step_bound(modules["auto"][0].net, batch[0])  # the spikes of the network as trained by the rounds
    ops = {name: dispatched_ops(fn) for name, fn in steps.items()}
    kernels_run = {name: gpu_kernels(fn, device) for name, fn in steps.items()} if device.type == "cuda" else None
    result = {
        **asdict(case),
        "auto_resolves_to": resolve_mode("auto", device, case.T),
        "time_s": best,
        "times_all_s": times,
        "T_x_ann_s": case.T * best["ann"],
        "T_x_plain_ann_s": case.T * best["plain_ann"],
        "bound": bound,
        "bound_s": bound["bound_over_T_ann"] * case.T * best["plain_ann"],
        "memory": memory,
        "dispatched_ops": ops,
        "ratios": ratios(best, memory, case.T, bound["bound_over_T_ann"]),
    }
    if kernels_run:
        result["gpu_kernels"] = kernels_run
    if compile:
        result["compile_warmup_s"] = compile_warmup
    if check:
        result["equal"] = equality_checks(case, device, compiled=compile)
        if device.type == "cuda" and triton_kernels.AVAILABLE:
            result["equal"].update(triton_neuron_checks(device))
    return result
