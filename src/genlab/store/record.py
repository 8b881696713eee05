"""Recording what a run generates: each sample becomes one stored item (its bytes as the run's
data kind writes them, the run's metadata, an embedding where an encoder fits the kind)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from genlab.store import embed
from genlab.store.base import Added, Item, Store

TEXT_ENCODED = ("text",)
"""Data kinds whose samples are strings embedded by the text encoder."""
IMAGE_ENCODED = ("image",)
"""Data kinds whose samples are images embedded by their data's frozen cnn judge."""


def sample_bytes(kind: Any, sample: Any, info: Any) -> tuple[bytes, str]:
    """One sample (a batch of one) written by its data kind's writer: bytes and suffix."""
    suffix = kind.default_suffix()
    with tempfile.TemporaryDirectory(prefix="genlab-store-") as tmp:
        path = Path(tmp) / f"item{suffix}"
        kind.write(sample, path, info)
        return path.read_bytes(), suffix


def run_metrics(run_dir: Path) -> dict[str, Any]:
    """The latest validation figures in a run's metrics.jsonl ({} when none)."""
    from genlab.io.journal import read_journal

    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return {}
    vals = [r for r in read_journal(path) if r.get("split") == "val"]
    return {k: v for k, v in vals[-1].items() if k != "split"} if vals else {}


def register_run(store: Store, run_dir: str | Path) -> str:
    """Record the run (name = its folder's name, path, family, config, latest metrics) in the
    store; returns its name."""
    from genlab.io.manifest import read_manifest

    run_dir = Path(run_dir)
    meta = read_manifest(run_dir)
    name = run_dir.resolve().name
    store.add_run(
        name,
        path=str(run_dir.resolve()),
        family=meta.get("family", ""),
        config=meta.get("config", {}),
        metrics=run_metrics(run_dir),
    )
    return name


def record(
    store: Store,
    model: Any,
    run: str,
    samples: Any,
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    prompt: str | None = None,
    judge_steps: int = 2000,
    embed_text: bool | None = None,
) -> list[Added]:
    """Store each of `samples` (a model's output: a tensor batch, or a list of strings) as one
    generation of `run`; returns what each insert did (new, duplicate, near-duplicate).

    `embed_text`: embed text samples (default: when the store extra is installed)."""
    from genlab.data.kinds import kind_of

    kind = kind_of(model.info)
    n = len(samples)
    vectors: list[Any] = [None] * n
    words = [""] * n
    space = ""
    if kind.name in TEXT_ENCODED:
        texts = [s if isinstance(s, str) else kind.decode(samples[i : i + 1], model.info)[0]
                 for i, s in enumerate(samples)]  # fmt: skip
        words = texts
        if embed_text if embed_text is not None else embed.text_available():
            enc = embed.text_encoder()
            vectors, space = list(enc.embed(texts)), enc.space
    elif kind.name in IMAGE_ENCODED and model.info.task == "classification":
        judge = embed.image_judge(model.info.source, judge_steps)
        feats, classes = judge.embed(samples)
        vectors, space = list(feats), judge.space
        words = [f"class {c}" for c in classes]
    out = []
    for i in range(n):
        content, suffix = sample_bytes(kind, samples[i : i + 1], model.info)
        item = Item(
            content=content,
            kind=kind.name,
            suffix=suffix,
            text=words[i],
            run=run,
            family=model.family,
            prompt=prompt,
            seed=seed,
            options={**(options or {}), "index": i},
            vector=vectors[i],
            space=space,
        )
        out.append(store.add(item))
    return out
