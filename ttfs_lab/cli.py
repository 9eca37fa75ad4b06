"""``ttfs-lab`` command line: fit | validate | test (LightningCLI), sweep, ablate, compare, bench.

User errors (bad settings, missing data, NaN loss) print one line ``error: ...`` and exit with status 2.
"""

from __future__ import annotations

import sys

USAGE = """usage: ttfs-lab <command> [options]

commands:
  fit        train (validation each epoch), then test the best checkpoint:  ttfs-lab fit --config configs/mnist5k.yaml
  validate   evaluate a checkpoint on the validation split:  ttfs-lab validate --config C --ckpt_path P
  test       evaluate a checkpoint on the test split:        ttfs-lab test --config C --ckpt_path P
  sweep      Optuna search (see ttfs-lab sweep --help)
  ablate     ablation grid (see ttfs-lab ablate --help)
  compare    offline HTML dashboard of run records (see ttfs-lab compare --help)
  paired     two ablation rows compared seed by seed, paired t-tests (see ttfs-lab paired --help)
  bench      speed / memory benchmark (see ttfs-lab bench --help)

fit/validate/test accept dotted overrides, e.g. --model.T 16 --trainer.max_epochs 3; --print_config shows all."""


def main(argv: list[str] | None = None) -> int:
    from ttfs_lab.runtime import short_openmp_spin

    short_openmp_spin()  # before torch is imported: libgomp reads it when it loads
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    from ttfs_lab.errors import TTFSLabError
    from ttfs_lab.runtime import retain_freed_memory

    retain_freed_memory()  # before the first large tensor: CPU steps reuse memory instead of page-faulting

    try:
        return _dispatch(command, rest)
    except TTFSLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _dispatch(command: str, rest: list[str]) -> int:
    if command in ("fit", "validate", "test"):
        from ttfs_lab.train import train

        if any(a in ("-h", "--help") or a.startswith("--print_config") for a in rest):
            from ttfs_lab.config import TTFSLabCLI

            TTFSLabCLI(args=rest)  # prints and exits
            return 0
        train(rest, stage=command)
        return 0
    if command == "sweep":
        from ttfs_lab.sweep import main as sweep_main

        return sweep_main(rest)
    if command == "ablate":
        from ttfs_lab.ablate import main as ablate_main

        return ablate_main(rest)
    if command == "compare":
        from ttfs_lab.report import main as compare_main

        return compare_main(rest)
    if command == "paired":
        from ttfs_lab.report.paired import main as paired_main

        return paired_main(rest)
    if command == "bench":
        from ttfs_lab.bench import main as bench_main

        bench_main(rest)
        return 0
    from ttfs_lab.errors import ConfigError

    raise ConfigError(f"unknown command {command!r}; choose one of: fit, validate, test, sweep, ablate, compare, paired, bench")


if __name__ == "__main__":
    sys.exit(main())
