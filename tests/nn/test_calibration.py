"""Data-calibrated ETTFS-init (ttfs_lab/nn/calibration.py; docs/method.md section 2)."""

import pytest
import torch

from ttfs_lab.models import TTFSNet
from ttfs_lab.module import TTFSClassifier
from ttfs_lab.nn.calibration import _capture_input, _final_potential, _pairs, _unit_moments, calibrate_potentials_


def _net(**kwargs) -> TTFSNet:
    torch.manual_seed(0)
    return TTFSNet("c8-ap-c8-ap-fc32-fc10", (1, 16, 16), 10, T=6, **kwargs)


def _moments(net: TTFSNet, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per layer: mean and std per unit of the potential at the end of the window, in units of theta."""
    out = {}
    for _, _, name, neuron in _pairs(net):
        v, _ = _final_potential(_capture_input(net, neuron, x), neuron.T, neuron.params.lam)
        out[name] = _unit_moments(v / neuron.params.theta)
    return out


@pytest.mark.parametrize("norm, affine, leak, theta", [(False, False, 1.0, 1.0), (True, True, 1.0, 1.0),
                                                       (False, False, 0.8, 0.5), (True, True, 0.9, 2.0)])
def test_every_unit_gets_the_target_potential_mean_and_spread(norm, affine, leak, theta):
    """Layer by layer in order, so the downstream layers are calibrated on the upstream ones' new spikes: after
    the pass, every unit of every layer has exactly the target moments on the calibration batch."""
    net = _net(norm=norm, affine=affine, leak=leak, theta=theta)
    x = torch.rand(32, 1, 16, 16)
    before = _moments(net, x)
    assert any((std - 1).abs().max() > 0.2 for _, std in before.values())  # the target is not met by chance
    report = calibrate_potentials_(net, x, target_mean=-0.5, target_std=1.5)
    assert [r.layer for r in report] == list(before) and all(r.calibrated for r in report)
    for name, (mean, std) in _moments(net, x).items():
        live = std > 1e-3  # a unit silent on the whole batch has nothing to scale
        assert live.float().mean() > 0.5, name
        torch.testing.assert_close(mean[live], torch.full_like(mean[live], -0.5), atol=1e-3, rtol=0)
        torch.testing.assert_close(std[live], torch.full_like(std[live], 1.5), atol=1e-3, rtol=1e-3)


def test_a_normalized_layer_without_the_affine_is_left_as_initialized():
    """Without gamma and beta the normalization fixes the unit's weights: nothing calibrates them."""
    net = _net(norm=True, affine=False)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    report = calibrate_potentials_(net, torch.rand(16, 1, 16, 16))
    assert not any(r.calibrated for r in report)
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_calibration_removes_the_saturation_of_uncentered_weights():
    """Without normalization ETTFS's variance drives the first layer to fire at step 1 for most inputs (the
    '+ettfs_init' row of the ablation); balanced potentials leave far fewer units firing at the first step."""
    net = _net(norm=False, affine=False)
    x = torch.rand(64, 1, 16, 16)

    def first_step_fraction() -> float:
        with torch.no_grad():
            out = net(x, record=True)
        hist = out.stats["layer1_c8"]["hist"]
        return float(hist[0] / hist.sum())  # bin 0: first spike at step 1

    saturated = first_step_fraction()
    calibrate_potentials_(net, x)
    assert first_step_fraction() < saturated / 2


def test_bad_spread_is_refused():
    with pytest.raises(ValueError, match="calibrate_std"):
        calibrate_potentials_(_net(), torch.rand(4, 1, 16, 16), target_std=0.0)


def _classifier(**kwargs) -> TTFSClassifier:
    torch.manual_seed(0)
    kwargs.setdefault("ettfs_calibrate", "all")
    return TTFSClassifier(spec="c4-ap-fc16-fc10", T=4, schedule="constant", **kwargs)


def test_the_module_calibrates_once_on_the_first_training_batch_and_a_resumed_run_never_again():
    module = _classifier()
    batch = (torch.rand(16, 1, 28, 28), torch.arange(16) % 10)
    before = module.net.stages["layer1_c4_syn"].gamma.clone()
    module.on_train_batch_start(batch, 0)
    after = module.net.stages["layer1_c4_syn"].gamma.clone()
    assert module.calibration and not torch.equal(before, after)
    module.on_train_batch_start(batch, 1)
    assert torch.equal(module.net.stages["layer1_c4_syn"].gamma, after)
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    resumed = _classifier()
    resumed.on_load_checkpoint(checkpoint)
    assert resumed._calibration_pending is False
    resumed.on_load_checkpoint({})  # a checkpoint from before calibration existed: trained weights stay
    assert resumed._calibration_pending is False


def test_only_ettfs_init_is_calibrated():
    module = _classifier(init="kaiming")
    module.on_train_batch_start((torch.rand(8, 1, 28, 28), torch.arange(8)), 0)
    assert module.calibration == []


def test_by_default_only_the_layers_without_normalization_are_calibrated():
    """The normalization centers its layers' weights itself; the default calibrates the others only."""
    torch.manual_seed(0)
    module = TTFSClassifier(spec="c4-ap-fc16-fc10", T=4, schedule="constant")
    assert module.hparams.ettfs_calibrate == "unnormalized"
    state = {k: v.clone() for k, v in module.state_dict().items()}
    module.on_train_batch_start((torch.rand(8, 1, 28, 28), torch.arange(8)), 0)
    assert module.calibration and not any(r.calibrated for r in module.calibration)
    assert all(torch.equal(v, state[k]) for k, v in module.state_dict().items())
    plain = _classifier(norm=False, affine=False, ettfs_calibrate="unnormalized")
    weight = plain.net.stages["layer1_c4_syn"].weight.clone()
    plain.on_train_batch_start((torch.rand(8, 1, 28, 28), torch.arange(8)), 0)
    assert all(r.calibrated for r in plain.calibration)
    assert not torch.equal(plain.net.stages["layer1_c4_syn"].weight, weight)


def test_an_unknown_calibration_choice_is_refused():
    with pytest.raises(ValueError, match="model.ettfs_calibrate"):
        _classifier(ettfs_calibrate="sometimes")
