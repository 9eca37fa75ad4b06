"""``ttfs-lab fit`` throughput of two checkouts side by side: the same shortened Fashion-MNIST epoch (the bench's
``ttfs_lab/bench/fit.py`` settings), each checkout's code in its own process, alternating, ``--rounds`` times.

    git worktree add ../before <commit>
    .venv/bin/python bench/fit_compare.py ../before .

Prints one JSON line per run and the best of each checkout. The first run of a checkout may include numba's
compilation of its kernels (cached after): the best of several rounds leaves it out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

CHILD = r"""
import importlib.util, json, sys, tempfile
root, data_dir, batches, val_batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, root)
try:
    from ttfs_lab.runtime import retain_freed_memory, short_openmp_spin
    short_openmp_spin()  # what ttfs-lab sets before importing torch
except ImportError:  # a checkout from before ttfs_lab/runtime.py (ttfs_lab/nn/runtime.py, no OpenMP setting)
    from ttfs_lab.nn.runtime import retain_freed_memory
retain_freed_memory()
import ttfs_lab
from ttfs_lab.train import train
spec = importlib.util.spec_from_file_location("fit_bench", sys.argv[5])
fb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fb)
with tempfile.TemporaryDirectory() as run_dir:
    config = fb.fit_config(data_dir, run_dir, batches, val_batches, 2)
    timer = fb.PhaseTimer()
    train(config, callbacks=[timer])
s, n = timer.seconds, timer.samples
train_rate, val_rate = n["train"] / s["train"], n["val"] / s["val"]
val = fb.FULL_TRAIN * fb.VAL_FRACTION
epoch = (fb.FULL_TRAIN - val) / train_rate + val / val_rate
print("RESULT " + json.dumps({"checkout": root, "code": ttfs_lab.__file__, "train_samples_per_s": train_rate,
                              "val_samples_per_s": val_rate, "epoch_samples_per_s": (fb.FULL_TRAIN - val) / epoch}))
"""


def run(checkout: str, args) -> dict:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-c", CHILD, str(Path(checkout).resolve()), args.data_dir,
                           str(args.batches), str(args.val_batches), str(HERE / "ttfs_lab" / "bench" / "fit.py")],
                          capture_output=True, text=True, env=env, cwd=Path(checkout).resolve())
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"fit in {checkout} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkouts", nargs=2, help="two checkouts of ttfs-lab (before, after)")
    ap.add_argument("--data-dir", default=str(HERE / "data"), help="holds FashionMNIST/raw (or the Debian copy is used)")
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--val-batches", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for checkout in args.checkouts:
            r = run(checkout, args)
            print(json.dumps(r))
            if checkout not in best or r["epoch_samples_per_s"] > best[checkout]["epoch_samples_per_s"]:
                best[checkout] = r
    before, after = (best[c] for c in args.checkouts)
    for key in ("train_samples_per_s", "val_samples_per_s", "epoch_samples_per_s"):
        print(f"{key}: {before[key]:.0f} -> {after[key]:.0f} ({after[key] / before[key]:.2f}x)")


if __name__ == "__main__":
    main()
