"""Process settings (ttfs_lab.runtime): glibc's allocator thresholds set once, reported as they took effect."""

import pytest


@pytest.mark.parametrize("mallopt_ok", [1, 0])
def test_retain_freed_memory_is_idempotent(monkeypatch, mallopt_ok):
    """The first call sets glibc's mmap and trim thresholds (one mallopt each), later calls return its result
    without calling mallopt again, and the report line says what took effect."""
    import ctypes

    from ttfs_lab import runtime

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return mallopt_ok

    monkeypatch.setattr(runtime, "_state", {"done": False, "ok": False})  # a fresh process
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    assert runtime.allocator_setting() == "default (glibc mmap for large blocks)"
    first = runtime.retain_freed_memory(mmap_threshold=1 << 20, trim_threshold=1 << 21)
    assert first is bool(mallopt_ok)
    assert calls[0] == (runtime.M_MMAP_THRESHOLD, 1 << 20)
    if mallopt_ok:
        assert calls == [(runtime.M_MMAP_THRESHOLD, 1 << 20), (runtime.M_TRIM_THRESHOLD, 1 << 21)]
    made = len(calls)
    assert runtime.retain_freed_memory() is first and len(calls) == made  # idempotent: no second mallopt
    assert runtime.allocator_setting() == ("retain freed memory (glibc mallopt)" if mallopt_ok
                                           else "default (mallopt unavailable)")


def _spin_in_fresh_process(env_value, import_torch_first):
    """GOMP_SPINCOUNT as a fresh interpreter sees it after ``short_openmp_spin`` (and whether the call set it)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if env_value is not None:
        env["GOMP_SPINCOUNT"] = env_value
    code = ("import os\n" + ("import torch\n" if import_torch_first else "") +
            "from ttfs_lab.runtime import short_openmp_spin, openmp_setting\n"
            "print(short_openmp_spin(), os.environ.get('GOMP_SPINCOUNT'), openmp_setting(), sep='|')")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().split("|")


def test_short_openmp_spin_is_set_before_torch_and_never_overrides():
    """Set in a process that has not loaded torch; left alone when the user set it or torch (libgomp) is loaded."""
    from ttfs_lab.runtime import OPENMP_SPIN

    assert _spin_in_fresh_process(None, False) == ["True", str(OPENMP_SPIN), f"GOMP_SPINCOUNT={OPENMP_SPIN}"]
    assert _spin_in_fresh_process("500", False) == ["False", "500", "GOMP_SPINCOUNT=500"]
    assert _spin_in_fresh_process(None, True) == ["False", "None", "default OpenMP spin (GOMP_SPINCOUNT unset)"]


def test_the_cli_and_the_bench_package_set_it_before_importing_torch():
    """``ttfs-lab`` (cli.main) and ``python -m ttfs_lab.bench`` (the package) set it before torch loads."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    for code in ("import sys; from ttfs_lab.cli import main; main(['--help']); "
                 "import os; print(os.environ.get('GOMP_SPINCOUNT'), file=sys.stderr)",
                 "import sys, ttfs_lab.bench, os; print(os.environ.get('GOMP_SPINCOUNT'), file=sys.stderr)"):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        from ttfs_lab.runtime import OPENMP_SPIN

        assert out.stderr.strip().splitlines()[-1] == str(OPENMP_SPIN)
