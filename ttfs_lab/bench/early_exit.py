"""Early-exit inference (``ttfs_lab.inference``) against the full folded network, on briefly trained weights."""

from __future__ import annotations

import time

import torch

from ttfs_lab.bench.workload import Case, build_classifier, mnist_digits, ttfs_train_step


def bench_inference(case: Case, device: torch.device, repeats: int, train_steps: int, precision: str,
                    chunks: tuple[int, ...] = (1, 2, 4)) -> dict:
    """Early exit at the first output spike on the folded network, after ``train_steps`` training steps on
    mnist5k digits (so that the decision steps are not those of random weights), evaluated on 256 held-out
    digits: speed-up against the full folded network and the predictions / accuracy it keeps, per chunk size."""
    from ttfs_lab.inference import compare

    module, optimizer = build_classifier(case, "auto", device)
    digits = mnist_digits() if case.input_shape == (1, 28, 28) else None
    if digits is None:
        gen = torch.Generator().manual_seed(0)
        digits = (torch.rand(5000, *case.input_shape, generator=gen),
                  torch.randint(0, case.classes, (5000,), generator=gen))
    images, labels = digits
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    for i in range(train_steps):
        idx = perm[(i * case.batch) % 4000:(i * case.batch) % 4000 + case.batch]
        ttfs_train_step(module, optimizer, (images[idx].to(device), labels[idx].to(device)), device, precision)()
    train_s = time.perf_counter() - t0
    held_out = perm[4000:4256]
    x, y = images[held_out].to(device), labels[held_out].to(device)
    runs = [compare(module.net.eval(), x, y, repeats=repeats, chunk=c) for c in chunks]
    best = max(runs, key=lambda r: r["speedup_vs_full_parallel"])
    return {**best, "train_steps": train_steps, "train_s": train_s, "by_chunk": runs,
            "note": "predictions_kept is the fraction of early-exit predictions equal to the full folded network's "
                    "(1.0 by construction); accuracies are after train_steps steps only"}
