"""Synthetic tables: codec, CSV missing values, tabular families, sampling and the report."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.data import load_dataset
from genlab.data.config import DataConfig
from genlab.data.tabular_codec import TableCodec
from genlab.errors import DataError

HEADER = ["age", "income", "city", "member", "joined", "const", "score"]


def _table(n: int = 120, seed: int = 0) -> list[list[str]]:
    """Every column type: integer (with NA), two-mode numeric, categorical (with ?), bool,
    date, a constant and a numeric column with an empty cell."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        income = rng.normal(50, 10) if i % 2 else rng.normal(200, 5)
        rows.append(
            [
                "NA" if i % 17 == 0 else str(int(rng.integers(18, 90))),
                f"{income:.2f}",
                str(rng.choice(["Paris", "Rome", "?"])),
                str(rng.choice(["True", "False"])),
                f"2020-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
                "7",
                "" if i == 5 else f"{rng.normal():.3f}",
            ]
        )
    return rows


def _write(path, header, rows) -> str:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return str(path)


def _same(a: str, b: str) -> bool:
    """Equal cells: equal numbers, or equal texts with missing markers read as empty."""
    a = "" if a in ("NA", "?") else a
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


@pytest.mark.parametrize("form", ["modes", "gaussian"])
def test_codec_round_trips_every_column_type(form):
    rows = _table()
    codec = TableCodec.fit(HEADER, rows, np.arange(80), form=form)
    assert [c["type"] for c in codec.columns] == [
        "integer",
        "numeric",
        "categorical",
        "bool",
        "datetime",
        "integer",
        "numeric",
    ]
    z = codec.encode(rows).astype(np.float32)  # the model's float32 form
    back = codec.decode(z)
    texts = [[codec.text(j, v) for j, v in enumerate(row)] for row in back]
    for original, decoded in zip(rows, texts):
        assert all(_same(a, b) for a, b in zip(original, decoded)), (original, decoded)
    assert isinstance(back[1][0], int) and back[0][0] is None  # integers stay ints, NA missing
    again = TableCodec.from_dict(codec.to_dict())  # the JSON state alone decodes the same
    assert again.decode(z) == back


def test_codec_modes_layout_and_constant_column():
    codec = TableCodec.fit(HEADER, _table(), np.arange(80), form="modes")
    names = codec.dim_names()
    assert names.count("const") == 1 and "const#mode0" in names  # one mode, alpha always 0
    assert [n for n in names if n.startswith("city=")] == ["city=", "city=Paris", "city=Rome"]
    assert names[-1] == "score#missing" or "score#mode" in names[-1]  # missing is its own mode
    z = codec.encode(_table())
    assert np.allclose(z[:, names.index("const")], 0)
    # decoded numbers stay inside the training range even for wild alphas
    z[:, names.index("income")] = 50.0
    incomes = [row[1] for row in codec.decode(z)]
    assert max(incomes) <= codec.columns[1]["max"]


def test_codec_entirely_missing_column_is_an_error():
    rows = [[str(i), "NA"] for i in range(10)]
    with pytest.raises(DataError, match="column 'b' is entirely missing"):
        TableCodec.fit(["a", "b"], rows, np.arange(8))


def test_csv_missing_markers_are_missing_and_summarized(tmp_path):
    rows = [[str(i), ["1.5", "NA", "N/A", "null", "?", "nan", ""][i % 7], "a"] for i in range(40)]
    path = _write(tmp_path / "m.csv", ["target", "area", "city"], rows)
    ds = load_dataset(path)
    rec = ds.info.record
    assert rec.types == ["numeric", "categorical"]
    assert rec.missing["area"].startswith("34 missing: filled with the training mean 1.5")
    assert not ds.splits["train"].x.isnan().any()


def test_csv_stray_value_names_line_column_and_value(tmp_path):
    rows = [[str(i % 2), str(100 + i)] for i in range(60)]
    rows[41][1] = "12a"
    path = _write(tmp_path / "s.csv", ["target", "area_m2"], rows)
    with pytest.raises(DataError, match=r"line 43, column 'area_m2': '12a' is not a number"):
        load_dataset(path)


def test_wine_builtin_in_both_forms():
    ds = load_dataset("wine")
    assert ds.info.num_classes == 3 and ds.info.shape == [13]
    cfg = DataConfig()
    cfg.tabular.codec = "modes"
    synth = load_dataset("wine", cfg)
    rec = synth.info.record
    assert synth.info.task == "none" and rec.target_name == "cultivar"
    assert rec.columns[-1] == "cultivar" and rec.types[-1] == "categorical"
