"""The one training loop. It never names a model: it calls `model.loss(batch)` and steps one
optimizer, or, for a family that updates its own weights (adversarial training), calls
`model.train_step(batch, helper, step)` with the optimizers of `model.configure_optimizers(cfg)`.
Both paths go through one `StepHelper` (genlab.training.step): backward, gradient all-reduce,
clipping, optimizer steps and bf16 autocast. The loop keeps the learning-rate schedule, seeding,
NaN checks, EMA, logging, evaluation (plus the optional `model.health`), the selection of the
best checkpoint (`model.selection`), early stopping and checkpoints. When the health figures say
`collapsed` and `train.on_collapse` is `restore`, the loop rolls back to the newest checkpoint of
a healthy evaluation and lowers every learning rate (`train.restore_lr_factor`).

Reproducibility: the data order of step s comes from a permutation seeded by (seed, epoch) (for
more than PERMUTE_MAX examples, a draw seeded by (seed, s)), and the global random state is
reseeded from (seed, step, rank) before every step, so a run stopped at step k and resumed
computes exactly the steps an uninterrupted run would.

Scale: under `torchrun` (genlab.training.runtime) each rank takes its contiguous share of every
global batch, gradients are averaged across ranks, batch norm uses the global batch's statistics,
and rank 0 alone logs and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from genlab.data import Dataset
from genlab.errors import GenlabError, RunError, UsageError
from genlab.hardware import native_bf16
from genlab.io.checkpoint import (
    checkpoint_dir,
    checkpoint_step,
    list_checkpoints,
    load_optimizer_state,
    load_tensors,
    resume_checkpoint,
    save_checkpoint,
)
from genlab.io.journal import read_journal, truncate_journal
from genlab.models.base import GenerativeModel, ReportsHealth, Selection, TrainsItself
from genlab.training.config import TrainConfig
from genlab.training.ema import ema_model
from genlab.training.optim import build_optimizer, lr_at
from genlab.training.runtime import (
    Dist,
    resolve_bf16,
    setup_distributed,
    step_seed,
    stop_on_sigint,
    sync_batch_norm,
    training_device,
)
from genlab.training.step import StepHelper

__all__ = ["Dist", "Interrupted", "Trainer", "TrainerState", "step_seed"]

PERMUTE_MAX = 2**24
"""The most training examples shuffled by a permutation (8 bytes each, 128 MiB at most)."""


class Interrupted(GenlabError):
    """Training stopped by Ctrl-C after saving a checkpoint (exit status 130)."""

    exit_code = 130


@dataclass
class TrainerState:
    """What the loop needs besides weights to continue exactly, and what a summary of the run
    reports: saved as trainer.json."""

    step: int = 0
    best_val: float = math.inf
    """The selection figure of the best checkpoint (for mode "last": of the latest one)."""
    best_step: int = -1
    bad_evals: int = 0
    ema_count: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    best_key: str = "loss"
    """The validation figure that ranks checkpoints (the family's `selection.key`)."""
    best_mode: str = "min"
    """"min", "max", or "last" (the latest checkpoint is the best)."""
    last_val: float = math.nan
    """The selection figure at the latest evaluation."""
    good_step: int = -1
    """The step of the newest checkpoint saved at an evaluation that reported no collapse."""
    lr_scale: float = 1.0
    """The factor on every learning rate left by collapse restores (train.on_collapse)."""
    restores: int = 0
    """How many times the run was rolled back after a collapse."""

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainerState:
        """The state saved in a trainer.json (fields it lacks keep their defaults)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def improves(selection: Selection, value: float, best: float) -> bool:
    """Whether a validation figure `value` beats the best so far under `selection`."""
    if selection.mode == "last":
        return True
    return value < best if selection.mode == "min" else value > best


class Trainer:
    """Trains one model on one dataset into one run directory.

    `judge`: the frozen classifier handed to the model's `health` hook (genlab.judges), when
    the model asks for one (`model.judge_steps()`); it may also be set after construction.
    `distributed=False` trains in this process alone, also under torchrun."""

    def __init__(
        self,
        model: GenerativeModel,
        data: Dataset,
        cfg: TrainConfig,
        run_dir: Path,
        *,
        total_steps: int,
        quiet: bool = False,
        judge: torch.nn.Module | None = None,
        distributed: bool = True,
    ) -> None:
        self.cfg, self.data, self.run_dir, self.quiet = cfg, data, Path(run_dir), quiet
        self.judge = judge
        self.elapsed_before = 0.0
        """Training seconds of the run before this process (read back on resume)."""
        self.clock = time.perf_counter()
        self.log_hooks: list[Callable[[dict[str, Any]], None]] = []
        """Called with every record `log` writes to metrics.jsonl (experiment trackers)."""
        self.device = training_device(cfg.device)
        self.dist: Dist = setup_distributed(self.device) if distributed else Dist()
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
        self.bf16 = resolve_bf16(cfg.bf16, self.device)
        if self.bf16 and self.dist.main and not quiet and not native_bf16(self.device):
            print(
                f"genlab: warning: train.bf16 on a {self.device.type} without native bfloat16 "
                "arithmetic is emulated and slower than float32; consider train.bf16=auto",
                file=sys.stderr,
            )
        self.selection: Selection = model.selection
        if self.selection.mode not in ("min", "max", "last"):
            raise RunError(
                f"'{model.family}' declares selection mode '{self.selection.mode}'; "
                "use min, max or last"
            )
        if self.dist.world > 1:
            sync_batch_norm(model)  # statistics of the global batch, before optimizers and EMA
        self.model = model.to(self.device)
        if self.dist.world > 1:  # every rank starts from rank 0's weights
            self.dist.broadcast_(list(model.state_dict().values()))
        # a family that updates its own weights (adversarial training) brings its optimizers
        self.custom_step = isinstance(model, TrainsItself)
        if self.custom_step:
            self.optimizers = dict(model.configure_optimizers(cfg))
        else:
            self.optimizers = {"model": build_optimizer(model, cfg)}
        self.helper = StepHelper(
            self.optimizers,
            grad_clip=cfg.grad_clip,
            bf16=self.bf16,
            device_type=self.device.type,
            dist=self.dist,
            model=model,
        )
        # each optimizer's own peak rates, which the schedule scales
        self.base_lrs = {
            name: [group["lr"] for group in opt.param_groups]
            for name, opt in self.optimizers.items()
        }
        self.ema: AveragedModel | None = None
        if cfg.ema_decay > 0:
            self.ema = ema_model(model, cfg.ema_decay)  # with a warm-up (genlab.training.ema)
        sel = self.selection
        self.state = TrainerState(
            best_val=-math.inf if sel.mode == "max" else math.inf,
            best_key=sel.key,
            best_mode=sel.mode,
        )
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
                optimizer=self.optimizers,
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
        raw = self.load_weights(ckpt)
        self.state = TrainerState.from_dict(raw)
        s, sel = self.state, self.selection
        if (s.best_key, s.best_mode) != (sel.key, sel.mode) and "best_key" in raw:
            raise RunError(
                f"--resume: {self.run_dir} ranked checkpoints by {s.best_mode} {s.best_key}, "
                f"this genlab by {sel.mode} {sel.key}; start a new run"
            )
        s.best_key, s.best_mode = sel.key, sel.mode
        if self.ema is not None:
            self.ema.n_averaged.fill_(s.ema_count)
        if self.dist.main:  # drop log lines written after this checkpoint by the stopped run
            path = self.run_dir / "metrics.jsonl"
            if truncate_journal(path, s.step):
                print(
                    f"genlab: warning: dropped the torn last line of {path} (the run was killed "
                    "while writing it)",
                    file=sys.stderr,
                )
            times = [r["elapsed_s"] for r in read_journal(path) if "elapsed_s" in r]
            self.elapsed_before = float(times[-1]) if times else 0.0
        self.dist.barrier()

    def load_weights(self, ckpt: Path) -> dict[str, Any]:
        """Load a checkpoint's weights, EMA and optimizer states; returns its trainer.json."""
        self.model.load_state_dict(load_tensors(ckpt / "model.safetensors"))
        if self.ema is not None:
            if (ckpt / "ema.safetensors").exists():
                self.ema.module.load_state_dict(load_tensors(ckpt / "ema.safetensors"))
            else:  # EMA switched on for the resumed part: start it from the current weights
                self.ema.module.load_state_dict(self.model.state_dict())
        saved = load_optimizer_state(ckpt / "optimizer.pt")
        for name, opt in self.optimizers.items():  # one state per named optimizer
            if name not in saved:
                raise RunError(
                    f"{ckpt} holds no state of optimizer '{name}' (it has "
                    f"{', '.join(saved) or 'none'}); start a new run"
                )
            opt.load_state_dict(saved[name])
        return json.loads((ckpt / "trainer.json").read_text())

    def restore_after_collapse(self) -> dict[str, Any]:
        """train.on_collapse=restore: roll back to the newest kept checkpoint of a healthy
        evaluation (none yet: keep the weights) and multiply the learning rates by
        train.restore_lr_factor; prints one line, returns the figures to log."""
        s, factor = self.state, self.cfg.restore_lr_factor
        good = [p for p in list_checkpoints(self.run_dir) if checkpoint_step(p) <= s.good_step]
        s.lr_scale *= factor
        s.restores += 1
        out: dict[str, Any] = {"restored_from": -1, "lr_scale": s.lr_scale}
        if good:
            raw = self.load_weights(good[-1])
            if self.ema is not None:
                self.ema.n_averaged.fill_(raw.get("ema_count", 0))
            out["restored_from"] = checkpoint_step(good[-1])
            what = f"restored the weights of step {out['restored_from']}"
        else:
            what = "no checkpoint of a healthy evaluation to restore yet, weights kept"
        if self.dist.main:
            tqdm.write(
                f"genlab: collapse at step {s.step} (train.on_collapse=restore): {what}; "
                f"learning rates x{factor:g} (now x{s.lr_scale:g} of the configured ones)",
                file=sys.stderr,
            )
        return out

    def log(self, record: dict[str, Any]) -> None:
        """Append a record to metrics.jsonl with `elapsed_s`, the run's training seconds so far
        (summed over resumed parts)."""
        if self.dist.main:
            elapsed = self.elapsed_before + time.perf_counter() - self.clock
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps({**record, "elapsed_s": round(elapsed, 3)}) + "\n")
            for hook in self.log_hooks:
                hook(record)

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
        if not isinstance(model, ReportsHealth):
            return {}
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(devices=[]):
            g = torch.Generator(device=self.device)
            g.manual_seed(step_seed(self.cfg.seed, 0, rank=15485863))
            out = dict(model.health(val, generator=g, judge=self.judge))
        model.train(was_training)
        if self.dist.main:
            for warning in out.get("warnings", []):
                tqdm.write(f"genlab: warning at step {step}: {warning}", file=sys.stderr)
        return out

    def collapsed(self, health: dict[str, Any]) -> bool:
        """Whether an evaluation's health figures report a collapse, in any process."""
        flag = torch.tensor([1.0 if health.get("collapsed") else 0.0], device=self.device)
        return bool(self.dist.all_reduce_mean(flag).item() > 0)

    # the step -------------------------------------------------------------------------------
    def nonfinite(self, name: str, value: float, step: int) -> RunError:
        """The error that stops training when a logged value becomes NaN or infinite."""
        last = checkpoint_dir(self.run_dir, "latest")
        kept = f"the last good checkpoint ({last.name}) is kept" if last else "no checkpoint"
        return RunError(
            f"{name} became {value} at step {step + 1}: training stopped, {kept}; "
            "lower train.lr or set train.grad_clip, then --resume or start again"
        )

    def set_learning_rates(self, step: int) -> dict[str, float]:
        """Give every optimizer group its rate for `step`: its own peak rate shaped by the
        schedule; returns the logged rates ("lr", or "lr_NAME" for several optimizers)."""
        lr = lr_at(step, self.cfg, self.total_steps)
        rates = {}
        for name, opt in self.optimizers.items():
            for group, base in zip(opt.param_groups, self.base_lrs[name], strict=True):
                # (a group at the configured peak rate gets the schedule's rate exactly)
                group["lr"] = lr if base == self.cfg.lr else base * (lr / self.cfg.lr)
                group["lr"] *= self.state.lr_scale  # lowered by collapse restores
            rates[f"lr_{name}"] = opt.param_groups[0]["lr"]
        return {"lr": rates.popitem()[1]} if len(rates) == 1 else rates

    def _global_mean(self, out: dict[str, Any]) -> dict[str, float]:
        """The logged values of the global batch: every rank's value averaged over ranks (so
        that every rank also sees a NaN of any rank, and stops with it)."""
        values = torch.stack(
            [
                torch.as_tensor(v, device=self.device).detach().float().reshape(())
                for v in out.values()
            ]
        )
        return dict(zip(out, self.dist.all_reduce_mean(values).tolist(), strict=True))

    def _check_finite(self, logged: dict[str, float], step: int) -> None:
        for k, v in logged.items():
            if not math.isfinite(v):
                raise self.nonfinite(k, v, step)

    def train_step(self, step: int) -> dict[str, float]:
        """Optimizer step `step` (0-based): the default step (`loss`, one optimizer) or the
        family's own `train_step`, both through the step helper; returns the logged values."""
        torch.manual_seed(step_seed(self.cfg.seed, step, self.dist.rank))
        helper = self.helper
        if self.dist.world > 1:  # noise of the global batch, the same in every rank
            helper.generator = torch.Generator(device=self.device)
            helper.generator.manual_seed(step_seed(self.cfg.seed, step))
        batch = self.to_device(self.data.batch("train", self.batch_indices(step)))
        rates = self.set_learning_rates(step)
        with helper.autocast():
            out = (
                self.model.train_step(batch, helper, step)
                if self.custom_step
                else self.model(batch)
            )
        logged = self._global_mean(out)
        self._check_finite(logged, step)
        if not self.custom_step:
            helper.update("model", out["loss"])
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return logged | rates

    # the loop -------------------------------------------------------------------------------
    def select(self, s: TrainerState, figures: dict[str, Any]) -> bool:
        """Update the best checkpoint and early-stopping count from an evaluation's figures
        (validation losses and health figures); returns whether this checkpoint is the best."""
        sel = self.selection
        value = figures.get(sel.key)
        if value is None and sel.mode != "last":
            raise RunError(
                f"'{self.model.family}' ranks checkpoints by '{sel.key}', which its evaluation "
                f"does not report (it has {', '.join(sorted(figures))})"
            )
        value = math.nan if value is None else float(value)
        s.last_val = value
        if improves(sel, value, s.best_val):
            s.best_val, s.best_step, s.bad_evals = value, s.step, 0
            return True
        s.bad_evals += 1
        return False

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
        self.clock = t_log
        with stop_on_sigint() as stop_requested:
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
                    if self.collapsed(health) and cfg.on_collapse == "restore":
                        restored = self.restore_after_collapse()
                        self.log({"step": s.step, "split": "val", **val, **health, **restored})
                        last_saved = s.step  # the collapsed weights are not checkpointed
                        continue
                    s.good_step = s.step
                    improved = self.select(s, {**val, **health})
                    stop = bool(cfg.patience) and s.bad_evals >= cfg.patience
                    self.log({"step": s.step, "split": "val", **val, **health, "early_stop": stop})
                    self.save(best=improved)
                    last_saved = s.step
                    if stop:
                        bar.write(
                            f"early stopping at step {s.step}: validation {s.best_key} has not "
                            f"improved for {s.bad_evals} evaluations (best {s.best_val:.4g} at "
                            f"step {s.best_step})"
                        )
                        break
                if s.step % cfg.checkpoint_every == 0 and last_saved != s.step:
                    self.save()
                    last_saved = s.step
        bar.close()
        return s
