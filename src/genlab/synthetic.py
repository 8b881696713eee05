"""Data augmentation with generated data: does adding a class-conditional generator's images
to a small labelled training set help a classifier?

`augment_with_generated` trains the classifier twice with the same settings and seed: on N
real examples per class (`data.labels_per_class`), then on the same N plus M generated examples
per class, and scores both on the real test split.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import torch

from genlab.data import Dataset, Split, kind_of
from genlab.data.core import fingerprint
from genlab.errors import DataError, UsageError
from genlab.metrics.evaluate import evaluate
from genlab.run import load, load_data, resolve_config, train


def generated_examples(
    generator: Any, per_class: int, *, seed: int = 0, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_class` samples of every class from a class-conditional generator: images in the
    data's stored form (N, ...) and their labels (N,)."""
    if not generator.conditional:
        if dataclasses.is_dataclass(generator.cfg) and hasattr(generator.cfg, "conditional"):
            how = "retrain it with --set model.conditional=true on labelled data"
        else:
            how = "train a ddpm, gan or pixelcnn with --set model.conditional=true instead"
        raise UsageError(
            f"--generator needs a class-conditional run and this '{generator.family}' run is "
            f"unconditional: {how}"
        )
    info = generator.info
    kind = kind_of(info.kind)
    g = torch.Generator(device=generator.device).manual_seed(seed)
    xs, ys = [], []
    with torch.no_grad():
        for k in range(info.num_classes):
            for start in range(0, per_class, batch_size):
                n = min(batch_size, per_class - start)
                x = generator.sample(n, generator=g, class_label=k)
                xs.append(kind.decode(x, info))
                ys.append(torch.full((n,), k, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def with_extra_training(data: Dataset, x: torch.Tensor, y: torch.Tensor) -> Dataset:
    """`data` with (x, y) appended to its train split."""
    train_part = data.splits["train"]
    if train_part.y is None or x.shape[1:] != train_part.x.shape[1:]:
        raise DataError(
            f"generated examples of shape {list(x.shape[1:])} do not fit '{data.info.source}' "
            f"(shape {list(train_part.x.shape[1:])}, labelled: {train_part.y is not None})"
        )
    splits = dict(data.splits)
    splits["train"] = Split(
        torch.cat([train_part.x, x.to(train_part.x.dtype)]),
        torch.cat([train_part.y, y.to(train_part.y.dtype)]),
    )
    info = dataclasses.replace(
        data.info,
        n_train=len(splits["train"]),
        fingerprint=fingerprint(splits),
        file_data=dict(data.info.file_data),
    )
    return dataclasses.replace(data, info=info, splits=splits)


def augment_with_generated(
    generator_run: str | Path,
    data: str,
    *,
    classifier: str = "cnn",
    labels_per_class: int = 10,
    synthetic_per_class: int = 100,
    steps: int = 500,
    overrides: list[str] | tuple[str, ...] = (),
    seed: int = 0,
    device: str = "cpu",
    out: str | Path | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Train `classifier` on `labels_per_class` real examples per class of `data`, then on the
    same plus `synthetic_per_class` generated ones per class; both arms' test accuracy and the
    gain. `out`: where the two runs go (`real/`, `augmented/`; default a temporary folder)."""
    if labels_per_class < 0 or synthetic_per_class < 1:
        raise UsageError(
            "--labels-per-class must be 0 (all) or more and --synthetic-per-class at least 1"
        )
    gen = load(generator_run, device=device)
    extra = [*overrides, f"data.labels_per_class={labels_per_class}"]
    _, cfg = resolve_config(classifier, "", overrides=extra, steps=steps, seed=seed, device=device)
    real = load_data(cfg, data)
    if (
        list(gen.info.shape) != list(real.info.shape)
        or gen.info.num_classes != real.info.num_classes
    ):
        raise DataError(
            f"the generator was trained on data of shape {gen.info.shape} with "
            f"{gen.info.num_classes} classes, '{real.info.source}' has {real.info.shape} and "
            f"{real.info.num_classes}"
        )
    x, y = generated_examples(gen, synthetic_per_class, seed=seed)
    mixed = with_extra_training(real, x, y)
    del gen
    report: dict[str, Any] = {
        "generator": str(generator_run),
        "classifier": classifier,
        "data": real.info.source,
        "labels_per_class": labels_per_class,
        "synthetic_per_class": synthetic_per_class,
        "train_examples_real": len(real.splits["train"]),
        "train_examples_augmented": len(mixed.splits["train"]),
    }
    with tempfile.TemporaryDirectory(prefix="genlab-augment-") as tmp:
        root = Path(out) if out is not None else Path(tmp)
        for arm, dataset in (("real", real), ("augmented", mixed)):
            run_dir = train(
                classifier,
                dataset,
                root / arm,
                overrides=extra,
                steps=steps,
                seed=seed,
                device=device,
                quiet=quiet,
            )
            model = load(run_dir, device=device)
            figures = evaluate(model, dataset, "test", progress=False)
            report[f"{arm}_accuracy"] = figures["accuracy"]
    report["gain"] = report["augmented_accuracy"] - report["real_accuracy"]
    return report
