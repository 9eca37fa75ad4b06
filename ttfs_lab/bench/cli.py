"""Speed and memory of TTFS training, side by side: ``python -m ttfs_lab.bench`` (``make bench``).

Every step of every mode is a ``TTFSClassifier`` training step (forward, loss, backward, optimizer step) on the
same batch; see ``ttfs_lab/bench/__init__.py`` for what is measured and how, ``report.py`` for the targets.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
import warnings
from typing import Optional

import torch

from ttfs_lab.bench.early_exit import bench_inference
from ttfs_lab.bench.fit import bench_fit
from ttfs_lab.bench.loading import bench_dvs_loading
from ttfs_lab.bench.report import (print_case, print_fit, print_inference, print_loading, print_targets, targets,
                                   write_json)
from ttfs_lab.bench.training import bench_case
from ttfs_lab.bench.workload import CASES, default_cases
from ttfs_lab.functional import kernels, triton_kernels
from ttfs_lab.runtime import allocator_setting, openmp_setting, retain_freed_memory


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ttfs_lab.bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    ap.add_argument("--precision", default="32", choices=["32", "bf16-mixed"], help="bf16-mixed: autocast (GPU)")
    ap.add_argument("--quick", action="store_true", help="smaller DVS frames and batch, fewer repetitions")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5, quick 2)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)} (default all)")
    ap.add_argument("--mnist-spec", default=None, help="override the MNIST networks' spec (tests use a tiny one)")
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
    ap.add_argument("--data-dir", default="data", help="where real data would be (DVSGesture/, FashionMNIST/ under it)")
    ap.add_argument("--loading-size", type=int, default=64, help="DVS frame size of the loading test (default 64)")
    ap.add_argument("--loading-events", type=int, default=None, help="events per fabricated recording (default 60000, quick 20000)")
    ap.add_argument("--loading-workers", type=int, default=2)
    ap.add_argument("--loading-batch", type=int, default=16)
    ap.add_argument("--loading-batches", type=int, default=None, help="default 20, quick 5")
    ap.add_argument("--no-fit", action="store_true", help="skip the Fashion-MNIST fit throughput")
    ap.add_argument("--fit-batches", type=int, default=None, help="training batches of the fit run (default 100, quick 10)")
    ap.add_argument("--fit-val-batches", type=int, default=None, help="validation batches (default 30, quick 3)")
    ap.add_argument("--fit-workers", type=int, default=2, help="data loader workers of the fit run (default 2)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--no-tune-allocator", action="store_true", help="leave glibc's allocator settings alone")
    ap.add_argument("--out", default="bench/results.json", help="JSON output (default bench/results.json)")
    return ap


def run_meta(args: argparse.Namespace, device: torch.device, repeats: int, argv: Optional[list[str]]) -> dict:
    """The JSON's ``meta``: when, what software and hardware, and how it was measured."""
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__, "python": platform.python_version(), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "precision": args.precision,
        "repeats": repeats, "warmup": args.warmup, "quick": args.quick,
        "cpu_allocator": allocator_setting(), "openmp": openmp_setting(), "fused_cpu_kernels": kernels.AVAILABLE,
        "fused_gpu_kernels": triton_kernels.AVAILABLE and device.type == "cuda",
        "timing": "minimum over interleaved rounds (one step of each mode per round)",
        "memory": "cuda max_memory_allocated" if device.type == "cuda" else "torch profiler tensor allocations (peak of running sum) + persistent state",
        "argv": sys.argv[1:] if argv is None else argv,
    }


def main(argv: Optional[list[str]] = None) -> dict:
    """Run the benchmark that ``argv`` selects, print it, write the JSON; return the results written."""
    args = build_parser().parse_args(argv)
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

    meta = run_meta(args, device, repeats, argv)
    print(f"ttfs_lab.bench on {meta['device']} ({meta['device_name']}), {meta['threads']} threads, torch {meta['torch']}, "
          f"precision {args.precision}, {repeats} rounds; CPU allocator: {meta['cpu_allocator']}; {meta['openmp']}")
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
        results["inference"] = bench_inference(case, device, repeats, steps, args.precision)
        print_inference(results["inference"], case.spec, steps)
    if not args.no_loading:
        results["dvs_loading"] = bench_dvs_loading(args.data_dir, args.loading_size, 16, args.loading_batch,
                                                   args.loading_workers, args.loading_batches or (5 if args.quick else 20),
                                                   args.loading_events or (20000 if args.quick else 60000))
        print_loading(results["dvs_loading"])
    if not args.no_fit and device.type == "cpu":
        results["fit"] = bench_fit(args.data_dir, args.fit_batches or (10 if args.quick else 100),
                                   args.fit_val_batches or (3 if args.quick else 30), args.fit_workers)
        print_fit(results["fit"])
    results["targets"] = targets(results, device)
    print_targets(results["targets"])
    out = write_json(results, args.out)
    print(f"\nwrote {out}")
    return results
