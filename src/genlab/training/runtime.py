"""Where and how a training process runs: its device, its place in a distributed run, the seed of
each step, mixed precision and Ctrl-C. The loop asks this module; it never reads the
environment itself.

Distributed runs are started by PyTorch's own launcher (`torchrun`), which describes the process
group in the environment (WORLD_SIZE, RANK, LOCAL_RANK). Gradients are averaged across
processes by the step helper (genlab.training.step), and batch norm layers become
`SyncedBatchNorm`, which normalizes with the statistics of the global batch, so that N processes
compute what one process computes on the whole batch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from genlab.hardware import native_bf16, resolve_device


@dataclass
class Dist:
    """This process's place in a (possibly single-process) distributed run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process logs and writes files (rank 0)."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def all_reduce_mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of `values` over the processes (in place; `values` itself when alone)."""
        if self.world > 1:
            dist.all_reduce(values)
            values /= self.world
        return values

    def broadcast_(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite `tensors` in every process with rank 0's values."""
        if self.world > 1:
            with torch.no_grad():
                for t in tensors:
                    dist.broadcast(t, src=0)


def local_rank() -> int:
    """This process's index on its machine (torchrun's LOCAL_RANK; 0 when run alone)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def training_device(name: str) -> torch.device:
    """The device a `train.device` setting names for this process (`cuda` = this process's GPU
    under torchrun)."""
    return resolve_device(name, local_rank())


def setup_distributed(device: torch.device) -> Dist:
    """Join the process group that torchrun describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank())


def resolve_bf16(setting: bool | str, device: torch.device) -> bool:
    """Whether to train in bfloat16 autocast: `train.bf16` true/false as given, `auto` where
    `device` computes in bfloat16 natively (genlab.hardware.native_bf16)."""
    if setting == "auto":
        return native_bf16(device)
    return bool(setting)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of every random draw made during optimizer step `step`."""
    return (seed * 1_000_003 + step * 1009 + rank) % (2**63)


@contextlib.contextmanager
def stop_on_sigint() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C into a request to stop at the next step boundary: yields a function
    that says whether one came. A second Ctrl-C interrupts at once, as usual. Outside the main
    thread nothing changes."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: flag["stop"]
    finally:
        signal.signal(signal.SIGINT, previous)


# batch norm over the global batch ---------------------------------------------------------------
class _AllReduceSum(torch.autograd.Function):
    """The sum of a tensor over all processes; its gradient is the sum of theirs."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class SyncedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch of all processes.

    torch.nn.SyncBatchNorm runs on GPUs only; this one runs wherever the process group does
    (gloo on CPUs too). The mean and then the variance are summed across processes with
    autograd-aware all-reduces, so gradients flow through the other processes' examples as
    they would in one process. Alone, in eval mode or without a process group it is plain batch
    norm. Parameters and buffers keep BatchNorm's names: checkpoints load in either."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected a batch of at least 2 dimensions; got {input.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        synced = (
            self.training and dist.is_available() and dist.is_initialized()
        ) and dist.get_world_size() > 1
        if not synced:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]  # every axis but the channels
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.numel() // x.shape[1] * dist.get_world_size()
        mean = _AllReduceSum.apply(x.sum(dims)) / count  # (C,)
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply(centred.pow(2).sum(dims)) / count  # biased, as batch norm
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum
                if momentum is None:  # a cumulative average
                    momentum = 1.0 / float(self.num_batches_tracked)
                unbiased = var * (count / max(count - 1, 1))
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
        return out


def sync_batch_norm(module: nn.Module) -> int:
    """Replace every batch norm layer inside `module` with a SyncedBatchNorm that shares its
    parameters and buffers; returns how many were replaced."""
    replaced = 0
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
            child, SyncedBatchNorm
        ):
            synced = SyncedBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine,
                child.track_running_stats,
            )  # fmt: skip
            if child.affine:
                synced.weight, synced.bias = child.weight, child.bias
            if child.track_running_stats:
                synced.running_mean, synced.running_var = child.running_mean, child.running_var
                synced.num_batches_tracked = child.num_batches_tracked
            synced.train(child.training)
            setattr(module, name, synced)
            replaced += 1
        else:
            replaced += sync_batch_norm(child)
    return replaced
