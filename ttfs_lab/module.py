"""The LightningModule: one shared step for train / val / test, metrics per stage (docs/method.md section 6)."""

from __future__ import annotations


import math
from typing import Any, Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from ttfs_lab.errors import ConfigError, NonFiniteLossError
from ttfs_lab.energy import logged_figures
from ttfs_lab.functional.decoding import decision_steps, twd_weights
from ttfs_lab.functional.ops import E_AC_PJ, E_MAC_PJ
from ttfs_lab.metrics import DecisionLatency, SpikeStatistics, SynapticOperations
from ttfs_lab.models import TTFSNet
from ttfs_lab.netconfig import NetConfig
from ttfs_lab.nn.calibration import CALIBRATED_LAYERS, calibrate_potentials_
from ttfs_lab.registry import check_choice

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULES = ("cosine", "constant")
STAGES = ("train", "val", "test")


class TTFSClassifier(L.LightningModule):
    """A TTFS network trained as a classifier.

    ``**net`` are the network settings, the fields of ``NetConfig`` (``ttfs_lab/netconfig.py``: spec, T, encoder,
    decoder, init, norm, ..., mode, sparse), given flat as ``model.<field>``; LightningCLI's parser reads their
    types, defaults and help from ``NetConfig``. ``dataset``, ``input_shape``, ``num_classes`` and ``frames`` come
    from the DataModule (linked by the CLI); ``NetConfig.resolve`` applies them (the dataset's default spec; for
    event data ``frames`` replaces ``T`` and the encoder is ``frames``). ``hparams`` hold every setting, the spec
    the network was built from included; ``net.config`` is the configuration it runs.

    Args:
        optimizer: adam | adamw | sgd. lr, weight_decay, momentum (sgd): its settings.
        adam_eps: Adam's (and AdamW's) epsilon, added to the root of the second moment. Torch's 1e-8 swallows the
            gradients that reach a deep TTFS stack's first layers through silent layers (1e-10 at init in the
            15-layer Kaiming stack; docs/method.md section 2): 1e-16 lets them through.
        fused_optimizer: one fused kernel for the whole optimizer step (torch's ``fused=True``, CPU and CUDA: the
            same update, rounded differently; about 10x faster than the per-parameter loop for the MNIST network
            on CPU). Turned off by itself where Lightning refuses it (16-mixed with gradient clipping).
        schedule: cosine (per step, after ``warmup_epochs`` of linear warm-up) | constant.
        label_smoothing: of the cross-entropy.
        early_loss: lambda in [0, 1], the weight of the per-step loss: the loss is (1 - lambda) CE(logits) +
            lambda sum_k w_k CE(logits had inference stopped after step k) / sum_k w_k, with TWD's linear weights
            w_k = (T - k + 1) / T, so that a sample decided right earlier costs less (docs/method.md section 4,
            "Encouraging earlier firing"). 0 (default): the final logits only.
        compile: ``torch.compile`` the network's forward.
        ettfs_calibrate: with ``init='ettfs'``, calibrate the TTFS units' membrane potentials on the first training
            batch before the first update (``ttfs_lab/nn/calibration.py``; docs/method.md section 2) to mean
            ``calibrate_mean`` and spread ``calibrate_std`` (in units of theta) at the end of the window:
            ``unnormalized`` (default) the layers without weight normalization, ``all`` every layer with a free
            gain and shift, ``none`` never.
        energy_ac_pj, energy_mac_pj: energy of one accumulate (a spike's synaptic event) and of one
            multiply-accumulate (an analog input), in pJ, for the energy per inference reported on val / test
            (docs/method.md section 10; defaults: 45 nm, 32-bit, Horowitz ISSCC 2014).
    """

    def __init__(self, dataset: str = "mnist5k", input_shape: tuple[int, int, int] = (1, 28, 28),
                 num_classes: int = 10, frames: Optional[int] = None, optimizer: str = "adam", lr: float = 1e-3,
                 adam_eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.9, schedule: str = "cosine",
                 warmup_epochs: float = 0.0, label_smoothing: float = 0.0, early_loss: float = 0.0,
                 compile: bool = False,
                 fused_optimizer: bool = True, ettfs_calibrate: str = "unnormalized", calibrate_mean: float = 0.5,
                 calibrate_std: float = 1.0, energy_ac_pj: float = E_AC_PJ, energy_mac_pj: float = E_MAC_PJ,
                 **net: Any) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_choice("model.optimizer", optimizer, list(OPTIMIZERS))
        check_choice("model.schedule", schedule, SCHEDULES)
        if lr <= 0:
            raise ConfigError(f"model.lr={lr} is not valid; use a positive learning rate")
        if not adam_eps > 0:
            raise ConfigError(f"model.adam_eps={adam_eps} is not valid; use a positive epsilon (torch's 1e-8, or "
                              "1e-16 for deep stacks)")
        for key, value in (("energy_ac_pj", energy_ac_pj), ("energy_mac_pj", energy_mac_pj)):
            if value < 0:
                raise ConfigError(f"model.{key}={value} is not valid; use an energy in pJ >= 0 (e.g. the default "
                                  f"{E_AC_PJ if key == 'energy_ac_pj' else E_MAC_PJ})")
        if not 0.0 <= early_loss <= 1.0:
            raise ConfigError(f"model.early_loss={early_loss} is not valid; use a weight in [0, 1] (0: the final "
                              "logits only)")
        if calibrate_std <= 0:
            raise ConfigError(f"model.calibrate_std={calibrate_std} is not valid; use a positive potential spread")
        check_choice("model.ettfs_calibrate", ettfs_calibrate, ("none", *CALIBRATED_LAYERS))
        config = NetConfig(**net)  # (the CLI's parser follows **net to NetConfig's fields)
        self.net = TTFSNet(config.resolve(dataset, frames), tuple(input_shape), num_classes)
        self._complete_hparams(config)
        self._calibration_pending = ettfs_calibrate != "none" and config.init == "ettfs"
        self.calibration: list = []  # what calibration measured, per TTFS layer (empty: not calibrated here)
        self.T = self.net.T
        self._forward = torch.compile(self.net) if compile else self.net
        layers = self.net.recorded_layers()
        self.acc = nn.ModuleDict({f"{s}_": MulticlassAccuracy(num_classes, average="micro") for s in STAGES})
        self.spike_stats = nn.ModuleDict({f"{s}_": SpikeStatistics(layers, self.T) for s in STAGES[1:]})
        self.latency = nn.ModuleDict({f"{s}_": DecisionLatency(self.T) for s in STAGES[1:]})
        self.synops = nn.ModuleDict({f"{s}_": SynapticOperations(self.net.synapses, energy_ac_pj, energy_mac_pj)
                                     for s in STAGES[1:]})
        self.val_acc_best = MaxMetric()
        self.results: dict[str, dict] = {}  # last computed spike / latency figures per stage
        # (ModuleDict keys get a "_" suffix: "train" would shadow nn.Module.train)

    def _complete_hparams(self, config: NetConfig) -> None:
        """Every network setting in ``hparams`` (the CLI gives them all; a direct call only those it passes) and
        the spec the network was built from in place of None (the dataset's default)."""
        missing = {k: v for k, v in config.settings().items() if k not in self.hparams}
        if self.hparams.get("spec") is None:
            missing["spec"] = self.net.config.spec
        if missing:
            self.save_hyperparameters({**self.hparams, **missing})

    def forward(self, x):
        return self.net(x).logits

    # --- the shared step ---------------------------------------------------------------------------------
    def _step(self, batch, stage: str):
        x, y = batch
        record = stage != "train"
        out = self._forward(x, record=record) if record else self._forward(x)
        loss = self._loss(out, y)
        if stage == "train" and not torch.isfinite(loss):
            self._non_finite("loss", loss)
        self.acc[f"{stage}_"].update(out.logits.detach(), y)
        if stage == "train":
            self.log("train/acc", self.acc["train_"], on_step=False, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=stage != "train", sync_dist=True,
                 batch_size=len(y))
        if record:
            self.spike_stats[f"{stage}_"].update(out.stats)
            partial = out.partial_logits(self.net.decoder)
            self.latency[f"{stage}_"].update(partial, out.out, y, self.net.decoder.spiking)
            self.synops[f"{stage}_"].update(out.ops, decision_steps(out.out, self.net.decoder.spiking))
        return loss

    def _loss(self, out, y):
        """Cross-entropy of the final logits, mixed with the step-weighted per-step loss (``early_loss``)."""
        smoothing, lam = self.hparams.label_smoothing, self.hparams.early_loss
        final = F.cross_entropy(out.logits, y, label_smoothing=smoothing)
        if not lam:
            return final
        partial = self.net.decoder.partial_logits(out.out, out.potential)  # [T, B, K], with gradients
        per_step = F.cross_entropy(partial.flatten(0, 1), y.repeat(self.T), label_smoothing=smoothing,
                                   reduction="none").view(self.T, -1).mean(1)
        w = twd_weights(self.T).to(per_step)
        return (1.0 - lam) * final + lam * (w * per_step).sum() / w.sum()

    def _non_finite(self, what: str, value) -> None:
        raise NonFiniteLossError(
            f"{what} became {float(value)} at epoch {self.current_epoch} step {self.global_step}: lower model.lr "
            f"(now {self.hparams.lr}) or set trainer.gradient_clip_val; the run record and last checkpoint are kept")

    def on_before_optimizer_step(self, optimizer) -> None:
        """NaN weights silence a TTFS net (NaN never crosses the threshold) instead of making the loss NaN, so
        the gradients are checked too."""
        if self._gradients_are_scaled():
            return  # 16-mixed: the grad scaler skips the steps whose gradients overflowed, by design
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if grads:
            norm = torch.nn.utils.get_total_norm(grads)
            if not torch.isfinite(norm):
                self._non_finite("gradient norm", norm)

    def _gradients_are_scaled(self) -> bool:
        """Whether a grad scaler (16-mixed) owns this step's gradients: inf / NaN in them is its business."""
        trainer = self._trainer
        return trainer is not None and getattr(trainer.precision_plugin, "scaler", None) is not None

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    # --- data-calibrated ETTFS-init (docs/method.md section 2) -------------------------------------------
    def on_train_batch_start(self, batch, batch_idx):
        if not self._calibration_pending:
            return
        self._calibration_pending = False
        h = self.hparams
        self.calibration = calibrate_potentials_(self.net, batch[0], h.calibrate_mean, h.calibrate_std,
                                                 h.ettfs_calibrate)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for p in self.net.parameters():  # every rank starts from rank 0's calibration
                torch.distributed.broadcast(p.data, src=0)

    def on_save_checkpoint(self, checkpoint) -> None:
        checkpoint["ettfs_calibration_pending"] = self._calibration_pending

    def on_load_checkpoint(self, checkpoint) -> None:
        # a checkpoint without the key predates calibration: its weights were trained, never recalibrate them
        self._calibration_pending = bool(checkpoint.get("ettfs_calibration_pending", False))

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    # --- epoch ends: compute, log, reset -----------------------------------------------------------------
    # the normalized layers' weights are computed once per evaluation epoch (TTFSNet.hold_weights)
    def on_validation_epoch_start(self):
        self.net.hold_weights()

    def on_test_epoch_start(self):
        self.net.hold_weights()

    def on_validation_epoch_end(self):
        self.net.hold_weights(False)
        acc = self._log_eval("val")
        if not self.trainer.sanity_checking:
            self.val_acc_best.update(acc)
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def on_test_epoch_end(self):
        self.net.hold_weights(False)
        self._log_eval("test")

    def _log_eval(self, stage: str):
        acc = self.acc[f"{stage}_"].compute()
        spikes, latency = self.spike_stats[f"{stage}_"].compute(), self.latency[f"{stage}_"].compute()
        ops = self.synops[f"{stage}_"].compute()
        self.results[stage] = {**spikes, **latency, "acc": acc.item(), "ops": ops}
        for key, value in logged_figures(stage, ops).items():  # operations and energy (section 10)
            self.log(key, value)
        self.log(f"{stage}/acc", acc, prog_bar=True)
        self.log(f"{stage}/decision_step", latency["decision_step"], prog_bar=True)
        self.log(f"{stage}/spikes_per_neuron", spikes["spikes_per_neuron"])
        for layer in spikes["spikes"]:
            self.log(f"{stage}/spikes/{layer}", spikes["spikes"][layer])
            self.log(f"{stage}/silent/{layer}", spikes["silent"][layer])
            self.log(f"{stage}/violations/{layer}", spikes["violations"][layer])
        for metric in (self.acc[f"{stage}_"], self.spike_stats[f"{stage}_"], self.latency[f"{stage}_"],
                       self.synops[f"{stage}_"]):
            metric.reset()
        return acc

    # --- optimization ------------------------------------------------------------------------------------
    def _fuse_optimizer(self) -> bool | None:
        """``fused_optimizer``, unless the parameters are off CPU / CUDA or not floating point, or the grad scaler
        of 16-mixed must unscale before clipping (Lightning refuses fused optimizers there). None: torch decides."""
        trainer = self._trainer
        clipped_scaled = self._gradients_are_scaled() and bool(trainer.gradient_clip_val)
        supported = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in self.parameters())
        return True if self.hparams.fused_optimizer and supported and not clipped_scaled else None

    def configure_optimizers(self):
        h = self.hparams
        kwargs = {"lr": h.lr, "weight_decay": h.weight_decay}
        if h.optimizer == "sgd":
            kwargs["momentum"] = h.momentum
        else:
            kwargs["eps"] = h.adam_eps
        opt = OPTIMIZERS[h.optimizer](self.parameters(), fused=self._fuse_optimizer(), **kwargs)
        if h.schedule == "constant" and h.warmup_epochs == 0:
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = total / max(1, self.trainer.max_epochs or 1)
        warmup = int(h.warmup_epochs * per_epoch)
        cosine = h.schedule == "cosine"

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) if cosine else 1.0

        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
