"""Checkpoint folders: written whole or not at all, each describing itself, verified on load.

A checkpoint folder (`checkpoints/step-0000500/`) holds model.safetensors, ema.safetensors (with
EMA), optimizer.pt, trainer.json, the data's files (e.g. tokenizer.json) and checkpoint.json: the
run's manifest (family, config, data) plus the step and the sha256 of every other file, so the
folder alone rebuilds the model. `latest` and `best` are links to folders; the newest
`keep_last` folders are kept besides them. docs/run-format.md describes the whole run directory.

A checkpoint is written in full to a temporary folder, which is then renamed into place, and
the links are swapped with an atomic rename: a kill at any moment leaves the previous checkpoint
readable. Loading verifies each file against its recorded sha256 and reads tensors with
safetensors, metadata as JSON and the optimizer state with `torch.load(weights_only=True)`: no
code is ever executed.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from genlab.errors import RunError, UsageError
from genlab.io.atomic import umask as _umask
from genlab.io.atomic import write_bytes_atomic, write_json_atomic
from genlab.io.manifest import CHECKPOINT_MANIFEST, SCHEMA, manifest_file, migrate, read_json_file

_STEP = re.compile(r"step-(\d+)")
REQUIRED = ("model.safetensors", "optimizer.pt", "trainer.json")
"""The files every checkpoint has (besides checkpoint.json)."""


def checkpoint_name(step: int) -> str:
    """The folder name of the checkpoint at optimizer step `step`."""
    return f"step-{step:07d}"


def checkpoint_step(folder: Path) -> int:
    """The step of a checkpoint folder, from its name."""
    m = _STEP.fullmatch(Path(folder).name)
    if m is None:
        raise ValueError(f"{folder} is not a checkpoint folder name")
    return int(m.group(1))


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


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
    keep_last: int = 3,
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint `step`, point `latest` (and `best` when asked) at it, and remove the
    checkpoints older than the newest `keep_last` that no link points to.

    `optimizer` is one optimizer, or several by name (families with their own train_step).
    `manifest`: the run's manifest that checkpoint.json repeats (default: the run's run.json);
    the data files it names are copied from the run directory into the checkpoint."""
    ckpt_root = Path(run_dir) / "checkpoints"
    name = checkpoint_name(step)
    if manifest is None:
        manifest = _run_manifest(Path(run_dir))
    try:
        _write_checkpoint(
            Path(run_dir), step, model, ema, optimizer, trainer_state, best, keep_last, manifest
        )
    except OSError as e:
        raise RunError(
            f"could not write checkpoint {name} in {ckpt_root} ({e.strerror or e}); free disk "
            "space or fix permissions and --resume: the previous checkpoint is kept"
        ) from e
    return ckpt_root / name


def _run_manifest(run_dir: Path) -> dict[str, Any]:
    """The run directory's own manifest, or {} for a loop run outside a run directory."""
    file = manifest_file(run_dir)
    if file is None or file.parent != run_dir:
        return {}
    return migrate(read_json_file(file, "run manifest"), file)


def _contents(run_dir, step, model, ema, optimizer, trainer_state, manifest) -> dict[str, bytes]:
    """Every file of checkpoint `step` but checkpoint.json, by name."""
    files = {"model.safetensors": save_safetensors(_state(model))}
    if ema is not None:
        files["ema.safetensors"] = save_safetensors(_state(ema))
    if optimizer is not None:
        buffer = io.BytesIO()
        if isinstance(optimizer, dict):
            states = {k: opt.state_dict() for k, opt in optimizer.items()}
            torch.save({"optimizers": states}, buffer)
        else:
            torch.save({"optimizer": optimizer.state_dict()}, buffer)
        files["optimizer.pt"] = buffer.getvalue()
    files["trainer.json"] = json.dumps({"step": step, **(trainer_state or {})}).encode()
    for name in manifest.get("data_files", []):  # e.g. the tokenizer: the folder stands alone
        files[name] = (run_dir / name).read_bytes()
    return files


def _write_checkpoint(
    run_dir, step, model, ema, optimizer, trainer_state, best, keep_last, manifest
) -> None:
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(step)
    final = ckpt_root / name
    files = _contents(run_dir, step, model, ema, optimizer, trainer_state, manifest)
    tmp = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=f".{name}."))
    os.chmod(tmp, 0o777 & ~_umask())
    for file, content in files.items():
        write_bytes_atomic(tmp / file, content)
    meta = {**manifest, "schema": SCHEMA, "step": step}
    meta["files"] = {file: _sha256(content) for file, content in files.items()}
    write_json_atomic(tmp / CHECKPOINT_MANIFEST, meta)
    if final.exists():  # left by a run that a resume abandoned (it fell back past it)
        os.replace(final, ckpt_root / f".{name}.abandoned-{os.getpid()}")
    os.replace(tmp, final)
    _link(name, ckpt_root / "latest")
    if best:
        _link(name, ckpt_root / "best")
    _prune(ckpt_root, keep_last)


def _prune(ckpt_root: Path, keep_last: int) -> None:
    """Remove checkpoints older than the newest `keep_last` that no link points to, and the
    temporary folders of interrupted writes."""
    keep = {os.readlink(ckpt_root / n) for n in ("latest", "best") if (ckpt_root / n).is_symlink()}
    keep |= {p.name for p in list_checkpoints(ckpt_root.parent)[-keep_last:]}
    for p in ckpt_root.iterdir():
        if p.is_symlink() or p.name in keep:
            continue
        if p.is_dir() and (p.name.startswith("step-") or p.name.startswith(".step-")):
            shutil.rmtree(p, ignore_errors=True)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoint folders of a run directory, oldest step first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP.fullmatch(p.name) and p.is_dir()]
    return sorted((p for p in found if not p.is_symlink()), key=checkpoint_step)


def checkpoint_dir(run_dir: Path, which: str = "latest") -> Path | None:
    """The folder of the `latest` or `best` checkpoint, or of `step-N`; None when there is none."""
    root = Path(run_dir) / "checkpoints"
    m = _STEP.fullmatch(which)
    if m is not None:
        folder = root / checkpoint_name(int(m.group(1)))
        return folder if folder.is_dir() else None
    link = root / which
    return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None


def available_checkpoints(run_dir: Path) -> str:
    """The names `which` accepts for a run directory, e.g. for an error message."""
    names = []
    for link in ("best", "latest"):
        target = checkpoint_dir(run_dir, link)
        if target is not None:
            names.append(f"{link} (= {target.name})")
    names += [p.name for p in list_checkpoints(run_dir)]
    return ", ".join(names) or "none"


def find_checkpoint(run_dir: Path, which: str = "best") -> Path:
    """The checkpoint folder named by `which`: "best" (lowest validation loss; the latest when
    the run has no best yet), "latest" or "step-N"; an unknown name lists the available ones."""
    run_dir = Path(run_dir)
    if which not in ("best", "latest") and not _STEP.fullmatch(which):
        raise UsageError(
            f"--which takes best, latest or step-N; got {which!r} ({run_dir} has: "
            f"{available_checkpoints(run_dir)})"
        )
    ckpt = checkpoint_dir(run_dir, which)
    if ckpt is None and which == "best":
        ckpt = checkpoint_dir(run_dir, "latest")
    if ckpt is not None:
        return ckpt
    if not list_checkpoints(run_dir):
        raise UsageError(f"{run_dir} holds no checkpoint yet; train it first")
    raise UsageError(
        f"{run_dir} has no checkpoint {which}; available: {available_checkpoints(run_dir)}"
    )


def is_checkpoint_folder(path: Path) -> bool:
    """Whether `path` is one checkpoint folder (not a run directory)."""
    path = Path(path)
    if (path / CHECKPOINT_MANIFEST).is_file():
        return True
    return (path / "model.safetensors").is_file() and path.parent.name == "checkpoints"


# reading, verified ----------------------------------------------------------------------------
def recorded_hashes(ckpt: Path) -> dict[str, str] | None:
    """The sha256 of each file that a checkpoint's checkpoint.json records; None for a
    checkpoint written before checkpoint.json existed."""
    path = Path(ckpt) / CHECKPOINT_MANIFEST
    if not path.is_file():
        return None
    files = read_json_file(path, "checkpoint manifest").get("files")
    if not isinstance(files, dict):
        raise RunError(f"{path} records no file hashes; the checkpoint is damaged")
    return files


def _advice(ckpt: Path) -> str:
    others = [p.name for p in list_checkpoints(ckpt.parent.parent) if p.name != ckpt.name]
    if not others:
        return "the run has no other checkpoint"
    return f"use another checkpoint (--which {' or '.join(others)})"


def read_verified(path: Path) -> bytes:
    """The bytes of a checkpoint file, checked against the sha256 its checkpoint.json records."""
    path = Path(path)
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise RunError(f"checkpoint file missing: {path}; {_advice(path.parent)}") from None
    hashes = recorded_hashes(path.parent)
    if hashes is not None and hashes.get(path.name) != _sha256(content):
        what = "is not recorded in" if path.name not in hashes else "does not match its sha256 in"
        raise RunError(
            f"checkpoint file {path} is damaged (it {what} {CHECKPOINT_MANIFEST}); "
            f"{_advice(path.parent)}"
        )
    return content


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file, verified when its folder records hashes, with a one-line error
    when it is missing or damaged."""
    content = read_verified(path)
    try:
        return load_safetensors(content)
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise RunError(
            f"checkpoint file {path} is damaged ({e}); {_advice(Path(path).parent)}"
        ) from None


def load_optimizer_state(path: Path) -> dict[str, Any]:
    """The optimizer states saved next to a checkpoint (tensors and numbers only), by optimizer
    name; a checkpoint of a single optimizer (written before optimizers were named) gives it
    under the default step's name, "model"."""
    content = read_verified(path)
    try:
        saved = torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise RunError(f"checkpoint file {path} is damaged ({e})") from None
    return {"model": saved["optimizer"]} if "optimizer" in saved else saved["optimizers"]


def checkpoint_problem(ckpt: Path) -> str | None:
    """What makes a checkpoint folder unusable for resuming (a missing file, a hash that does
    not match, an unreadable file), or None when it is intact."""
    ckpt = Path(ckpt)
    try:
        hashes = recorded_hashes(ckpt)
    except RunError as e:
        return str(e)
    if hashes is None:  # written before checkpoint.json: read each file to check it
        try:
            load_tensors(ckpt / "model.safetensors")
            if (ckpt / "ema.safetensors").exists():
                load_tensors(ckpt / "ema.safetensors")
            load_optimizer_state(ckpt / "optimizer.pt")
            json.loads((ckpt / "trainer.json").read_text())
        except (RunError, OSError, ValueError) as e:
            return str(e)
        return None
    for name in REQUIRED:
        if name not in hashes:
            return f"{CHECKPOINT_MANIFEST} records no {name}"
    for name, want in hashes.items():
        path = ckpt / name
        if not path.is_file():
            return f"{name} is missing"
        if _sha256(path.read_bytes()) != want:
            return f"{name} does not match its sha256"
    return None


def resume_checkpoint(run_dir: Path) -> tuple[Path | None, str]:
    """The checkpoint a resumed run continues from: `latest`, or when it is damaged or missing,
    the newest intact one; with a one-line note when it is not `latest` ("" otherwise).

    None when the run has no checkpoint at all; a RunError when none is intact."""
    run_dir = Path(run_dir)
    latest = checkpoint_dir(run_dir, "latest")
    folders = list_checkpoints(run_dir)
    if latest is None and not folders:
        return None, ""
    # a folder newer than `latest` was written but never committed by the link: skip it
    limit = checkpoint_step(latest) if latest is not None else math.inf
    candidates = [p for p in reversed(folders) if checkpoint_step(p) <= limit]
    skipped: list[tuple[Path, str]] = []
    for ckpt in candidates:
        problem = checkpoint_problem(ckpt)
        if problem is not None:
            skipped.append((ckpt, problem))
            continue
        if skipped:
            first, why = skipped[0]
            more = f" ({len(skipped) - 1} more skipped)" if len(skipped) > 1 else ""
            return ckpt, (
                f"checkpoint {first.name} is damaged ({why}){more}; resuming from {ckpt.name}, "
                "the newest intact checkpoint"
            )
        if latest is None:
            return ckpt, (
                f"checkpoints/latest is missing; resuming from {ckpt.name}, the newest intact "
                "checkpoint"
            )
        return ckpt, ""
    detail = f" ({skipped[0][0].name}: {skipped[0][1]})" if skipped else ""
    raise RunError(
        f"--resume: no intact checkpoint in {run_dir / 'checkpoints'}{detail}; start a new run "
        "with another --out"
    )
