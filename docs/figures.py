"""Figures of docs/results.md from the run records of ``make reproduce`` (re-run after it: python docs/figures.py).

Learning curves (validation accuracy and training loss per epoch) of the runs of a study, one line per ablation
row and seed, read from ``runs/<run-id>/metrics.jsonl`` and ``meta.json`` through ``ttfs_lab.report``. Only the
runs the study's current table lists are drawn (older runs of an edited config stay in ``runs/`` unlisted).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ttfs_lab.report import find_runs, load_run  # noqa: E402


def row_name(run) -> str:
    tags = run.meta.get("tags", [])
    row = next((t[4:] for t in tags if t.startswith("row:")), run.run_id)
    seed = next((t[5:] for t in tags if t.startswith("seed:")), "")
    return f"{row} (seed {seed})" if seed else row


def table_runs(runs_dir: str, study: str, seed: str | None = None) -> list[str]:
    """The run folders the study's ``table.json`` lists (of one seed if given)."""
    table = json.loads((Path(runs_dir) / "ablations" / study / "table.json").read_text())
    ids = [run for row in table["rows"] for run in row["runs"]]
    return [str(Path(runs_dir) / r) for r in dict.fromkeys(ids) if seed is None or r.endswith(f"-s{seed}")]


def curves(folders: list[str], out: Path, title: str) -> None:
    runs = sorted((load_run(p) for p in find_runs(folders)), key=row_name)
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        epochs = [r["epoch"] + 1 for r in run.epochs if "val/acc" in r]
        acc_ax.plot(epochs, [100 * r["val/acc"] for r in run.epochs if "val/acc" in r], marker="o",
                    label=row_name(run))
        loss_ax.plot([r["epoch"] + 1 for r in run.epochs if "train/loss" in r],
                     [r["train/loss"] for r in run.epochs if "train/loss" in r], marker="o", label=row_name(run))
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title=title)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="training loss")
    acc_ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out} ({len(runs)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="docs/figures")
    args = parser.parse_args()
    out = Path(args.out)
    curves(table_runs(args.runs, "reproduce-fashion_mnist-depth"), out / "depth_curves.png",
           "9- and 15-layer TTFS stacks, Fashion-MNIST")
    curves(table_runs(args.runs, "reproduce-fashion_mnist-lr3e-3", seed="0"), out / "ablation_curves.png",
           "Table 4 ladder, Fashion-MNIST, lr 3e-3, seed 0")


if __name__ == "__main__":
    main()
