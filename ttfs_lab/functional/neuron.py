"""The single-spike (TTFS) integrate-and-fire neuron as pure functions (docs/method.md section 1).

    V[t] = lam * V[t-1] + I[t]
    S[t] = H(V[t] - theta) * (1 - F[t-1])        F[t] = F[t-1] or S[t]   (F detached)

All functions take input currents ``I`` of shape ``[T, B, ...]`` and return spikes of the same shape. Two
executions of the same function:

* ``ttfs_step`` loops over t with autograd through every step: the readable reference (BPTT as in the paper);
* ``ttfs_parallel`` is one fused autograd function over all t. Its backward is the closed form
  dL/dV[t] = dL/dS[t] H'(V[t] - theta) (1 - F[t-1]);  dL/dI[tau] = sum_{t >= tau} lam^(t - tau) dL/dV[t],
  a reverse (decayed) cumulative sum. One full-size tensor is kept for backward: X = V - theta before the
  unit's spike, +inf from the step after it (every surrogate is 0 at +inf, so X carries the "not fired before"
  gate); for the sigmoid surrogate X is stored as sigmoid(alpha X), so backward needs no exponential.

``ttfs_parallel`` has three backends computing the same thing: ``kernel`` (CPU float32/64: the fused numba kernels
of ``ttfs_lab.functional.kernels``, one pass over memory each way), ``triton`` (CUDA float32/16/bf16: their GPU
twin in ``ttfs_lab.functional.triton_kernels``, one launch each way) and ``torch`` (tensor ops, any device and
dtype, a fixed handful of passes; mixed precision sums in float32). A current that is the same at every step
(``[1, B, ...]`` with ``T`` given: the first layer under direct encoding) is read once and its gradient is
returned summed over time, ``[1, B, ...]``. ``ttfs_avgpool_parallel`` fuses the neuron with the average pool that
follows it (the full-size spikes and their gradient are never written); ``ttfs_resume`` continues a neuron from
a saved state for inference chunk by chunk (early exit).

Both executions produce identical spikes for identical currents: the potential is summed in the step
reference's order (on CUDA the ``torch`` backend uses one ``cumsum``, whose rounding may differ in the last bit)
and gradients agree to float tolerance; tests/functional/test_neuron.py holds every backend to it.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple, Optional

import torch
from torch import Tensor

from ttfs_lab.functional import kernels, triton_kernels
from ttfs_lab.functional.surrogate import SURROGATES, heaviside
from ttfs_lab.registry import check_choice

MODES = ("step", "parallel", "auto")
BACKENDS = ("auto", "kernel", "triton", "torch")
_default_backend = ["auto"]


@contextlib.contextmanager
def use_backend(backend: str) -> Iterator[None]:
    """Within the block, ``backend='auto'`` calls of the parallel neuron use ``backend`` (tests, benchmarks)."""
    check_choice("backend", backend, BACKENDS)
    previous = _default_backend[0]
    _default_backend[0] = backend
    try:
        yield
    finally:
        _default_backend[0] = previous


def _pick_backend(backend: str, x: Tensor, p: "NeuronParams") -> str:
    check_choice("backend", backend, BACKENDS)
    if backend == "auto":
        backend = _default_backend[0]
    if backend == "auto":
        if triton_kernels.usable(x, p.surrogate):
            return "triton"
        return "kernel" if kernel_applies(x, p) else "torch"
    if backend == "kernel" and not kernel_applies(x, p):
        raise ValueError(f"backend='kernel' needs numba, a CPU float32/float64 tensor and one of the surrogates "
                         f"{', '.join(kernels.SURROGATE_CODES)}; use backend='torch'")
    if backend == "triton" and not triton_kernels.applies(x, p.surrogate, interpreted=True):
        raise ValueError(f"backend='triton' needs triton, a CUDA float32/float16/bfloat16 tensor and one of the "
                         f"surrogates {', '.join(triton_kernels.SURROGATE_CODES)}; use backend='torch'")
    return backend


def _forward_triton(cur: Tensor, T: int, const: bool, p: "NeuronParams", save: bool,
                    k: int = 1) -> tuple[Tensor, Optional[Tensor]]:
    return triton_kernels.forward(cur, T, const, p.theta, p.lam, p.alpha, p.surrogate, save, k)


def _triton_or_fallback(backend: str, run_triton, run_other):
    """``(result, backend used)``: Triton's for ``backend == 'triton'`` (the tensor ops should it fail on this
    GPU: ``triton_kernels.launch_or_fallback``), else ``run_other()``'s."""
    if backend != "triton":
        return run_other(), backend
    result, launched = triton_kernels.launch_or_fallback(run_triton, run_other)
    return result, ("triton" if launched else "torch")


class NeuronParams(NamedTuple):
    """Parameters of the TTFS neuron: threshold, leak factor (1 = IF), surrogate name and sharpness."""

    theta: float = 1.0
    lam: float = 1.0
    surrogate: str = "sigmoid"
    alpha: float = 4.0


class NeuronState(NamedTuple):
    """Per-step state of the step-by-step execution: membrane potential and the 'already fired' flag."""

    v: Tensor
    fired: Tensor


def check_params(p: NeuronParams) -> NeuronParams:
    SURROGATES[p.surrogate]
    if not 0.0 < p.lam <= 1.0:
        raise ValueError(f"leak={p.lam} is not valid; use 0 < leak <= 1 (1 = integrate-and-fire)")
    if p.theta <= 0:
        raise ValueError(f"theta={p.theta} is not valid; the threshold must be > 0")
    return p


def ttfs_step_single(current: Tensor, state: NeuronState | None, p: NeuronParams) -> tuple[Tensor, NeuronState]:
    """One step of the neuron: ``current`` is ``[B, ...]``; returns the spikes of this step and the new state."""
    if state is None:
        v = current
        fired = torch.zeros_like(current, dtype=torch.bool)
    else:
        v = state.v * p.lam + current if p.lam != 1.0 else state.v + current
        fired = state.fired
    spikes = heaviside(v - p.theta, p.surrogate, p.alpha) * (~fired).to(v.dtype)
    return spikes, NeuronState(v, fired | (spikes.detach() > 0))


def ttfs_step(currents: Tensor, p: NeuronParams = NeuronParams()) -> Tensor:
    """Reference execution: loop over t, autograd through every step. ``currents``: ``[T, B, ...]``."""
    state, out = None, []
    for current in currents:
        spikes, state = ttfs_step_single(current, state, p)
        out.append(spikes)
    return torch.stack(out)


def resolve_mode(mode: str, device: torch.device | str | None = None, T: int | None = None) -> str:
    """The execution ``auto`` stands for: ``parallel`` on every device and T.

    This is a rule, checked by ``python -m ttfs_lab.bench`` (which times step, parallel and auto side by side):
    the parallel execution does the same arithmetic in T times fewer, T times larger products and a fused neuron,
    and it was the faster one for every network, device and T measured (CPU and CUDA). T = 1 makes the two the
    same computation.
    """
    check_choice("mode", mode, MODES)
    return "parallel" if mode == "auto" else mode


@torch.compiler.disable
def _opaque(fn, *args):
    """Run ``fn`` eagerly under ``torch.compile`` (a graph break): the numba kernels are opaque to it, and
    dynamo (torch 2.11, CUDA) failed to trace the neuron's autograd Function; the layers around it compile."""
    return fn(*args)


def kernel_applies(x: Tensor, p: NeuronParams) -> bool:
    """Whether the fused CPU kernels can run this neuron (numba, CPU float32/64, a surrogate they know)."""
    return (kernels.AVAILABLE and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and p.surrogate in kernels.SURROGATE_CODES)


def _is_dense(x: Tensor) -> bool:
    """Non-overlapping and dense: some permutation of the dims is contiguous (contiguous or channels-last)."""
    order = sorted(range(x.dim()), key=lambda d: -x.stride(d))
    return x.permute(order).is_contiguous()


def _flat(x: Tensor) -> Tensor:
    """A 1-D view of a dense tensor's memory in storage order."""
    return x.permute(sorted(range(x.dim()), key=lambda d: -x.stride(d))).view(-1)


def _steps_like(step: Tensor, T: int) -> Tensor:
    """An empty ``[T, *step.shape]`` tensor, each step laid out like the dense tensor ``step``."""
    return torch.empty_strided((T, *step.shape), (step.numel(), *step.stride()), dtype=step.dtype, device=step.device)


def _kernel_params(p: NeuronParams, dtype: torch.dtype, area: int = 1):
    """[theta, lam, scale of the saved X, pooling area] in the data's dtype (torch computes in it too)."""
    scale = p.alpha if p.surrogate == "sigmoid" else 1.0
    return torch.tensor([p.theta, p.lam, scale, area], dtype=dtype).numpy()


def _forward_kernel(cur: Tensor, T: int, const: bool, p: NeuronParams, save: bool) -> tuple[Tensor, Optional[Tensor]]:
    kernels.set_threads(torch.get_num_threads())
    if not _is_dense(cur):
        cur = cur.contiguous()
    spikes = _steps_like(cur[0], T) if const else torch.empty_like(cur)
    x = torch.empty_like(spikes) if save else spikes.new_empty(0)
    n = spikes[0].numel()
    no_state = cur.new_empty(0).numpy()
    kernels.forward_kernel(_flat(cur).numpy(), const, T, n, 1, 1, 1, _kernel_params(p, cur.dtype),
                           _flat(spikes).numpy(), (_flat(x) if save else x).numpy(), save, no_state, no_state)
    if not save:
        return spikes, None
    if p.surrogate == "sigmoid":
        x.sigmoid_()
    return spikes, x


def _backward_kernel(grad: Tensor, x: Tensor, const: bool, p: NeuronParams) -> Tensor:
    kernels.set_threads(torch.get_num_threads())
    if grad.stride() != x.stride():
        grad = torch.empty_like(x).copy_(grad)
    out = _steps_like(x[0], 1) if const else torch.empty_like(x)
    kernels.backward_kernel(_flat(grad).numpy(), _flat(x).numpy(), x.shape[0], x[0].numel(), 1, 1, 1,
                            _kernel_params(p, x.dtype), kernels.SURROGATE_CODES[p.surrogate], float(p.alpha), const,
                            _flat(out).numpy())
    return out


def _forward_torch(cur: Tensor, T: int, const: bool, p: NeuronParams, save: bool) -> tuple[Tensor, Optional[Tensor]]:
    """Tensor ops: the potential, the first crossing from the running count of threshold crossings (exact
    integers), X = V - theta masked to +inf after the spike. On CUDA an IF potential is one ``cumsum`` (each op is a
    kernel launch there; its accumulation may round differently in the last bit); elsewhere the potential is
    summed step by step, in the step reference's order, so that float32 spikes match it bit for bit."""
    acc = torch.float32 if cur.dtype in (torch.float16, torch.bfloat16) else cur.dtype  # mixed precision
    if p.lam == 1.0 and cur.is_cuda:
        v = torch.cumsum(cur.expand(T, *cur.shape[1:]) if const else cur, 0, dtype=acc)
    elif const:  # V[t] = V[t-1] * lam + I0, the step reference's order
        v = torch.empty((T, *cur.shape[1:]), dtype=acc, device=cur.device)
        v[0] = cur[0]
        for t in range(1, T):
            if p.lam == 1.0:
                torch.add(v[t - 1], cur[0], out=v[t])
            else:
                torch.mul(v[t - 1], p.lam, out=v[t]).add_(cur[0])
    else:
        v = membrane_potential(cur.to(acc), p.lam)
    above = v >= p.theta  # the same test as H(V - theta): for floats, v - theta >= 0 iff v >= theta
    count = torch.uint8 if T < 256 else torch.int32  # at most T crossings: one byte per entry
    crossings = torch.cumsum(above, 0, dtype=count)  # crossings so far, this step included
    spikes = (crossings == 1).logical_and_(above).to(cur.dtype)
    if not save:
        return spikes, None
    fired_before = crossings.sub_(above.to(count)) > 0
    x = v.sub_(p.theta).masked_fill_(fired_before, float("inf"))
    if p.surrogate == "sigmoid":
        x.mul_(p.alpha).sigmoid_()
    return spikes, x


def membrane_potential(currents: Tensor, lam: float = 1.0) -> Tensor:
    """V[t] = lam V[t-1] + I[t] for all t at once (no autograd of its own), summed in step order."""
    v = currents.clone(memory_format=torch.contiguous_format)
    for t in range(1, v.shape[0]):
        if lam == 1.0:
            v[t].add_(v[t - 1])
        else:
            v[t].add_(v[t - 1] * lam)
    return v


def surrogate_from_saved(x: Tensor, p: NeuronParams) -> Tensor:
    """The gated surrogate H'(V - theta) (1 - F[t-1]) from the forward's saved tensor (a new tensor)."""
    if p.surrogate == "sigmoid":  # x = sigmoid(alpha (V - theta)), 1 after the spike
        return (1.0 - x).mul_(x).mul_(p.alpha)
    return SURROGATES[p.surrogate](x.clone(), p.alpha)


def reverse_cumsum_(g: Tensor, lam: float = 1.0) -> Tensor:
    """In place: g[tau] <- sum_{t >= tau} lam^(t - tau) g[t] over dim 0."""
    for t in range(g.shape[0] - 2, -1, -1):
        if lam == 1.0:
            g[t].add_(g[t + 1])
        else:
            g[t].add_(g[t + 1], alpha=lam)
    return g


class _TTFSParallel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, currents: Tensor, p: NeuronParams, T: int, backend: str, save_dtype) -> Tensor:
        const = currents.shape[0] == 1 and T > 1
        save = ctx.needs_input_grad[0]
        run_other = _forward_kernel if backend == "kernel" else _forward_torch
        (spikes, x), backend = _triton_or_fallback(backend, lambda: _forward_triton(currents, T, const, p, save),
                                                   lambda: run_other(currents, T, const, p, save))
        if save:
            ctx.save_for_backward(x if save_dtype is None else x.to(save_dtype))
            ctx.p, ctx.const, ctx.backend, ctx.in_dtype = p, const, backend, currents.dtype
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: Tensor):
        (x,) = ctx.saved_tensors
        p = ctx.p
        if ctx.backend == "kernel":
            return _backward_kernel(grad_spikes, x, ctx.const, p), None, None, None, None
        if ctx.backend == "triton":
            grad = triton_kernels.backward(grad_spikes, x, ctx.const, p.lam, p.alpha, p.surrogate)
            return grad, None, None, None, None
        acc = torch.float32 if ctx.in_dtype in (torch.float16, torch.bfloat16) else ctx.in_dtype
        g = surrogate_from_saved(x.to(acc), p).mul_(grad_spikes)  # one new full-size tensor, then in place
        if p.lam == 1.0 and ctx.const:  # sum_tau sum_{t >= tau} g[t] = sum_t (t + 1) g[t], no temporary
            steps = torch.arange(1, g.shape[0] + 1, dtype=g.dtype, device=g.device)
            grad = torch.tensordot(steps, g, dims=([0], [0])).unsqueeze(0)
        else:
            g = reverse_cumsum_(g, p.lam)  # in place (T small ops): no extra full-size tensor
            grad = g.sum(0, keepdim=True) if ctx.const else g
        return grad.to(ctx.in_dtype), None, None, None, None


def ttfs_parallel(currents: Tensor, p: NeuronParams = NeuronParams(), T: Optional[int] = None,
                  backend: str = "auto") -> Tensor:
    """All steps at once as one fused autograd function.

    ``currents``: ``[T, B, ...]``; or ``[1, B, ...]`` with ``T`` given, a current that is the same at every step
    (computed once, never expanded in memory; its gradient comes back as ``[1, B, ...]``). ``backend``: ``kernel``
    (fused CPU kernels), ``triton`` (fused CUDA kernels), ``torch`` (tensor ops, any device), ``auto`` (triton on
    CUDA, kernel on CPU, where they apply; torch otherwise).
    """
    steps = currents.shape[0] if T is None else T
    if currents.shape[0] not in (1, steps):
        raise ValueError(f"currents have {currents.shape[0]} steps, expected {steps} (or 1 for a constant current)")
    # mixed precision: the potential and the gradient are summed in float32, the spikes and the saved surrogate
    # input kept in half precision, as the step execution's autograd keeps its tensors
    half = currents.dtype in (torch.float16, torch.bfloat16)
    return _opaque(_TTFSParallel.apply, currents, p, steps, _pick_backend(backend, currents, p),
                   currents.dtype if half else None)


def _avgpool_forward_kernel(cur: Tensor, T: int, const: bool, p: NeuronParams, save: bool,
                            k: int) -> tuple[Tensor, Optional[Tensor]]:
    kernels.set_threads(torch.get_num_threads())
    cur = cur.contiguous()
    _, B, C, H, W = cur.shape
    pooled = cur.new_empty((T, B, C, H // k, W // k))
    x = cur.new_empty((T, B, C, H, W)) if save else cur.new_empty(0)
    no_state = cur.new_empty(0).numpy()
    kernels.forward_kernel(cur.view(-1).numpy(), const, T, B * C, H, W, k, _kernel_params(p, cur.dtype, k * k),
                           pooled.view(-1).numpy(), x.view(-1).numpy(), save, no_state, no_state)
    if save and p.surrogate == "sigmoid":
        x.sigmoid_()
    return pooled, (x if save else None)


def _avgpool_backward_kernel(grad_pooled: Tensor, x: Tensor, const: bool, p: NeuronParams, k: int) -> Tensor:
    kernels.set_threads(torch.get_num_threads())
    T, B, C, H, W = x.shape
    out = x.new_empty((1 if const else T, B, C, H, W))
    kernels.backward_kernel(grad_pooled.contiguous().view(-1).numpy(), x.view(-1).numpy(), T, B * C, H, W, k,
                            _kernel_params(p, x.dtype, k * k), kernels.SURROGATE_CODES[p.surrogate],
                            float(p.alpha), const, out.view(-1).numpy())
    return out


def _avgpool_forward_torch(cur: Tensor, T: int, const: bool, p: NeuronParams, save: bool,
                           k: int) -> tuple[Tensor, Optional[Tensor]]:
    """The fallback of a failed Triton launch: the tensor-op neuron, then the pool (autograd not needed here:
    the backward below spreads the pooled gradient and reuses the neuron's)."""
    spikes, x = _forward_torch(cur, T, const, p, save)
    pooled = torch.nn.functional.avg_pool2d(spikes.flatten(0, 1), k, k)
    return pooled.view(T, -1, *pooled.shape[1:]), x


class _TTFSAvgPool(torch.autograd.Function):
    """The neuron and the k x k average pool after it as one function (fused kernels: ``kernel`` or ``triton``)."""

    @staticmethod
    def forward(ctx, currents: Tensor, p: NeuronParams, T: int, k: int, backend: str) -> Tensor:
        const = currents.shape[0] == 1 and T > 1
        save = ctx.needs_input_grad[0]
        (pooled, x), backend = _triton_or_fallback(
            backend, lambda: _forward_triton(currents, T, const, p, save, k),
            lambda: (_avgpool_forward_kernel if backend == "kernel" else _avgpool_forward_torch)(
                currents, T, const, p, save, k))
        if save:
            ctx.save_for_backward(x)
            ctx.p, ctx.const, ctx.k, ctx.backend, ctx.in_dtype = p, const, k, backend, currents.dtype
        return pooled

    @staticmethod
    def backward(ctx, grad_pooled: Tensor):
        (x,) = ctx.saved_tensors
        p, k = ctx.p, ctx.k
        if ctx.backend == "kernel":
            return _avgpool_backward_kernel(grad_pooled, x, ctx.const, p, k), None, None, None, None
        if ctx.backend == "triton":
            grad = triton_kernels.backward(grad_pooled, x, ctx.const, p.lam, p.alpha, p.surrogate, k)
            return grad, None, None, None, None
        T, B, C, H, W = x.shape  # the tensor-op fallback: unpool, then the neuron's backward
        grad_spikes = torch.nn.functional.interpolate(grad_pooled.flatten(0, 1), scale_factor=k).div_(k * k)
        grad_spikes = torch.nn.functional.pad(grad_spikes, (0, W % k, 0, H % k)).view(T, B, C, H, W)
        return _TTFSParallel.backward(ctx, grad_spikes)[0], None, None, None, None


def ttfs_avgpool_parallel(currents: Tensor, p: NeuronParams = NeuronParams(), T: Optional[int] = None,
                          kernel_size: int = 2, backend: str = "auto") -> Tensor:
    """The neuron followed by k x k average pooling with stride k, fused: ``[T | 1, B, C, H, W]`` currents ->
    ``[T, B, C, H // k, W // k]`` pooled spikes, equal to ``avg_pool2d`` of ``ttfs_parallel``'s spikes.

    The fused kernels (``kernel`` on CPU, ``triton`` on CUDA) never write the full-size spikes nor their gradient;
    with ``backend='torch'`` the two steps run one after the other.
    """
    steps = currents.shape[0] if T is None else T
    if currents.dim() != 5:
        raise ValueError(f"currents must be [T, B, C, H, W], got shape {tuple(currents.shape)}")
    backend = _pick_backend(backend, currents, p)
    if backend in ("kernel", "triton"):
        return _opaque(_TTFSAvgPool.apply, currents, p, steps, kernel_size, backend)
    spikes = ttfs_parallel(currents, p, steps, backend)
    pooled = torch.nn.functional.avg_pool2d(spikes.flatten(0, 1), kernel_size, kernel_size)
    return pooled.view(steps, -1, *pooled.shape[1:])


class ResumeState(NamedTuple):
    """State of a layer between chunks of steps (inference): potential and 1 / 0 'not fired yet', ``[B, ...]``."""

    v: Tensor
    free: Tensor

    def select(self, keep: Tensor) -> "ResumeState":
        return ResumeState(self.v[keep], self.free[keep])


@torch.no_grad()
def ttfs_resume(currents: Tensor, p: NeuronParams, T: int, state: Optional[ResumeState] = None,
                pool: int = 1) -> tuple[Tensor, ResumeState]:
    """Inference only: ``T`` more steps of the neuron (then ``pool`` x ``pool`` average pooling if > 1) from
    ``state`` (None: at rest), so that a network can run chunk by chunk of steps and stop early. ``currents``:
    ``[T | 1, B, ...]``. Returns the (pooled) spikes ``[T, B, ...]`` and the state after the last step. The
    arithmetic is the step reference's, so the spikes equal ``ttfs_step`` over the whole window. The state's
    tensors are updated in place (and returned)."""
    const = currents.shape[0] == 1 and T > 1
    step_shape = currents.shape[1:]
    if state is None:
        state = ResumeState(currents.new_zeros(step_shape), currents.new_ones(step_shape))
    if kernel_applies(currents, p) and (pool == 1 or currents.dim() == 5):
        kernels.set_threads(torch.get_num_threads())
        cur = currents.contiguous()
        v, free = state.v.contiguous(), state.free.contiguous()
        if pool > 1:
            _, B, C, H, W = cur.shape
            out = cur.new_empty((T, B, C, H // pool, W // pool))
            planes = B * C
        else:
            out = cur.new_empty((T, *step_shape))
            planes, H, W = cur[0].numel(), 1, 1
        kernels.forward_kernel(cur.view(-1).numpy(), const, T, planes, H, W, pool, _kernel_params(p, cur.dtype, pool * pool),
                               out.view(-1).numpy(), cur.new_empty(0).numpy(), False, v.view(-1).numpy(), free.view(-1).numpy())
        return out, ResumeState(v, free)
    v, free = state
    spikes = currents.new_empty((T, *step_shape))
    for t in range(T):
        v.mul_(p.lam).add_(currents[0 if const else t])  # v * 1.0 is exact: IF and leaky share the line
        s = (v >= p.theta).to(v.dtype).mul_(free)
        free.sub_(s)
        spikes[t] = s
    if pool > 1:
        pooled = torch.nn.functional.avg_pool2d(spikes.flatten(0, 1), pool, pool)
        spikes = pooled.view(T, -1, *pooled.shape[1:])
    return spikes, ResumeState(v, free)


def ttfs_neuron(currents: Tensor, p: NeuronParams = NeuronParams(), mode: str = "parallel",
                T: Optional[int] = None) -> Tensor:
    """Dispatch to the step or parallel execution (``auto``: see ``resolve_mode``).

    A ``[1, B, ...]`` constant current with ``T`` > 1 is broadcast to T steps (without a copy in parallel mode).
    """
    check_choice("mode", mode, MODES)
    if currents.dim() < 2:
        raise ValueError(f"currents must be [T, B, ...], got shape {tuple(currents.shape)}")
    mode = resolve_mode(mode, currents.device, T)
    if mode == "step":
        if T is not None and currents.shape[0] == 1 and T > 1:
            currents = currents.expand(T, *currents.shape[1:])
        return ttfs_step(currents, p)
    return ttfs_parallel(currents, p, T)
