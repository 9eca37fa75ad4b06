"""Spec parsing, the two executions of a whole network, fold, and the registry smoke test."""

import itertools

import pytest
import torch

from ttfs_lab.models import DEFAULT_SPECS, TTFSNet, build_network, parse_spec
from ttfs_lab.nn.decoders import DECODERS


def run(net, x, mode):
    net.zero_grad()
    out = net(x, record=True, mode=mode)
    (out.logits * torch.linspace(-1, 1, out.logits.shape[1], dtype=x.dtype)).sum().backward()
    return out, {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("spec,shape,encoder,leak", [
    ("c6-ap-c8k5p2-ap-fc24-fc5", (2, 16, 16), "direct", 1.0),
    ("c6s2-mp-fc5", (2, 12, 12), "latency", 0.8),
    ("fc40-fc30-fc5", (1, 8, 8), "direct", 0.9),
    ("c4-ap-fc5", (2, 8, 8), "frames", 1.0),
])
@pytest.mark.parametrize("decoder", ["twd", "membrane", "twd_membrane"])
def test_step_and_parallel_networks_agree(spec, shape, encoder, leak, decoder):
    torch.manual_seed(1)
    T = 5
    net = TTFSNet(spec, shape, 5, T=T, encoder=encoder, leak=leak, decoder=decoder, init_gain=2.0).double()
    x = torch.rand(3, T, *shape) if encoder == "frames" else torch.rand(3, *shape)
    x = (x > 0.6).double() if encoder == "frames" else x.double()
    (o_par, g_par), (o_step, g_step) = run(net, x, "parallel"), run(net, x, "step")
    if decoder != "twd":  # the output is the last layer's currents (real numbers), summed in another order
        torch.testing.assert_close(o_par.out, o_step.out, rtol=1e-12, atol=1e-12)
    else:
        assert torch.equal(o_par.out, o_step.out)
    assert o_par.stats.keys() == o_step.stats.keys()
    for name in o_par.stats:
        for key in o_par.stats[name]:
            assert torch.equal(o_par.stats[name][key], o_step.stats[name][key]), (name, key)
    assert o_par.ops.keys() == o_step.ops.keys() == net.synapses.keys()  # operation counts (method section 10)
    for name in o_par.ops:
        assert torch.equal(o_par.ops[name], o_step.ops[name]), name
    assert g_par.keys() == g_step.keys() and g_par
    for name in g_par:
        torch.testing.assert_close(g_par[name], g_step[name], rtol=1e-5, atol=1e-5 * g_step[name].abs().max().item() + 1e-12)


def test_no_ttfs_layer_spikes_twice_under_strong_input():
    torch.manual_seed(0)
    net = TTFSNet("c8-ap-c8-ap-fc16-fc4", (1, 12, 12), 4, T=8, init_gain=20.0)
    stats = net(torch.rand(4, 1, 12, 12) * 10, record=True).stats
    assert sum(s["spikes"].item() for s in stats.values()) > 0
    assert all(s["violations"].item() == 0 for s in stats.values())


def test_max_pool_violations_are_reported_by_the_network():
    torch.manual_seed(0)
    net = TTFSNet("c16-mp4-fc4", (1, 8, 8), 4, T=8, init_gain=4.0)
    stats = net(torch.rand(8, 1, 8, 8), record=True).stats
    assert stats["layer2_mp4"]["violations"].item() > 0
    assert stats["layer1_c16"]["violations"].item() == 0


def test_fold_reproduces_the_networks_spikes_exactly():
    torch.manual_seed(0)
    net = TTFSNet("c8-ap-c8-ap-fc16-fc4", (1, 12, 12), 4, T=6, init_gain=3.0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.rand(5, 1, 12, 12)
    folded = net.fold()
    assert not any("Norm" in type(m).__name__ for m in folded.modules())
    assert torch.equal(folded(x).out, net(x).out)
    assert net(x).out.sum() > 0


@pytest.mark.parametrize("spec,message", [
    ("c32-xx-fc10", "token 'xx'"),
    ("c32-ap", "must end with the output layer"),
    ("fc10-c32-fc10", "after a fully connected layer"),
    ("c32-ap-fc11", "ends in fc11 but the dataset has 10 classes"),
    ("c8-ap-ap-ap-ap-ap-fc10", "shrinks the input"),
    ("", "must end with the output layer"),
])
def test_invalid_spec_gives_one_line_error(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        TTFSNet(spec, (1, 28, 28), 10)
    assert "\n" not in str(err.value)


def test_wrong_input_shape_is_reported():
    net = TTFSNet("fc10", (1, 4, 4), 10, T=4)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\].*got shape \(4, 16\)"):
        net(torch.zeros(4, 16))


def test_spec_tokens_parse_options():
    conv, pool, fc = parse_spec("c32k5p0s2-mp3-fc10")
    assert (conv.width, conv.kernel, conv.padding, conv.stride) == (32, 5, 0, 2)
    assert (pool.pool, pool.kernel) == ("max", 3)
    assert fc.width == 10


def test_pool_override_replaces_every_pool():
    net = TTFSNet("c4-ap-c4-mp-fc3", (1, 8, 8), 3, pool="max")
    assert [type(m).__name__ for m in net.stages.values()].count("MaxPool2d") == 2


SHAPES = {"mnist5k": (1, 28, 28), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32),
          "cifar100": (3, 32, 32), "dvsgesture": (2, 64, 64)}


@pytest.mark.parametrize("dataset", sorted(DEFAULT_SPECS))
def test_every_default_spec_builds_and_runs_one_step(dataset):
    classes = parse_spec(DEFAULT_SPECS[dataset])[-1].width
    encoder = "frames" if dataset == "dvsgesture" else "direct"
    net = build_network(dataset, input_shape=SHAPES[dataset], num_classes=classes, T=2, encoder=encoder)
    x = torch.rand(1, 2, *SHAPES[dataset]) if encoder == "frames" else torch.rand(1, *SHAPES[dataset])
    logits = net(x).logits
    logits.sum().backward()
    assert logits.shape == (1, classes) and torch.isfinite(logits).all()


@pytest.mark.parametrize("decoder,init,norm,affine", list(itertools.product(
    DECODERS.names(), ["ettfs", "kaiming", "default"], [True, False], [True, False]))[::3])
def test_every_component_combination_trains_one_step(decoder, init, norm, affine):
    torch.manual_seed(0)
    net = TTFSNet("c4-ap-fc8-fc3", (1, 8, 8), 3, T=4, decoder=decoder, init=init, norm=norm, affine=affine)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    torch.nn.functional.cross_entropy(net(torch.rand(6, 1, 8, 8)).logits, torch.tensor([0, 1, 2] * 2)).backward()
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))


@pytest.mark.parametrize("spec,shape,encoder", [
    ("c6-ap-c8-ap-fc24-fc5", (2, 16, 16), "direct"),
    ("c6s2-ap3-c5-fc5", (2, 15, 15), "latency"),
    ("c4-ap-c4-ap-fc5", (2, 8, 8), "frames"),
])
@pytest.mark.parametrize("path", ["sparse", "dense", "torch_backend"])
def test_every_parallel_path_agrees_with_the_step_reference(spec, shape, encoder, path, monkeypatch):
    """Fused neuron+pool kernels, sparse products forced on (any density), dense products, tensor-op backend."""
    from ttfs_lab.functional import sparse
    from ttfs_lab.functional.neuron import use_backend

    torch.manual_seed(2)
    T = 6
    net = TTFSNet(spec, shape, 5, T=T, encoder=encoder, init_gain=2.0, sparse=path != "dense").double()
    x = torch.rand(3, T, *shape) if encoder == "frames" else torch.rand(3, *shape)
    x = (x > 0.6).double() if encoder == "frames" else x.double()
    calls = []
    if path == "sparse":
        monkeypatch.setitem(sparse.DENSITY_LIMIT, "conv", 1.0)
        monkeypatch.setitem(sparse.DENSITY_LIMIT, "linear", 1.0)
        for fn in (sparse._SpikeConv2d, sparse._SpikeLinear):
            monkeypatch.setattr(fn, "apply", (lambda orig: lambda *a: calls.append(1) or orig(*a))(fn.apply))
    with use_backend("torch" if path == "torch_backend" else "auto"):
        o_par, g_par = run(net, x, "parallel")
    assert bool(calls) == (path == "sparse")
    o_step, g_step = run(net, x, "step")
    assert torch.equal(o_par.out, o_step.out)
    assert sum(s["spikes"].item() for s in o_step.stats.values()) > 0
    for name in g_par:
        torch.testing.assert_close(g_par[name], g_step[name], rtol=1e-5, atol=1e-5 * g_step[name].abs().max().item() + 1e-12)


def test_unrecorded_forward_uses_the_fused_path_and_gives_the_same_output(monkeypatch):
    """Both neuron + average pool pairs run as the fused function unless statistics are recorded; same output."""
    import ttfs_lab.nn.neuron as neuron_module

    fused = []
    real = neuron_module.ttfs_avgpool_parallel
    monkeypatch.setattr(neuron_module, "ttfs_avgpool_parallel", lambda *a, **kw: fused.append(1) or real(*a, **kw))
    torch.manual_seed(0)
    net = TTFSNet("c8-ap-c8-ap-fc16-fc4", (1, 12, 12), 4, T=6, init_gain=3.0).double()
    x = torch.rand(5, 1, 12, 12, dtype=torch.float64)
    unrecorded = net(x, mode="parallel").out
    assert len(fused) == 2, f"the fused neuron + pool ran {len(fused)} times, expected once per pool"
    recorded = net(x, record=True, mode="parallel")
    assert len(fused) == 2  # recording runs its own fused kernel (next test), not this one
    assert torch.equal(unrecorded, recorded.out)
    assert sum(s["spikes"].item() for s in recorded.stats.values()) > 0  # the comparison is not vacuous


@pytest.mark.parametrize("spec, shape, encoder", [
    ("c8-ap-c16-ap-fc32-fc10", (1, 16, 16), "direct"),   # constant first-layer current, two fused pools
    ("c8-ap-c8-mp-fc10", (1, 16, 16), "direct"),         # a max pool stays unfused
    ("c4-ap-c8-ap-fc10", (2, 12, 12), "frames"),         # currents that change every step
])
def test_recorded_evaluation_fuses_the_pools_and_records_what_the_step_reference_does(spec, shape, encoder,
                                                                                       monkeypatch):
    """Evaluation with statistics (no gradient) runs each neuron + average pool as one kernel that counts first
    spikes, never the full-size spikes; every statistic, the output and the operations equal the step
    reference's and the unfused tensor-op path's (gradient on: the neuron, then the pool)."""
    import ttfs_lab.nn.neuron as neuron_module
    from ttfs_lab.functional.neuron import use_backend

    recorded_calls = []
    real = neuron_module.ttfs_avgpool_recorded
    monkeypatch.setattr(neuron_module, "ttfs_avgpool_recorded",
                        lambda *a: recorded_calls.append(1) or real(*a))
    torch.manual_seed(0)
    net = TTFSNet(spec, shape, 10, T=6, encoder=encoder, init_gain=2.0)
    x = torch.rand(5, *shape) if encoder == "direct" else (torch.rand(5, 6, *shape) < 0.3).float()
    with torch.no_grad():
        fused = net(x, record=True, mode="parallel")
    assert len(recorded_calls) == spec.count("-ap")
    references = [net(x, record=True, mode="step"), net(x, record=True, mode="parallel")]  # gradient on
    with torch.no_grad(), use_backend("torch"):
        references.append(net(x, record=True, mode="parallel"))
    for ref in references:
        assert list(fused.stats) == list(ref.stats)
        for layer, figures in ref.stats.items():
            for key, value in figures.items():
                assert torch.equal(fused.stats[layer][key], value.detach()), (layer, key)
        assert torch.equal(fused.out, ref.out)
        assert all(torch.equal(fused.ops[k], ref.ops[k]) for k in ref.ops)
    assert fused.stats[next(iter(fused.stats))]["spikes"] > 0  # not vacuous


def test_folded_network_equals_in_every_execution():
    torch.manual_seed(0)
    net = TTFSNet("c8-ap-c8-ap-fc16-fc4", (1, 12, 12), 4, T=6, init_gain=3.0).double()
    x = torch.rand(5, 1, 12, 12, dtype=torch.float64)
    folded = net.fold()
    ref = net(x, mode="step").out
    for mode in ("step", "parallel"):
        assert torch.equal(folded(x, mode=mode).out, ref)


@pytest.mark.slow
def test_compiled_network_equals_eager():
    """torch.compile (the numba kernels are graph breaks; the rest is compiled): same spikes, same gradients."""
    torch.manual_seed(0)
    net = TTFSNet("c4-ap-fc8-fc3", (1, 8, 8), 3, T=4, init_gain=2.0).double()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    o_eager, g_eager = run(net, x, "step")
    compiled = torch.compile(net)
    net.zero_grad()
    out = compiled(x, mode="parallel")
    (out.logits * torch.linspace(-1, 1, out.logits.shape[1], dtype=x.dtype)).sum().backward()
    assert torch.equal(out.out, o_eager.out)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.grad, g_eager[name], rtol=1e-5, atol=1e-5 * g_eager[name].abs().max().item() + 1e-12)


@pytest.mark.parametrize("mode", ["parallel", "step"])
def test_direct_encoding_runs_the_first_layer_once(mode):
    """Under direct encoding the first layer's current is the same at every step: computed once, on B rows."""
    net = TTFSNet("c4-ap-fc8-fc3", (1, 8, 8), 3, T=5)
    rows = []
    net.stages["layer1_c4_syn"].register_forward_hook(lambda m, inp, out: rows.append(inp[0].shape[0]))
    net(torch.rand(6, 1, 8, 8), mode=mode).logits.sum().backward()
    assert rows == [6]


def first_spike_steps(out):
    """[B, K] step of each output unit's first spike (T when silent)."""
    fired = out.cumsum(0) > 0
    return (~fired).sum(0)


def test_the_output_threshold_delays_only_the_output_layer():
    """model.output_theta raises the last layer's threshold alone: the hidden layers spike exactly as before, no
    output unit fires earlier, and some fire later (docs/method.md section 4)."""
    x = torch.rand(16, 1, 12, 12)
    nets = []
    for output_theta in (None, 2.0):
        torch.manual_seed(0)
        nets.append(TTFSNet("c8-ap-fc32-fc6", (1, 12, 12), 6, T=8, init_gain=2.0, output_theta=output_theta))
    base, raised = (net(x, record=True) for net in nets)
    hidden = [name for name in base.stats if not name.endswith("fc6")]
    for name in hidden:
        assert torch.equal(base.stats[name]["hist"], raised.stats[name]["hist"]), name
    later = first_spike_steps(raised.out) - first_spike_steps(base.out)
    assert (later >= 0).all() and (later > 0).any()
    assert nets[1].stages["layer4_fc6"].params.theta == 2.0 and nets[1].decoder.theta == 2.0
