"""The Python API behind the command line: `train` a family into a run directory, `load` it back."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from genlab import judges
from genlab.config import apply_overrides, from_dict, to_dict
from genlab.data import DataInfo, Dataset, load_dataset
from genlab.data.kinds import KINDS, kind_of
from genlab.data.loader import kind_name
from genlab.errors import DataError, RunError, UsageError
from genlab.io.atomic import write_bytes_atomic
from genlab.io.checkpoint import (
    checkpoint_dir,
    checkpoint_step,
    find_checkpoint,
    is_checkpoint_folder,
    list_checkpoints,
    load_tensors,
    read_verified,
)
from genlab.io.images import save_grid
from genlab.io.manifest import new_manifest, read_json_file, read_manifest, write_manifest
from genlab.io.runs import evaluations as run_evaluations
from genlab.metrics.features import load_judge
from genlab.models.base import Freezes, GenerativeModel, Represents, UsesDataFiles
from genlab.registry import get_family
from genlab.runconfig import default_config, run_config_class
from genlab.training.ema import ema_lag_warning
from genlab.training.loop import Trainer


def load_data(run_cfg: Any, spec: str, run_dir: str | Path | None = None) -> Dataset:
    """The dataset named by `spec` (built-in name or path), split as the run config says.

    Sequence data is cut into examples of the model's `context` (a property of its Config, when
    it has one). `run_dir`: a run whose saved data files (e.g. its tokenizer) to reuse.
    """
    context = getattr(run_cfg.model, "context", 0)
    return load_dataset(spec, run_cfg.data, context=context, run_dir=run_dir)


def check_data_kind(family: str, spec: str | Dataset) -> None:
    """A DataError before reading when the family does not learn the data's kind."""
    kinds = get_family(family)[0].data_kinds
    found = spec.info.kind if isinstance(spec, Dataset) else kind_name(spec)
    if kinds and found is not None and found not in kinds:
        builtins = [n for k in kinds for n in KINDS[k].builtins]
        hint = f" (built-in: {', '.join(builtins)})" if builtins else ""
        raise DataError(
            f"'{family}' learns {' or '.join(kinds)} data but '{spec}' is {found} data; give "
            f"{' or '.join(KINDS[k].description for k in kinds)}{hint}"
        )


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
            if family == init_family:
                base.model, base.data = init_cfg.model, init_cfg.data
            elif not issubclass(get_family(init_family)[0], Represents):
                raise UsageError(
                    f"--init-from: {init_from} holds a '{init_family}' run, which has no encoder "
                    f"to transfer into '{family}'; give a '{family}' run or one with an encoder "
                    "(simclr, cnn, vae)"
                )
        cfg = apply_overrides(base, extra)
    if steps is not None:  # --steps wins over a configured epoch count
        cfg.train.epochs = 0.0
    return family, cfg


def epoch_steps(epochs: float, n_train: int, batch_size: int) -> int:
    """The optimizer steps of `epochs` passes over `n_train` examples: an epoch is one pass of
    full batches (the loop drops the last partial batch)."""
    return math.ceil(epochs * (n_train // batch_size))


def train(
    family: str,
    data: str | Dataset,
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
    model settings and data files such as its tokenizer: fine-tuning. `data` may also be a
    loaded `Dataset` (e.g. real plus generated examples, genlab.synthetic), used as it is. With
    `tracker` ("mlflow" or "tensorboard", genlab.tracking) the settings, metrics and files also
    go to that tracker.
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
        check_data_kind(family, data)
        # a run that failed before its first checkpoint has nothing to keep: start it over
        (out / "metrics.jsonl").unlink(missing_ok=True)
        given = isinstance(data, Dataset)  # e.g. real plus generated examples
        dataset = data if given else load_data(cfg, data, run_dir=init_from)

    tc = cfg.train
    total = tc.steps
    if tc.epochs > 0:
        total = epoch_steps(tc.epochs, len(dataset.splits["train"]), tc.batch_size)
    if resume:
        _check_resume_target(out, total)
    torch.manual_seed(tc.seed)
    model = build_model(family, cfg.model, dataset.info, dataset.files)
    if init_from is not None:
        model.pretrained = _init_weights(model, init_from, quiet=quiet)
    elif resume:  # the parameters that came from --init-from keep their learning-rate scale
        model.pretrained = set(read_manifest(out).get("pretrained", []))
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
        # settings chosen from the data ("auto" resolved by the model; kept over --resume)
        choices = read_manifest(out).get("choices", []) if resume else list(model.choices)
        manifest = new_manifest(
            family=family,
            config=to_dict(cfg),
            data=dataset.info.to_dict(),
            data_files=list(dataset.files),
            parameters=sum(p.numel() for p in model.parameters()),
            init_from=origin,
            choices=choices,
        )
        if getattr(model, "pretrained", None):
            manifest["pretrained"] = sorted(model.pretrained)
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
    if not trainer.dist.main or tc.preview_samples == 0:
        return out
    if model.generates() and dataset.info.kind == "image":
        with torch.no_grad():
            g = torch.Generator(device=trainer.device).manual_seed(tc.seed)
            images = trainer.eval_model.eval().sample(tc.preview_samples, generator=g)
        save_grid(images, out / "samples" / f"step-{state.step:07d}.png")
    elif not model.discriminative and kind_of(dataset.info).preview:
        kind = kind_of(dataset.info)  # e.g. music: a few MIDI files
        n, suffix = kind.preview
        with torch.no_grad():
            g = torch.Generator(device=trainer.device).manual_seed(tc.seed)
            samples = trainer.eval_model.eval().sample(n, generator=g)
        kind.write(samples, out / "samples" / f"step-{state.step:07d}{suffix}", dataset.info)
    return out


def eval_file_name(run_data: DataInfo, data: DataInfo, split: str) -> str:
    """The file name of an evaluation's results in a run directory: `eval-SPLIT.json` on the
    run's own data, `eval-NAME-HASH-SPLIT.json` on other data (NAME from its source, HASH the
    start of its fingerprint), so evaluating other data never replaces the run's own result."""
    if data.fingerprint == run_data.fingerprint:
        return f"eval-{split}.json"
    stem = Path(str(data.source).rstrip("/\\")).stem or "data"
    name = re.sub(r"[^A-Za-z0-9_.]+", "_", stem).strip("_.")[:40] or "data"
    return f"eval-{name}-{data.fingerprint[:8]}-{split}.json"


def evaluations(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The results `genlab eval` wrote into a run directory (eval-*.json, named by the data and
    split they scored: `eval_file_name`), by file name; long per-example lists are replaced by
    their length (genlab.io.runs.evaluations, what `genlab info` shows)."""
    return run_evaluations(Path(run_dir))


def _check_resume_target(out: Path, total: int) -> None:
    """A UsageError when a resumed run is already at (or past) `total` steps: resuming would
    train nothing."""
    latest = checkpoint_dir(out, "latest")
    folders = list_checkpoints(out)
    ckpt = latest if latest is not None else (folders[-1] if folders else None)
    if ckpt is None:
        return  # Trainer.resume says there is nothing to resume from
    step = checkpoint_step(ckpt)
    if total <= step:
        raise UsageError(
            f"the run is already at step {step} (asked for {total}); give --steps above {step} "
            "to train further"
        )


def _init_weights(model: GenerativeModel, run_dir: str | Path, *, quiet: bool = False) -> set[str]:
    """Copy the weights of run_dir's best checkpoint (EMA when kept), or of the checkpoint
    folder run_dir, into `model`: all of them from a run of the same family, else the encoder
    layers that match (`transfer_encoder`). Returns the names of the parameters copied."""
    run_dir = Path(run_dir)
    if is_checkpoint_folder(run_dir):
        ckpt = run_dir
    elif not list_checkpoints(run_dir):
        raise UsageError(f"--init-from: {run_dir} holds no checkpoint yet; train it first")
    else:
        ckpt = find_checkpoint(run_dir, "best")
    ema_file = ckpt / "ema.safetensors"
    weights = load_tensors(ema_file if ema_file.exists() else ckpt / "model.safetensors")
    source_family, source_cfg, source_info = read_run(ckpt)
    if source_family != model.family:
        source = build_model(source_family, source_cfg.model, source_info)
        source.load_state_dict(weights)
        names = transfer_encoder(source, model)
        if not names:
            raise UsageError(
                f"--init-from: no encoder layer of the '{source_family}' run {run_dir} fits this "
                f"'{model.family}' (its first convolution must have the same shape: set the "
                "model.* channels, kernel size and batch norm to match)"
            )
        if not quiet:
            count = sum(p.numel() for n, p in model.named_parameters() if n in names)
            print(
                f"init-from: copied {len(names)} tensors ({count} parameters) of the "
                f"'{source_family}' encoder of {run_dir}; the other layers start fresh"
            )
        return names
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise UsageError(
            f"--init-from: the weights of {run_dir} do not fit this model; keep the model.* "
            "settings that change parameter shapes as they were"
        ) from None
    return {name for name, _ in model.named_parameters()}


def _encoder_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The convolution and batch-norm layers of a model, in the order it declares them."""
    kinds = (torch.nn.Conv2d, torch.nn.BatchNorm2d)
    return [(n, m) for n, m in model.named_modules() if type(m) in kinds]


def transfer_encoder(source: torch.nn.Module, target: torch.nn.Module) -> set[str]:
    """Copy source's convolution and batch-norm layers into target's, pairing them in order
    until the first pair whose type or shapes differ. Returns the target parameters copied."""
    copied: set[str] = set()
    for (_, a), (name, b) in zip(_encoder_layers(source), _encoder_layers(target), strict=False):
        sa, sb = a.state_dict(), b.state_dict()
        if type(a) is not type(b) or {k: v.shape for k, v in sa.items()} != {
            k: v.shape for k, v in sb.items()
        }:
            break
        b.load_state_dict(sa)
        copied |= {f"{name}.{k}" for k, _ in b.named_parameters()}
    return copied


def load(
    run_dir: str | Path, *, which: str = "best", ema: bool = True, device: str = "cpu"
) -> GenerativeModel:
    """Rebuild a trained model from its run directory, or from one checkpoint folder alone, in
    eval mode. Each file read is checked against the sha256 its checkpoint recorded.
    `model.notes` lists warnings about the weights (EMA weights that averaged too few steps).

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
    use_ema = ema and ema_file.exists()
    weights = ema_file if use_ema else ckpt / "model.safetensors"
    model.load_state_dict(load_tensors(weights))
    model.checkpoint = ckpt.name
    model.notes = []
    if use_ema:  # EMA weights that have not caught up with training give noise
        averaged = read_json_file(ckpt / "trainer.json", "trainer state").get("ema_count")
        note = ema_lag_warning(cfg.train.ema_decay, averaged) if averaged is not None else None
        if note:
            model.notes.append(note)
    return model.to(device).eval()
