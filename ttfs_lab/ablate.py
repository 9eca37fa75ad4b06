"""Ablation of the framework's components, driven by ``configs/ablation.yaml`` (the paper's Table 4).

Three families of rows: the cumulative *ladder* from the baseline (Kaiming init, max pooling, no normalization,
no affine, first-spike decoder), switching one component on per row; *leave-one-out* rows from the full
framework; and *reference* rows, each a complete setting of its own (e.g. the naive TTFS network a user would
otherwise write). Every row runs N seeds through ``train(config)``; rows with identical settings share their runs. A row
that fails does not stop the others, and re-running skips runs that already finished (their run ids are a hash
of the whole resolved configuration, base config and ``--set`` included, and the seed: editing the base config
starts fresh runs instead of reusing stale ones). The table (mean and std over seeds of test accuracy, decision step, spikes
per neuron, operations and energy per inference) is written after every row to
``<runs>/ablations/<study>/table.{json,md}``, where ``ttfs-lab compare`` finds it; rows that an earlier
``--rows`` invocation ran stay in it as long as their runs are those of the current configuration.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ttfs_lab.errors import ConfigError
from ttfs_lab.overrides import apply, load_yaml, parse_assignments
from ttfs_lab.record import spikes_per_neuron, write_json, write_text
from ttfs_lab.tracking import resolve_wandb_mode

# column -> summary key, or the function that reads it (spikes per neuron: its one definition, ttfs_lab.record)
METRICS = {"test/acc": "test/acc", "test/decision_step": "test/decision_step",
           "spikes_per_neuron": spikes_per_neuron, "wall_s": "wall_s",
           # operations and energy per inference (docs/method.md section 10)
           "synops_ac": "test/synops_ac", "synops_mac": "test/synops_mac", "energy_nj": "test/energy_nj",
           "energy_exit_nj": "test/energy_exit_nj", "energy_ratio_ann": "test/energy_ratio_ann"}


@dataclass(frozen=True)
class Row:
    name: str
    kind: str  # ladder | leave_one_out | reference
    overrides: dict

    def config(self, base: dict, overrides: Optional[dict] = None) -> dict:
        """The row's resolved configuration: ``base`` with the row's settings, then ``overrides``, applied."""
        return apply(base, {**self.overrides, **(overrides or {})})

    def key(self, base: dict, overrides: Optional[dict] = None) -> str:
        """A short hash of the resolved configuration: rows with the same settings share runs."""
        return config_key(self.config(base, overrides))


def config_key(resolved: dict) -> str:
    """A short hash of a resolved configuration (the run id's middle part)."""
    return hashlib.sha1(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:8]


def run_id(study: str, key: str, seed: int | str) -> str:
    """The id of a row's run: study, configuration key, seed (``seed=""`` gives the prefix of all its seeds)."""
    return f"{study}-{key}-s{seed}"


def load_grid(path) -> tuple[list[Row], int]:
    """The rows of an ablation grid file and its default number of seeds."""
    grid = load_yaml(path)
    rows: list[Row] = []
    for family, start_key, cumulative in (("ladder", "baseline", True), ("leave_one_out", "full", False)):
        start = grid.get(start_key) or {}
        if not isinstance(start, dict):
            raise ConfigError(f"{path}: '{start_key}' must map config paths to values")
        current = dict(start)
        for i, entry in enumerate(grid.get(family) or []):
            if not isinstance(entry, dict) or "name" not in entry or not isinstance(entry.get("set", {}), dict):
                raise ConfigError(f"{path}: {family}[{i}] must be {{name: ..., set: {{config.path: value}}}}")
            settings = entry.get("set") or {}
            if cumulative:
                current.update(settings)
                rows.append(Row(str(entry["name"]), family, dict(current)))
            else:
                rows.append(Row(str(entry["name"]), family, {**start, **settings}))
    for i, entry in enumerate(grid.get("references") or []):
        if not isinstance(entry, dict) or "name" not in entry or not isinstance(entry.get("set", {}), dict):
            raise ConfigError(f"{path}: references[{i}] must be {{name: ..., set: {{config.path: value}}}}")
        rows.append(Row(str(entry["name"]), "reference", dict(entry.get("set") or {})))
    if not rows:
        raise ConfigError(f"{path}: no rows; add a 'ladder', 'leave_one_out' or 'references' list")
    seeds = grid.get("seeds", 1)
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"{path}: seeds={seeds!r} is not valid; use a positive integer")
    return rows, seeds


def run_ablation(dataset: str, grid: str = "configs/ablation.yaml", config: Optional[str] = None,
                 seeds: Optional[int] = None, study: Optional[str] = None, runs_dir: str = "runs",
                 wandb: str = "auto", overrides: Optional[dict] = None, only: Optional[list[str]] = None) -> dict:
    """Run the grid on ``dataset``; returns the table (also written to disk after every row)."""
    from ttfs_lab.train import train

    grid_rows, default_seeds = load_grid(grid)
    rows = grid_rows
    if only:
        unknown = sorted(set(only) - {r.name for r in rows})
        if unknown:
            raise ConfigError(f"--rows {', '.join(unknown)} not in {grid}; rows are: {', '.join(r.name for r in rows)}")
        rows = [r for r in rows if r.name in only]
    base = load_yaml(config or f"configs/{dataset}.yaml")
    study = study or f"ablation-{dataset}"
    seeds = seeds or default_seeds
    out_dir = Path(runs_dir) / "ablations" / study
    table: dict[str, Any] = {"dataset": dataset, "study": study, "grid": str(grid), "seeds": seeds, "rows": []}
    done: dict[tuple[str, int], dict] = {}
    fresh: dict[str, dict] = {}
    for row in rows:
        summaries, run_ids, errors = [], [], []
        resolved = row.config(base, overrides)
        key = config_key(resolved)
        for seed in range(seeds):
            rid = run_id(study, key, seed)
            run_ids.append(rid)
            if (key, seed) not in done:
                cfg = apply(resolved, {
                    "seed_everything": seed, "run.id": rid, "run.group": study, "run.dir": runs_dir,
                    "run.wandb": wandb, "run.tags": ["ablation", f"row:{row.name}", f"seed:{seed}"]})
                print(f"[ablation {study}] row {row.name} seed {seed}: run {rid}", flush=True)
                try:
                    done[(key, seed)] = train(cfg)
                except Exception as err:  # a failed row must not stop the others
                    message = str(err).splitlines()[0] if str(err) else type(err).__name__
                    done[(key, seed)] = {"error": message}
                    print(f"[ablation {study}] row {row.name} seed {seed} failed: {message}", flush=True)
            result = done[(key, seed)]
            (errors if "error" in result else summaries).append(result.get("error", result))
        fresh[row.name] = aggregate(row, summaries, run_ids, errors, seeds)
        earlier = earlier_rows(out_dir, grid_rows, base, overrides, study)  # re-read: another runner may have written
        table["rows"] = [fresh.get(r.name) or earlier[r.name] for r in grid_rows if r.name in fresh or r.name in earlier]
        save_table(table, out_dir)
    log_table_to_wandb(table, out_dir, wandb, study)
    print(markdown(table))
    return table


def earlier_rows(out_dir: Path, grid_rows: list[Row], base: dict, overrides: Optional[dict], study: str) -> dict:
    """Rows of the study's existing table that this invocation keeps (``--rows`` runs a subset): those the grid
    still has whose runs are the runs this configuration would make (same run-id key). Read before every write,
    so that two runners of one study (``--rows`` split between processes) keep each other's rows."""
    from ttfs_lab.report.records import load_ablation

    keys = {r.name: run_id(study, r.key(base, overrides), "") for r in grid_rows}
    kept = {}
    for row in load_ablation(out_dir).get("rows", []):
        name, runs = row.get("row"), row.get("runs") or []
        if name in keys and runs and all(str(run).startswith(keys[name]) for run in runs):
            kept[name] = row
    return kept


def aggregate(row: Row, summaries: list[dict], run_ids: list[str], errors: list[str], seeds: int) -> dict:
    entry: dict[str, Any] = {"row": row.name, "kind": row.kind, "settings": row.overrides, "seeds": seeds,
                             "n_ok": len(summaries), "runs": run_ids, "errors": errors,
                             "status": "ok" if not errors else ("partial" if summaries else "failed")}
    for name in METRICS:
        values = [v for v in (figure(s, name) for s in summaries) if v is not None]
        entry[f"{name}_n"] = len(values)  # fewer than n_ok: runs recorded before the figure existed
        entry[f"{name}_mean"] = statistics.fmean(values) if values else None
        entry[f"{name}_std"] = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
    return entry


def figure(summary: dict, name: str) -> Optional[float]:
    """One column's figure of one run (None when the run did not record it)."""
    key = METRICS[name]
    value = key(summary) if callable(key) else summary.get(key)
    return None if value is None else float(value)


def save_table(table: dict, out_dir: Path) -> None:
    write_json(out_dir / "table.json", table)
    write_text(out_dir / "table.md", markdown(table) + "\n")


def _cell(row: dict, name: str, scale: float = 1.0, digits: int = 2) -> str:
    mean, std, n = row.get(f"{name}_mean"), row.get(f"{name}_std"), row.get(f"{name}_n")
    if mean is None:
        return "-"
    if n is not None and n < row.get("n_ok", n):  # not every run has this figure: say so, no fake "± 0"
        return f"{mean * scale:.{digits}f} ({n} of {row['n_ok']} runs)"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def markdown(table: dict) -> str:
    lines = [f"Ablation {table['study']} on {table['dataset']} ({table['seeds']} seed(s); mean ± std)", "",
             "| row | kind | runs ok | test acc (%) | decision step | spikes / neuron | ACs / inference (M) | "
             "MACs / inference (M) | energy / inference (nJ) | with early exit (nJ) | energy / ANN | "
             "wall per run (s) | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table["rows"]:
        lines.append(f"| {r['row']} | {r['kind']} | {r['n_ok']}/{r['seeds']} | {_cell(r, 'test/acc', 100)} | "
                     f"{_cell(r, 'test/decision_step')} | {_cell(r, 'spikes_per_neuron', 1, 4)} | "
                     f"{_cell(r, 'synops_ac', 1e-6, 3)} | {_cell(r, 'synops_mac', 1e-6, 3)} | "
                     f"{_cell(r, 'energy_nj', 1, 1)} | {_cell(r, 'energy_exit_nj', 1, 1)} | "
                     f"{_cell(r, 'energy_ratio_ann', 1, 3)} | {_cell(r, 'wall_s', 1, 0)} | {r['status']} |")
    return "\n".join(lines)


def log_table_to_wandb(table: dict, out_dir: Path, mode: str, study: str) -> None:
    """One W&B run (group = study, job_type ablation-summary) holding the table, next to the rows' runs."""
    mode = resolve_wandb_mode(mode)
    if mode == "disabled":
        return
    import wandb

    columns = ["row", "kind", "n_ok", "test_acc_mean", "test_acc_std", "decision_step_mean", "spikes_per_neuron_mean",
               "energy_nj_mean", "energy_exit_nj_mean", "energy_ratio_ann_mean"]
    data = [[r["row"], r["kind"], r["n_ok"], r["test/acc_mean"], r["test/acc_std"], r["test/decision_step_mean"],
             r["spikes_per_neuron_mean"], r.get("energy_nj_mean"), r.get("energy_exit_nj_mean"),
             r.get("energy_ratio_ann_mean")] for r in table["rows"]]
    with wandb.init(project="ttfs-lab", group=study, job_type="ablation-summary", name=f"{study}-table",
                    dir=str(out_dir), mode=mode, config={"dataset": table["dataset"], "seeds": table["seeds"]}) as run:
        run.log({"ablation": wandb.Table(columns=columns, data=data)})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ttfs-lab ablate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--grid", default="configs/ablation.yaml", help="the ablation grid file")
    parser.add_argument("--config", default=None, help="base config (default configs/<dataset>.yaml)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per row (default: the grid's)")
    parser.add_argument("--study", default=None, help="name of the ablation (default ablation-<dataset>)")
    parser.add_argument("--rows", default=None, help="comma-separated row names to run (default all); a list that "
                        "starts with a leave-one-out row needs the = form: --rows=-affine,naive")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--wandb", default="auto", help="auto | online | offline | disabled")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                        help="config override for every run, e.g. --set trainer.max_epochs=3 (repeatable)")
    args = parser.parse_args(argv)
    table = run_ablation(args.dataset, args.grid, args.config, args.seeds, args.study, args.runs_dir, args.wandb,
                         parse_assignments(args.set), args.rows.split(",") if args.rows else None)
    return 0 if all(r["status"] == "ok" for r in table["rows"]) else 1
