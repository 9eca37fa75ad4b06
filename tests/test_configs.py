"""Every shipped config trains one step and tests one batch, offline, on data fabricated in the real layout."""

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent / "data"))
from fabricate_data import (accept_small_tonic_trees, make_cifar, make_cifar10dvs, make_dvsgesture,  # noqa: E402
                            make_mnist_idx, make_nmnist, skip_cifar_md5)

from ttfs_lab.netconfig import DEFAULT_SPECS  # noqa: E402
from ttfs_lab.train import train  # noqa: E402

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("**/*.yaml"))
FABRICATE = {
    "MNIST": lambda root: make_mnist_idx(root, 16, 8),
    "FashionMNIST": lambda root: make_mnist_idx(root, 16, 8, name="FashionMNIST"),
    "CIFAR10": lambda root: make_cifar(root, 16, 8),
    "CIFAR100": lambda root: make_cifar(root, 16, 8, classes=100),
    "DVSGesture": lambda root: make_dvsgesture(root, n_per_split=100, events=200),
    "NMNIST": lambda root: make_nmnist(root, n_per_split=20, events=60),  # tonic's file count relaxed below
    "CIFAR10DVS": lambda root: make_cifar10dvs(root, n_per_class=10, events=100),
}


def test_every_dataset_has_a_config():
    names = {p.stem for p in CONFIGS}
    assert {"mnist5k", "mnist", "fashion_mnist", "cifar10", "cifar100", "dvsgesture", "nmnist", "cifar10dvs"} <= names


@pytest.mark.parametrize("path", [p for p in CONFIGS if not p.stem.startswith("ablation")],
                         ids=lambda p: str(p.relative_to(p.parents[1] if p.parent.name != "configs" else p.parent)))
def test_shipped_config_runs_one_step(path, tmp_path, monkeypatch):
    config = yaml.safe_load(path.read_text())
    cls = config["data"]["class_path"].rsplit(".", 1)[1]
    args = config["data"].setdefault("init_args", {})
    if cls in FABRICATE:
        FABRICATE[cls](tmp_path / "data")
        args["data_dir"] = str(tmp_path / "data")
        monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("network access"))
    if cls.startswith("CIFAR"):
        skip_cifar_md5(monkeypatch)
    if cls in ("NMNIST", "CIFAR10DVS"):
        accept_small_tonic_trees(monkeypatch)
        args.update(frames=4)
    if cls in ("DVSGesture", "CIFAR10DVS"):
        args.update(size=32, frames=4)
        spec = config["model"].get("spec") or DEFAULT_SPECS[cls.lower()]
        config["model"]["spec"] = spec.replace("c128-ap-c128-ap-c128-ap-c128-ap-c128-ap", "c8-ap-c8-ap")
    args.update(batch_size=4, num_workers=0)
    # (limit_*_batches: 1 would mean 100 %: Lightning reads the int 1 as the float 1.0)
    config["trainer"] = {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 2, "limit_test_batches": 2,
                         "accelerator": "cpu", "devices": 1, "precision": "32-true", "enable_progress_bar": False}
    config["run"] = {"dir": str(tmp_path / "runs"), "wandb": "disabled"}
    summary = train(config)
    assert 0.0 <= summary["test/acc"] <= 1.0
    assert summary["epochs"] == 1 and Path(summary["best_checkpoint"]).exists()
