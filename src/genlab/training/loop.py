"""The one training loop. It never names a model: it calls `model.loss(batch)`, or, for a family
that updates its own weights (adversarial training), `model.train_step(batch, optimizers, step)`
with the optimizers of `model.configure_optimizers(cfg)`; the loop keeps the learning-rate
schedule, seeding, NaN checks, EMA, logging, evaluation (plus the optional `model.health`) and
checkpoints for both kinds.

Reproducibility: the data order of step s comes from a permutation seeded by (seed, epoch) (for
more than PERMUTE_MAX examples, a draw seeded by (seed, s)), and the global random state is
reseeded from (seed, step, rank) before every step, so a run stopped at step k and resumed
computes exactly the steps an uninterrupted run would.

Scale: under `torchrun` the loop wraps the model in DistributedDataParallel, gives each rank its
contiguous share of every global batch, and lets rank 0 alone log and write checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from genlab.data import Dataset
from genlab.errors import GenlabError, RunError, UsageError
from genlab.hardware import native_bf16
from genlab.io.checkpoint import (
    checkpoint_dir,
    load_optimizer_state,
    load_tensors,
    resume_checkpoint,
    save_checkpoint,
)
from genlab.io.journal import truncate_journal
from genlab.models.base import GenerativeModel
from genlab.training.config import TrainConfig
from genlab.training.optim import build_optimizer, lr_at

PERMUTE_MAX = 2**24
"""The most training examples shuffled by a permutation (8 bytes each, 128 MiB at most)."""


class Interrupted(GenlabError):
    """Training stopped by Ctrl-C after saving a checkpoint (exit status 130)."""

    exit_code = 130


@dataclass
class Dist:
    """This process's place in a (possibly single-process) distributed run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup_distributed(device: torch.device) -> Dist:
    """Join the process group that torchrun describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` takes a GPU when there is one; a missing GPU is a clear error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(
                "--device cuda asked for a GPU but PyTorch sees none; use --device cpu"
            )
        if name == "cuda":
            name = f"cuda:{local_rank}"
    elif name != "cpu":
        raise UsageError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of every random draw made during optimizer step `step`."""
    return (seed * 1_000_003 + step * 1009 + rank) % (2**63)


@dataclass
class TrainerState:
    """What the loop needs besides weights to continue exactly: saved as trainer.json."""

    step: int = 0
    best_val: float = math.inf
    best_step: int = -1
    bad_evals: int = 0
    ema_count: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0


class Trainer:
    """Trains one model on one dataset into one run directory."""

    def __init__(
        self,
        model: GenerativeModel,
        data: Dataset,
        cfg: TrainConfig,
        run_dir: Path,
        *,
        total_steps: int,
        quiet: bool = False,
    ) -> None:
        self.cfg, self.data, self.run_dir, self.quiet = cfg, data, Path(run_dir), quiet
        self.device = resolve_device(cfg.device)
        self.dist = setup_distributed(self.device)
        if self.dist.world > 1 and self.device.type == "cuda":
            self.device = torch.device(f"cuda:{self.dist.local_rank}")
        if cfg.batch_size % self.dist.world:
            raise UsageError(
                f"train.batch_size {cfg.batch_size} must divide evenly among "
                f"{self.dist.world} processes"
            )
        self.total_steps = total_steps
        self.n_train = len(data.splits["train"])
        if self.n_train < cfg.batch_size:
            raise UsageError(
                f"train.batch_size {cfg.batch_size} is larger than the {self.n_train} training "
                "examples; lower it with --set train.batch_size=N"
            )
        if len(data.splits["val"]) == 0:
            raise UsageError(
                "the validation split is empty; training evaluates on it (early stopping, the "
                "best checkpoint): set data.val_fraction above 0"
            )
        self.steps_per_epoch = self.n_train // cfg.batch_size
        if cfg.bf16 and self.dist.main and not quiet and not native_bf16(self.device):
            print(
                f"genlab: warning: train.bf16 on a {self.device.type} without native bfloat16 "
                "arithmetic is emulated and slower than float32; consider train.bf16=false",
                file=sys.stderr,
            )
        self.model = model.to(self.device)
        self.net: torch.nn.Module = model
        # a family that updates its own weights (adversarial training) brings its optimizers
        self.custom_step = callable(getattr(model, "train_step", None)) and callable(
            getattr(model, "configure_optimizers", None)
        )
        if self.custom_step and self.dist.world > 1:
            raise UsageError(
                f"'{model.family}' trains with its own train_step, which does not run under "
                "torchrun (DistributedDataParallel) yet; train it in a single process"
            )
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if self.custom_step:
            self.optimizers = dict(model.configure_optimizers(cfg))
        else:
            self.optimizer = build_optimizer(model, cfg)
            self.optimizers = {"model": self.optimizer}
        # each optimizer's own peak rates, which the schedule scales (train_step families)
        self.base_lrs = {
            name: [group["lr"] for group in opt.param_groups]
            for name, opt in self.optimizers.items()
        }
        self.ema: AveragedModel | None = None
        if cfg.ema_decay > 0:
            self.ema = AveragedModel(
                model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
            )
        self.state = TrainerState()
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    # data -----------------------------------------------------------------------------------
    def batch_indices(self, step: int) -> torch.Tensor:
        """This rank's example indices for optimizer step `step`: each epoch visits the training
        examples in a fresh random order; past PERMUTE_MAX examples (a language model's every
        window start in a corpus larger than memory), each step draws its batch at random."""
        b = self.cfg.batch_size
        if self.n_train > PERMUTE_MAX:
            g = torch.Generator().manual_seed(step_seed(self.cfg.seed, step, rank=7907))
            idx = torch.randint(self.n_train, (b,), generator=g)
        else:
            epoch, i = divmod(step, self.steps_per_epoch)
            if epoch != self._perm_epoch:
                g = torch.Generator().manual_seed(step_seed(self.cfg.seed, epoch, rank=7919))
                self._perm, self._perm_epoch = torch.randperm(self.n_train, generator=g), epoch
            idx = self._perm[i * b : (i + 1) * b]
        share = b // self.dist.world
        return idx[self.dist.rank * share : (self.dist.rank + 1) * share]

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def autocast(self):
        if self.cfg.bf16:  # matrix products in bfloat16; weights and optimizer stay float32
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # state ----------------------------------------------------------------------------------
    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights used for evaluation and sampling: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.model

    def save(self, best: bool = False) -> None:
        if self.dist.main:
            s = self.state
            if self.ema is not None:
                s.ema_count = int(self.ema.n_averaged.item())
            save_checkpoint(
                self.run_dir,
                s.step,
                self.model,
                ema=self.ema.module if self.ema is not None else None,
                optimizer=self.optimizers if self.custom_step else self.optimizer,
                trainer_state={k: v for k, v in vars(s).items() if k != "step"},
                best=best,
                keep_last=self.cfg.keep_last,
            )
        self.dist.barrier()

    def resume(self) -> None:
        """Continue from the latest checkpoint of the run directory (or, when it is damaged, the
        newest intact one)."""
        ckpt, note = resume_checkpoint(self.run_dir)
        if ckpt is None:
            raise UsageError(f"--resume: {self.run_dir} holds no checkpoint to resume from")
        if note and self.dist.main:
            print(f"genlab: {note}", file=sys.stderr)
        self.model.load_state_dict(load_tensors(ckpt / "model.safetensors"))
        if self.ema is not None:
            if (ckpt / "ema.safetensors").exists():
                self.ema.module.load_state_dict(load_tensors(ckpt / "ema.safetensors"))
            else:  # EMA switched on for the resumed part: start it from the current weights
                self.ema.module.load_state_dict(self.model.state_dict())
        saved = load_optimizer_state(ckpt / "optimizer.pt")
        if self.custom_step:  # one state per named optimizer
            for name, opt in self.optimizers.items():
                opt.load_state_dict(saved[name])
        else:
            self.optimizer.load_state_dict(saved)
        raw = json.loads((ckpt / "trainer.json").read_text())
        self.state = TrainerState(**raw)
        if self.ema is not None:
            self.ema.n_averaged.fill_(self.state.ema_count)
        if self.dist.main:  # drop log lines written after this checkpoint by the stopped run
            truncate_journal(self.run_dir / "metrics.jsonl", self.state.step)

    def log(self, record: dict[str, Any]) -> None:
        if self.dist.main:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    # evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss terms over the validation split, with fixed randomness."""
        model = self.eval_model
        was_training = model.training
        model.eval()
        split = self.data.splits["val"]
        b = self.cfg.batch_size
        n_batches = math.ceil(len(split) / b)
        if self.cfg.eval_batches:
            n_batches = min(n_batches, self.cfg.eval_batches)
        sums: dict[str, float] = {}
        seen = 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(step_seed(self.cfg.seed, 0, rank=104729))
            for i in range(n_batches):
                idx = torch.arange(i * b, min((i + 1) * b, len(split)))
                out = model.loss(self.to_device(self.data.batch("val", idx)))  # in float32
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
                seen += len(idx)
        model.train(was_training)
        return {k: v / seen for k, v in sums.items()}

    @torch.no_grad()
    def health(self, step: int, val: dict[str, float]) -> dict[str, Any]:
        """The model's own training-health figures at an evaluation (when it has `health`);
        its warnings are printed as warning lines and kept in metrics.jsonl."""
        model = self.eval_model
        if not hasattr(model, "health"):
            return {}
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(devices=[]):
            g = torch.Generator(device=self.device)
            g.manual_seed(step_seed(self.cfg.seed, 0, rank=15485863))
            out = dict(model.health(val, generator=g))
        model.train(was_training)
        if self.dist.main:
            for warning in out.get("warnings", []):
                tqdm.write(f"genlab: warning at step {step}: {warning}", file=sys.stderr)
        return out

    # the loop -------------------------------------------------------------------------------
    def nonfinite(self, name: str, value: float, step: int) -> RunError:
        """The error that stops training when a logged value becomes NaN or infinite."""
        last = checkpoint_dir(self.run_dir, "latest")
        kept = f"the last good checkpoint ({last.name}) is kept" if last else "no checkpoint"
        return RunError(
            f"{name} became {value} at step {step + 1}: training stopped, {kept}; "
            "lower train.lr or set train.grad_clip, then --resume or start again"
        )

    def custom_train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """A family's own update (`train_step`): the loop sets each optimizer's learning rate
        (its own peak rate shaped by the schedule), checks every returned value and keeps the
        EMA; the family does its backward passes and optimizer steps."""
        scale = lr_at(step, self.cfg, self.total_steps) / self.cfg.lr
        rates = {}
        for name, opt in self.optimizers.items():
            for group, base in zip(opt.param_groups, self.base_lrs[name], strict=True):
                group["lr"] = base * scale
            rates[f"lr_{name}"] = opt.param_groups[0]["lr"]
        with self.autocast():
            out = self.model.train_step(batch, self.optimizers, step)
        logged = {k: float(v) for k, v in out.items()}
        for k, v in logged.items():
            if not math.isfinite(v):
                raise self.nonfinite(k, v, step)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return logged | rates

    def train_step(self, step: int) -> dict[str, float]:
        torch.manual_seed(step_seed(self.cfg.seed, step, self.dist.rank))
        batch = self.to_device(self.data.batch("train", self.batch_indices(step)))
        if self.custom_step:
            return self.custom_train_step(batch, step)
        with self.autocast():
            out = self.net(batch)
        loss = out["loss"]
        # the logged values are those of the global batch: every rank's mean over its share
        values = torch.stack([v.detach().float() for v in out.values()])
        if self.dist.world > 1:  # (and every rank sees a NaN of any rank, and stops with it)
            dist.all_reduce(values)
            values /= self.dist.world
        logged = dict(zip(out, values.tolist(), strict=True))
        if not math.isfinite(logged["loss"]):
            raise self.nonfinite("loss", logged["loss"], step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        lr = lr_at(step, self.cfg, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return logged | {"lr": lr}

    def fit(self) -> TrainerState:
        """Train up to `total_steps` (or early stopping); returns the final state."""
        s, cfg = self.state, self.cfg
        self.model.train()
        bar = tqdm(
            total=self.total_steps,
            initial=s.step,
            disable=self.quiet or not self.dist.main,
            unit="step",
            dynamic_ncols=True,
        )
        last_saved, t_log, examples = s.step, time.perf_counter(), 0
        with _stop_on_sigint() as stop_requested:
            while s.step < self.total_steps:
                if stop_requested():
                    bar.close()
                    if s.step > last_saved:
                        self.save()
                    raise Interrupted(
                        f"interrupted at step {s.step}; checkpoint saved in {self.run_dir}; "
                        "continue with the same command and --resume"
                    )
                metrics = self.train_step(s.step)
                s.step += 1
                examples += cfg.batch_size
                for k, v in metrics.items():
                    s.sums[k] = s.sums.get(k, 0.0) + v
                s.count += 1
                bar.update(1)
                if s.step % cfg.log_every == 0 or s.step == self.total_steps:
                    now = time.perf_counter()
                    rate = examples / max(now - t_log, 1e-9)
                    record = {k: v / s.count for k, v in s.sums.items()}
                    self.log({"step": s.step, "split": "train", **record, "examples_per_s": rate})
                    bar.set_postfix(loss=f"{record['loss']:.4g}", ex_s=f"{rate:.0f}")
                    s.sums, s.count, t_log, examples = {}, 0, now, 0
                stop = False
                if s.step % cfg.eval_every == 0 or s.step == self.total_steps:
                    val = self.evaluate()
                    health = self.health(s.step, val)
                    # (an adversarial loss does not rank models: the latest counts as best)
                    improved = val["loss"] < s.best_val or not self.model.validation_loss_ranks
                    if improved:
                        s.best_val, s.best_step, s.bad_evals = val["loss"], s.step, 0
                    else:
                        s.bad_evals += 1
                    stop = bool(cfg.patience) and s.bad_evals >= cfg.patience
                    self.log({"step": s.step, "split": "val", **val, **health, "early_stop": stop})
                    self.save(best=improved)
                    last_saved = s.step
                    if stop:
                        bar.write(
                            f"early stopping at step {s.step}: validation loss has not improved "
                            f"for {s.bad_evals} evaluations (best {s.best_val:.4g} at step "
                            f"{s.best_step})"
                        )
                        break
                if s.step % cfg.checkpoint_every == 0 and last_saved != s.step:
                    self.save()
                    last_saved = s.step
        bar.close()
        return s


@contextlib.contextmanager
def _stop_on_sigint():
    """Turn the first Ctrl-C into a request to stop at the next step boundary.

    A second Ctrl-C interrupts at once, as usual. Outside the main thread nothing changes.
    """
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: flag["stop"]
    finally:
        signal.signal(signal.SIGINT, previous)
