"""Operation counts and energy per inference of trained checkpoints: docs/results/energy.{md,json}.

Evaluates each run's best checkpoint on its whole test split through the project's own road
(``train(config, stage="test")``, i.e. ``ttfs-lab test --config <run>/config.yaml --ckpt_path <ckpt>``) and tabulates
accuracy, decision step, spikes per neuron, ACs, MACs and energy per inference, with and without early exit at the
first output spike, for each group of runs (mean ± std over seeds) and for the ANN of the same layers
(docs/method.md section 10). Nothing is written under ``runs/`` (the evaluation's run folder is a temporary one).

    python docs/energy.py                      # the Fashion-MNIST reproduction rows (see ROWS), ~5 min on 1 core
    python docs/energy.py --render             # rewrite docs/results/energy.md from its .json
    python docs/energy.py --row full=runs/a,runs/b --row baseline=runs/c --out docs/results/energy
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

# (row, description, ablation row): the reproduction's full framework, its ladder baseline and the naive network;
# the run folders are the ones runs/ablations/reproduce-fashion_mnist-lr3e-3/table.json lists for that row
ROWS = [
    ("full framework", "ETTFS-init, avg pool, norm, affine, TWD", "+twd"),
    ("baseline", "Kaiming, max pool, no norm, no affine, first-spike", "baseline"),
    ("naive", "default init, avg pool, no norm, membrane readout", "naive"),
]
TABLE = Path("runs/ablations/reproduce-fashion_mnist-lr3e-3/table.json")


def table_rows(table: Path = TABLE) -> list[tuple[str, str, list[str]]]:
    """ROWS with each ablation row's run folders, from the study's table."""
    runs = {r["row"]: r["runs"] for r in json.loads(table.read_text())["rows"]}
    return [(name, text, [str(table.parents[2] / run) for run in runs[row]]) for name, text, row in ROWS]


E_MAC = 4.6e-3  # nJ per MAC, the default model.energy_mac_pj
COMPONENTS = ("spec", "T", "init", "pool", "norm", "affine", "decoder")
FIGURES = {  # column -> summary key
    "acc": "test/acc", "decision_step": "test/decision_step", "spikes_per_neuron": "test/spikes_per_neuron_mean",
    "ac": "test/synops_ac", "mac": "test/synops_mac", "ac_exit": "test/synops_ac_exit",
    "mac_exit": "test/synops_mac_exit", "energy_nj": "test/energy_nj", "energy_exit_nj": "test/energy_exit_nj",
    "ratio": "test/energy_ratio_ann", "ratio_exit": "test/energy_ratio_ann_exit", "ann_mac": "test/ann_mac",
    "ann_energy_nj": "test/ann_energy_nj",
}


def evaluate(run_dir: Path, scratch: Path, overrides: dict | None = None) -> dict:
    """The test figures of ``run_dir``'s best checkpoint (the run's own config; its record is left alone)."""
    from ttfs_lab.train import train

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["run"] = {**config.get("run", {}), "dir": str(scratch), "id": f"energy-{run_dir.name}", "wandb": "disabled"}
    config["trainer"].update(enable_progress_bar=False, **(overrides or {}))
    config["ckpt_path"] = str(run_dir / "checkpoints" / "best.ckpt")
    start = time.perf_counter()
    summary = train(config, stage="test")
    summary["eval_s"] = time.perf_counter() - start
    summary["components"] = {k: config["model"].get(k) for k in COMPONENTS}
    return summary


def aggregate(name: str, description: str, runs: list[str], summaries: list[dict]) -> dict:
    row = {"row": name, "description": description, "runs": runs, "components": summaries[0]["components"]}
    for col, key in FIGURES.items():
        values = [float(s[key]) for s in summaries]
        row[col] = statistics.fmean(values)
        row[f"{col}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    row["ops_per_layer"] = [s["test/ops_per_layer"] for s in summaries]
    return row


def _pm(row: dict, col: str, fmt: str, scale: float = 1.0) -> str:
    return f"{row[col] * scale:{fmt}} ± {row[f'{col}_std'] * scale:{fmt}}"


def markdown(result: dict) -> str:
    rows = result["rows"]
    lines = [
        "# Operation counts and energy per inference (Fashion-MNIST test set)", "",
        f"Each row: the best checkpoint of each seed's run on all {result['test_images']:,} test images, mean ± std "
        "over seeds. ACs (accumulates) are caused by spikes, each adding its fan-out weights once; MACs "
        "(multiply-accumulates) are the analog first layer's dense product, computed once per image; the ANN is the "
        "same layers with ReLU, dense MACs once per image. Energy = ACs x 0.9 pJ + MACs x 4.6 pJ (45 nm, 32-bit; "
        "Horowitz, ISSCC 2014). Early exit: only the operations up to the first output spike. Definitions, the "
        "average-pool rule and the NeuroBench cross-check: docs/method.md section 10.", "",
        "| row | test acc (%) | decision step | spikes / neuron | ACs (M) | MACs (M) | energy (nJ) | energy / ANN | "
        "ACs with early exit (M) | energy with early exit (nJ) | with early exit / ANN |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['row']} ({r['description']}) | {_pm(r, 'acc', '.2f', 100)} | {_pm(r, 'decision_step', '.2f')} | "
            f"{_pm(r, 'spikes_per_neuron', '.4f')} | {_pm(r, 'ac', '.3f', 1e-6)} | {_pm(r, 'mac', '.3f', 1e-6)} | "
            f"{_pm(r, 'energy_nj', ',.0f')} | {_pm(r, 'ratio', '.3f')} | {_pm(r, 'ac_exit', '.3f', 1e-6)} | "
            f"{_pm(r, 'energy_exit_nj', ',.0f')} | {_pm(r, 'ratio_exit', '.3f')} |")
    ann = rows[0]
    lines.append(f"| ANN of the same layers (ReLU; not trained here) | - | - | - | 0 | {ann['ann_mac'] * 1e-6:.3f} | "
                 f"{ann['ann_energy_nj']:,.0f} | 1 | 0 | {ann['ann_energy_nj']:,.0f} | 1 |")
    lines += ["", "Per layer (operations per inference, first seed; AC or MAC by the layer's input; the ANN's MACs):",
              "", "| row | layer | kind | ops | with early exit | ANN MACs |", "|---|---|---|---|---|---|"]
    for r in rows:
        for layer, v in r["ops_per_layer"][0].items():
            lines.append(f"| {r['row']} | {layer} | {v['kind'].upper()} | {v['ops']:,.0f} | {v['ops_exit']:,.0f} | "
                         f"{v['ann_mac']:,.0f} |")
    full = rows[0]
    lines += ["", f"Network: `{full['components']['spec']}`, T = {full['components']['T']}, 28 x 28 inputs, direct "
              "encoding (the reproduction's network, docs/results.md).",
              f"**Energy ratio TTFS / ANN, {full['row']}: {full['ratio']:.3f} over the whole window, "
              f"{full['ratio_exit']:.3f} with early exit** (measured; the estimate counts synaptic operations only: "
              "no memory access, neuron updates or biases). The analog first layer's MACs are "
              f"{full['mac'] * E_MAC / full['energy_nj']:.0%} of that energy over the window and "
              f"{full['mac'] * E_MAC / full['energy_exit_nj']:.0%} with early exit.", "",
              f"Command: `{result['command']}`. Hardware: {result['hardware']}; {result['eval_s']:.0f} s of evaluation "
              "in all (a background training job shared the cores)."]
    return "\n".join(lines) + "\n"


def hardware() -> str:
    """CPU model, cores, torch threads and version, in one line."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [l.split(":", 1)[1].strip() for l in cpuinfo.read_text().splitlines() if l.startswith("model name")] \
        if cpuinfo.exists() else []
    cpu = names[0] if names else platform.machine()
    return f"{cpu} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--row", action="append", default=[], metavar="NAME=RUN[,RUN...]",
                        help="a row and its run folders (default: the reproduction rows)")
    parser.add_argument("--out", default="docs/results/energy", help="writes OUT.md and OUT.json")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: modest)")
    parser.add_argument("--render", action="store_true", help="only rewrite OUT.md from OUT.json (no evaluation)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.render:
        out.with_suffix(".md").write_text(markdown(json.loads(out.with_suffix(".json").read_text())))
        return 0
    torch.set_num_threads(args.threads)
    rows = [(n, "", r.split(",")) for n, r in (x.split("=", 1) for x in args.row)] if args.row else table_rows()
    result = {"command": "python docs/energy.py" + "".join(f" --row {x}" for x in args.row),
              "hardware": hardware(), "rows": [], "eval_s": 0.0}
    with tempfile.TemporaryDirectory() as scratch:
        for name, description, runs in rows:
            summaries = [evaluate(Path(r), Path(scratch)) for r in runs]
            result["eval_s"] += sum(s["eval_s"] for s in summaries)
            result["rows"].append(aggregate(name, description, runs, summaries))
    labels = Path("data/FashionMNIST/raw/t10k-labels-idx1-ubyte")  # IDX: magic, then the item count
    result["test_images"] = int.from_bytes(labels.read_bytes()[4:8], "big") if labels.exists() else None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
