"""Evaluate any model on a data split by what it can do, never by its family name."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from tqdm import tqdm

from genlab.data import Dataset
from genlab.data.core import SPLITS
from genlab.data.kinds import kind_of
from genlab.distributions import bits_per_dim
from genlab.errors import DataError, UsageError
from genlab.models.base import (
    CountsUnits,
    DescribesNll,
    EvidenceBound,
    GenerativeModel,
    Likelihood,
    Predictor,
    Represents,
    ScoresSequences,
)


def check_compatible(model: GenerativeModel, data: Dataset) -> None:
    """Stop with a clear error when `data` does not look like the data the model was trained on."""
    a, b = model.info, data.info
    if (a.kind, list(a.shape)) != (b.kind, list(b.shape)):
        raise DataError(
            f"the model was trained on {a.kind} data of shape {a.shape} but '{b.source}' is "
            f"{b.kind} data of shape {b.shape}"
        )
    if a.kind == "tabular" and a.record.feature_names != b.record.feature_names:
        raise DataError(f"'{b.source}' has other columns than the training data ({a.source})")


def scored_examples(
    data: Dataset, split: str, max_examples: int | None = None
) -> list[tuple[str, torch.Tensor]]:
    """The examples `evaluate` scores, in order, as (split name, positions in that split):
    one split, or with split "all" every split (train, val, test); the first `max_examples`
    of them when given."""
    names = SPLITS if split == "all" else (split,)
    for name in names:
        if name not in data.splits:
            raise UsageError(f"unknown split '{name}'; use one of: {', '.join(data.splits)}, all")
    left = math.inf if max_examples is None else max_examples
    out = []
    for name in names:
        take = int(min(len(data.splits[name]), left))
        if take:
            out.append((name, torch.arange(take)))
        left -= take
    return out


def example_ids(data: Dataset, split: str, max_examples: int | None = None) -> list[str]:
    """What each scored example is, in `evaluate`'s order: its file name or CSV line when the
    data keeps them, else "SPLIT:POSITION"."""
    out = []
    for name, index in scored_examples(data, split, max_examples):
        ids = getattr(data.splits[name], "ids", None)
        out += [ids[i] if ids is not None else f"{name}:{i}" for i in index.tolist()]
    return out


def _mean_and_stderr(values: torch.Tensor) -> tuple[float, float]:
    n = values.numel()
    std = values.std().item() if n > 1 else 0.0
    return values.mean().item(), std / math.sqrt(n)


def _per_unit(cat: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Sequence models: the NLL per token (loss, perplexity) and in bits per token, character
    and UTF-8 byte: total nats / (units x ln 2), so models with different tokens compare."""
    units = {k.split(":", 1)[1]: v.sum().item() for k, v in cat.items() if k.startswith("units:")}
    if not units:
        return {}
    total = cat["nll"].double().sum().item()
    out: dict[str, Any] = {}
    if "token" in units:
        out["tokens"] = int(units["token"])
        out["loss_nats_per_token"] = total / units["token"]
        out["perplexity"] = math.exp(out["loss_nats_per_token"])
    for unit, count in units.items():
        out[f"bits_per_{unit}"] = total / (count * math.log(2))
    return out


@torch.no_grad()
def per_piece_unit(model: ScoresSequences, data: Dataset, split: str) -> dict[str, Any]:
    """Token data with a unit of its own (music: the time step): the exact NLL in nats per
    unit over the split's whole sequences (`nll_nats_per_<unit>`, with the unit count), each
    sequence scored from its start (`DataKind.scored_sequences` says which tokens count)."""
    scored = kind_of(data.info).scored_sequences(data, split)
    if scored is None:
        return {}
    unit, sequences = scored
    total, units = 0.0, 0
    for ids, counted, n in sequences:
        nll = model.sequence_nll(torch.as_tensor(ids)).double().cpu()
        total += nll[torch.as_tensor(counted, dtype=torch.bool)].sum().item()
        units += int(n)
    if not units:
        return {}
    return {f"{unit}s_scored": units, f"nll_nats_per_{unit}": total / units}


@torch.no_grad()
def evaluate(
    model: GenerativeModel,
    data: Dataset,
    split: str = "test",
    *,
    batch_size: int = 256,
    seed: int = 0,
    options: Any = None,
    anomaly_scores: bool = False,
    progress: bool = True,
    samples: int = 0,
    feature_steps: int = 2000,
    judge: torch.nn.Module | None = None,
    max_examples: int | None = None,
) -> dict[str, Any]:
    """The model's metrics on `split` of `data` ("all": every split, train then val then test),
    on its first `max_examples` examples when given (`scored_examples`).

    Discriminative models: accuracy (classification) or RMSE/MAE in the target's units
    (regression). Likelihood models: NLL in nats per example and bits/dim; ELBO when the model
    has one. With `anomaly_scores`, the per-example negative ELBO (or NLL) is included.
    Randomness (binarization, importance samples) is seeded per batch, so numbers repeat.
    With `samples` > 0, class-conditional audio models get genlab.metrics.audio.audio_quality
    (about `samples` clips over the classes, judged by the frozen melcnn `judge`), and image
    generative models the sample-quality figures of genlab.metrics.quality.sample_quality
    (`samples` images drawn with `seed`, each figure next to the same figure for real `split`
    images; the frozen `cnn` `judge`, by default the cached one trained `feature_steps` steps:
    genlab.judges.judge trains it).
    Sequence models (with `units(batch)`) also get the loss per token, perplexity and bits per
    token, character and UTF-8 byte. `options`: the family's `EvalOptions` (a dataclass or a
    dict, e.g. the VAE's `iw_samples`, the diffusion bound's `bound_timesteps`); those not
    None go to the model's `nll` and are reported; a model with `nll_method` says which estimate
    it computed (key `nll_method`).
    Representation families (`representation`, no sampling): linear-probe and kNN accuracy
    beside a random encoder and raw pixels (genlab.metrics.probes; `options` as its keywords).
    """
    check_compatible(model, data)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; got {batch_size}")
    if dataclasses.is_dataclass(options):
        options = dataclasses.asdict(options)
    nll_options = {k: v for k, v in (options or {}).items() if v is not None}
    if max_examples is not None and max_examples < 1:
        raise UsageError(f"--max-examples must be at least 1; got {max_examples}")
    model.eval()
    parts = scored_examples(data, split, max_examples)
    n = sum(len(index) for _, index in parts)
    if n == 0:
        others = [k for k in ("val", "test", "train") if k != split and len(data.splits[k])]
        hint = f"; evaluate another split (--split {others[0]})" if others else ""
        raise DataError(f"the {split} split of '{data.info.source}' is empty{hint}")
    out: dict[str, Any] = {"split": split, "examples": n}
    dims = model.dims
    collected: dict[str, list[torch.Tensor]] = {}
    batches = [
        (name, index[start : start + batch_size])
        for name, index in parts
        for start in range(0, len(index), batch_size)
    ]
    bar = tqdm(batches, desc=f"eval {split}", unit="batch", disable=not progress, leave=False)
    for i, (name, idx) in enumerate(bar):
        batch = {k: v.to(model.device) for k, v in data.batch(name, idx).items()}

        def gen(i: int = i) -> torch.Generator:  # the same draws for every metric of a batch
            return torch.Generator(device=model.device).manual_seed(seed * 100_003 + i)

        if isinstance(model, Predictor):
            collected.setdefault("pred", []).append(model.predict(batch["x"]).float().cpu())
            collected.setdefault("y", []).append(batch["y"].cpu())
            continue
        if isinstance(model, EvidenceBound):
            collected.setdefault("elbo", []).append(model.elbo(batch, generator=gen()).cpu())
        if isinstance(model, Likelihood):
            nll = model.nll(batch, generator=gen(), **nll_options)
            collected.setdefault("nll", []).append(nll.cpu())
        if isinstance(model, CountsUnits):  # tokens/characters/bytes each example scores
            for unit, count in model.units(batch).items():
                collected.setdefault(f"units:{unit}", []).append(count.cpu())

    cat = {k: torch.cat(v) for k, v in collected.items()}
    if isinstance(model, Predictor):
        pred, y = cat["pred"], cat["y"]
        if model.info.task == "classification":
            out["accuracy"] = (pred.argmax(-1) == y).float().mean().item()
            out["cross_entropy_nats"] = torch.nn.functional.cross_entropy(pred, y).item()
        else:
            err = (pred - y) * model.info.record.target_std
            out["rmse"] = err.pow(2).mean().sqrt().item()
            out["mae"] = err.abs().mean().item()
        return out
    if isinstance(model, Represents) and not model.generates():  # e.g. simclr: its probes
        from genlab.metrics.probes import probe_report

        out |= probe_report(model, data, split, seed=seed, **(options or {}))
    if "elbo" in cat:
        mean, se = _mean_and_stderr(-cat["elbo"])
        out |= {"neg_elbo_nats": mean, "neg_elbo_nats_stderr": se}
        out["neg_elbo_bits_per_dim"] = bits_per_dim(mean, dims)
    if "nll" in cat:
        mean, se = _mean_and_stderr(cat["nll"])
        out |= {"nll_nats": mean, "nll_nats_stderr": se, "bits_per_dim": bits_per_dim(mean, dims)}
        if isinstance(model, DescribesNll):
            out["nll_method"] = model.nll_method(**nll_options)
        out |= nll_options
        out |= _per_unit(cat)
        if isinstance(model, ScoresSequences):
            out |= per_piece_unit(model, data, split)
    if anomaly_scores:
        scores = -cat["elbo"] if "elbo" in cat else cat.get("nll")
        if scores is not None:
            out["anomaly_scores"] = [round(v, 4) for v in scores.tolist()]
    if samples and data.info.kind == "audio":  # class-conditional audio: the melcnn judge
        from genlab.metrics.audio import audio_quality

        if judge is None:
            raise UsageError("audio sample quality needs the frozen audio judge (genlab.judges)")
        per_class = max(1, -(-samples // data.info.num_classes))
        out |= audio_quality(
            model,
            data,
            judge,  # type: ignore[arg-type]
            per_class=per_class,
            seed=seed,
            split="test" if split == "all" else split,
        )
    elif samples:
        from genlab.metrics.quality import sample_quality

        out |= sample_quality(
            model,
            data,
            samples=samples,
            seed=seed,
            split="test" if split == "all" else split,
            feature_steps=feature_steps,
            judge=judge,
            progress=progress,
        )
    return out
