"""``python -m ttfs_lab.sweep ...`` = ``ttfs-lab sweep ...`` (worker processes are started this way)."""

import sys

from ttfs_lab.cli import main

sys.exit(main(["sweep", *sys.argv[1:]]))
