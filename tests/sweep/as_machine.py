"""``python as_machine.py NAME [--standby FILE] ARGS...``: ``ttfs-lab ARGS...`` in a process that believes it runs on
the machine NAME (``socket.gethostname``), for tests that stand several machines in for processes on one host.

``--standby FILE``: load what a sweep loads (torch, Lightning, ttfs-lab), then wait until FILE exists before
running the command: a machine that is already up when it is given its job.
"""

import os
import socket
import sys
import time

name = sys.argv.pop(1)
socket.gethostname = lambda: name
standby = None
if sys.argv[1] == "--standby":
    standby = sys.argv[2]
    del sys.argv[1:3]

from ttfs_lab.cli import main  # noqa: E402

if standby:
    import ttfs_lab.sweep.study  # noqa: F401
    import ttfs_lab.train  # noqa: F401

    while not os.path.exists(standby):
        time.sleep(0.1)
sys.exit(main(sys.argv[1:]))
