"""The one step path: `StepHelper` turns a loss into an optimizer step, the same way for the
loop's default step and for a family's own `train_step` (adversarial training).

`helper.update(name, loss)` clears the gradients of optimizer `name`'s parameters, runs the
backward pass (outside autocast), averages the gradients across processes (one all-reduce),
clips their norm to `train.grad_clip` and steps the optimizer. `helper.autocast()` is the bf16
autocast context of the run (a no-op in float32); the loop runs every training forward inside
it. `helper.randn`/`helper.rand` draw a batch's noise so that N processes draw, row for row,
the noise one process draws for the whole batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.optim import Optimizer

from genlab.training.runtime import Dist


class StepHelper:
    """Backward, gradient all-reduce, clipping, optimizer steps and bf16 autocast.

    `optimizers`: the run's optimizers by name; `grad_clip`: the global gradient norm each
    update is clipped to (0 = no clipping), per optimizer; `bf16`: autocast to bfloat16 on
    `device_type`; `dist`: this process's place in the run; `model`: when given, each
    optimizer's parameters are handled in the model's parameter order.
    """

    def __init__(
        self,
        optimizers: dict[str, Optimizer],
        *,
        grad_clip: float = 0.0,
        bf16: bool = False,
        device_type: str = "cpu",
        dist: Dist | None = None,
        model: torch.nn.Module | None = None,
    ) -> None:
        self.optimizers = dict(optimizers)
        self.grad_clip = grad_clip
        self.bf16 = bf16
        self.device_type = device_type
        self.dist = dist or Dist()
        self.generator: torch.Generator | None = None
        self._params: dict[str, list[torch.nn.Parameter]] = {}
        order = list(model.parameters()) if model is not None else []
        for name, opt in self.optimizers.items():
            mine = [p for group in opt.param_groups for p in group["params"]]
            if order:
                ids = {id(p) for p in mine}
                mine = [p for p in order if id(p) in ids]
            self._params[name] = mine

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast for a forward pass when the run trains in bf16 (weights and
        optimizer states stay float32)."""
        if self.bf16:
            return torch.autocast(self.device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _no_autocast(self) -> Iterator[None]:
        if self.bf16:
            with torch.autocast(self.device_type, enabled=False):
                yield
        else:
            yield

    def update(self, name: str, loss: torch.Tensor) -> None:
        """One step of optimizer `name` down `loss`: zero its gradients, backward, average them
        across processes, clip, step. Other optimizers' parameters keep their gradients."""
        if name not in self.optimizers:
            raise KeyError(f"no optimizer '{name}'; the run has {', '.join(self.optimizers)}")
        opt, params = self.optimizers[name], self._params[name]
        opt.zero_grad(set_to_none=True)
        with self._no_autocast():
            loss.backward()
        if self.dist.world > 1:
            self._all_reduce(params)
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        opt.step()

    def _all_reduce(self, params: list[torch.nn.Parameter]) -> None:
        """Average the gradients of `params` over the processes in one all-reduce of the same
        size in every process: a parameter without a gradient here (unused in this process's
        forward) contributes zeros, and a flag per parameter says which processes had one, so
        a parameter that none of them used keeps no gradient (the optimizer skips it)."""
        if not params:
            return
        parts = [
            p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()) for p in params
        ]
        flags = torch.tensor(
            [float(p.grad is not None) for p in params], device=parts[0].device
        ).to(parts[0].dtype)
        flat = torch.cat([*parts, flags])  # one all-reduce for all of them
        self.dist.all_reduce_mean(flat)
        *means, used = flat.split([*(p.numel() for p in params), len(params)])
        for p, mean, anyone in zip(params, means, used.tolist(), strict=True):
            if p.grad is not None:
                p.grad.copy_(mean.view_as(p.grad))
            elif anyone > 0:  # used by another process only: its share of the mean
                p.grad = mean.view_as(p).clone()

    # noise of the global batch --------------------------------------------------------------
    def _draw(self, fn, n: int, shape: tuple[int, ...], device: torch.device | str | None):
        world, rank = self.dist.world, self.dist.rank
        out = fn((n * world, *shape), generator=self.generator, device=device)
        return out[rank * n : (rank + 1) * n] if world > 1 else out

    def randn(self, n: int, *shape: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Standard normal noise (n, *shape) for this process's n examples: its rows of the
        draw for the global batch, so the run's noise does not depend on the process count."""
        return self._draw(torch.randn, n, shape, device)

    def rand(self, n: int, *shape: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Uniform [0, 1) noise (n, *shape) for this process's n examples (as `randn`)."""
        return self._draw(torch.rand, n, shape, device)
