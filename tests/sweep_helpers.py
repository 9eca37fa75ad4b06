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
