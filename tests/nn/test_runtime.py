"""Process settings (ttfs_lab.nn.runtime): glibc's allocator thresholds set once, reported as they took effect."""

import pytest


@pytest.mark.parametrize("mallopt_ok", [1, 0])
def test_retain_freed_memory_is_idempotent(monkeypatch, mallopt_ok):
    """The first call sets glibc's mmap and trim thresholds (one mallopt each), later calls return its result
    without calling mallopt again, and the report line says what took effect."""
    import ctypes

    from ttfs_lab.nn import runtime

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
