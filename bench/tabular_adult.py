"""Synthetic tables on UCI Adult: genlab's copula, tvae and ctgan (and SDV's, when installed).

Data: ../shared/data/adult. The first 5,100 rows of adult.data go to a CSV with a header line:
5,000 training rows and 100 validation rows (data.val_fraction = 100/5100, no test split);
the held-out real rows are adult.test (16,281 rows, the trailing '.' of its labels removed).
Each family trains in this process with the given step budget and threads; its fit time is the
wall time of genlab.train (reading the CSV and fitting the codec included), and its CPU time
(on a machine shared with other work, the CPU time of the one thread is the fairer figure).
Then as many synthetic rows as training rows are scored by genlab.metrics.tabular against
adult.test, with the target `income`: TSTR accuracy, F1 (of '>50K') and AUC of a
HistGradientBoostingClassifier, column shapes, pair trends, the DCR ratio and the share of exact
copies; "real" is the same classifier trained on the 5,000 real rows.

If SDV is importable (a benchmark-only extra, never a genlab dependency), its GaussianCopula,
CTGAN and TVAE are fitted on the same 5,000 rows with the same threads and scored the same way.

    OMP_NUM_THREADS=1 python bench/tabular_adult.py --tvae-steps 2000 --ctgan-steps 1500

Prints `key=value` lines last.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADULT = ROOT.parent / "shared" / "data" / "adult"
COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
]
TRAIN_ROWS, VAL_ROWS = 5000, 100


def _rows(path: Path, skip: int = 0) -> list[list[str]]:
    out = []
    for line in path.read_text().splitlines()[skip:]:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) == len(COLUMNS):
            cells[-1] = cells[-1].rstrip(".")
            out.append(cells)
    return out


def _write(path: Path, rows: list[list[str]]) -> None:
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)


def _genlab(family: str, train_csv: Path, test_csv: Path, out: Path, steps: int, seed: int):
    import genlab
    from genlab.metrics.tabular import evaluate_table
    from genlab.run import read_run

    overrides = [
        f"data.val_fraction={VAL_ROWS / (TRAIN_ROWS + VAL_ROWS)}",
        "data.test_fraction=0",
        "data.tabular.target=income",
    ]
    if family != "copula":
        overrides += ["train.batch_size=500", f"train.eval_every={max(steps // 2, 1)}"]
    t0, cpu0 = time.perf_counter(), time.process_time()
    run = genlab.train(
        family,
        str(train_csv),
        out / family,
        overrides=overrides,
        steps=steps if family != "copula" else None,
        seed=seed,
        quiet=True,
    )
    fit, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    model = genlab.load(run)
    cfg = read_run(run)[1]
    figures, _, _ = evaluate_table(model, cfg.data, str(test_csv), seed=seed, target="income")
    return fit, figures | {"steps": int(model.checkpoint.split("-")[1]), "cpu_s": cpu}


def _sdv(name: str, train_csv: Path, test_csv: Path, seed: int):
    """SDV's synthesizer `name` fitted on the same rows, scored by the same report."""
    import pandas as pd
    from sdv.metadata import SingleTableMetadata
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

    from genlab.data.core import split_indices
    from genlab.data.tabular import table_rows
    from genlab.data.tabular_codec import TableCodec
    from genlab.metrics.tabular import report

    header, rows = table_rows(str(train_csv))
    parts = split_indices(
        len(rows), val_fraction=VAL_ROWS / len(rows), test_fraction=0, seed=0, what="adult"
    )
    train = [rows[i] for i in parts["train"]]
    frame = pd.DataFrame(train, columns=header).replace("?", None)
    for c in ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"):
        frame[c] = frame[c].astype(int)
    metadata = SingleTableMetadata()
    metadata.detect_from_dataframe(frame)
    cls = {
        "sdv_copula": GaussianCopulaSynthesizer,
        "sdv_ctgan": CTGANSynthesizer,
        "sdv_tvae": TVAESynthesizer,
    }[name]
    synth = cls(metadata)
    t0 = time.perf_counter()
    synth.fit(frame)
    fit = time.perf_counter() - t0
    sample = synth.sample(len(train)).astype(object).where(lambda d: d.notna(), "")
    texts = [[str(v) for v in row] for row in sample.itertuples(index=False)]
    codec = TableCodec.fit(header, train, range(len(train)), form="gaussian")
    _, holdout = table_rows(str(test_csv))
    return fit, report(codec, train, holdout, texts, target="income", seed=seed)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--families", default="copula,tvae,ctgan")
    p.add_argument("--tvae-steps", type=int, default=2000)
    p.add_argument("--ctgan-steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="folder for the runs (default: a temporary folder)")
    p.add_argument("--adult", default=str(ADULT), help=f"folder of UCI Adult (default {ADULT})")
    a = p.parse_args()
    adult = Path(a.adult)
    if not (adult / "adult.data").exists():
        print(f"UCI Adult not found at {adult}; put adult.data and adult.test there or --adult")
        return 1
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import torch

    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out) if a.out else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        train_csv, test_csv = out / "adult-train.csv", out / "adult-test.csv"
        _write(train_csv, _rows(adult / "adult.data")[: TRAIN_ROWS + VAL_ROWS])
        _write(test_csv, _rows(adult / "adult.test", skip=1))
        results = {}
        steps = {"tvae": a.tvae_steps, "ctgan": a.ctgan_steps, "copula": 0}  # copula: 1 epoch
        for family in a.families.split(","):
            fit, figures = _genlab(family, train_csv, test_csv, out, steps[family], a.seed)
            results[family] = (fit, figures)
            print(f"{family}: fit {fit:.1f} s", file=sys.stderr, flush=True)
        try:
            import sdv  # noqa: F401

            have_sdv = True
        except ImportError:
            have_sdv = False
        if have_sdv:
            for name in ("sdv_copula", "sdv_tvae", "sdv_ctgan"):
                results[name] = _sdv(name, train_csv, test_csv, a.seed)
    real = next(iter(results.values()))[1]
    print(f"threads={a.threads}")
    print(f"sdv={'present' if have_sdv else 'absent'}")
    print(f"real_f1={real['tstr_f1_real']:.3f}")
    print(f"real_auc={real['tstr_auc_real']:.3f}")
    print(f"real_accuracy={real['tstr_accuracy_real']:.3f}")
    for name, (fit, f) in results.items():
        print(f"{name}_steps={f.get('steps', 0)}")
        print(f"{name}_fit_s={fit:.1f}")
        if "cpu_s" in f:  # on a busy machine, the CPU time of the one thread is the fairer figure
            print(f"{name}_fit_cpu_s={f['cpu_s']:.1f}")
        for key in ("tstr_accuracy", "tstr_f1", "tstr_auc", "column_shapes", "pair_trends"):
            print(f"{name}_{key}={f[key]:.3f}")
        print(f"{name}_dcr_ratio={f['dcr_ratio']:.3f}")
        print(f"{name}_exact_copies={f['exact_copies']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
