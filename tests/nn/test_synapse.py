"""The normalized layers: statistics, affine, switches and fold (the standardization's kernels:
tests/functional/test_standardize.py)."""

import pytest
import torch

from ttfs_lab.functional.standardize import standardize_tensor_ops
from ttfs_lab.init import ettfs_std
from ttfs_lab.nn.synapse import NormConv2d, NormLinear


def test_normalized_weight_has_the_ettfs_statistics_per_output_unit():
    """At ETTFS's default gain 1/2 (docs/method.md section 2), whatever the raw weights drift to."""
    layer = NormConv2d(16, 8, T=8, kernel_size=3)
    with torch.no_grad():
        layer.weight.mul_(5).add_(3)  # drift the raw weights
    w = layer.effective_weight().flatten(1)
    torch.testing.assert_close(w.mean(1), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(w.std(1, unbiased=False), torch.full((8,), ettfs_std(144, 8, 0.5)), rtol=1e-3, atol=0)


def test_affine_scales_and_shifts():
    layer = NormLinear(10, 4, T=4)
    x = torch.randn(3, 10)
    base = layer(x)
    with torch.no_grad():
        layer.gamma.fill_(2.0)
        layer.bias.fill_(0.5)
    torch.testing.assert_close(layer(x), 2 * base + 0.5)


def test_switches_change_parameters():
    assert NormLinear(4, 2, T=4, norm=True, affine=False).bias is None
    plain = NormLinear(4, 2, T=4, norm=False, affine=False)
    assert plain.bias is not None and plain.gamma is None
    x = torch.randn(3, 4)
    torch.testing.assert_close(plain(x), x @ plain.weight.T + plain.bias)


@pytest.mark.parametrize("norm,affine", [(True, True), (True, False), (False, True), (False, False)])
def test_fold_gives_identical_outputs(norm, affine):
    for layer, x in ((NormConv2d(3, 5, T=8, norm=norm, affine=affine), torch.randn(2, 3, 6, 6)),
                     (NormLinear(7, 3, T=8, norm=norm, affine=affine), torch.randn(4, 7))):
        if layer.gamma is not None:
            with torch.no_grad():
                layer.gamma.uniform_(0.5, 2)
                layer.bias.uniform_(-1, 1)
        folded = layer.fold()
        assert type(folded) in (torch.nn.Conv2d, torch.nn.Linear)
        assert torch.equal(folded(x), layer(x))


def test_effective_weight_is_the_standardization_times_gamma():
    layer = NormLinear(6, 3, T=4)
    with torch.no_grad():
        layer.gamma.uniform_(0.5, 2)
    expected = standardize_tensor_ops(layer.weight, layer.gamma, layer.target_std, layer.eps)
    torch.testing.assert_close(layer.effective_weight(), expected, rtol=1e-5, atol=1e-6)
    layer.norm = False
    assert torch.equal(layer.effective_weight(), layer.weight * layer.gamma.view(-1, 1))


def test_a_held_weight_is_computed_once_without_gradients_and_forgotten_after(monkeypatch):
    """Inside ``TTFSNet.held_weights`` every no-gradient forward reuses one standardized weight per layer; a
    forward with gradients (training) never does; leaving the block makes the next forward recompute it."""
    import ttfs_lab.nn.synapse as synapse_module
    from ttfs_lab.models import TTFSNet

    calls = []
    real = synapse_module.standardized_weight
    monkeypatch.setattr(synapse_module, "standardized_weight", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    net = TTFSNet("c4-ap-fc8-fc3", (1, 8, 8), 3, T=4, init_gain=4.0, decoder="membrane")
    x = torch.rand(2, 1, 8, 8)
    layers = sum(isinstance(s, (NormConv2d, NormLinear)) for s in net.stages.values())
    with torch.no_grad():
        expected = net(x).logits
    calls.clear()
    with net.held_weights():
        with torch.no_grad():
            first, second = net(x).logits, net(x).logits
        assert len(calls) == layers and torch.equal(first, expected) and torch.equal(second, expected)
        net(x).logits.sum().backward()  # training inside the block: fresh weights with their gradients
        assert len(calls) == 2 * layers and net.stages["layer1_c4_syn"].weight.grad is not None
    conv = net.stages["layer1_c4_syn"]
    with torch.no_grad():
        before = conv.effective_weight()
        conv.weight.add_(torch.randn_like(conv.weight))  # standardization is scale-invariant: change the shape
        assert not torch.equal(conv.effective_weight(), before)
        assert net(x).logits.abs().sum() > 0  # the compared outputs were not all silent
    assert torch.count_nonzero(expected) > 0
