"""Speed and memory of TTFS training, side by side: ``ttfs-lab bench`` = ``python -m ttfs_lab.bench`` (``make bench``).

For each network it times one training step -- ``TTFSClassifier.training_step`` (forward, the module's loss),
backward, and the module's own optimizer step, exactly what Lightning runs per batch -- in ``step``,
``parallel`` and ``auto`` mode, and the same step of an ANN with the same layers. The modes run round-robin, one
step each per round, so that they share whatever else the machine is doing; the figure is the minimum over the
rounds. Then peak memory per mode, the tensor operations each step dispatches (on CUDA also the kernels the GPU
ran), the equality checks of every execution path on the benchmarked network and device, early-exit inference,
and the DVS Gesture frame-cache loading throughput. Everything is printed and written as JSON (default
``bench/results.json``).

- ``workload.py``  the benchmarked networks (``Case``), their batches, the training module and its step
- ``baselines.py`` what TTFS is measured against: the ANN of the same layers, the tensor-op neuron
- ``timing.py``    interleaved timing rounds (minimum over rounds)
- ``memory.py``    peak memory of one step (CUDA allocator counter; torch profiler events on CPU)
- ``ops.py``       tensor operations dispatched and GPU kernels run per step
- ``checks.py``    every execution path against the step reference on the benchmarked network; Triton kernels
- ``training.py``  one network: every mode timed, measured, counted and checked; the ratios
- ``early_exit.py`` early-exit inference against the full network
- ``loading.py``   DVS Gesture frame-cache throughput (fabricated data when the real set is absent)
- ``report.py``    the printed tables, the targets, the JSON file
- ``cli.py``       argument parsing and the run (``main``)
"""

from ttfs_lab.runtime import short_openmp_spin

short_openmp_spin()  # before torch is imported (``python -m ttfs_lab.bench``), as ``ttfs-lab`` does

from ttfs_lab.bench.cli import main  # noqa: E402

__all__ = ["main"]
