"""Inference with the folded network and early exit at the first output spike (docs/method.md section 4).

The network runs a chunk of steps at a time (all layers advance together; within a chunk each block of the
network's execution plan, ``ttfs_lab/plan.py``, runs over its steps at once, the neurons carrying their state
from chunk to chunk, ``ttfs_resume``) and a sample leaves the batch as soon as its decision is *final*: the class
leading now is certain to still lead after step T, whatever spikes come later.
Each output neuron fires at most once and every spiking decoder here only adds a nonnegative amount when a
class fires (``twd``: kappa w_t with w strictly decreasing; ``first_spike``; ``count``), so after step k:

* a class's final logit is at least its current partial logit L_c;
* a class that has not fired yet can reach at most U_c = its logit if it fired at step k + 1 (the earliest
  possible, worth the most); a class that has fired is done (U_c = L_c).

The decision for c* = argmax L (lowest index among ties, as ``argmax``) is final when L_c* > U_c for every other
c, or L_c* = U_c and c* < c. For ``twd`` and ``first_spike`` this holds exactly at the first output spike; for
``count`` it can take longer. A decoder that reads the output potential (``twd`` with ``twd_potential``) freezes
the potential at the first output spike, where the classes that fired are above the threshold and the others
below, so its decision is final there too; the ``membrane`` decoder (and a negative learned kappa) decide only at T. Early
exit therefore never changes a prediction: it returns the full network's argmax for every sample.

``early_exit`` gives the predictions, the exit step per sample and the work done; ``compare`` times it against
the full folded network (parallel and step execution) and reports the speed-up and the predictions it keeps.
"""

from __future__ import annotations

import time
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from ttfs_lab.functional.decoding import decision_steps, membrane_potential
from ttfs_lab.functional.neuron import ResumeState, ttfs_resume
from ttfs_lab.models import TTFSNet
from ttfs_lab.nn.decoders import FirstSpikeDecoder, SpikeCountDecoder, TemporalWeightingDecoder
from ttfs_lab.plan import stage_rows

MONOTONE_DECODERS = (TemporalWeightingDecoder, FirstSpikeDecoder, SpikeCountDecoder)


class EarlyExitResult(NamedTuple):
    pred: Tensor  # [B] predicted class
    exit_step: Tensor  # [B] 1-based step at which the sample's decision became final (T at most)
    steps_run: int  # steps the batch ran (the last chunk's end)
    sample_steps: int  # sum over samples of the steps computed for them: the work done, out of B * T


def can_exit_early(net: TTFSNet) -> bool:
    """Whether the decoder lets a decision become final before T (spiking, monotone, positive kappa)."""
    dec = net.decoder
    return isinstance(dec, MONOTONE_DECODERS) and bool((dec.scale > 0).all())


def final_decisions(net: TTFSNet, out: Tensor, k: int, potential: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """After k steps of the output ``out`` (``[T, B, K]``; steps after k are ignored; ``potential`` the output
    potential, for decoders that read it): the argmax class and whether it is certain to stay the argmax at T."""
    T = out.shape[0]
    seen = out.clone()
    seen[k:] = 0
    lower = net.decoder.partial_logits(seen, potential)[-1]
    pred = lower.argmax(-1)
    if k >= T:
        return pred, torch.ones_like(pred, dtype=torch.bool)
    if not can_exit_early(net):
        return pred, torch.zeros_like(pred, dtype=torch.bool)
    if net.decoder.uses_potential:  # frozen at the first output spike (see the module docstring)
        return pred, seen[:k].sum((0, 2)) > 0
    seen[k] = (seen[:k].sum(0) == 0).to(out.dtype)  # every silent class fires at the next step
    upper = net.decoder.partial_logits(seen)[-1]
    best = lower.gather(-1, pred.unsqueeze(-1))
    classes = torch.arange(out.shape[-1], device=out.device)
    beats = (best > upper) | ((best == upper) & (pred.unsqueeze(-1) < classes))
    beats |= classes == pred.unsqueeze(-1)
    return pred, beats.all(-1)


def _run_chunk(net: TTFSNet, h: Tensor, steps: int, states: dict) -> tuple[Tensor, Optional[Tensor]]:
    """The plan's blocks after ``plan.once`` over ``steps`` more steps (``h``: ``[steps | 1, B, ...]``), each
    neuron continuing from its state in ``states`` (updated); neuron + average pool fused, as in training
    (``ttfs_lab/plan.py``). Returns the output and, when the decoder reads the output potential, the output
    layer's currents of these steps."""
    currents = None
    for block in net.plan.steps(fuse=True):
        stage = net.stages[block.name]
        if block.potential:
            currents = h.expand(steps, *h.shape[1:]) if h.shape[0] == 1 else h
        if block.kind == "neuron":
            h, states[block.name] = ttfs_resume(h, stage.params, steps, states.get(block.name), block.pool_k or 1)
        else:
            h = stage_rows(stage, block, h, net.sparse)
    return h, currents


@torch.no_grad()
def early_exit(net: TTFSNet, x: Tensor, chunk: int = 1) -> EarlyExitResult:
    """Run ``net`` (folded or not) ``chunk`` steps at a time (each chunk in parallel over its steps, the neurons
    carrying their state); after each chunk the samples whose decision became final leave the batch."""
    if chunk < 1:
        raise ValueError(f"chunk={chunk} is not valid; use 1 or more steps")
    T = net.T
    h = net.encode(x)
    B = h.shape[1]
    for block in net.plan.once:  # a constant input current: the blocks before the first neuron run once
        h = stage_rows(net.stages[block.name], block, h, net.sparse)
    const = h.shape[0] == 1
    active = torch.arange(B, device=h.device)
    states: dict[str, ResumeState] = {}
    out: Optional[Tensor] = None  # [T, active, K]
    cur: Optional[Tensor] = None  # [T, active, K] output currents, when the decoder reads the potential
    pred = torch.zeros(B, dtype=torch.long, device=h.device)
    exit_step = torch.full((B,), T, dtype=torch.long, device=h.device)
    sample_steps = steps_run = 0
    t0 = 0
    while t0 < T:
        t1 = min(T, t0 + chunk)
        z, c = _run_chunk(net, h if const else h[t0:t1], t1 - t0, states)
        if out is None:
            out = z.new_zeros((T, *z.shape[1:]))
            cur = None if c is None else z.new_zeros((T, *z.shape[1:]))
        out[t0:t1] = z
        if cur is not None:
            cur[t0:t1] = c
        potential = None if cur is None else membrane_potential(cur, net.output_params.lam)
        sample_steps += len(active) * (t1 - t0)
        steps_run = t1
        done = torch.zeros(len(active), dtype=torch.bool, device=h.device)
        for t in range(t0, t1):
            p, final = final_decisions(net, out, t + 1, potential)
            new = final & ~done
            pred[active[new]] = p[new]
            exit_step[active[new]] = t + 1
            done |= final
        if done.all():
            break
        if done.any():  # compact: finished samples leave the batch
            keep = ~done
            active, out, h = active[keep], out[:, keep], h[:, keep]
            cur = None if cur is None else cur[:, keep]
            states = {n: s.select(keep) for n, s in states.items()}
        t0 = t1
    return EarlyExitResult(pred, exit_step, steps_run, sample_steps)


def _best_time(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


@torch.no_grad()
def compare(net: TTFSNet, x: Tensor, y: Optional[Tensor] = None, repeats: int = 3, chunk: int = 1) -> dict:
    """Early exit on the folded network against the full folded network (parallel and step execution).

    Returns times (minimum of ``repeats``), speed-ups, the fraction of predictions kept (equal to the full
    network's), accuracies when labels ``y`` are given, the mean exit step and the mean decision step (first
    output spike, docs/method.md section 4).
    """
    folded = net.fold().eval()
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    full = folded(x, mode="parallel")
    full_pred = full.logits.argmax(-1)
    result = early_exit(folded, x, chunk)
    t_par = _best_time(lambda: folded(x, mode="parallel"), repeats, sync)
    t_step = _best_time(lambda: folded(x, mode="step"), repeats, sync)
    t_exit = _best_time(lambda: early_exit(folded, x, chunk), repeats, sync)
    B, T = x.shape[0], net.T
    report = {
        "batch": B, "T": T, "decoder": type(net.decoder).__name__, "chunk": chunk,
        "time_full_parallel_s": t_par, "time_full_step_s": t_step, "time_early_exit_s": t_exit,
        "speedup_vs_full_parallel": t_par / t_exit, "speedup_vs_full_step": t_step / t_exit,
        "predictions_kept": (result.pred == full_pred).double().mean().item(),
        "mean_exit_step": result.exit_step.double().mean().item(),
        "mean_decision_step": decision_steps(full.out).double().mean().item() if net.decoder.spiking else float(T),
        "work_fraction": result.sample_steps / (B * T),
    }
    if y is not None:
        report["accuracy_full"] = (full_pred == y).double().mean().item()
        report["accuracy_early_exit"] = (result.pred == y).double().mean().item()
    return report
