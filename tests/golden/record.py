"""Golden runs: a tiny seeded 20-step run of every family, its loss curve and a seeded sample.

`python tests/golden/record.py` (re)writes tests/golden/golden.json; tests/test_golden.py
recomputes the same figures with `figures()` below and compares. See tests/golden/README.md.

Only genlab's stable public API is used (`genlab.train`, `genlab.load`), plus the data set's
test split for the discriminative families (`genlab.data.load_dataset`).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden.json"
if str(HERE.parent) not in sys.path:  # tests/, for conftest's tiny configurations
    sys.path.insert(0, str(HERE.parent))

import genlab  # noqa: E402
from conftest import TINY, TINY_DATA, tiny_corpus, write_tiny_audio  # noqa: E402
from genlab.data import BUILTINS  # noqa: E402

STEPS = 20
SEED = 0
SAMPLES = 4  # images or texts sampled per generative family
PREDICT = 8  # test examples predicted by the discriminative families
TEXT_OPTIONS = {"max_new_tokens": 20}
FIRST = 16  # flattened tensor values kept
TRAIN = [
    "train.batch_size=32",
    "train.log_every=1",
    "train.eval_every=10",
    "train.eval_batches=2",
    "train.checkpoint_every=10",
]
# keys of metrics rows that are not figures of the computation (wall-clock dependent)
UNTIMED = {"step", "examples_per_s", "elapsed_s"}


def families() -> list[str]:
    """The registered families, each of which must have a golden entry."""
    from genlab.registry import FAMILIES

    return list(FAMILIES)


def _tensor(t: torch.Tensor) -> dict[str, Any]:
    t = t.detach().to("cpu", torch.float64)
    return {
        "shape": list(t.shape),
        "sum": t.sum().item(),
        "abs_sum": t.abs().sum().item(),
        "first": [float(v) for v in t.flatten()[:FIRST].tolist()],
    }


def _curves(run_dir: Path) -> dict[str, list[float]]:
    """Every numeric train key of metrics.jsonl, as a list over the logged steps."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("split") == "train"]
    if [r["step"] for r in rows] != list(range(1, STEPS + 1)):
        raise RuntimeError(f"{run_dir}: expected train rows for steps 1..{STEPS}")
    keys = sorted(
        k
        for k, v in rows[0].items()
        if k not in UNTIMED and isinstance(v, int | float) and not isinstance(v, bool)
    )
    return {k: [float(r[k]) for r in rows] for k in keys}


def _data(family: str, tmp: Path) -> str:
    if TINY_DATA.get(family) == "tiny_text":
        path = tmp / "tiny.txt"
        if not path.exists():
            path.write_text(tiny_corpus(), encoding="utf-8")
        return str(path)
    if TINY_DATA.get(family) in BUILTINS:  # e.g. the 'wine' table
        return TINY_DATA[family]
    if TINY_DATA.get(family) == "tiny_audio":
        root = tmp / "clips"
        return str(root if root.exists() else write_tiny_audio(root))
    if family in TINY_DATA:
        raise RuntimeError(f"no golden data for {family}: {TINY_DATA[family]}")
    return "digits"


def figures(family: str) -> dict[str, Any]:
    """Train `family` for STEPS seeded steps in a temporary folder; its golden figures."""
    if family not in TINY:
        raise RuntimeError(f"{family} has no tiny configuration in tests/conftest.py TINY")
    threads = torch.get_num_threads()
    cache = os.environ.get("GENLAB_CACHE")
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix=f"golden-{family}-") as tmp:
            tmp = Path(tmp)
            os.environ["GENLAB_CACHE"] = str(tmp / "cache")  # no stale tokenized corpus
            data = _data(family, tmp)
            run_dir = genlab.train(
                family,
                data,
                tmp / "run",
                overrides=[*TINY[family], *TRAIN],
                steps=STEPS,
                seed=SEED,
                quiet=True,
            )
            out: dict[str, Any] = {"train": _curves(run_dir)}
            model = genlab.load(run_dir)
            with torch.no_grad():
                if not model.generates():
                    from genlab.data import load_dataset

                    x = load_dataset(data).batch("test", torch.arange(PREDICT))["x"]
                    if model.discriminative:
                        out["predict"] = _tensor(model.predict(x))
                    else:  # a representation family (simclr): its features
                        out["represent"] = _tensor(model.representation(x))
                else:
                    options = TEXT_OPTIONS if data.endswith(".txt") else {}
                    g = torch.Generator().manual_seed(1)
                    s = model.sample(SAMPLES, generator=g, **options)
                    out["sample"] = _tensor(s) if isinstance(s, torch.Tensor) else list(s)
            return out
    finally:
        torch.set_num_threads(threads)
        if cache is None:
            os.environ.pop("GENLAB_CACHE", None)
        else:
            os.environ["GENLAB_CACHE"] = cache


def _check_finite(family: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise RuntimeError(f"{family}: a golden figure is {value}")
    if isinstance(value, dict):
        for v in value.values():
            _check_finite(family, v)
    if isinstance(value, list):
        for v in value:
            _check_finite(family, v)


def record(path: Path = GOLDEN) -> dict[str, Any]:
    golden = {}
    for family in families():
        golden[family] = figures(family)
        _check_finite(family, golden[family])
    path.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")
    return golden


def main() -> None:
    golden = record()
    print(f"wrote {GOLDEN}")
    for family, fig in golden.items():
        train = fig["train"]
        out = fig.get("sample", fig.get("predict"))
        kind = "sample" if "sample" in fig else "predict"
        desc = (
            f"{len(out)} texts"
            if isinstance(out, list)
            else f"shape {out['shape']} sum {out['sum']:.6g}"
        )
        print(
            f"  {family:9s} train keys {', '.join(train)}; loss {train['loss'][0]:.6g} -> "
            f"{train['loss'][-1]:.6g}; {kind} {desc}"
        )


if __name__ == "__main__":
    main()
