"""Figures of docs/results.md from the run records of ``make reproduce`` (re-run after it: python docs/figures.py).

Learning curves (validation accuracy and training loss per epoch) of the runs of a study, one line per ablation
row and seed, read from ``runs/<run-id>/metrics.jsonl`` and ``meta.json`` through ``ttfs_lab.report``. Only the
runs the study's current table lists are drawn (older runs of an edited config stay in ``runs/`` unlisted).
Accuracy vs the step at which inference stops (``test/acc_vs_step``), mean ± std over a row's seeds, for the
decoders of the shallow study, and for TWD's per-step loss (``model.early_loss``).
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


STOP_STEP_ROWS = {"+twd": "TWD (spikes + potential at the decision)", "+affine": "first-spike readout",
                  "framework_twd_membrane": "TWD over the output potentials", "framework_membrane": "potential at T",
                  "naive": "naive TTFS network (potential at T)"}
EARLY_LOSS_ROWS = {"framework_early": "TWD trained with its per-step loss (early_loss 1)",
                   "+twd": "TWD, final logits only", "+affine": "first-spike readout",
                   "naive": "naive TTFS network (potential at T)"}


def stop_step_curves(runs_dir: str, study: str, out: Path, title: str, rows: dict[str, str] = STOP_STEP_ROWS) -> None:
    """Test accuracy when inference stops after step k, mean ± std over each row's seeds (``rows``: name -> label)."""
    import numpy as np

    table = json.loads((Path(runs_dir) / "ablations" / study / "table.json").read_text())
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for row in table["rows"]:
        if row["row"] not in rows:
            continue
        curves = [load_run(Path(runs_dir) / r).summary.get("test/acc_vs_step") for r in row["runs"]]
        curves = np.array([c for c in curves if c]) * 100
        if not len(curves):
            continue
        steps = np.arange(1, curves.shape[1] + 1)
        mean, std = curves.mean(0), curves.std(0, ddof=1) if len(curves) > 1 else 0 * curves[0]
        ax.plot(steps, mean, marker="o", label=f"{rows[row['row']]} ({len(curves)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.set(xlabel="inference stops after step", ylabel="test accuracy (%)", title=title, ylim=(0, 92))
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


DEPTH15_ROWS = ("deep15_ettfs_norm_affine", "deep15_kaiming_norm_affine", "deep15_ettfs_norm_affine_eps16",
                "deep15_kaiming_norm_affine_eps16", "deep15_ettfs_norm_affine_alpha2",
                "deep15_kaiming_norm_affine_alpha2", "deep15_ettfs_norm_affine_alpha2_eps16",
                "deep15_kaiming_norm_affine_alpha2_eps16")


def row_mean_curves(runs_dir: str, study: str, rows: tuple[str, ...], out: Path, title: str) -> None:
    """Validation accuracy per epoch, mean ± std over each row's seeds, one line per row of ``rows``."""
    import numpy as np

    table = {r["row"]: r["runs"] for r in json.loads((Path(runs_dir) / "ablations" / study / "table.json").read_text())["rows"]}
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name in (r for r in rows if r in table):
        runs = [load_run(Path(runs_dir) / r) for r in table[name]]
        acc = np.array([[100 * e["val/acc"] for e in run.epochs if "val/acc" in e] for run in runs])
        epochs = np.arange(1, acc.shape[1] + 1)
        std = acc.std(0, ddof=1) if len(acc) > 1 else 0 * acc[0]
        style = "-" if "ettfs" in name else "--"
        ax.errorbar(epochs, acc.mean(0), yerr=std, linestyle=style, marker="o", capsize=3,
                    label=f"{name.removeprefix('deep15_')} ({len(acc)} seeds)")
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title=title, xticks=epochs)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


FIGURES = ("depth", "depth15", "ablation", "stop_step", "early_loss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="docs/figures")
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=FIGURES, help="the figures to draw")
    args = parser.parse_args()
    out = Path(args.out)
    if "depth" in args.only:
        curves(table_runs(args.runs, "reproduce-fashion_mnist-depth"), out / "depth_curves.png",
               "9- and 15-layer TTFS stacks, Fashion-MNIST")
    if "depth15" in args.only:
        row_mean_curves(args.runs, "reproduce-fashion_mnist-depth", DEPTH15_ROWS, out / "depth15_curves.png",
                        "15 TTFS layers: init x surrogate alpha x Adam eps, Fashion-MNIST")
    if "ablation" in args.only:
        curves(table_runs(args.runs, "reproduce-fashion_mnist-lr3e-3", seed="0"), out / "ablation_curves.png",
               "Table 4 ladder, Fashion-MNIST, lr 3e-3, seed 0")
    if "stop_step" in args.only:
        stop_step_curves(args.runs, "reproduce-fashion_mnist-lr3e-3", out / "stop_step_curves.png",
                         "Decoders of the full framework's training, Fashion-MNIST")
    if "early_loss" in args.only:
        stop_step_curves(args.runs, "reproduce-fashion_mnist-lr3e-3", out / "early_loss_curves.png",
                         "TWD's per-step loss, Fashion-MNIST", EARLY_LOSS_ROWS)


if __name__ == "__main__":
    main()
