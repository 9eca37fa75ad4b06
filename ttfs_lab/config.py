"""The configuration schema: LightningCLI over ``TTFSClassifier`` and any ``TTFSDataModule``, plus ``run`` settings.

Typed ``__init__`` signatures are the schema (``ttfs-lab fit --print_config`` shows it). The data decides the
model's ``dataset``, ``input_shape``, ``num_classes`` and ``frames`` (linked, set once). The Trainer gets the
platform's logger and callbacks: W&B, the run record, best / last / on-exception checkpoints, throughput.

The data is prepared (``prepare_data``: downloads, frame caches, file checks) before the Trainer is built, so that a
data error is the only line on stderr, not one after Lightning's start-up lines; see ``TTFSLabCLI.prepare_early``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from ttfs_lab.data import TTFSDataModule
from ttfs_lab.errors import TTFSLabError
from ttfs_lab.module import TTFSClassifier
from ttfs_lab.record import RunRecord, check_run_id, flatten, new_run_id
from ttfs_lab.tracking import (EpochTimer, ExceptionCheckpoint, RunRecorder, RunSettings, WandbMedia, component_tags,
                               components, make_wandb_logger)

RUN_ID_ENV = "TTFS_LAB_RUN_ID"
LINKS = ("name", "dataset"), ("input_shape", "input_shape"), ("num_classes", "num_classes"), ("frames", "frames")
# what the launchers Lightning works with (its own DDP children, torchrun, a manual multi-node setup, SLURM, LSF,
# MPI) set in a process they start as one of several: its number of processes, and its ranks
SIZE_VARIABLES = ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "SLURM_NTASKS", "JSM_NAMESPACE_SIZE", "OMPI_COMM_WORLD_SIZE",
                  "PMI_SIZE")
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID",
                  "JSM_NAMESPACE_RANK", "JSM_NAMESPACE_LOCAL_RANK", "OMPI_COMM_WORLD_RANK",
                  "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_RANK", "MPI_LOCALRANKID")
PREPARE_DATA_FLAG = "ttfs_lab_raised_by_prepare_data"  # set on an unexpected exception of the early prepare_data


def shared_run_id(dataset: str) -> str:
    """A new run id on rank 0, passed to the DDP processes Lightning launches (they re-run the command)."""
    if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get(RUN_ID_ENV):
        return os.environ[RUN_ID_ENV]
    os.environ[RUN_ID_ENV] = run_id = new_run_id(dataset)
    return run_id


def launched_alone() -> bool:
    """True when no launcher started this process as one of several: every size variable set is 1, every rank
    variable set is 0 (a plain ``ttfs-lab fit``, also with ``--trainer.strategy ddp``: Lightning starts the other
    processes of one machine later, inside ``Trainer.fit``). Here Lightning itself would call ``prepare_data`` (local
    rank 0 of node 0), and no other process waits for this one."""
    return (all(os.environ.get(name, "1").strip() == "1" for name in SIZE_VARIABLES)
            and all(os.environ.get(name, "0").strip() == "0" for name in RANK_VARIABLES))


class TTFSLabCLI(LightningCLI):
    """LightningCLI without subcommands (``ttfs_lab.cli`` dispatches them); builds the run record's Trainer.

    ``preflight(cli) -> bool``, if given, runs once the run record is known, before the data is prepared and the
    Trainer is built: it may raise a user error (e.g. a wrong ``run.id``) and says whether the run reads the data
    (False: e.g. a finished fit that only returns its summary). Without it, the data is prepared."""

    def __init__(self, args: Any, extra_callbacks: Optional[list] = None,
                 preflight: Optional[Callable[["TTFSLabCLI"], bool]] = None, **kwargs) -> None:
        self.extra_callbacks = list(extra_callbacks or [])
        self.preflight = preflight
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
        self.record, self.settings = RunRecord(Path(settings.dir) / self.run_id), settings
        if self.preflight is None or self.preflight(self):
            self.prepare_early()
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
        self.config_text, self.components, self.tags = config, comp, tags
        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs,
                          "logger": logger if logger is not None else False}
        extra = [self._get(self.config_init, c) for c in self._parser(self.subcommand).callback_keys]
        return self._instantiate_trainer(trainer_config, extra + self.extra_callbacks + callbacks)

    def prepare_early(self) -> None:
        """The DataModule's ``prepare_data`` before the Trainer (and W&B) print anything, where it is safe.

        Only in a process launched alone (``launched_alone``): that is where Lightning calls it too, and there it
        runs before any other process of the run exists, so none of them can time out waiting for a long download
        or cache build (Lightning waits for ``prepare_data`` behind a barrier without a time limit; a process group
        being set up waits 30 minutes at most). Processes of a torchrun / SLURM / multi-node launch leave it to
        Lightning, as before. Lightning calls it again in ``fit`` / ``test``: the event DataModules then find their
        frame cache, the image DataModules remember that they checked their files. An unexpected exception (a bug,
        not a ``TTFSLabError``) is marked, so that ``make_cli`` does not report it as a bad setting."""
        if not launched_alone():
            return
        try:
            self.datamodule.prepare_data()
        except TTFSLabError:
            raise
        except Exception as exc:
            setattr(exc, PREPARE_DATA_FLAG, True)
            raise

    def _flat_config(self) -> dict:
        """The config as W&B gets it: dotted keys (the run record's flattener), non-scalar values as text."""
        flat = flatten(self.config.clone().as_dict())
        return {k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v) for k, v in flat.items()}
