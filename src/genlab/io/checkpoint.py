"""Run directories and self-describing, atomically written checkpoints.

Layout of a run directory::

    config.json            family, genlab version, full config, data description + fingerprint
    metrics.jsonl          one JSON object per logged step / evaluation
    checkpoints/
      step-000500/         model.safetensors, ema.safetensors (if EMA), optimizer.pt, trainer.json
      latest -> step-000500
      best   -> step-000400   (lowest validation loss so far)
    samples/

A checkpoint is first written in full to a temporary folder, which is then renamed into place,
and the `latest`/`best` links are swapped with an atomic rename: a kill at any moment leaves the
previous checkpoint readable. Loading reads tensors with safetensors, metadata as JSON and the
optimizer state with `torch.load(weights_only=True)`: no code is ever executed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from genlab.errors import RunError, UsageError
from genlab.io.atomic import umask as _umask
from genlab.io.atomic import write_json_atomic

__all__ = ["write_json_atomic"]


def read_json(path: Path, what: str) -> Any:
    """Read a JSON file, turning a missing or damaged file into a one-line error."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except (OSError, json.JSONDecodeError) as e:
        raise RunError(f"{what} at {path} is unreadable ({e}); it may be damaged") from None


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def _link(target: str, link: Path) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    *,
    ema: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | dict[str, torch.optim.Optimizer] | None = None,
    trainer_state: dict[str, Any] | None = None,
    best: bool = False,
) -> Path:
    """Write checkpoint `step` and point `latest` (and `best` when asked) at it.

    `optimizer` is one optimizer, or several by name (families with their own train_step)."""
    ckpt_root = Path(run_dir) / "checkpoints"
    name = f"step-{step:07d}"
    try:
        _write_checkpoint(ckpt_root, step, model, ema, optimizer, trainer_state, best)
    except OSError as e:
        raise RunError(
            f"could not write checkpoint {name} in {ckpt_root} ({e.strerror or e}); free disk "
            "space or fix permissions and --resume: the previous checkpoint is kept"
        ) from e
    return ckpt_root / name


def _write_checkpoint(ckpt_root, step, model, ema, optimizer, trainer_state, best) -> None:
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    final = ckpt_root / name
    if not final.exists():
        tmp = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=f".{name}."))
        os.chmod(tmp, 0o777 & ~_umask())
        save_file(_state(model), str(tmp / "model.safetensors"))
        if ema is not None:
            save_file(_state(ema), str(tmp / "ema.safetensors"))
        if isinstance(optimizer, dict):
            states = {k: opt.state_dict() for k, opt in optimizer.items()}
            torch.save({"optimizers": states}, tmp / "optimizer.pt")
        elif optimizer is not None:
            torch.save({"optimizer": optimizer.state_dict()}, tmp / "optimizer.pt")
        (tmp / "trainer.json").write_text(json.dumps({"step": step, **(trainer_state or {})}))
        for f in tmp.iterdir():
            os.chmod(f, 0o666 & ~_umask())  # some writers create 0600 files
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
    _link(name, ckpt_root / "latest")
    if best:
        _link(name, ckpt_root / "best")
    _prune(ckpt_root)


def _prune(ckpt_root: Path) -> None:
    """Remove checkpoints no link points to, and temporary folders of interrupted writes."""
    keep = {os.readlink(ckpt_root / n) for n in ("latest", "best") if (ckpt_root / n).is_symlink()}
    for p in ckpt_root.iterdir():
        if p.is_symlink() or p.name in keep:
            continue
        if p.is_dir() and (p.name.startswith("step-") or p.name.startswith(".step-")):
            shutil.rmtree(p, ignore_errors=True)


def checkpoint_dir(run_dir: Path, which: str = "latest") -> Path | None:
    """The folder of the `latest` or `best` checkpoint, or None when there is none."""
    link = Path(run_dir) / "checkpoints" / which
    return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file with a one-line error when it is missing or damaged."""
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise RunError(f"checkpoint file missing: {path}") from None
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise RunError(f"checkpoint file {path} is damaged ({e}); use another checkpoint") from None


def load_optimizer_state(path: Path) -> dict[str, Any]:
    """The optimizer states saved next to a checkpoint (tensors and numbers only), by optimizer
    name; a checkpoint of a single optimizer (written before optimizers were named) gives it
    under the default step's name, "model"."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return {"model": saved["optimizer"]} if "optimizer" in saved else saved["optimizers"]
