"""The training runtime (genlab.training.runtime) and the one step helper
(genlab.training.step), in one process; tests/test_distributed.py runs them under torchrun."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.errors import UsageError
from genlab.training.runtime import (
    Dist,
    SyncedBatchNorm,
    resolve_bf16,
    step_seed,
    sync_batch_norm,
    training_device,
)
from genlab.training.step import StepHelper


def test_batch_norm_layers_become_synced_ones_sharing_parameters_and_keys():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Sequential(nn.BatchNorm2d(3)))
    before = net.state_dict()
    weight = net[1].weight
    assert sync_batch_norm(net) == 2
    assert isinstance(net[1], SyncedBatchNorm) and isinstance(net[2][0], SyncedBatchNorm)
    assert net[1].weight is weight  # an optimizer built before still holds the right tensors
    assert list(net.state_dict()) == list(before)  # checkpoints load either way
    # alone (no process group) it is plain batch norm, in training and in eval mode
    x = torch.randn(8, 4)
    reference = nn.BatchNorm1d(6)
    reference.load_state_dict(net[1].state_dict())
    h = net[0](x)
    for mode in (True, False):
        net.train(mode), reference.train(mode)
        assert torch.equal(net[1](h), reference(h))
    assert torch.equal(net[1].running_mean, reference.running_mean)


def test_noise_of_the_global_batch_is_shared_out_row_by_row():
    whole = StepHelper({}, dist=Dist())
    whole.generator = torch.Generator().manual_seed(5)
    full = whole.randn(6, 3)
    parts = []
    for rank in range(2):
        helper = StepHelper({}, dist=Dist(rank=rank, world=2))
        helper.generator = torch.Generator().manual_seed(5)
        parts.append(helper.randn(3, 3))
    assert torch.equal(torch.cat(parts), full)
    rank1 = StepHelper({}, dist=Dist(rank=1, world=2))
    rank1.generator = torch.Generator().manual_seed(5)
    everyone = torch.rand((4, 1, 1), generator=torch.Generator().manual_seed(5))
    assert torch.equal(rank1.rand(2, 1, 1), everyone[2:])


def test_update_clips_steps_and_leaves_other_optimizers_alone():
    torch.manual_seed(0)
    a, b = nn.Linear(3, 1), nn.Linear(3, 1)
    opts = {
        "a": torch.optim.SGD(a.parameters(), lr=1.0),
        "b": torch.optim.SGD(b.parameters(), lr=1.0),
    }
    helper = StepHelper(opts, grad_clip=0.5)
    x = torch.randn(4, 3) * 100
    b(x).sum().backward()
    b_grad = b.weight.grad.clone()
    w0 = a.weight.detach().clone()
    helper.update("a", a(x).sum())
    grads = torch.cat([p.grad.flatten() for p in a.parameters()])
    assert grads.norm() == pytest.approx(0.5, rel=1e-5)  # clipped to train.grad_clip
    assert torch.allclose(a.weight.detach(), w0 - a.weight.grad)  # then one SGD step
    assert torch.equal(b.weight.grad, b_grad)  # untouched
    with pytest.raises(KeyError, match="no optimizer 'c'"):
        helper.update("c", a(x).sum())


def test_autocast_only_in_bf16_and_backward_outside_it():
    lin = nn.Linear(4, 4)
    helper = StepHelper({"m": torch.optim.SGD(lin.parameters(), lr=0.1)}, bf16=True)
    with helper.autocast():
        out = lin(torch.randn(2, 4))
        assert out.dtype == torch.bfloat16
        helper.update("m", out.float().pow(2).mean())
    assert lin.weight.grad.dtype == torch.float32 and lin.weight.dtype == torch.float32
    with StepHelper({}).autocast():
        assert lin(torch.randn(2, 4)).dtype == torch.float32


def test_device_bf16_and_seeds():
    assert training_device("cpu") == torch.device("cpu")
    with pytest.raises(UsageError, match="unknown device"):
        training_device("tpu")
    cpu = torch.device("cpu")
    assert resolve_bf16(True, cpu) is True and resolve_bf16(False, cpu) is False
    from genlab.hardware import native_bf16

    assert resolve_bf16("auto", cpu) is native_bf16(cpu)
    seeds = {step_seed(0, s, r) for s in range(50) for r in range(4)}
    assert len(seeds) == 200  # every step of every rank draws from its own seed
