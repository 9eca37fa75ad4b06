"""DVS Gesture frame-cache loading throughput; fabricated recordings (``ttfs_lab.data.fabricate``, the realistic
``gesture`` pattern) where the real data set is absent."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Optional


def bench_dvs_loading(data_dir: Optional[str], size: int, frames: int, batch: int, workers: int, batches: int,
                      events: int = 60000) -> dict:
    """Samples/s from the DVS Gesture frame cache (``measure_loading_throughput``); fabricated data if absent."""
    try:
        from ttfs_lab.data import DVSGesture, measure_loading_throughput
        from ttfs_lab.data.fabricate import make_dvsgesture
    except ImportError as exc:  # pragma: no cover - the DataModule is not there
        return {"error": f"ttfs_lab.data.DVSGesture unavailable: {exc}"}
    real = data_dir is not None and (Path(data_dir) / "DVSGesture" / "ibmGestureTrain").is_dir()
    tmp = None
    if not real:
        tmp = tempfile.TemporaryDirectory(prefix="ttfs-bench-dvs-")
        data_dir = tmp.name
        t0 = time.perf_counter()
        make_dvsgesture(Path(data_dir), n_per_split=100, events=events, pattern="gesture")
        fabricate_s = time.perf_counter() - t0
    try:
        dm = DVSGesture(data_dir=data_dir, batch_size=batch, num_workers=workers, frames=frames, size=size)
        t0 = time.perf_counter()
        dm.prepare_data()
        cache_s = time.perf_counter() - t0
        rate = measure_loading_throughput(dm, batches=batches)
        out = {"samples_per_s": rate, "size": size, "frames": frames, "batch": batch, "workers": workers,
               "batches": batches, "data": "real" if real else "fabricated (real DVS Gesture not found)",
               "cache_build_s": cache_s}
        if not real:
            out["fabricate_s"] = fabricate_s
        return out
    finally:
        if tmp is not None:
            tmp.cleanup()
