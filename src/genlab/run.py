"""The Python API behind the command line: `train` a family into a run directory, `load` it back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from genlab import judges
from genlab.config import apply_overrides, from_dict, to_dict
from genlab.data import DataInfo, Dataset, load_dataset
from genlab.errors import RunError, UsageError
from genlab.io.atomic import write_bytes_atomic
from genlab.io.checkpoint import (
    find_checkpoint,
    is_checkpoint_folder,
    list_checkpoints,
    load_tensors,
    read_verified,
)
from genlab.io.images import save_grid
from genlab.io.manifest import new_manifest, read_manifest, write_manifest
from genlab.metrics.features import load_judge
from genlab.models.base import Freezes, GenerativeModel, UsesDataFiles
from genlab.registry import get_family
from genlab.runconfig import default_config, run_config_class
from genlab.training.loop import Trainer


def load_data(run_cfg: Any, spec: str, run_dir: str | Path | None = None) -> Dataset:
    """The dataset named by `spec` (built-in name or path), split as the run config says.

    Sequence data is cut into examples of the model's `context` (a property of its Config, when
    it has one). `run_dir`: a run whose saved data files (e.g. its tokenizer) to reuse.
    """
    context = getattr(run_cfg.model, "context", 0)
    return load_dataset(spec, run_cfg.data, context=context, run_dir=run_dir)


def build_model(
    family: str, model_cfg: Any, info: DataInfo, files: dict[str, bytes] | None = None
) -> GenerativeModel:
    """A fresh model of `family` for data described by `info`.

    `files`: the data's files (`Dataset.files`, or those saved in a run directory), handed to
    models that take them (`use_data_files`, e.g. a language model's tokenizer).
    """
    cls, _ = get_family(family)
    model = cls(model_cfg, info)
    if files and isinstance(model, UsesDataFiles):
        model.use_data_files(files)
    return model


def read_data_files(path: str | Path) -> dict[str, bytes]:
    """The data files (e.g. a tokenizer) that a run directory or checkpoint folder keeps.

    A checkpoint folder holds its own copies; one written before checkpoint.json existed reads
    them from its run directory. A checkpoint folder's copies are checked against its hashes."""
    path = Path(path)
    names = read_manifest(path)["data_files"]
    places = [path]
    if is_checkpoint_folder(path):
        places.append(path.parent.parent)
    files = {}
    for name in names:
        found = [p / name for p in places if (p / name).is_file()]
        if not found:
            raise RunError(f"{path} lacks {name}, which its data needs; the run is incomplete")
        if found[0].parent == path and is_checkpoint_folder(path):
            files[name] = read_verified(found[0])
        else:
            files[name] = found[0].read_bytes()
    return files


def read_run(path: str | Path) -> tuple[str, Any, DataInfo]:
    """Family, run config and data description of a run directory (its run.json, or the
    config.json of runs written before run.json) or of one checkpoint folder."""
    meta = read_manifest(path)
    family = meta["family"]
    cfg = from_dict(run_config_class(family), meta["config"])
    return family, cfg, DataInfo.from_dict(meta["data"])


def resolve_config(
    family: str,
    out: str | Path,
    *,
    preset: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    steps: int | None = None,
    epochs: float | None = None,
    seed: int | None = None,
    device: str | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
) -> tuple[str, Any]:
    """The family and run configuration that `train` with these arguments would use.

    A new run starts from the family's defaults (shaped by `preset`), or from the model and data
    settings of `init_from`; a resumed run from its own saved config, whose model.* and data.*
    settings may not change. `--steps`, `--epochs`, `--seed`, `--device` are train.* settings.
    """
    extra = list(overrides)
    for key, value in (("steps", steps), ("epochs", epochs), ("seed", seed), ("device", device)):
        if value is not None:
            extra.append(f"train.{key}={value}")
    if resume:
        if init_from is not None:
            raise UsageError("--init-from starts a new run; it cannot be combined with --resume")
        saved_family, saved_cfg, _ = read_run(out)
        if family and family != saved_family:
            raise UsageError(f"--resume: {out} holds a '{saved_family}' run, not '{family}'")
        family = saved_family
        cfg = apply_overrides(saved_cfg, extra)
        for group in ("model", "data"):
            if getattr(cfg, group) != getattr(saved_cfg, group):
                raise UsageError(f"--resume cannot change {group}.* settings; start a new run")
    else:
        base = default_config(family, preset)
        if init_from is not None:  # fine-tuning keeps the model and its data settings
            init_family, init_cfg, _ = read_run(init_from)
            if family != init_family:
                raise UsageError(
                    f"--init-from: {init_from} holds a '{init_family}' run, not '{family}'"
                )
            base.model, base.data = init_cfg.model, init_cfg.data
        cfg = apply_overrides(base, extra)
    if steps is not None:  # --steps wins over a configured epoch count
        cfg.train.epochs = 0.0
    return family, cfg


def train(
    family: str,
    data: str,
    out: str | Path,
    *,
    preset: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    steps: int | None = None,
    epochs: float | None = None,
    seed: int | None = None,
    device: str | None = None,
    resume: bool = False,
    quiet: bool = False,
    init_from: str | Path | None = None,
    tracker: str | None = None,
) -> Path:
    """Train `family` on `data` into run directory `out`; returns the run directory.

    `overrides` are `key.path=value` strings as for `--set`. With `resume`, the run continues
    from its latest checkpoint up to `steps` total optimizer steps. With `init_from` (a run
    directory of the same family), a new run starts from that run's weights (best checkpoint),
    model settings and data files such as its tokenizer: fine-tuning. With `tracker` ("mlflow"
    or "tensorboard", genlab.tracking) the settings, metrics and files also go to that tracker.
    """
    out = Path(out)
    if not resume and (list_checkpoints(out) or (out / "checkpoints" / "latest").is_symlink()):
        raise UsageError(
            f"{out} already holds a run; add --resume to continue it or choose another --out"
        )
    family, cfg = resolve_config(
        family,
        out,
        preset=preset,
        overrides=overrides,
        steps=steps,
        epochs=epochs,
        seed=seed,
        device=device,
        resume=resume,
        init_from=init_from,
    )
    if resume:
        saved_info = read_run(out)[2]
        dataset = load_data(cfg, data or saved_info.source, run_dir=out)
        if dataset.info.fingerprint != saved_info.fingerprint:
            raise UsageError(
                f"--resume: the data differs from what {out} was trained on "
                f"(fingerprint {dataset.info.fingerprint[:12]} vs {saved_info.fingerprint[:12]})"
            )
    else:
        # a run that failed before its first checkpoint has nothing to keep: start it over
        (out / "metrics.jsonl").unlink(missing_ok=True)
        dataset = load_data(cfg, data, run_dir=init_from)

    tc = cfg.train
    total = tc.steps
    if tc.epochs > 0:
        # an epoch is one pass of full batches (the loop drops the last partial batch)
        total = math.ceil(tc.epochs * (len(dataset.splits["train"]) // tc.batch_size))
    torch.manual_seed(tc.seed)
    model = build_model(family, cfg.model, dataset.info, dataset.files)
    if init_from is not None:
        _init_weights(model, init_from)
    if tc.freeze_layers:
        if not isinstance(model, Freezes):
            raise UsageError(f"'{family}' cannot freeze layers; remove train.freeze_layers")
        model.freeze(tc.freeze_layers)
    trainer = Trainer(model, dataset, tc, out, total_steps=total, quiet=quiet)
    if trainer.dist.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(exist_ok=True)
        if init_from is not None:
            origin = str(Path(init_from).resolve())
        else:
            origin = read_manifest(out)["init_from"] if resume else None
        for name, content in dataset.files.items():  # e.g. the tokenizer
            write_bytes_atomic(out / name, content)
        manifest = new_manifest(
            family=family,
            config=to_dict(cfg),
            data=dataset.info.to_dict(),
            data_files=list(dataset.files),
            parameters=sum(p.numel() for p in model.parameters()),
            init_from=origin,
        )
        write_manifest(out, manifest)
    trainer.dist.barrier()
    if model.judge_steps():  # the frozen classifier the model's health hook asks for
        if trainer.dist.main:  # trained (once, cached) by one process; the others wait
            judges.judge(dataset.info.source, steps=model.judge_steps())
        trainer.dist.barrier()
        trainer.judge = load_judge(dataset.info.source, steps=model.judge_steps())
    if resume:
        trainer.resume()
    track = None
    if tracker is not None and trainer.dist.main:
        from genlab.tracking import make_tracker

        track = make_tracker(tracker, out)
        track.start({"family": family, **to_dict(cfg)})
        trainer.log_hooks.append(track)
    try:
        state = trainer.fit()
    finally:
        if track is not None:
            track.finish(out)
    if trainer.dist.main and not model.discriminative and dataset.info.kind == "image":
        with torch.no_grad():
            g = torch.Generator(device=trainer.device).manual_seed(tc.seed)
            images = trainer.eval_model.eval().sample(64, generator=g)
        save_grid(images, out / "samples" / f"step-{state.step:07d}.png")
    return out


def _init_weights(model: GenerativeModel, run_dir: str | Path) -> None:
    """Copy the weights of run_dir's best checkpoint (EMA when kept), or of the checkpoint
    folder run_dir, into `model`."""
    run_dir = Path(run_dir)
    if is_checkpoint_folder(run_dir):
        ckpt = run_dir
    elif not list_checkpoints(run_dir):
        raise UsageError(f"--init-from: {run_dir} holds no checkpoint yet; train it first")
    else:
        ckpt = find_checkpoint(run_dir, "best")
    ema_file = ckpt / "ema.safetensors"
    weights = load_tensors(ema_file if ema_file.exists() else ckpt / "model.safetensors")
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise UsageError(
            f"--init-from: the weights of {run_dir} do not fit this model; keep the model.* "
            "settings that change parameter shapes as they were"
        ) from None


def load(
    run_dir: str | Path, *, which: str = "best", ema: bool = True, device: str = "cpu"
) -> GenerativeModel:
    """Rebuild a trained model from its run directory, or from one checkpoint folder alone, in
    eval mode. Each file read is checked against the sha256 its checkpoint recorded.

    `which` (run directories only): "best" (lowest validation loss; falls back to "latest"),
    "latest" or "step-N" (a kept checkpoint; see `train.keep_last`).
    `ema`: use the exponential-moving-average weights when the run kept them.
    """
    path = Path(run_dir)
    if is_checkpoint_folder(path):
        if which != "best":
            raise UsageError(
                f"{path} is one checkpoint; --which picks a checkpoint of a run directory "
                f"({path.parent.parent})"
            )
        ckpt = path.resolve() if path.is_symlink() else path  # e.g. checkpoints/latest
    else:
        read_manifest(path)  # a clear error for a folder that is not a run
        ckpt = find_checkpoint(path, which)
    family, cfg, info = read_run(ckpt)
    info.file_data.update(read_data_files(ckpt))
    model = build_model(family, cfg.model, info, info.file_data)
    ema_file = ckpt / "ema.safetensors"
    weights = ema_file if ema and ema_file.exists() else ckpt / "model.safetensors"
    model.load_state_dict(load_tensors(weights))
    model.checkpoint = ckpt.name
    return model.to(device).eval()
