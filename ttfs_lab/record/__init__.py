"""The run record ``runs/<run-id>/``: the one owner of its layout, writes, reads, statuses and summary keys.

    meta.json      run_id, name, dataset, group, tags, components, T, stage (fit | validate | test), status,
                   started / ended, error; resumed_from (fit) or checkpoint (validate / test)
    config.yaml    the resolved config (re-runnable with ``ttfs-lab fit --config``)
    metrics.jsonl  one JSON object per training epoch (epoch, step, train/*, val/*, time/*, ...)
    summary.json   the final figures (:func:`fit_summary`, :func:`evaluation_summary`), written before ``finished``
    checkpoints/   best.ckpt (by val/acc), last.ckpt, on_exception.ckpt
    wandb/         the W&B run files

Everyone else calls this package (``from ttfs_lab.record import ...``), never opens these files itself:

- ``files``: the file names, run ids, atomic writes (temp file + rename) and tolerant reads (a metrics.jsonl line
  cut by a crash is skipped and named), the config flattener;
- ``writer``: :class:`RunRecord`, what ``train``, the Lightning callbacks and the sweep's clean-up write; the status
  changes only through ``start`` / ``finish`` / ``stop`` / ``fail_if_running``, on rank zero only;
- ``reader``: :func:`load_run` -> :class:`RunSnapshot` for the dashboard, never raising on bad content;
- ``summary``: the summary.json keys, the same shapes after ``fit``, ``validate`` and ``test``, and the one
  definition of spikes per neuron (:func:`spikes_per_neuron`).

Dependency-light (json, yaml, pathlib): the dashboard, the ablation runner and the sweep use it without torch.
"""

from ttfs_lab.record.files import (CHECKPOINTS, CONFIG, META, METRICS, RUN_FILES, RUN_STATUSES, STOP_STATUSES, SUMMARY,
                                   check_run_id, flatten, is_number, new_run_id, now, read_json, read_metrics,
                                   write_json, write_jsonl, write_text)
from ttfs_lab.record.reader import RunSnapshot, load_run, looks_like_run
from ttfs_lab.record.summary import best_epoch, evaluation_summary, fit_summary, spikes_per_neuron, stage_summary
from ttfs_lab.record.writer import RunRecord

__all__ = [
    "META", "CONFIG", "METRICS", "SUMMARY", "CHECKPOINTS", "RUN_FILES", "RUN_STATUSES", "STOP_STATUSES",
    "now", "new_run_id", "check_run_id", "write_text", "write_json", "write_jsonl", "read_json", "read_metrics", "is_number",
    "flatten", "RunRecord", "RunSnapshot", "load_run", "looks_like_run",
    "spikes_per_neuron", "stage_summary", "fit_summary", "evaluation_summary", "best_epoch",
]
