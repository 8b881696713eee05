"""Optimizers and the learning-rate schedule, as plain functions of the config and the step."""

from __future__ import annotations

import math

import torch

from genlab.training.config import TrainConfig


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW/Adam/SGD over the trainable parameters; weight decay on matrices only. Parameters
    named in `model.pretrained` (copied by --init-from) learn at lr * pretrained_lr_scale."""
    pretrained = getattr(model, "pretrained", None) or set()
    scale = cfg.pretrained_lr_scale
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = []
    for copied in (False, True) if pretrained and scale != 1 else (None,):  # None: one rate
        params = [p for n, p in named if copied is None or (n in pretrained) == copied]
        lr = {"lr": cfg.lr * scale} if copied else {}
        groups += [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay, **lr},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, **lr},
        ]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return kind(groups, lr=cfg.lr, betas=tuple(cfg.betas))


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warm-up, then cosine/constant."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    # the last step is total_steps - 1: it, not the step after the run, gets the floor
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - 1 - cfg.warmup_steps))
    floor = cfg.min_lr_ratio
    return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
