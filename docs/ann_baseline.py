"""The ANN of the same layers, trained under the reproduction's budget: docs/results/ann.json.

What a user would write next to the TTFS network of ``configs/reproduce/fashion_mnist.yaml``: the same spec as
plain ``nn.Conv2d`` / ``nn.AvgPool2d`` / ``nn.Linear`` with ReLU, trained with the same data split (the stratified
10,000-image part, 5 % validation held out), Adam at the ablation's lr (3e-3; ``--lr``) with a cosine schedule,
batch 64, 2 epochs, and tested on all 10,000 test images. Its accuracy is the reference for the energy table (docs/results.md).

    python docs/ann_baseline.py               # seeds 0 and 1; about 2 min of training each here (train_s in the JSON)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from ttfs_lab.data import FashionMNIST
from ttfs_lab.models import parse_spec

CONFIG = Path("configs/reproduce/fashion_mnist.yaml")


def ann_of(spec: str, in_channels: int, side: int) -> nn.Sequential:
    """The spec's layers as a plain ANN (ReLU after every layer but the last)."""
    layers, channels, features = [], in_channels, None
    parsed = parse_spec(spec)
    for i, layer in enumerate(parsed):
        last = i == len(parsed) - 1
        if layer.kind == "conv":
            layers += [nn.Conv2d(channels, layer.width, layer.kernel, layer.stride, layer.padding), nn.ReLU()]
            channels, side = layer.width, (side + 2 * layer.padding - layer.kernel) // layer.stride + 1
        elif layer.kind == "pool":
            layers.append(nn.AvgPool2d(layer.kernel) if layer.pool == "avg" else nn.MaxPool2d(layer.kernel))
            side //= layer.kernel
        else:
            if features is None:
                layers.append(nn.Flatten())
                features = channels * side * side
            layers += [nn.Linear(features, layer.width)] + ([] if last else [nn.ReLU()])
            features = layer.width
    return nn.Sequential(*layers)


def run(seed: int, config: dict) -> dict:
    data_args = config["data"]["init_args"]
    dm = FashionMNIST(data_dir=data_args["data_dir"], batch_size=data_args["batch_size"],
                      val_fraction=data_args["val_fraction"], train_subset=data_args["train_subset"],
                      seed=data_args.get("seed", 0))  # as in the TTFS runs: the seed changes the init only
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    torch.manual_seed(seed)
    net = ann_of(config["model"]["spec"], *dm.input_shape[:2])
    epochs = config["trainer"]["max_epochs"]
    loader = dm.train_dataloader()
    total = epochs * len(loader)
    opt = torch.optim.Adam(net.parameters(), lr=config["model"]["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    correct = count = 0
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            correct += int((net(x).argmax(1) == y).sum())
            count += len(y)
    return {"seed": seed, "test_acc": correct / count, "test_images": count, "train_s": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default="docs/results/ann.json")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam's lr (the reproduction's table runs at 3e-3)")
    args = parser.parse_args()
    config = yaml.safe_load(CONFIG.read_text())
    config["model"]["lr"] = args.lr
    runs = [run(seed, config) for seed in range(args.seeds)]
    accs = [r["test_acc"] for r in runs]
    result = {"command": f"python docs/ann_baseline.py --lr {args.lr}", "lr": args.lr, "spec": config["model"]["spec"], "runs": runs,
              "test_acc_mean": statistics.fmean(accs), "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
              "torch_threads": torch.get_num_threads()}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"ANN {result['spec']}: test accuracy {100 * result['test_acc_mean']:.2f} ± "
          f"{100 * result['test_acc_std']:.2f} % over {len(runs)} seeds -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
