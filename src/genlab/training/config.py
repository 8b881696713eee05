"""The settings of the training loop (the `train.` group of every run configuration)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from genlab.errors import UsageError


@dataclass
class TrainConfig:
    steps: int = 2000
    """Total optimizer steps of the run (`--steps`); a resumed run continues up to this count."""
    epochs: float = 0.0
    """If > 0, overrides steps with ceil(epochs * (train examples // batch_size)) (`--epochs`)."""
    batch_size: int = 64
    """Global batch size (split across processes under torchrun)."""
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    """adamw (decoupled weight decay on matrices only), adam, or sgd with momentum."""
    lr: float = 1e-3
    """Peak learning rate."""
    weight_decay: float = 0.0
    """Weight decay, applied only to parameters with 2 or more dimensions."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """Adam/AdamW betas."""
    momentum: float = 0.9
    """SGD momentum."""
    warmup_steps: int = 0
    """Linear learning-rate warm-up from 0 over this many steps."""
    schedule: Literal["cosine", "constant"] = "cosine"
    """After warm-up: cosine decay to lr * min_lr_ratio at the last step, or constant."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of lr (cosine schedule)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value; 0 disables."""
    ema_decay: float = 0.0
    """If > 0, keep an exponential moving average of the weights with this decay, warmed up
    as min(decay, (1 + n) / (10 + n)) after n steps; sampling and evaluation then use the
    averaged weights."""
    eval_every: int = 200
    """Evaluate on the validation split every this many steps (and at the end)."""
    eval_batches: int = 0
    """Validation batches per evaluation; 0 = the whole validation split."""
    patience: int = 0
    """Early stopping: stop after this many evaluations with no better validation loss; 0 = off."""
    checkpoint_every: int = 500
    """Write the latest checkpoint every this many steps (also at every evaluation and the end)."""
    keep_last: int = 3
    """Keep the newest this many checkpoints (besides the best); older ones are removed."""
    log_every: int = 20
    """Append training metrics to metrics.jsonl every this many steps."""
    seed: int = 0
    """Seed of initialization, data order and every random draw in training (`--seed`)."""
    device: str = "auto"
    """auto (a GPU when there is one), cpu, cuda or cuda:N (`--device`)."""
    bf16: bool | Literal["auto"] = False
    """Mixed precision: training steps' matrix products in bfloat16 (autocast) for every family,
    including those with their own train_step; weights, optimizer and validation in float32.
    `auto` turns it on where the device computes in bfloat16 natively (GPUs; CPUs with
    AVX512-BF16 or AMX), decided when training starts; elsewhere bfloat16 is emulated and
    slower than float32."""
    on_collapse: Literal["warn", "restore"] = "warn"
    """What an evaluation whose health check reports a collapse (`collapsed` in the model's
    health figures, e.g. a GAN's mode collapse) does: `warn` prints the model's warning;
    `restore` also rolls the weights, EMA and optimizer states back to the newest checkpoint
    saved at a healthy evaluation and multiplies every learning rate by `restore_lr_factor`
    (again at each further collapse); the step count goes on, so the run's budget is kept."""
    restore_lr_factor: float = 0.5
    """on_collapse=restore: the factor each restore applies to the learning rates."""
    freeze_layers: int = 0
    """Fine-tuning: freeze the embeddings and the first k blocks/layers (families with freeze())."""
    pretrained_lr_scale: float = 1.0
    """Fine-tuning (`--init-from`): the learning rate of the copied (pretrained) parameters is
    train.lr times this; the layers that start fresh keep train.lr."""
    preview_samples: int = 64
    """Images sampled into samples/step-N.png when training ends (other data kinds write their
    own few previews); 0 = no preview, for models that sample slowly (e.g. PixelCNN++)."""

    def validate(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "eval_every",
            "checkpoint_every",
            "keep_last",
            "log_every",
        ):
            if getattr(self, name) < 1:
                raise UsageError(f"train.{name} must be at least 1; got {getattr(self, name)}")
        if self.pretrained_lr_scale < 0:
            raise UsageError(
                f"train.pretrained_lr_scale must be 0 or more; got {self.pretrained_lr_scale}"
            )
        if self.lr <= 0:
            raise UsageError(f"train.lr must be greater than 0; got {self.lr}")
        for name in ("epochs", "grad_clip", "patience", "freeze_layers", "preview_samples"):
            if getattr(self, name) < 0:
                raise UsageError(f"train.{name} must be 0 or more; got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise UsageError(f"train.ema_decay must be in [0, 1); got {self.ema_decay}")
        if not 0 < self.restore_lr_factor <= 1:
            raise UsageError(
                f"train.restore_lr_factor must be in (0, 1]; got {self.restore_lr_factor}"
            )
        if len(self.betas) != 2:
            raise UsageError(f"train.betas takes two numbers like [0.9,0.999]; got {self.betas}")
