"""Callbacks that tests put into a run's config (``trainer.callbacks``) to simulate failures."""

import lightning as L
import torch


class CrashAtEpoch(L.Callback):
    """Raises at the start of ``epoch``, after the previous epoch and its checkpoint are complete."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


class PoisonWeightsAtEpoch(L.Callback):
    """Sets one weight to NaN at the start of ``epoch`` so that the loss becomes NaN."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                next(pl_module.net.parameters()).view(-1)[0] = float("nan")


def read_wandb_records(run_file) -> list:
    """The protobuf records of an offline ``run-<id>.wandb`` file (W&B's LevelDB-style log).

    wandb 0.31 ships no Python reader for its offline files; this is the log layout: a 7-byte file header,
    32 KiB blocks, each record a 7-byte header (crc32, length, type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4) + payload.
    """
    import struct

    from wandb.proto import wandb_internal_pb2

    data, block, pos = open(run_file, "rb").read(), 32768, 7
    records, partial = [], b""
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += room
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        partial = chunk if kind in (1, 2) else partial + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(partial)
            records.append(record)
    return records


def read_wandb_history(run_file) -> list[dict]:
    """History rows (logged metrics) of an offline ``run-<id>.wandb`` file."""
    import json

    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in read_wandb_records(run_file) if r.WhichOneof("record_type") == "history"]


def wandb_run_record(run_file):
    """The run record (group, job type, config, ...) of an offline ``run-<id>.wandb`` file, or None."""
    return next((r.run for r in read_wandb_records(run_file) if r.WhichOneof("record_type") == "run"), None)
