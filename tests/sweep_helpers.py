"""Callbacks that the sweep tests put into trial configs (``trainer.callbacks``); importable by worker processes
through ``PYTHONPATH=tests``."""

import os
import time

import lightning as L


class SleepOnce(L.Callback):
    """The first trial, over all processes, to reach a training batch creates ``marker`` (O_EXCL), writes its
    process id into it and sleeps ``seconds`` (long enough to be killed); every other trial runs normally."""

    def __init__(self, marker: str, seconds: float = 120.0) -> None:
        self.marker, self.seconds, self.checked = marker, seconds, False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.checked:
            return
        self.checked = True
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:  # short sleeps: a signal delivered to another thread is handled at once
            time.sleep(0.05)


def wandb_run_record(run_file):
    """The run record (group, job type, config, ...) of an offline ``run-<id>.wandb`` file.

    Same log framing as ``helpers.read_wandb_history``: a 7-byte file header, 32 KiB blocks, each record a 7-byte
    header (crc32, length, type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4) + payload."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, block, pos, partial = open(run_file, "rb").read(), 32768, 7, b""
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
        if kind in (1, 2):
            partial = chunk
        elif kind in (3, 4):
            partial += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(partial)
            if record.WhichOneof("record_type") == "run":
                return record.run
    return None
