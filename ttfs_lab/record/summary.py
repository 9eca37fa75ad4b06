"""The summary.json keys of the run record (see ``ttfs_lab.record``): one shape whichever command wrote them."""

from __future__ import annotations

from typing import Any, Optional

from ttfs_lab.energy import summary_figures
from ttfs_lab.record.files import is_number


def spikes_per_neuron(summary: dict, stage: str = "test") -> Optional[float]:
    """Spikes per neuron of a stage: all spikes over all neurons of the recorded layers, i.e. layers weighted by
    their units (``SpikeStatistics``, docs/method.md section 6). The one definition behind every "spikes / neuron"
    shown (printed line, ablation table, dashboard). Read from ``<stage>/spikes_per_neuron_mean``; records of
    ``validate`` / ``test`` written before it existed hold the same scalar under ``<stage>/spikes_per_neuron``.
    A per-layer dict alone cannot be weighted: None."""
    for key in (f"{stage}/spikes_per_neuron_mean", f"{stage}/spikes_per_neuron"):
        if is_number(summary.get(key)):
            return float(summary[key])
    return None


def stage_summary(stage: str, results: Optional[dict], loss: Optional[float] = None) -> dict[str, Any]:
    """The summary.json keys of one evaluated stage (``val`` | ``test``) from the module's ``results[stage]``:
    the same keys and shapes after ``fit``, ``validate`` and ``test``. Per layer (dicts): spikes per neuron,
    silent fraction, violations, spike-time histogram; scalars: accuracy, loss, decision step, spikes per neuron
    over all layers; operations and energy per inference (``ttfs_lab.energy``)."""
    if not results:
        return {}
    out = {
        f"{stage}/acc": results["acc"], f"{stage}/loss": loss, f"{stage}/decision_step": results["decision_step"],
        f"{stage}/acc_vs_step": results["acc_vs_step"],
        f"{stage}/spikes_per_neuron_mean": results["spikes_per_neuron"], f"{stage}/spikes_per_neuron": results["spikes"],
        f"{stage}/silent_fraction": results["silent"], f"{stage}/violations": results["violations"],
        f"{stage}/spike_time_hist": results["hist"],
    }
    out.update(summary_figures(stage, results.get("ops")))
    return out


def fit_summary(results: dict, scalars: dict, *, epochs: int, best_checkpoint: str, best_epoch: dict,
                fit_s: float, wall_s: float) -> dict[str, Any]:
    """summary.json of ``fit``: test and val figures, ``val/acc_best``, ``train/acc``, throughput, epochs, times,
    the best checkpoint and ``best_epoch`` (the metrics.jsonl row of that checkpoint's epoch: what a sweep needs)."""
    summary: dict[str, Any] = {}
    for stage in ("test", "val"):
        summary.update(stage_summary(stage, results.get(stage), scalars.get(f"{stage}/loss")))
    summary.update({k: scalars.get(k) for k in ("val/acc_best", "train/acc", "throughput/samples_per_s")})
    summary.update(epochs=epochs, fit_s=fit_s, wall_s=wall_s, best_checkpoint=best_checkpoint, best_epoch=best_epoch)
    return summary


def evaluation_summary(stage: str, results: Optional[dict], loss: Optional[float], checkpoint: str,
                       wall_s: float) -> dict[str, Any]:
    """summary.json of ``validate`` / ``test`` (``stage``: val | test): the stage's figures, as after ``fit``."""
    return {**stage_summary(stage, results, loss), "checkpoint": checkpoint, "wall_s": wall_s}


def best_epoch(rows: list[dict]) -> dict:
    """The row of the first epoch with the highest ``val/acc`` (``max`` keeps the first of equals, as
    ModelCheckpoint does: the epoch of the checkpoint ``fit`` tests); {} without validation."""
    rows = [r for r in rows if is_number(r.get("val/acc"))]
    return dict(max(rows, key=lambda r: r["val/acc"])) if rows else {}
