"""Equality checks on the benchmarked network and device: every execution path against the step reference.

The same properties are pinned by the test suite on small networks (``tests/test_models.py``,
``tests/test_inference.py``, ``tests/functional/test_triton_kernels.py``, ``tests/bench/test_bench_checks.py``);
here they are re-checked on the network whose speed is reported, on the device it ran on (the GPU included),
so that a timing is never reported for a path that computes something else.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
import torch.nn.functional as F

from ttfs_lab.bench.workload import Case, make_batch
from ttfs_lab.functional.neuron import NeuronParams, ttfs_avgpool_parallel, ttfs_parallel, ttfs_step, use_backend
from ttfs_lab.models import TTFSNet


def run_graded(net: TTFSNet, x: torch.Tensor, mode: str):
    """Output spikes and parameter gradients of a weighted sum of the logits (every class gets its own weight)."""
    net.zero_grad()
    out = net(x, mode=mode)
    weights = torch.linspace(-1, 1, out.logits.shape[1], dtype=x.dtype, device=x.device)
    (out.logits * weights).sum().backward()
    params = getattr(net, "_orig_mod", net).named_parameters()  # a compiled module wraps the original
    return out.out.detach().clone(), {n: p.grad.clone() for n, p in params if p.grad is not None}


def grads_close(a: dict, b: dict, rtol: float = 1e-5) -> bool:
    """Same parameters, each gradient within ``rtol`` of the reference's largest entry; False when empty."""
    if a.keys() != b.keys() or not a:
        return False
    for name in a:
        scale = b[name].abs().max().item()
        if not torch.allclose(a[name], b[name], rtol=rtol, atol=rtol * scale + 1e-12):
            return False
    return True


def equality_checks(case: Case, device: torch.device, batch: int = 2, compiled: bool = False) -> dict[str, bool]:
    """float64, small batch, the case's network: every execution path against the step reference."""
    torch.manual_seed(0)
    kwargs = dict(T=case.T, encoder="frames" if case.frames else "direct")
    net = TTFSNet(case.spec, case.input_shape, case.classes, **kwargs).double().to(device)
    small = Case(**{**asdict(case), "batch": batch})
    x, _ = make_batch(small, device, seed=1)
    x = x.double()
    s_step, g_step = run_graded(net, x, "step")
    s_par, g_par = run_graded(net, x, "parallel")
    with use_backend("torch"):
        s_torch, g_torch = run_graded(net, x, "parallel")
    with torch.no_grad():
        folded = net.fold()
        s_fold = folded(x, mode="parallel").out
        s_fold_step = folded(x, mode="step").out
        recorded = net(x, record=True, mode="parallel")  # the recording path (its own fused kernel)
        s_rec = recorded.out
        s_unfused = net(x, mode="parallel", fuse=False).out  # every stage on its own
        hidden_spikes = sum(float(v["spikes"]) for v in recorded.stats.values())
    checks = {
        "step_vs_parallel_spikes_equal": torch.equal(s_step, s_par),
        "step_vs_parallel_grads_close": grads_close(g_par, g_step),
        "step_vs_parallel_torch_backend_spikes_equal": torch.equal(s_step, s_torch),
        "step_vs_parallel_torch_backend_grads_close": grads_close(g_torch, g_step),
        "parallel_recording_path_spikes_equal": torch.equal(s_step, s_rec),
        "parallel_unfused_path_spikes_equal": torch.equal(s_step, s_unfused),
        "folded_parallel_spikes_equal": torch.equal(s_step, s_fold),
        "folded_step_spikes_equal": torch.equal(s_step, s_fold_step),
        "hidden_spikes_nonzero": hidden_spikes > 0,  # the comparisons are not vacuous
    }
    from ttfs_lab.inference import early_exit

    with torch.no_grad():
        result = early_exit(net.fold(), x)
        checks["early_exit_predictions_equal_full"] = torch.equal(result.pred, net(x).logits.argmax(-1))
    if compiled:
        try:
            cnet = torch.compile(net)
            s_comp, g_comp = run_graded(cnet, x, "parallel")
            checks["compiled_spikes_equal"] = torch.equal(s_step, s_comp)
            checks["compiled_grads_close"] = grads_close(g_comp, g_step)
        except Exception as exc:  # pragma: no cover - depends on the compiler toolchain
            checks["compiled_error"] = False
            print(f"  compile check failed: {str(exc).splitlines()[0][:200]}")
    return checks


TRITON_SHAPES = {"full": ((1, (8, 16, 300)), (2, (8, 4, 16, 28, 28)), (3, (8, 4, 8, 7, 8))),
                 "small": ((1, (5, 3, 40)), (2, (5, 2, 3, 6, 7)), (3, (4, 2, 2, 7, 6)))}


def triton_neuron_checks(device: torch.device, shapes: str = "full") -> dict[str, bool]:
    """float32 on ``device``: the fused Triton kernels (neuron; neuron + k x k average pool, odd sizes included)
    against the step loop on the same currents, for IF and leaky neurons, every surrogate, constant and per-step
    currents: spikes equal, gradients close, and some spikes at all (the comparison is not vacuous)."""
    gen = torch.Generator(device=device).manual_seed(0)
    checks = {}
    for p in (NeuronParams(), NeuronParams(theta=0.7, lam=0.9, surrogate="atan"),
              NeuronParams(surrogate="triangle", alpha=1.0)):
        for const in (False, True):
            for k, shape in TRITON_SHAPES[shapes]:
                T = shape[0]
                cur = torch.randn((1 if const else T, *shape[1:]), generator=gen, device=device) * 0.6 + 0.3
                cur.requires_grad_()
                out = ttfs_parallel(cur, p, T, "triton") if k == 1 else ttfs_avgpool_parallel(cur, p, T, k, "triton")
                upstream = torch.randn(out.shape, generator=gen, device=device)
                (grad,) = torch.autograd.grad((out * upstream).sum(), cur)
                spikes = ttfs_step(cur.expand(T, *shape[1:]), p)
                ref = spikes if k == 1 else F.avg_pool2d(spikes.flatten(0, 1), k).view(out.shape)
                (ref_grad,) = torch.autograd.grad((ref * upstream).sum(), cur)
                scale = ref_grad.abs().max().item()
                name = f"triton_{p.surrogate}_leak{p.lam}_{'const' if const else 'steps'}_pool{k}"
                checks[name] = bool(torch.equal(out, ref) and ref.sum() > 0
                                    and torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-4 * scale))
    return checks
