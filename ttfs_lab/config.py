"""The configuration schema: LightningCLI over ``TTFSClassifier`` and any ``TTFSDataModule``, plus ``run`` settings.

Typed ``__init__`` signatures are the schema (``ttfs-lab fit --print_config`` shows it). The data decides the
model's ``dataset``, ``input_shape``, ``num_classes`` and ``frames`` (linked, set once). The Trainer gets the
platform's logger and callbacks: W&B, the run record, best / last / on-exception checkpoints, throughput.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from ttfs_lab.data import TTFSDataModule
from ttfs_lab.module import TTFSClassifier
from ttfs_lab.record import RunRecord, check_run_id, flatten, new_run_id
from ttfs_lab.tracking import (EpochTimer, ExceptionCheckpoint, RunRecorder, RunSettings, WandbMedia, component_tags,
                               components, make_wandb_logger)

RUN_ID_ENV = "TTFS_LAB_RUN_ID"
LINKS = ("name", "dataset"), ("input_shape", "input_shape"), ("num_classes", "num_classes"), ("frames", "frames")


def shared_run_id(dataset: str) -> str:
    """A new run id on rank 0, passed to the DDP processes Lightning launches (they re-run the command)."""
    if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get(RUN_ID_ENV):
        return os.environ[RUN_ID_ENV]
    os.environ[RUN_ID_ENV] = run_id = new_run_id(dataset)
    return run_id


class TTFSLabCLI(LightningCLI):
    """LightningCLI without subcommands (``ttfs_lab.cli`` dispatches them); builds the run record's Trainer."""

    def __init__(self, args: Any, extra_callbacks: Optional[list] = None, **kwargs) -> None:
        self.extra_callbacks = list(extra_callbacks or [])
        self.run_id: Optional[str] = None
        self.record: Optional[RunRecord] = None
        super().__init__(TTFSClassifier, TTFSDataModule, subclass_mode_data=True, run=False, args=args,
                         save_config_callback=None, seed_everything_default=0,
                         parser_kwargs={"exit_on_error": False, "default_config_files": []},
                         trainer_defaults={"max_epochs": 10, "log_every_n_steps": 10}, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_class_arguments(RunSettings, "run")
        parser.add_argument("--ckpt_path", type=Optional[str], default=None,
                            help="checkpoint to resume fit from, or to validate / test")
        for source, target in LINKS:
            parser.link_arguments(f"data.{source}", f"model.{target}", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any):
        settings = self.config_init["run"]
        settings = settings if isinstance(settings, RunSettings) else RunSettings(**dict(settings))
        dataset = self.model.hparams.dataset
        self.run_id = check_run_id(settings.id) if settings.id else shared_run_id(dataset)
        self.record = RunRecord(Path(settings.dir) / self.run_id)
        comp = components(self.model.hparams)
        tags = [f"dataset:{dataset}", *component_tags(comp), *settings.tags]
        config = self.parser.dump(self.config, format="yaml", skip_none=False, skip_validation=True)
        logger = make_wandb_logger(settings, self.run_id, self.record.path, self._flat_config(), tags)
        callbacks = [
            ModelCheckpoint(dirpath=self.record.checkpoints, filename="best", monitor="val/acc", mode="max",
                            save_last=True, auto_insert_metric_name=False, enable_version_counter=False),
            ExceptionCheckpoint(dirpath=self.record.checkpoints),
            EpochTimer(),  # before RunRecorder: it logs what the record writes
            RunRecorder(self.record),
        ]
        if logger is not None:
            callbacks += [WandbMedia(), LearningRateMonitor(logging_interval="epoch")]
        self.config_text, self.components, self.tags, self.settings = config, comp, tags, settings
        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs,
                          "logger": logger if logger is not None else False}
        extra = [self._get(self.config_init, c) for c in self._parser(self.subcommand).callback_keys]
        return self._instantiate_trainer(trainer_config, extra + self.extra_callbacks + callbacks)

    def _flat_config(self) -> dict:
        """The config as W&B gets it: dotted keys (the run record's flattener), non-scalar values as text."""
        flat = flatten(self.config.clone().as_dict())
        return {k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v) for k, v in flat.items()}
