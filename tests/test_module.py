"""The LightningModule's loss, its optimizer and its non-finite checks (ttfs_lab/module.py)."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from ttfs_lab.errors import ConfigError, NonFiniteLossError
from ttfs_lab.models import NetOutput
from ttfs_lab.module import TTFSClassifier


def _module(**kwargs) -> TTFSClassifier:
    torch.manual_seed(0)
    return TTFSClassifier(spec="c4-ap-fc16-fc10", T=4, schedule="constant", **kwargs)


def _attach(module: TTFSClassifier, scaler: bool, clip: float = 0.0) -> None:
    """A stand-in trainer with (16-mixed) or without a grad scaler."""
    plugin = SimpleNamespace(scaler=object() if scaler else None)
    module._trainer = SimpleNamespace(precision_plugin=plugin, gradient_clip_val=clip, current_epoch=0, global_step=0)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fused_optimizer_takes_the_same_step_as_the_loop(name):
    """One fused kernel by default, the same update as torch's per-parameter loop (to float rounding)."""
    steps = []
    for fused in (True, False):
        module = _module(optimizer=name, lr=0.01, fused_optimizer=fused)
        opt = module.configure_optimizers()
        assert bool(opt.defaults["fused"]) is fused
        x = torch.rand(8, 1, 28, 28)
        loss = torch.nn.functional.cross_entropy(module(x), torch.arange(8) % 10)
        loss.backward()
        before = [p.detach().clone() for p in module.parameters()]
        opt.step()
        steps.append([p.detach() - b for p, b in zip(module.parameters(), before)])
    moved = sum(d.abs().sum() for d in steps[1])
    assert moved > 0
    for fused_step, loop_step in zip(*steps):
        torch.testing.assert_close(fused_step, loop_step, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_eps_decides_whether_a_tiny_gradient_moves_the_weights(name):
    """A 1e-10 gradient (what reaches a deep stack's first layer through silent layers): under torch's eps 1e-8
    Adam's first step is about lr / 100; under 1e-16 it is the full lr."""
    moves = {}
    for eps in (1e-8, 1e-16):
        module = _module(optimizer=name, lr=0.01, adam_eps=eps)
        opt = module.configure_optimizers()
        assert opt.defaults["eps"] == eps
        weight = next(p for p in module.parameters() if p.dim() == 4)  # the first convolution's kernel
        for p in module.parameters():
            p.grad = torch.full_like(p, 1e-10)
        before = weight.detach().clone()
        opt.step()
        moves[eps] = (weight.detach() - before).abs().max().item()
    assert moves[1e-8] == pytest.approx(0.01 / 101, rel=0.05)
    assert moves[1e-16] == pytest.approx(0.01, rel=0.05)


@pytest.mark.parametrize("eps", [0.0, -1e-8, float("nan")])
def test_a_non_positive_adam_eps_is_a_config_error(eps):
    with pytest.raises(ConfigError, match="model.adam_eps"):
        _module(adam_eps=eps)


def test_optimizer_is_not_fused_where_lightning_must_unscale_before_clipping():
    module = _module()
    _attach(module, scaler=True, clip=1.0)
    assert not module.configure_optimizers().defaults["fused"]
    _attach(module, scaler=True, clip=0.0)
    assert module.configure_optimizers().defaults["fused"]


@pytest.mark.parametrize("scaler", [False, True])
def test_non_finite_gradients_stop_the_run_unless_a_grad_scaler_owns_them(scaler):
    """16-mixed: the grad scaler skips overflowed steps by design, so inf gradients are not an error there."""
    module = _module()
    _attach(module, scaler=scaler)
    for p in module.parameters():
        p.grad = torch.zeros_like(p)
    next(module.parameters()).grad[0] = float("inf")
    if scaler:
        module.on_before_optimizer_step(None)
    else:
        with pytest.raises(NonFiniteLossError, match="gradient norm became inf"):
            module.on_before_optimizer_step(None)


def test_an_evaluation_epoch_holds_the_weights_and_training_releases_them(tmp_path):
    """Lightning's validation holds the normalized weights for the epoch (computed once) and releases them at
    its end: the training steps after it see the updated weights (the loss of the same batch changes)."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    import ttfs_lab.nn.synapse as synapse_module

    torch.manual_seed(0)
    data = TensorDataset(torch.rand(32, 1, 8, 8), torch.randint(0, 3, (32,)))
    module = TTFSClassifier(dataset="mnist", input_shape=(1, 8, 8), num_classes=3, spec="c4-ap-fc8-fc3", T=4,
                            schedule="constant")
    held_during_validation = []
    real = module.validation_step
    synapses = [s for s in module.net.stages.values() if isinstance(s, (synapse_module.NormConv2d,
                                                                        synapse_module.NormLinear))]

    def spy(batch, batch_idx):
        held_during_validation.append(all(s._holding for s in synapses))
        return real(batch, batch_idx)

    module.validation_step = spy
    trainer = L.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(module, DataLoader(data, batch_size=8), DataLoader(data, batch_size=8))
    assert held_during_validation == [True] * 4
    assert not any(s._holding or s._held_weight is not None for s in synapses)  # released after each epoch


def _single_spikes(T: int, steps: list[int]) -> torch.Tensor:
    """``[T, 1, K]`` output spikes: class c fires at 1-based step ``steps[c]`` (0: silent)."""
    out = torch.zeros(T, 1, len(steps))
    for c, step in enumerate(steps):
        if step:
            out[step - 1, 0, c] = 1.0
    return out


def test_early_loss_rewards_the_same_decision_made_earlier():
    """Spike-only linear TWD is shift-invariant in time (the final loss cannot tell a decision at step 2 from the
    same one at step 5); the per-step loss can: the earlier correct decision costs less."""
    y = torch.tensor([0])
    early, late = _single_spikes(8, [2, 4, 5]), _single_spikes(8, [5, 7, 8])
    losses = {}
    for lam in (0.0, 0.5, 1.0):
        module = TTFSClassifier(spec="c4-ap-fc16-fc3", num_classes=3, T=8, decoder="twd", twd_potential=0.0,
                                early_loss=lam)
        loss = {name: module._loss(NetOutput(module.net.decoder(out), out, None), y).item()
                for name, out in (("early", early), ("late", late))}
        losses[lam] = loss
    assert losses[0.0]["early"] == pytest.approx(losses[0.0]["late"], abs=1e-6)
    assert losses[0.5]["early"] < losses[0.5]["late"] - 0.1
    assert losses[1.0]["early"] < losses[1.0]["late"] - 0.1


def test_early_loss_is_the_step_weighted_mean_of_the_per_step_cross_entropies():
    module = _module(early_loss=1.0)
    x, y = torch.rand(5, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4])
    out = module.net(x)
    partial = module.net.decoder.partial_logits(out.out, out.potential)
    w = torch.tensor([4.0, 3.0, 2.0, 1.0]) / 4
    expected = sum(w[k] * F.cross_entropy(partial[k], y) for k in range(4)) / w.sum()
    assert module._loss(out, y).item() == pytest.approx(expected.item(), rel=1e-5)
    module.hparams.early_loss = 0.0
    assert module._loss(out, y).item() == pytest.approx(F.cross_entropy(out.logits, y).item(), rel=1e-6)


@pytest.mark.parametrize("lam", [-0.1, 1.5, float("nan")])
def test_an_early_loss_outside_zero_one_is_a_config_error(lam):
    with pytest.raises(ConfigError, match="model.early_loss"):
        _module(early_loss=lam)
