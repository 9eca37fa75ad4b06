"""``python -m ttfs_lab.bench ...`` = ``ttfs-lab bench ...`` (``bench/gpu_check.sh`` runs it this way)."""

from ttfs_lab.bench.cli import main

main()
