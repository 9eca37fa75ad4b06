"""A DataModule for the multi-node test (``class_path: multinode_helpers.RankInterleavedMNIST5k``, importable by a
subprocess through ``PYTHONPATH=tests``): the single-process reference of a DDP run."""

from __future__ import annotations

import os

from torch.utils.data import DataLoader, DistributedSampler

from ttfs_lab.data import MNIST5k
from ttfs_lab.data.base import stack_samples


class RankInterleavedMNIST5k(MNIST5k):
    """MNIST5k whose training loader, in one process, yields the batches that ``world`` DDP ranks get, step by step
    in rank order: rank 0's first batch, rank 1's first batch, ..., rank 0's second batch, ...

    Lightning gives each DDP rank ``DistributedSampler(shuffle=True, seed=PL_GLOBAL_SEED)`` with ``set_epoch``;
    the same samplers here, with ``trainer.accumulate_grad_batches = world``, make the same optimizer steps in one
    process: DDP's averaged gradient (g0 + g1) / 2 and the accumulated g0 / 2 + g1 / 2 are the same floats
    (halving is exact). Built once: for a one-epoch run. Validation and test loaders are MNIST5k's, in order.
    """

    def __init__(self, world: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.world = world

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        shards = []
        for rank in range(self.world):
            sampler = DistributedSampler(self.train_set, num_replicas=self.world, rank=rank, shuffle=True, seed=seed)
            sampler.set_epoch(epoch)
            order = list(sampler)
            shards.append([order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)])
        batches = [batch for step in zip(*shards) for batch in step]
        return DataLoader(self.train_set, batch_sampler=batches, num_workers=self.num_workers,
                          collate_fn=stack_samples)
