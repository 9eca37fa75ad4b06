"""Run records and the offline comparison dashboard.

``records`` (json/yaml/pathlib only) finds and compares run records (read through ``ttfs_lab.record``) and reads
ablation tables; ``dashboard`` (plotly)
writes one self-contained HTML page comparing runs. The dashboard is imported lazily so that the ablation
runner and the sweep code can use the records without importing plotly.
"""

from .records import (
    RunSnapshot,
    config_differences,
    final_metrics,
    find_runs,
    flatten,
    load_ablation,
    load_run,
    looks_like_run,
)

__all__ = [
    "RunSnapshot",
    "load_run",
    "find_runs",
    "looks_like_run",
    "flatten",
    "config_differences",
    "final_metrics",
    "load_ablation",
    "build_dashboard",
    "compare",
    "pareto_front",
]


def __getattr__(name: str):
    if name in ("build_dashboard", "compare"):
        from . import dashboard

        return getattr(dashboard, name)
    if name == "pareto_front":
        from .figures import pareto_front

        return pareto_front
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str]) -> int:
    """``ttfs-lab compare [RUNS ...] [--out FILE] [--ablation TABLE ...]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="ttfs-lab compare", description="offline HTML dashboard of run records")
    parser.add_argument("runs", nargs="*", default=["runs"], help="run folders, globs or folders of runs")
    parser.add_argument("--out", default="reports/compare.html")
    parser.add_argument("--ablation", action="append", default=[], help="extra ablation table.json files")
    args = parser.parse_args(argv)
    from .dashboard import compare

    compare(args.runs, args.out, args.ablation)
    return 0
