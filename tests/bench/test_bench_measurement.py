"""Timing, memory and op counting of the bench on functions whose cost is known."""

import torch
from torch import nn

from ttfs_lab.bench.baselines import build_ann
from ttfs_lab.bench.memory import cpu_step_peak_bytes, peak_memory, persistent_bytes, tensor_bytes
from ttfs_lab.bench.ops import dispatched_ops
from ttfs_lab.bench.timing import time_interleaved
from ttfs_lab.models import TTFSNet
from ttfs_lab.nn.neuron import TTFSNeuron

CPU = torch.device("cpu")


def test_time_interleaved_runs_warmup_then_round_robin_rounds():
    calls = []
    steps = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = time_interleaved(steps, repeats=3, warmup=2, device=CPU)
    assert calls == ["a", "b"] * 5
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3} and all(t >= 0 for v in times.values() for t in v)


def test_cpu_peak_counts_the_tensors_alive_at_once():
    mib = 2**20

    def two_then_one():
        a = torch.ones(mib // 4)  # 1 MiB of float32
        b = torch.ones(mib // 4)
        del a, b
        return torch.ones(mib // 4)

    peak = cpu_step_peak_bytes(two_then_one)
    assert 2 * mib <= peak < 3 * mib


def test_persistent_bytes_count_parameters_optimizer_state_and_batch_once():
    model = nn.Linear(10, 4)  # 44 float32 parameters
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 10)).sum().backward()
    optimizer.step()  # two moments per parameter (and a step counter each)
    x = torch.ones(8, 10)
    expected = 3 * 44 * 4 + 2 * 4 + x.numel() * 4
    assert persistent_bytes(model, optimizer, (x, x)) == expected  # the batch tensor is shared: counted once
    assert tensor_bytes([x, x.view(80), "not a tensor"]) == 320
    mem = peak_memory(lambda: model(x).sum().backward(), model, optimizer, (x,), CPU)
    assert mem["peak_bytes"] == mem["persistent_bytes"] + mem["step_working_bytes"] and mem["step_working_bytes"] > 0


def test_dispatched_ops_counts_computing_ops_only():
    x = torch.ones(4, 3)
    assert dispatched_ops(lambda: (x.view(3, 4).t() + 1).sum()) == 2  # add, sum; the views are free


def test_the_ann_baseline_has_the_same_layers_with_relu_for_each_neuron():
    net = TTFSNet("c4-ap-fc8-fc3", (1, 8, 8), 3, T=4)
    ann = build_ann(net)
    kinds = [type(m) for m in net.stages.values()]
    assert [type(m) for m in ann] == [nn.ReLU if k is TTFSNeuron else k for k in kinds][:-1]  # no output neuron
    assert ann(torch.rand(2, 1, 8, 8)).shape == (2, 3)
    first = next(iter(net.stages.values()))
    assert ann[0] is not first and torch.equal(ann[0].weight, first.weight)  # copied, not shared


def test_the_tensor_op_baseline_runs_without_the_fused_kernel(monkeypatch):
    from ttfs_lab.bench.baselines import with_backend
    from ttfs_lab.functional import kernels
    from ttfs_lab.functional.neuron import ttfs_parallel

    launches = []
    real_forward = kernels.forward_kernel
    monkeypatch.setattr(kernels, "forward_kernel", lambda *args: launches.append(1) or real_forward(*args))
    currents = torch.randn(4, 3)
    with_backend("torch", lambda: ttfs_parallel(currents))()
    assert launches == []
    ttfs_parallel(currents)
    assert launches == [1] or not kernels.AVAILABLE
