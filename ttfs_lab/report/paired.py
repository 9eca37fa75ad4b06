"""Paired comparison of two ablation rows, seed by seed (``ttfs-lab paired``; docs/results.md).

Two rows of an ablation table ran the same seeds under the same budget, so their runs pair by seed: the same
data order and, where the settings allow, the same initial draws. Per figure the comparison gives each row's
mean ± std, the mean of the per-seed differences A - B, the paired t statistic and its two-sided p value
(Student's t with n - 1 degrees of freedom) and how many seeds A wins. The figures: test accuracy, the mean
decision step, accuracy when inference stops after step k (``test/acc_vs_step``, k = 1..T) and the steps A
needs to reach B's final accuracy (per seed: the first k at which A's curve reaches B's accuracy of that seed,
T + 1 if never). The last one is the paper's "fewer inference time steps" read as a step budget.
"""

from __future__ import annotations

import argparse
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ttfs_lab.errors import ConfigError
from ttfs_lab.record import is_number
from ttfs_lab.report.records import load_ablation, load_run


@dataclass(frozen=True)
class Paired:
    """One figure of a paired comparison over ``n`` seeds."""

    figure: str
    a_mean: float
    a_std: float
    b_mean: float
    b_std: float
    diff: float
    t: Optional[float]
    p: Optional[float]
    wins: int
    n: int


def paired_t(diffs: list[float]) -> tuple[Optional[float], Optional[float]]:
    """Paired t statistic and two-sided p of per-seed differences (scipy's one-sample t-test against 0; None for
    fewer than 2 seeds; p = 1 when every difference is 0, p = 0 when they are equal and nonzero)."""
    if len(diffs) < 2:
        return None, None
    if statistics.stdev(diffs) == 0:
        mean = statistics.fmean(diffs)
        return (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    from scipy import stats

    result = stats.ttest_1samp(diffs, 0.0)
    return float(result.statistic), float(result.pvalue)


def compare_figure(name: str, a: list[float], b: list[float]) -> Paired:
    """The paired comparison of one figure, ``a[i]`` and ``b[i]`` from the same seed."""
    diffs = [x - y for x, y in zip(a, b)]
    t, p = paired_t(diffs)

    def std(v: list[float]) -> float:
        return statistics.stdev(v) if len(v) > 1 else 0.0

    return Paired(name, statistics.fmean(a), std(a), statistics.fmean(b), std(b), statistics.fmean(diffs), t, p,
                  sum(d > 0 for d in diffs), len(diffs))


def steps_to_reach(curve: list[float], target: float, tol: float = 1e-6) -> int:
    """First step k (1-based) at which ``curve[k - 1] >= target`` (to ``tol``: the curve's last point and the
    accuracy are the same count, summed in different precisions); ``len(curve) + 1`` if never."""
    return next((k for k, acc in enumerate(curve, 1) if acc >= target - tol), len(curve) + 1)


def seed_summaries(row: dict, runs_dir: Path) -> dict[int, dict]:
    """seed -> the test figures of that seed's finished run (runs without a test result are left out)."""
    out = {}
    for run_id in row.get("runs") or []:
        seed = int(str(run_id).rsplit("-s", 1)[-1])
        summary = load_run(runs_dir / run_id).summary
        if is_number(summary.get("test/acc")) and isinstance(summary.get("test/acc_vs_step"), list):
            out[seed] = summary
    return out


def compare_rows(a: dict[int, dict], b: dict[int, dict]) -> list[Paired]:
    """Every figure of the paired comparison of two rows' seed summaries (the seeds both have)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ConfigError("the two rows have no finished seed in common; run both with the same --seeds")
    curve = {s: (a[s]["test/acc_vs_step"], b[s]["test/acc_vs_step"]) for s in seeds}
    out = [compare_figure("test accuracy (%)", [100 * a[s]["test/acc"] for s in seeds],
                          [100 * b[s]["test/acc"] for s in seeds]),
           compare_figure("decision step", [a[s]["test/decision_step"] for s in seeds],
                          [b[s]["test/decision_step"] for s in seeds])]
    for k in range(min(len(curve[s][0]) for s in seeds)):
        out.append(compare_figure(f"accuracy at step {k + 1} (%)", [100 * curve[s][0][k] for s in seeds],
                                  [100 * curve[s][1][k] for s in seeds]))
    out.append(compare_figure("steps to B's final accuracy",
                              [steps_to_reach(curve[s][0], b[s]["test/acc"]) for s in seeds],
                              [steps_to_reach(curve[s][1], b[s]["test/acc"]) for s in seeds]))
    return out


def find_row(table: dict, name: str) -> dict:
    for row in table["rows"]:
        if row.get("row") == name:
            return row
    names = ", ".join(str(r.get("row")) for r in table["rows"])
    raise ConfigError(f"row {name!r} is not in {table['path']}; rows are: {names}")


def markdown(label_a: str, label_b: str, results: list[Paired]) -> str:
    lines = [f"A = {label_a}, B = {label_b}; paired by seed over {results[0].n} seeds", "",
             "| figure | A (mean ± std) | B (mean ± std) | A - B | paired t | p | seeds A > B |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.figure} | {r.a_mean:.2f} ± {r.a_std:.2f} | {r.b_mean:.2f} ± {r.b_std:.2f} | "
                     f"{r.diff:+.2f} | {'-' if r.t is None else f'{r.t:.2f}'} | {'-' if r.p is None else f'{r.p:.2g}'} | {r.wins}/{r.n} |")
    return "\n".join(lines)


def _side(spec: str, default_table: Optional[str]) -> tuple[str, str]:
    """``[table.json:]row`` -> (table path, row name)."""
    table, sep, row = spec.rpartition(":")
    if sep and table.endswith(".json"):
        return table, row
    if default_table is None:
        raise ConfigError(f"row {spec!r} names no table; pass --table runs/ablations/<study>/table.json "
                          f"or write it as TABLE.json:ROW")
    return default_table, spec


def load_side(spec: str, default_table: Optional[str], runs_dir: Path) -> tuple[str, dict[int, dict]]:
    path, name = _side(spec, default_table)
    table = load_ablation(path)
    if table["problem"] and not table["rows"]:
        raise ConfigError(f"--table {path}: {table['problem']}; point it at runs/ablations/<study>/table.json")
    return name, seed_summaries(find_row(table, name), runs_dir)


def main(argv: list[str]) -> int:
    """``ttfs-lab paired A B [--table TABLE] [--runs-dir runs] [--out FILE]``."""
    parser = argparse.ArgumentParser(prog="ttfs-lab paired", description=__doc__.splitlines()[0])
    parser.add_argument("a", help="row A: a row of --table, or TABLE.json:ROW (leave-one-out rows: --table T -- -twd)")
    parser.add_argument("b", help="row B, the reference (same forms)")
    parser.add_argument("--table", help="the ablation table.json both rows come from (default for A and B)")
    parser.add_argument("--runs-dir", default="runs", help="where the rows' runs are (default runs)")
    parser.add_argument("--out", help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    runs_dir = Path(args.runs_dir)
    name_a, a = load_side(args.a, args.table, runs_dir)
    name_b, b = load_side(args.b, args.table, runs_dir)
    text = markdown(name_a, name_b, compare_rows(a, b))
    print(text)
    if args.out:
        from ttfs_lab.record import write_text

        write_text(Path(args.out), text + "\n")
    return 0
