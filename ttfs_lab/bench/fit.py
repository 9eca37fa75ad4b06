"""Throughput of ``ttfs-lab fit`` itself: training and validation samples per second of one (shortened) epoch of
the Fashion-MNIST config, data loading, Lightning and logging included (issue "Speed against the baselines").

The run is ``configs/fashion_mnist.yaml`` with the network the issue measured (``c64-ap-c128-ap-fc256-fc10``,
T = 4, lr 2e-3), ``--fit-batches``
training and ``--fit-val-batches`` validation batches of 64, no sanity check, no test, no W&B, in a temporary run
folder. From the two rates it projects a full epoch (54,000 training and 6,000 validation images) and its training
samples per second, the figure the issue measured. The real Fashion-MNIST files are used where ``data_dir`` or the
Debian package has them; else the run is skipped with the reason. ``bench/fit_compare.py`` runs the same fit on two
checkouts side by side (the code before a change and after it).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import lightning as L

FIT_SPEC, FIT_T, FIT_LR = "c64-ap-c128-ap-fc256-fc10", 4, 0.002
FULL_TRAIN, VAL_FRACTION = 60_000, 0.1  # the training files; the DataModule's default validation share


class PhaseTimer(L.Callback):
    """Seconds and samples of the training and the validation phases of the fit (sanity checks excluded)."""

    def __init__(self) -> None:
        self.seconds = {"train": 0.0, "val": 0.0}
        self.samples = {"train": 0, "val": 0}
        self._since = 0.0

    def _start(self) -> None:
        self._since = time.perf_counter()

    def _stop(self, phase: str) -> None:
        self.seconds[phase] += time.perf_counter() - self._since

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.samples["train"] += len(batch[-1])

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._stop("train")
            self._start()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self.samples["val"] += len(batch[-1])

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._stop("val")


def fashion_mnist_found(data_dir: str) -> bool:
    """The files are in ``data_dir`` or in the system copy (Debian's package); the bench never downloads."""
    from ttfs_lab.data.vision import FashionMNIST

    dm = FashionMNIST(data_dir=data_dir)
    have = all((Path(dm.location) / name).is_file() for name in dm.idx_files)
    return have or (dm.system_copy is not None and dm.system_copy.available())


def fit_config(data_dir: str, run_dir: str, train_batches: int, val_batches: int, workers: int) -> dict:
    from ttfs_lab.overrides import load_yaml

    config = load_yaml(Path(__file__).parents[2] / "configs" / "fashion_mnist.yaml")
    config["model"].update(spec=FIT_SPEC, T=FIT_T, lr=FIT_LR)
    config["data"]["init_args"].update(data_dir=data_dir, num_workers=workers)
    config["trainer"] = {"max_epochs": 1, "limit_train_batches": train_batches, "limit_val_batches": val_batches,
                         "num_sanity_val_steps": 0, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                         "enable_model_summary": False, "logger": False}
    config["run"] = {"dir": run_dir, "wandb": "disabled", "test": False}
    return config


def bench_fit(data_dir: str, train_batches: int, val_batches: int, workers: int = 2) -> dict:
    """One shortened epoch of ``ttfs-lab fit``: training / validation samples per second and their sum."""
    if not fashion_mnist_found(data_dir):
        return {"error": f"Fashion-MNIST not found under {data_dir}/FashionMNIST or /usr/share/datasets/fashion-mnist "
                         f"(apt-get install dataset-fashion-mnist); fit throughput not measured"}
    from ttfs_lab.train import train

    timer = PhaseTimer()
    with tempfile.TemporaryDirectory(prefix="ttfs-bench-fit-") as run_dir:
        train(fit_config(data_dir, run_dir, train_batches, val_batches, workers), callbacks=[timer])
    s, n = timer.seconds, timer.samples
    train_rate, val_rate = n["train"] / s["train"], n["val"] / max(s["val"], 1e-9)
    val_images = round(FULL_TRAIN * VAL_FRACTION)
    epoch_s = (FULL_TRAIN - val_images) / train_rate + val_images / val_rate
    return {"spec": FIT_SPEC, "T": FIT_T, "batch": 64, "workers": workers, "train_samples": n["train"],
            "val_samples": n["val"], "train_s": s["train"], "val_s": s["val"],
            "train_samples_per_s": train_rate, "val_samples_per_s": val_rate,
            "val_over_train_per_sample": train_rate / val_rate,
            "full_epoch_s": epoch_s, "epoch_samples_per_s": (FULL_TRAIN - val_images) / epoch_s}
