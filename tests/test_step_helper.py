"""StepHelper's gradient all-reduce when processes leave different parameters unused: every
process must call the same collective with the same size, or the run hangs."""

from __future__ import annotations

import torch

from genlab.training.runtime import Dist
from genlab.training.step import StepHelper


class TwoRanks(Dist):
    """Rank `rank` of two, whose all-reduce averages with the other rank's buffer (`other`,
    recorded when that rank ran first) and records every buffer it is given."""

    def __init__(self, rank: int, other: torch.Tensor | None = None) -> None:
        super().__init__(rank=rank, world=2)
        self.other = other
        self.seen: list[torch.Tensor] = []

    def all_reduce_mean(self, values: torch.Tensor) -> torch.Tensor:
        self.seen.append(values.clone())
        if self.other is not None:
            values.add_(self.other).div_(2)
        return values


def step(rank: int, use: list[int], other: torch.Tensor | None = None):
    """One SGD step (lr 1) of three scalar weights, of which this rank's loss uses `use`."""
    w = [torch.nn.Parameter(torch.tensor(float(i + 1))) for i in range(3)]
    opt = torch.optim.SGD(w, lr=1.0)
    dist = TwoRanks(rank, other)
    helper = StepHelper({"model": opt}, dist=dist)
    helper.update("model", sum(3.0 * w[i] for i in use))  # each used weight's gradient is 3
    return w, dist


def test_ranks_with_different_unused_parameters_reduce_buffers_of_one_size():
    _, rank1 = step(1, use=[0, 1])  # weight 1 used here only, weight 2 nowhere
    w, rank0 = step(0, use=[0], other=rank1.seen[0])
    assert len(rank0.seen) == len(rank1.seen) == 1  # one collective each
    assert rank0.seen[0].shape == rank1.seen[0].shape
    assert w[0].grad.item() == 3.0 and w[0].item() == 1.0 - 3.0  # used by both: mean 3
    assert w[1].grad.item() == 1.5 and w[1].item() == 2.0 - 1.5  # by rank 1 only: (0 + 3) / 2
    assert w[2].grad is None and w[2].item() == 3.0  # by nobody: no gradient, not stepped


def test_one_process_calls_no_collective():
    w = torch.nn.Parameter(torch.tensor(2.0))
    dist = TwoRanks(0)
    dist.world = 1
    StepHelper({"m": torch.optim.SGD([w], lr=1.0)}, dist=dist).update("m", 2.0 * w)
    assert dist.seen == [] and w.item() == 0.0
