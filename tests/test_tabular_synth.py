"""Synthetic tables: codec, CSV missing values, tabular families, sampling and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import genlab
from genlab.cli import main
from genlab.data import load_dataset
from genlab.data.config import DataConfig
from genlab.data.tabular_codec import TableCodec
from genlab.errors import DataError


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The report's gradient boosting on one OpenMP thread: on a busy machine, spinning threads
    slow tiny fits down by orders of magnitude."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


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


# families, sampling, the report ---------------------------------------------------------------
def error_line(capsys, status: int, *args) -> str:
    rc = main([str(a) for a in args])
    _, err = capsys.readouterr()
    assert rc == status, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def _people(n: int = 240, seed: int = 0) -> list[list[str]]:
    """A small table with a dependence: income follows sex and age; 'plan' is constant."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        sex = str(rng.choice(["Female", "Male"]))
        age = int(rng.integers(20, 70))
        rich = rng.random() < (0.7 if sex == "Male" and age > 40 else 0.15)
        rows.append([str(age), sex, ">50K" if rich else "<=50K", "basic"])
    return rows


PEOPLE = ["age", "sex", "income", "plan"]


@pytest.fixture(scope="module")
def people_csv(tmp_path_factory) -> str:
    return _write(tmp_path_factory.mktemp("people") / "people.csv", PEOPLE, _people())


@pytest.fixture(scope="module")
def copula_run(people_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "copula"
    genlab.train("copula", people_csv, out, overrides=["data.tabular.target=income"], quiet=True)
    return out


def test_copula_fits_the_correlation_of_the_normal_scores_in_closed_form(copula_run):
    model = genlab.load(copula_run)
    from genlab.run import load_data, read_run

    data = load_data(read_run(copula_run)[1], read_run(copula_run)[2].source)
    z = data.splits["train"].x.double()
    seen = z[: (len(z) // 64) * 64]  # the loop's full batches of one epoch
    cov = seen.T @ seen / len(seen) + 1e-3 * torch.eye(z.shape[1], dtype=z.dtype)
    corr = cov / cov.diagonal().sqrt()[:, None] / cov.diagonal().sqrt()[None, :]
    factor = torch.tril(model.chol.detach()).double()
    assert torch.allclose(factor @ factor.T, corr, atol=1e-5)


def test_sample_csv_keeps_names_types_and_a_constant_column(copula_run, tmp_path, capsys):
    out = tmp_path / "synth.csv"
    assert main(["sample", str(copula_run), "-n", "300", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(PEOPLE) and len(lines) == 301
    rows = [line.split(",") for line in lines[1:]]
    assert all(r[0].isdigit() and 20 <= int(r[0]) <= 69 for r in rows)  # ints, in range
    assert {r[1] for r in rows} <= {"Female", "Male"} and {r[3] for r in rows} == {"basic"}


def test_where_keeps_conditions_exact(copula_run, tmp_path, capsys):
    out = tmp_path / "rich.csv"
    args = ["sample", str(copula_run), "-n", "40", "--out", str(out)]
    assert main([*args, "--where", "sex=Female,income=>50K"]) == 0
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    assert len(rows) == 40 and all(r[1] == "Female" and r[2] == ">50K" for r in rows)


def test_where_errors_are_one_line(copula_run, capsys):
    args = ["sample", copula_run, "-n", "5", "--where"]
    line = error_line(capsys, 2, *args, "sex=Other")
    assert "no category 'Other'" in line and "valid: Female, Male" in line
    assert "columns are: age, sex, income, plan" in error_line(capsys, 2, *args, "gender=Male")
    assert "categorical or bool" in error_line(capsys, 2, *args, "age=30")


def test_report_real_vs_real_is_near_one_on_two_halves():
    from genlab.metrics.tabular import report

    rows = _people(2000, seed=1)
    codec = TableCodec.fit(PEOPLE, rows, np.arange(1000))
    a, b, c = rows[:1000], rows[1000:1500], rows[1500:]
    out = report(codec, a, b, c, target="income")  # "synthetic" = a third real sample
    assert out["column_shapes_real"] > 0.95 and out["pair_trends_real"] > 0.9  # sampling noise
    assert out["column_shapes"] > 0.95 and out["pair_trends"] > 0.9
    assert abs(out["tstr_auc"] - out["tstr_auc_real"]) < 0.05 and out["tstr_auc_real"] > 0.7
    assert out["positive_class"] == ">50K"
    assert abs(out["exact_copies"] - out["exact_copies_real"]) < 0.1  # few distinct rows
    copies = report(codec, a, b, a[:200], target="income")  # copies of training rows
    assert copies["exact_copies"] == 1.0 and copies["dcr_median"] == 0.0


def test_eval_writes_json_markdown_and_png(copula_run, people_csv, capsys):
    assert main(["eval", str(copula_run), "--data", people_csv]) == 0
    printed = capsys.readouterr().out
    assert "TSTR F1:" in printed and "(real:" in printed
    report = json.loads((copula_run / "report-people.csv.json").read_text())
    assert report["target"] == "income" and report["rows_synthetic"] == report["rows_train"]
    assert {"column_shapes", "pair_trends", "tstr_auc", "dcr_ratio", "exact_copies"} <= set(report)
    assert "| TSTR AUC |" in (copula_run / "report-people.csv.md").read_text()
    assert (copula_run / "report-people.csv.png").stat().st_size > 1000


def test_ctgan_conditions_on_real_rows_of_the_asked_category(tmp_path):
    rows = [[f"{i % 7}.5", "rare" if i % 10 == 0 else "common"] for i in range(500)]
    cfg = DataConfig()
    cfg.tabular.codec = "modes"
    data = load_dataset(_write(tmp_path / "skew.csv", ["x", "kind"], rows), cfg)
    from genlab.models.ctgan import CTGAN, Config

    model = CTGAN(Config(latent_dim=4, g_hidden=[8], d_hidden=[8], pac=2), data.info)
    x = data.splits["train"].x[:400]
    g = torch.Generator().manual_seed(0)
    u = torch.rand(2, 400, generator=g)
    real, cond, col, cats = model._condition(x, u[0], u[1])
    span = model.discrete[0]  # "kind": common, rare
    assert torch.equal(real[:, span.start : span.start + span.width].argmax(1), cats)
    assert torch.equal(cond.argmax(1), cats) and cond.sum(1).eq(1).all()
    # training-by-sampling: the rare category comes at its log-frequency share (~0.4), far
    # above its share of the rows (0.1)
    assert (x[:, span.start + 1] == 1).float().mean() < 0.15 and (cats == 1).float().mean() > 0.3


def test_missing_value_notes_are_kept_and_printed(tmp_path, capsys):
    rows = [[str(i % 2), ["1.5", "NA", "2"][i % 3], ["a", "", "b"][i % 3]] for i in range(60)]
    path = _write(tmp_path / "m.csv", ["target", "area", "city"], rows)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "mlp",
                "--data",
                path,
                "--out",
                str(out),
                "--steps",
                "2",
                "--quiet",
                "--set",
                "model.hidden=[4]",
                "--set",
                "train.batch_size=8",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "data: column 'area': 20 missing: filled with the training mean" in printed
    assert "data: column 'city': 20 missing: kept as the category '?'" in printed
    saved = json.loads((out / "run.json").read_text())["data"]["record"]["missing"]
    assert set(saved) == {"area", "city"}


def test_bad_table_input_gives_one_line_errors(tmp_path, capsys, people_csv):
    out = str(tmp_path / "r")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "is empty" in error_line(capsys, 1, "train", "tvae", "--data", empty, "--out", out)
    hollow = _write(tmp_path / "hollow.csv", ["a", "b"], [[str(i), "NA"] for i in range(20)])
    line = error_line(capsys, 1, "train", "copula", "--data", hollow, "--out", out)
    assert "column 'b' is entirely missing" in line
    line = error_line(
        capsys,
        1,
        "train",
        "copula",
        "--data",
        people_csv,
        "--out",
        out,
        "--set",
        "data.tabular.target=salary",
    )
    assert "has no column 'salary'" in line
    text = tmp_path / "notes.txt"
    text.write_text("not a table\n" * 50)
    line = error_line(capsys, 1, "train", "ctgan", "--data", text, "--out", out)
    assert "'ctgan' learns tabular data but" in line and "a CSV file" in line
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1\t2\n")
    assert "unsupported file type" in error_line(
        capsys, 1, "train", "copula", "--data", tsv, "--out", out
    )
    line = error_line(capsys, 1, "train", "tvae", "--data", "digits", "--out", out)
    assert "'tvae' learns tabular data but 'digits' is image data" in line


def test_bench_on_a_table(tmp_path, people_csv):
    from genlab.bench import bench

    comparison = bench(people_csv, tmp_path / "b", families=["copula"], budget_minutes=0.1)
    result = comparison["families"]["copula"]
    assert result["train_seconds"] > 0 and 0 <= result["tstr_f1"] <= 1
    assert "| TSTR F1 |" in (tmp_path / "b" / "comparison.md").read_text()
