"""docs/method.md section 5: max pooling breaks the single-spike property, average pooling keeps it."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ttfs_lab.functional.stats import spike_summary
from ttfs_lab.nn.pooling import POOLS


def pool_over_time(pool, spikes):
    T, B = spikes.shape[:2]
    return pool(spikes.flatten(0, 1)).view(T, B, *spikes.shape[2:3], spikes.shape[3] // 2, spikes.shape[4] // 2)


def test_max_pool_breaks_single_spike():
    spikes = torch.zeros(4, 1, 1, 2, 2)  # one 2x2 window whose four neurons fire at four different steps
    for t, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        spikes[t, 0, 0, i, j] = 1
    pooled = pool_over_time(POOLS["max"](2, 2), spikes)
    assert pooled.sum().item() == 4
    assert spike_summary(pooled)["violations"].item() == 1
    assert pool_over_time(POOLS["avg"](2, 2), spikes).sum().item() == 1


@settings(max_examples=30, deadline=None)
@given(T=st.integers(1, 10), seed=st.integers(0, 1000), density=st.floats(0.0, 1.0))
def test_average_pool_never_emits_more_than_one_spike(T, seed, density):
    gen = torch.Generator().manual_seed(seed)
    fire = torch.rand(2, 3, 6, 6, generator=gen) < density
    times = torch.randint(0, T, (2, 3, 6, 6), generator=gen)
    spikes = torch.zeros(T, 2, 3, 6, 6)
    spikes.scatter_(0, times.unsqueeze(0), fire.unsqueeze(0).float())
    pooled = pool_over_time(POOLS["avg"](2, 2), spikes)
    assert pooled.sum(0).max() <= 1 + 1e-6
    assert spike_summary(pooled)["violations"].item() == 0
