"""Fabricate run directories and ablation tables following the run-record contract (for tests).

``make_run`` writes one run (finished, running, failed, or without summary), ``make_corrupt_run`` one
with garbage ``meta.json`` and a truncated ``metrics.jsonl``, ``make_ablation`` a ``table.json``, and
``make_runs_tree`` a small ``runs/`` folder with all of these. Values are deterministic per seed.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import yaml

LAYERS = ("conv1", "conv2", "fc1", "fc2")
UNITS = (6272, 3136, 256, 10)  # neurons per layer: spikes per neuron over all layers weights them

BASE_CONFIG = {
    "seed_everything": 0,
    "model": {
        "T": 8,
        "arch": "c32-ap-c64-ap-fc256-fc10",
        "init": "ettfs",
        "init_gain": 1.0,
        "norm": True,
        "affine": True,
        "decoder": "twd",
        "pool": "avg",
        "lr": 0.001,
    },
    "data": {"class_path": "ttfs_lab.data.MNIST5k", "init_args": {"batch_size": 64, "root": "data"}},
    "trainer": {"max_epochs": 5, "accelerator": "cpu", "devices": 1},
}


def _deep_update(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


def make_run(
    root: Path,
    run_id: str,
    *,
    name: str | None = None,
    dataset: str = "mnist5k",
    status: str = "finished",
    config: dict | None = None,
    components: dict | None = None,
    epochs: int = 5,
    T: int = 8,
    acc: float = 0.97,
    decision_step: float = 3.0,
    summary: bool | None = None,
    error: str | None = None,
    tags: list | None = None,
    group: str | None = None,
    seed: int = 0,
) -> Path:
    """Write ``root/run_id`` per the contract. ``summary`` defaults to ``status == "finished"``;
    ``config`` is a nested override merged onto :data:`BASE_CONFIG`."""
    rng = random.Random(seed)
    d = Path(root) / run_id
    (d / "checkpoints").mkdir(parents=True, exist_ok=True)
    cfg = _deep_update(copy.deepcopy(BASE_CONFIG), config or {})
    cfg["model"]["T"] = T
    m = cfg["model"]
    comp = components or {k: m[k] for k in ("init", "norm", "affine", "decoder", "pool")}
    meta = {
        "run_id": run_id,
        "name": name or run_id,
        "dataset": dataset,
        "group": group,
        "tags": tags or [],
        "components": comp,
        "status": status,
        "started": "2025-01-01T10:00:00",
        "ended": None if status == "running" else "2025-01-01T10:05:00",
        "error": error,
        "T": T,
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=1))
    (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    lines, best = [], 0.0
    for e in range(epochs):
        frac = (e + 1) / epochs
        va = acc - 0.25 * (1 - frac) ** 2 + rng.uniform(-0.004, 0.004)
        best = max(best, va)
        lines.append(
            {
                "epoch": e,
                "step": 55 * (e + 1),
                "train/loss": 1.6 * (1 - frac) + 0.08 + rng.uniform(0, 0.03),
                "train/acc": va - 0.01,
                "val/loss": 1.4 * (1 - frac) + 0.1,
                "val/acc": va,
                "val/acc_best": best,
                "val/decision_step": decision_step + 1.5 * (1 - frac),
                "time/epoch_s": 12.0 + rng.uniform(-1, 1),
            }
        )
    if lines:
        del lines[0]["val/decision_step"]  # lines may be missing keys
    (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if summary if summary is not None else status == "finished":
        (d / "summary.json").write_text(json.dumps(fabricate_summary(run_id, T, acc, decision_step, best, rng)))
    for ck in ("best.ckpt", "last.ckpt"):
        (d / "checkpoints" / ck).write_bytes(b"not a real checkpoint")
    return d


def fabricate_summary(run_id: str, T: int, acc: float, step: float, val_best: float, rng: random.Random) -> dict:
    """A summary.json dict: per-layer firing, spike-time histograms, accuracy vs step."""
    curve = [round(acc * min(1.0, (k / (step + 1.0)) ** 1.5), 4) for k in range(1, T + 1)]
    curve[-1] = acc
    spn, silent, hist = {}, {}, {}
    for i, layer in enumerate(LAYERS):
        s = round(0.25 + 0.15 * i + rng.uniform(0, 0.1), 3)
        spn[layer], silent[layer] = s, round(1 - s, 3)
        peak = 1 + (i * 2) % T
        counts = [int(1000 * s * 2.0 ** -abs(k - peak)) for k in range(1, T + 1)]
        hist[layer] = counts + [int(1000 * (1 - s))]
    return {
        "test/acc": acc,
        "test/loss": round(1 - acc, 4),
        "test/decision_step": step,
        "test/acc_vs_step": curve,
        "test/spikes_per_neuron": spn,
        "test/spikes_per_neuron_mean": sum(spn[k] * u for k, u in zip(LAYERS, UNITS)) / sum(UNITS),
        "test/silent_fraction": silent,
        "test/violations": {layer: 0 for layer in LAYERS},
        "test/spike_time_hist": hist,
        "val/acc_best": val_best,
        "throughput/samples_per_s": 900.0 + rng.uniform(-50, 50),
        "wall_s": 120.0 + rng.uniform(0, 30),
        "best_checkpoint": f"runs/{run_id}/checkpoints/best.ckpt",
    }


def make_corrupt_run(root: Path, run_id: str = "corrupt_run") -> Path:
    """Garbage meta.json, unparsable config is NOT used (kept valid), a truncated metrics.jsonl line."""
    d = make_run(root, run_id, summary=False, status="running", epochs=3)
    (d / "meta.json").write_text("{this is not json")
    text = (d / "metrics.jsonl").read_text()
    (d / "metrics.jsonl").write_text(text + '{"epoch": 3, "val/acc": 0.9')  # killed mid-write
    return d


def make_ablation(root: Path, study: str = "components", dataset: str = "mnist5k") -> Path:
    """Write ``root/ablations/<study>/table.json`` with ladder and leave-one-out rows."""
    d = Path(root) / "ablations" / study
    d.mkdir(parents=True, exist_ok=True)
    spec = [
        ("baseline", "ladder", 0.952, 4.1, "ok"),
        ("+ettfs_init", "ladder", 0.968, 3.6, "ok"),
        ("+norm", "ladder", 0.975, 3.3, "ok"),
        ("+twd", "ladder", 0.981, 2.9, "ok"),
        ("-ettfs_init", "leave_one_out", 0.971, 3.2, "ok"),
        ("-norm", "leave_one_out", 0.958, 3.4, "partial"),
        ("-twd", "leave_one_out", None, None, "failed"),
    ]
    rows = []
    for i, (row, kind, acc, step, status) in enumerate(spec):
        n_ok = {"ok": 3, "partial": 2, "failed": 0}[status]
        rows.append(
            {
                "row": row,
                "kind": kind,
                "seeds": 3,
                "n_ok": n_ok,
                "test/acc_mean": acc,
                "test/acc_std": None if acc is None else 0.002 + 0.001 * (i % 3),
                "test/decision_step_mean": step,
                "test/decision_step_std": None if step is None else 0.1 + 0.05 * (i % 2),
                "spikes_per_neuron_mean": None if acc is None else 0.4 + 0.02 * i,
                "spikes_per_neuron_std": None if acc is None else 0.01,
                "runs": [f"abl_{study}_{i}_s{s}" for s in range(n_ok)],
                "status": status,
            }
        )
    path = d / "table.json"
    path.write_text(json.dumps({"dataset": dataset, "rows": rows}, indent=1))
    return path


def make_runs_tree(root: Path) -> dict:
    """A ``runs/`` folder: three finished runs with differing configs, one running, one failed, one
    incomplete (finished but no summary.json), one corrupt, one ablation table. Returns the paths."""
    root = Path(root)
    runs = {
        "ettfs_twd": make_run(root, "20250101-ettfs_twd", name="ettfs + twd", acc=0.981, decision_step=2.6, seed=1,
                              tags=["paper"], group="g1"),
        "kaiming_twd": make_run(root, "20250101-kaiming_twd", name="kaiming + twd", acc=0.968, decision_step=3.4,
                                config={"model": {"init": "kaiming", "lr": 0.002}}, seed=2),
        "ettfs_first": make_run(root, "20250101-ettfs_first", name="ettfs + first_spike", acc=0.975,
                                decision_step=2.2, config={"model": {"decoder": "first_spike"}}, seed=3),
        "running": make_run(root, "20250102-running", name="still running", status="running", epochs=2, seed=4),
        "failed": make_run(root, "20250102-failed", name="diverged", status="failed", epochs=1,
                           error="loss is NaN at step 12", config={"model": {"lr": 1.0}}, seed=5),
        "incomplete": make_run(root, "20250103-incomplete", name="no summary", summary=False, seed=6),
        "corrupt": make_corrupt_run(root, "20250104-corrupt"),
    }
    return {"root": root, "runs": runs, "ablation": make_ablation(root)}
