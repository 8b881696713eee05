"""`genlab bench`: several generative families side by side on the same data.

Each family is trained on the same data, with the same seed, under the same wall-clock budget,
then judged by the same metrics on the same number of samples drawn with the same seed:

1. calibrate: a few optimizer steps of the family's configuration are timed (after two warm-up
   steps, in a throw-away trainer), and the run's step count is sized so that its learning-rate
   schedule ends when the budget does (90% of it: evaluations and checkpoints take the rest);
2. train into DIR/runs/LABEL (the family's name unless `LABEL=FAMILY` gave another) with that
   step count, timing the whole training call;
3. evaluate on the test split: the family's likelihood where it has one (genlab eval's numbers),
   and the sample-quality figures of genlab.metrics.quality on `samples` generated images,
   each next to the real-vs-real baseline; the sampling time per image is measured on them.

Results go to DIR/comparison.md and DIR/comparison.json, with DIR/samples-LABEL.png. A family
whose result is already in DIR/runs/LABEL/bench.json is not run again, and a family whose
training was stopped (Ctrl-C) continues from its last checkpoint, its training time counted
across both parts: an interrupted bench resumes with the same command.

On audio data (class-conditional families such as wavenet and diffwave), the figures are those
of genlab.metrics.audio instead: the frozen melcnn judge's accuracy on the class asked for and
the Frechet distance in its features, on about `samples` clips balanced over the classes, which
are written as DIR/samples-LABEL-<class>.wav with a spectrogram PNG.

No family is named here: every registered generative family that handles images can take part.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from genlab.config import apply_overrides
from genlab.data import Split
from genlab.errors import UsageError
from genlab.io.atomic import write_json_atomic
from genlab.io.checkpoint import checkpoint_dir
from genlab.io.images import save_grid
from genlab.io.manifest import read_json_file, read_manifest

DEFAULT_FAMILIES = "vae,gan,pixelcnn"
BUDGET_SHARE = 0.9
"""Fraction of the budget given to optimizer steps; evaluations and checkpoints use the rest."""

# rows of the comparison table: (key, label, format)
ROWS = [
    ("parameters", "parameters", "{:,}"),
    ("steps", "training steps", "{:,}"),
    ("train_seconds", "training time (s)", "{:.0f}"),
    ("train_cpu_seconds", "training CPU time (s)", "{:.0f}"),
    ("sample_ms_per_image", "sampling time (ms / image)", "{:.2f}"),
    ("nll_nats", "test NLL (nats / image)", "{:.2f}"),
    ("bits_per_dim", "test bits / dim", "{:.4f}"),
    ("coverage", "coverage (k=5)", "{:.3f}"),
    ("density", "density (k=5)", "{:.3f}"),
    ("spread", "spread (1 = as varied as real images)", "{:.3f}"),
    ("fd", "Frechet distance (cnn features)", "{:.3f}"),
    ("kid", "KID (unbiased)", "{:.4f}"),
    ("precision", "precision (k=3)", "{:.3f}"),
    ("recall", "recall (k=3)", "{:.3f}"),
    ("classes_covered", "classes covered", "{}"),
    ("class_kl", "KL of class histogram from the data's (nats)", "{:.3f}"),
    ("conditional_accuracy", "conditional accuracy", "{:.3f}"),
    ("judge_accuracy", "audio judge accuracy (the class asked for)", "{:.3f}"),
    ("nn_distance", "nearest training image (feature distance)", "{:.3f}"),
    ("memorization_ratio", "memorization ratio (< 1: closer than real)", "{:.3f}"),
]


TABLE_FAMILIES = "copula,tvae,ctgan"
"""The default families when the data is a table."""
TABLE_ROWS = [
    ("parameters", "parameters", "{:,}"),
    ("steps", "training steps", "{:,}"),
    ("train_seconds", "fit time (s)", "{:.1f}"),
    ("tstr_accuracy", "TSTR accuracy", "{:.3f}"),
    ("tstr_f1", "TSTR F1", "{:.3f}"),
    ("tstr_auc", "TSTR AUC", "{:.3f}"),
    ("column_shapes", "column shapes", "{:.3f}"),
    ("pair_trends", "column pair trends", "{:.3f}"),
    ("dcr_ratio", "DCR ratio (synthetic / held-out real)", "{:.3f}"),
    ("exact_copies", "exact copies of training rows (share)", "{:.4f}"),
]


def split_entry(entry: str) -> tuple[str, str]:
    """(label, family) of one --families entry: `FAMILY`, or `LABEL=FAMILY` for a second run of
    a family under its own name (e.g. `style=gan` with `--set style:model.generator=style`)."""
    label, sep, family = entry.partition("=")
    return (label.strip(), family.strip()) if sep else (entry.strip(), entry.strip())


def parse_families(text: str) -> list[str]:
    """The entries of 'a,b,LABEL=c', each naming a generative family of the registry; labels
    (a family's own name unless given) are unique."""
    entries = [n.strip() for n in text.split(",") if n.strip()]
    check_entries(entries)
    return entries


def check_entries(entries: list[str]) -> None:
    """Refuse an empty list, a label given twice or unusable as a folder name, a label that
    names another family, and any family that is not generative."""
    from genlab.registry import FAMILIES, get_family

    if not entries:
        raise UsageError("--families needs at least one family, e.g. vae,gan,pixelcnn")
    labels = [split_entry(e)[0] for e in entries]
    if len(set(labels)) != len(labels):
        raise UsageError(
            f"--families lists a name twice: {','.join(entries)}; run a family again under a "
            "label of its own, e.g. style=gan"
        )
    for label, name in map(split_entry, entries):
        if not re.fullmatch(r"[A-Za-z0-9_-]+", label):
            raise UsageError(f"--families: '{label}' is not a usable label (letters, digits, _ -)")
        if label != name and label in FAMILIES:
            raise UsageError(
                f"--families: '{label}={name}' would label a {name} run with another family's "
                "name; choose another label"
            )
        cls, _ = get_family(name)
        if cls.discriminative:
            raise UsageError(f"'{name}' is discriminative: the bench compares generative families")


def family_overrides(label: str, overrides: list[str]) -> list[str]:
    """The --set entries for one --families label: `key=value` for all, `LABEL:key=value` for
    the one of that label (a family's name unless the entry gave another)."""
    for rest in _own_overrides(label, overrides):
        if rest.startswith("data."):
            raise UsageError(
                f"--set {label}:{rest}: every family trains on the same data; set data.* for all"
            )
    return [  # in the order given, so a later --set wins
        o.partition(":")[2] if _prefix(o) else o for o in overrides if _prefix(o) in (None, label)
    ]


def _own_overrides(label: str, overrides: list[str]) -> list[str]:
    """The `key=value` parts of the `LABEL:key=value` entries of one label."""
    return [o.partition(":")[2] for o in overrides if _prefix(o) == label]


def _check_prefixes(entries: list[str], overrides: list[str]) -> None:
    """Every `LABEL:key=value` names a label of --families, or a family of the registry that is
    not benched this time (it ignores its settings, so one --set list serves many runs); a
    family benched only under other labels is refused, since nothing would read its settings."""
    from genlab.registry import get_family

    labels = [split_entry(e)[0] for e in entries]
    for item in overrides:
        head, sep, _ = item.partition(":")
        if not sep or "=" in head or head in labels:
            continue
        try:
            get_family(head)
        except UsageError as e:
            raise UsageError(
                f"--set {item}: '{head}' is neither a label of --families "
                f"({', '.join(labels)}) nor a family: {e}"
            ) from None
        others = [label for label, family in map(split_entry, entries) if family == head]
        if others:
            raise UsageError(
                f"--set {item}: {head} runs here as {', '.join(others)}; set it with "
                f"--set {others[0]}:{item.partition(':')[2]}"
            )


def _settings_key(settings: dict[str, Any]) -> dict[str, Any]:
    """What must match for two bench calls to share a folder: all but the families and the
    settings of one label (each run checks those itself, in its bench.json)."""
    shared = [o for o in settings["overrides"] if not _prefix(o)]
    key = {k: v for k, v in settings.items() if k not in ("families", "overrides")}
    return {**key, "cpu_budget": settings.get("cpu_budget", False), "overrides": shared}


def _prefix(item: str) -> str | None:
    head, sep, _ = item.partition(":")
    return head if sep and "=" not in head else None


def _check_reused(run_dir: Path, entry: str, own: list[str]) -> None:
    """A finished or stopped run in `run_dir` is of the entry's family and, where its
    bench.json says, was trained with the entry's own settings."""
    label, family = split_entry(entry)
    manifest = read_manifest(run_dir)
    if manifest.get("family") != family:
        raise UsageError(
            f"{run_dir} holds a {manifest.get('family')} run, not {family}: choose another "
            f"label than '{label}' or another --out"
        )
    done = run_dir / "bench.json"
    kept = read_json_file(done, "bench result").get("own_overrides") if done.exists() else None
    if kept is not None and kept != own:
        raise UsageError(
            f"{run_dir} was trained with --set {label}: settings {kept}, not {own}: repeat "
            "them, or choose another label or --out"
        )


def run_config(entry: str, preset: str | None, overrides: list[str]) -> Any:
    """The configuration of a --families entry: its family's preset of that name if it has
    one, then --set."""
    from genlab.registry import get_family
    from genlab.runconfig import default_config

    label, family = split_entry(entry)
    _, presets = get_family(family)
    base = default_config(family, preset if preset in presets else None)
    return apply_overrides(base, family_overrides(label, overrides))


def calibrate(
    family: str, cfg: Any, dataset: Any, steps: int = 10, clock: Any = time.perf_counter
) -> float:
    """Seconds per optimizer step of `family` with configuration `cfg` on `dataset`, on `clock`
    (wall time, or `time.process_time` for this process's CPU time)."""
    from genlab.run import build_model
    from genlab.training.loop import Trainer

    torch.manual_seed(cfg.train.seed)
    model = build_model(family, cfg.model, dataset.info, dataset.files)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, dataset, cfg.train, Path(tmp), total_steps=steps + 2, quiet=True)
        for step in range(2):  # warm-up: allocations, lazy initialization
            trainer.train_step(step)
        t0 = clock()
        for step in range(2, steps + 2):
            trainer.train_step(step)
        return (clock() - t0) / steps


def _train_family(
    entry: str,
    run_dir: Path,
    data: str,
    *,
    preset: str | None,
    overrides: list[str],
    budget_s: float,
    dataset: Any,
    seed: int,
    calibration_steps: int,
    quiet: bool,
    cpu_budget: bool = False,
) -> dict[str, Any]:
    """Train (or resume) one entry's run for the budget; its steps and training seconds (wall
    and this process's CPU)."""
    import genlab

    label, family = split_entry(entry)
    progress_file = run_dir / "bench-progress.json"
    resumed = checkpoint_dir(run_dir, "latest") is not None
    before = {"train_seconds": 0.0, "train_cpu_seconds": 0.0}
    if resumed:
        if progress_file.exists():
            before |= read_json_file(progress_file, "bench progress")
        steps = read_manifest(run_dir)["config"]["train"]["steps"]
        _say(f"{label}: resuming the stopped run in {run_dir} (up to {steps} steps)")
    else:
        cfg = run_config(entry, preset, [*overrides, f"train.seed={seed}"])
        clock = time.process_time if cpu_budget else time.perf_counter
        step_s = calibrate(family, cfg, dataset, calibration_steps, clock)
        steps = max(10, int(budget_s * BUDGET_SHARE / step_s))
        _say(
            f"{label}: {1000 * step_s:.1f} ms {'of CPU ' if cpu_budget else ''}per step -> "
            f"{steps} steps in {budget_s / 60:.3g} min"
        )
    t0, c0 = time.perf_counter(), time.process_time()

    def spent() -> dict[str, float]:
        return {
            "train_seconds": before["train_seconds"] + time.perf_counter() - t0,
            "train_cpu_seconds": before["train_cpu_seconds"] + time.process_time() - c0,
        }

    try:
        if resumed:
            genlab.train(family, data, run_dir, resume=True, quiet=quiet)
        else:
            extra = [f"train.eval_every={max(1, steps // 4)}", "train.eval_batches=10"]
            genlab.train(
                family,
                data,
                run_dir,
                preset=preset if preset in _presets(family) else None,
                overrides=[*extra, *family_overrides(label, overrides)],
                steps=steps,
                seed=seed,
                quiet=quiet,
            )
    except BaseException:  # Ctrl-C or an error: keep the time spent, for the resumed run
        if checkpoint_dir(run_dir, "latest") is not None:
            write_json_atomic(progress_file, spent())
        raise
    return {"steps": steps, **spent(), "resumed": resumed}


def _presets(family: str) -> dict:
    from genlab.registry import get_family

    return get_family(family)[1]


def _say(text: str) -> None:
    print(f"genlab bench: {text}", file=sys.stderr, flush=True)


def bench(
    data: str,
    out: str | Path,
    *,
    families: list[str],
    budget_minutes: float,
    samples: int = 1000,
    seed: int = 0,
    preset: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    feature_steps: int = 2000,
    calibration_steps: int = 10,
    nll_examples: int = 0,
    quiet: bool = True,
    cpu_budget: bool = False,
) -> dict[str, Any]:
    """Train, sample and evaluate each family in `families` on `data` under the same budget;
    writes OUT/comparison.md, OUT/comparison.json and OUT/samples-FAMILY.png, returns the
    comparison (as in the JSON). An entry of `families` is a family's name or `LABEL=FAMILY`
    (a run of that family under the label, `LABEL:key=value` in `overrides` setting it apart).
    `nll_examples` > 0 computes likelihoods on that many test images only (the first ones)
    instead of the whole test split. `cpu_budget` counts the budget in this process's CPU time
    (sizing each run from a calibration on that clock), so other load does not shrink it."""
    import genlab
    from genlab.judges import judge
    from genlab.metrics.evaluate import evaluate
    from genlab.metrics.quality import check_quality_settings, generate, sample_quality

    if budget_minutes <= 0:
        raise UsageError(f"--budget-minutes must be positive; got {budget_minutes}")
    check_quality_settings(samples, feature_steps)
    out = Path(out)
    overrides = list(overrides)
    check_entries(families)
    _check_prefixes(families, overrides)
    for entry in families:  # every setting is checked before any training starts
        run_config(entry, preset, overrides)
    settings = {
        "data": data,
        "families": families,
        "budget_minutes": budget_minutes,
        "samples": samples,
        "seed": seed,
        "preset": preset,
        "overrides": overrides,
        "feature_steps": feature_steps,
        "nll_examples": nll_examples,
        "cpu_budget": cpu_budget,
    }

    from genlab.run import build_model, load_data

    if all(
        _learns_tables(split_entry(e)[1]) for e in families
    ):  # synthetic tables: their own report
        if cpu_budget:
            raise UsageError(
                "--cpu-budget applies to image and audio benches; a table bench cuts each "
                "family's own step count to a wall-clock budget"
            )
        return _bench_tables(
            data, out, families, settings, budget_minutes, calibration_steps, quiet
        )
    dataset = load_data(run_config(families[0], preset, overrides), data)
    audio = dataset.info.kind == "audio"
    if dataset.info.kind != "image" and not audio:
        raise UsageError(
            f"the bench compares image or audio models; '{data}' is {dataset.info.kind} data"
        )
    for entry in families:  # a family that cannot model these data says so before any training
        build_model(split_entry(entry)[1], run_config(entry, preset, overrides).model, dataset.info)
    settings_file = out / "bench-settings.json"
    old = read_json_file(settings_file, "bench settings") if settings_file.exists() else None
    if old is not None and _settings_key(old) != _settings_key(settings):
        raise UsageError(
            f"{out} holds a bench with other settings ({settings_file}); "
            "choose another --out or repeat the same command to resume it"
        )
    write_json_atomic(settings_file, settings)

    likelihood_data = dataset
    if nll_examples > 0:  # the first test images only
        test = dataset.splits["test"]
        cut = Split(test.x[:nll_examples], None if test.y is None else test.y[:nll_examples])
        likelihood_data = dataclasses.replace(dataset, splits={**dataset.splits, "test": cut})
    if audio:  # the frozen melcnn of the data as the first family reads it
        from genlab.judges import audio_judge
        from genlab.metrics.audio import AUDIO_RECIPE

        extractor = audio_judge(dataset, steps=feature_steps)
    else:
        extractor = judge(data, steps=feature_steps)
    _say(
        f"frozen {'melcnn audio judge' if audio else 'cnn feature extractor'} "
        f"({feature_steps} steps): test accuracy {extractor.test_accuracy:.4f}"
    )

    results: dict[str, dict[str, Any]] = {}
    real: dict[str, Any] = {}
    for entry in families:
        label, family = split_entry(entry)
        run_dir = out / "runs" / label
        done = run_dir / "bench.json"
        own = _own_overrides(label, overrides)
        if (run_dir / "run.json").exists():
            _check_reused(run_dir, entry, own)
        if done.exists():
            _say(f"{label}: reusing the finished result in {done}")
            results[label] = read_json_file(done, "bench result")
        else:
            record = _train_family(
                entry,
                run_dir,
                data,
                preset=preset,
                overrides=overrides,
                budget_s=60 * budget_minutes,
                dataset=dataset,
                seed=seed,
                calibration_steps=calibration_steps,
                quiet=quiet,
                cpu_budget=cpu_budget,
            )
            _say(f"{label}: trained {record['steps']} steps in {record['train_seconds']:.0f} s")
            record |= {"family": family, "own_overrides": own}
            model = genlab.load(run_dir)
            if audio:
                record |= _audio_result(
                    model, dataset, extractor, samples, seed, out / f"samples-{label}"
                )
                record["feature_extractor"] = f"melcnn {AUDIO_RECIPE}, {feature_steps} steps"
                metrics = evaluate(model, likelihood_data, "test", seed=seed, progress=not quiet)
                record |= {
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "checkpoint": model.checkpoint,
                    "run_dir": str(run_dir),
                    **{k: v for k, v in metrics.items() if k not in ("split", "examples")},
                }
                write_json_atomic(done, record)
                results[label] = record
                real = {k[: -len("_real")]: v for k, v in record.items() if k.endswith("_real")}
                continue
            images, seconds = generate(model, samples, seed=seed)
            metrics = evaluate(model, likelihood_data, "test", seed=seed, progress=not quiet)
            quality = sample_quality(
                model,
                dataset,
                samples=samples,
                seed=seed,
                feature_steps=feature_steps,
                images=images,
                judge=extractor,
            )
            record |= {
                "parameters": sum(p.numel() for p in model.parameters()),
                "checkpoint": model.checkpoint,
                "run_dir": str(run_dir),
                "sample_ms_per_image": 1000 * seconds / samples,
                **{k: v for k, v in metrics.items() if k not in ("split", "examples")},
                **quality,
            }
            save_grid(images[:64], out / f"samples-{label}.png")
            write_json_atomic(done, record)
            results[label] = record
        real = {k[: -len("_real")]: v for k, v in results[label].items() if k.endswith("_real")}

    first = results[split_entry(families[0])[0]]
    comparison = {
        **settings,
        "kind": dataset.info.kind,
        "test_examples": len(likelihood_data.splits["test"]),
        "feature_extractor": first["feature_extractor"],
        "feature_extractor_test_accuracy": first["feature_extractor_test_accuracy"],
        "real": real,
        "families": results,
    }
    write_json_atomic(out / "comparison.json", comparison)
    (out / "comparison.md").write_text(markdown(comparison))
    return comparison


def _learns_tables(family: str) -> bool:
    from genlab.registry import get_family

    return get_family(family)[0].data_kinds == ("tabular",)


def _bench_tables(
    data: str,
    out: Path,
    families: list[str],
    settings: dict[str, Any],
    budget_minutes: float,
    calibration_steps: int,
    quiet: bool,
) -> dict[str, Any]:
    """The bench of table families on a CSV file: each trained on the same rows with its own
    configured step count, cut to what the budget allows, then genlab.metrics.tabular's
    report against the held-out test split (as many synthetic rows as training rows)."""
    import genlab
    from genlab.data.tabular_codec import clear_codec_cache
    from genlab.metrics.tabular import evaluate_table
    from genlab.run import load_data

    preset, overrides, seed = settings["preset"], settings["overrides"], settings["seed"]
    write_json_atomic(out / "bench-settings.json", settings)
    results: dict[str, dict[str, Any]] = {}
    real: dict[str, Any] = {}
    for entry in families:
        label, family = split_entry(entry)
        run_dir = out / "runs" / label
        done = run_dir / "bench.json"
        own = _own_overrides(label, overrides)
        if (run_dir / "run.json").exists():
            _check_reused(run_dir, entry, own)
        if done.exists():
            _say(f"{label}: reusing the finished result in {done}")
            results[label] = read_json_file(done, "bench result")
        else:
            cfg = run_config(entry, preset, [*overrides, f"train.seed={seed}"])
            dataset = load_data(cfg, data)
            own = cfg.train.steps
            if cfg.train.epochs > 0:
                per_epoch = len(dataset.splits["train"]) // cfg.train.batch_size
                own = math.ceil(cfg.train.epochs * per_epoch)
            step_s = calibrate(family, cfg, dataset, calibration_steps)
            steps = max(1, min(own, int(60 * budget_minutes * BUDGET_SHARE / step_s)))
            _say(f"{label}: {1000 * step_s:.1f} ms per step -> {steps} steps")
            clear_codec_cache()  # the fit time includes fitting the codec
            t0 = time.perf_counter()
            genlab.train(
                family,
                data,
                run_dir,
                preset=preset if preset in _presets(family) else None,
                overrides=family_overrides(label, overrides),
                steps=steps,
                seed=seed,
                quiet=quiet,
            )
            record: dict[str, Any] = {
                "steps": steps,
                "train_seconds": time.perf_counter() - t0,
                "family": family,
                "own_overrides": own,
            }
            model = genlab.load(run_dir)
            figures, _, _ = evaluate_table(model, cfg.data, None, seed=seed)
            record |= {
                "parameters": sum(p.numel() for p in model.parameters()),
                "checkpoint": model.checkpoint,
                "run_dir": str(run_dir),
                **figures,
            }
            write_json_atomic(done, record)
            results[label] = record
        real = {k[: -len("_real")]: v for k, v in results[label].items() if k.endswith("_real")}
    comparison = {**settings, "real": real, "families": results}
    write_json_atomic(out / "comparison.json", comparison)
    names = list(results)
    lines = [
        f"# genlab bench: {', '.join(names)} on {data}",
        "",
        f"Each family fitted with its own step count, cut to a budget of {budget_minutes:g} min "
        f"(seed {seed}), then as many synthetic rows as training rows scored against the "
        "held-out test rows. The 'real' column is real-vs-real: the training rows themselves "
        "(TSTR: train on real) against the same held-out rows.",
        "",
        "| metric | real | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for key, label, fmt in TABLE_ROWS:
        values = [results[n].get(key) for n in names]
        if all(v is None for v in values):
            continue
        cells = [_cell(real.get(key), fmt)] + [_cell(v, fmt) for v in values]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    (out / "comparison.md").write_text("\n".join(lines) + "\n")
    return comparison


def _audio_result(model, dataset, extractor, samples: int, seed: int, stem: Path) -> dict:
    """The audio figures of a class-conditional model (genlab.metrics.audio) on about
    `samples` clips, balanced over the classes, which are written as STEM-<class>.wav."""
    from genlab.data.kinds import kind_of
    from genlab.metrics.audio import audio_quality, class_samples

    k = dataset.info.num_classes
    if not model.conditional:
        raise UsageError(
            f"'{model.family}' was trained unconditionally: the audio bench judges "
            "class-conditional samples; add --set <label>:model.conditional=true (the "
            "family's name, or the label its --families entry gave it)"
        )
    per_class = max(1, math.ceil(samples / k))
    t0 = time.perf_counter()
    clips = class_samples(model, k, per_class, seed=seed)
    seconds = time.perf_counter() - t0
    kind_of(dataset.info).write(
        clips[0], stem.with_suffix(".wav"), dataset.info, per_class=True, classes=clips[1]
    )
    quality = audio_quality(model, dataset, extractor, seed=seed, clips=clips)
    quality["feature_extractor_test_accuracy"] = quality.pop("judge_test_accuracy")
    return {"sample_ms_per_image": 1000 * seconds / len(clips[0]), **quality}


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return fmt.format(value)


def markdown(comparison: dict[str, Any]) -> str:
    """The comparison as a Markdown report: settings, then one table, a column per family."""
    fams = comparison["families"]
    names = list(fams)
    audio = comparison.get("kind") == "audio"
    items = "clips" if audio else "images"
    lines = [
        f"# genlab bench: {', '.join(names)} on {comparison['data']}",
        "",
        f"Each family trained for a budget of {comparison['budget_minutes']:g} min "
        f"(seed {comparison['seed']}), then {comparison['samples']} samples drawn with seed "
        f"{comparison['seed']}; likelihoods on the {comparison['test_examples']} test {items}. "
        f"Features: the frozen in-house {comparison['feature_extractor']} (test accuracy "
        f"{comparison['feature_extractor_test_accuracy']:.4f}). The 'real' column scores real "
        f"test {items} against the same training reference: the best a model can hope for.",
        "",
        "| metric | real (test vs train) | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for key, label, fmt in ROWS:
        values = [fams[n].get(key) for n in names]
        if all(v is None for v in values):
            continue
        real = comparison["real"].get(key)
        cells = [_cell(real, fmt)] + [_cell(v, fmt) for v in values]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if audio:  # a spectrogram of each family's clips; the clips are WAVs, one per class
        for n in names:
            lines += ["", f"![{n}](samples-{n}-spectrogram.png)", f"WAV: `samples-{n}-CLASS.wav`"]
        lines.append("")
    else:
        lines += ["", *[f"![{n}](samples-{n}.png)" for n in names], ""]
    return "\n".join(lines)
