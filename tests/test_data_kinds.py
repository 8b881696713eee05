"""The data kinds: registry, reversible codecs, writers, and the data description's JSON forms."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_corpus
from genlab.data import KINDS, DataConfig, DataInfo, kind_of, load_dataset
from genlab.data.image import ImageRecord
from genlab.data.kind import DataKind
from genlab.data.tabular import TabularConfig, read_rows
from genlab.data.text import SEPARATOR, TextConfig
from genlab.errors import DataError, UsageError

ROWS = [  # size (int), color (categorical), weight (2 decimals), label (the target)
    [1, "red", 10.25, "a"],
    [2, "blue", 20.5, "b"],
    [3, "red", 30.0, "a"],
    [4, "green", 40.75, "b"],
    [5, "green", 50.0, "a"],
    [6, "blue", 60.125, "b"],
    [7, "red", 70.5, "a"],
    [8, "green", 80.0, "b"],
    [9, "blue", 90.25, "a"],
    [10, "red", 100.5, "b"],
]
HEADER = ["size", "color", "weight", "label"]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))


def write_table(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)
    return path


@pytest.fixture
def table(tmp_path):
    path = write_table(tmp_path / "table.csv", HEADER, ROWS)
    return load_dataset(path, DataConfig(val_fraction=0.2, test_fraction=0.0))


# ---------------------------------------------------------------- the registry


def test_kinds_registry_and_kind_of():
    assert list(KINDS)[:3] == ["image", "text", "tabular"]
    for name, kind in KINDS.items():
        assert isinstance(kind, DataKind) and kind.name == name
        assert kind_of(name) is kind
        assert dataclasses.is_dataclass(kind.Config) and dataclasses.is_dataclass(kind.Record)
    info = load_dataset("digits").info
    assert kind_of(info) is KINDS["image"]
    with pytest.raises(UsageError, match=r"unknown data kind 'video'; this genlab knows image"):
        kind_of("video")


def test_settings_of_another_kind_are_refused(tmp_path):
    with pytest.raises(UsageError, match="data.tabular.target applies only to tabular data"):
        load_dataset("digits", DataConfig(tabular=TabularConfig(target="y")))
    corpus = tmp_path / "c.txt"
    corpus.write_text(tiny_corpus())
    with pytest.raises(UsageError, match="data.tabular.target applies only to tabular data"):
        load_dataset(corpus, DataConfig(tabular=TabularConfig(target="y")), context=16)
    table = write_table(tmp_path / "t.csv", HEADER, ROWS)
    with pytest.raises(UsageError, match="data.text.tokenizer applies only to text data"):
        load_dataset(table, DataConfig(text=TextConfig(tokenizer="bpe")))


def test_other_table_formats_say_how_to_make_them_readable(tmp_path):
    path = tmp_path / "adult.data"
    path.write_text("39, State-gov, <=50K\n")
    with pytest.raises(DataError, match="must be named .csv and start with a header line"):
        load_dataset(path)


def test_a_single_image_file_names_its_folder(tmp_path):
    path = tmp_path / "imgs" / "one.png"
    path.parent.mkdir()
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(path)
    with pytest.raises(DataError, match="is a single file; give the folder that holds it"):
        load_dataset(path)


# ---------------------------------------------------------------- image


def test_image_codec_round_trips_every_level():
    info = load_dataset("digits").info  # 17 levels
    kind = kind_of(info)
    x = torch.arange(17, dtype=torch.uint8).repeat(2).view(2, 1, 1, 17)
    encoded = kind.encode(x, info)
    assert encoded.dtype == torch.float32 and encoded.min() == 0 and encoded.max() == 1
    assert torch.equal(kind.decode(encoded, info), x)
    # values between levels round to the nearest; out of range ones clip
    assert kind.decode(torch.tensor([-0.5, 0.03, 0.97, 2.0]), info).tolist() == [0, 0, 16, 16]


def test_image_batches_go_through_the_codec():
    data = load_dataset("digits")
    idx = torch.arange(5)
    stored = data.splits["train"].x[idx]
    assert stored.dtype == torch.uint8
    assert torch.equal(data.batch("train", idx)["x"], kind_of(data.info).encode(stored, data.info))


def test_image_writer_png_grid_and_npy(tmp_path):
    info = DataInfo(source="s", kind="image", shape=[3, 8, 8], record=ImageRecord(levels=256))
    kind = kind_of(info)
    images = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    (png,) = kind.write(images, tmp_path / "grid.png", info, nrow=3)
    with Image.open(png) as img:  # 3 x 2 images of 8 px with 2 px padding, enlarged 4x
        assert img.size == (4 * (3 * 10 + 2), 4 * (2 * 10 + 2)) and img.mode == "RGB"
    (npy,) = kind.write(images, tmp_path / "samples.npy", info)
    assert np.array_equal(np.load(npy), images.numpy())
    with pytest.raises(UsageError, match=r"image samples are written as .png, .npy"):
        kind.write(images, tmp_path / "samples.wav", info)


# ---------------------------------------------------------------- text


def test_text_codec_round_trips_through_the_data_tokenizer(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(tiny_corpus())
    for tokenizer in ("char", "bpe"):
        cfg = DataConfig(text=TextConfig(tokenizer=tokenizer, vocab_size=300))
        info = load_dataset(corpus, cfg, context=16).info
        kind = kind_of(info)
        text = tiny_corpus()[:200]
        ids = kind.encode(text, info)
        assert ids.dtype == torch.int64 and ids.ndim == 1
        assert int(ids.max()) < info.record.vocab_size
        assert kind.decode(ids, info) == text
        pair = kind.encode([text[:50], text[50:80]], info)
        assert kind.decode(pair, info) == [text[:50], text[50:80]]
        assert kind.decode(ids.numpy(), info) == text
        rows = torch.stack([ids[:10], ids[10:20]])  # (N, T) -> N strings
        assert kind.decode(rows, info) == [
            kind.decode(ids[:10], info),
            kind.decode(ids[10:20], info),
        ]
        assert "".join(kind.decode(rows, info)) == kind.decode(ids[:20], info)


def test_text_codec_needs_the_tokenizer():
    info = DataInfo(source="s", kind="text", shape=[8], record=kind_of("text").Record(5, "char"))
    with pytest.raises(UsageError, match="has no tokenizer loaded"):
        kind_of(info).encode("abc", info)


def test_text_writer_separates_samples_with_a_dashed_line(tmp_path):
    info = DataInfo(source="s", kind="text", shape=[8], record=kind_of("text").Record(5, "char"))
    (path,) = kind_of(info).write(["first\nsample", "second"], tmp_path / "s.txt", info)
    assert path.read_text(encoding="utf-8") == "first\nsample\n" + "-" * 40 + "\nsecond\n"
    assert SEPARATOR == "\n" + "-" * 40 + "\n"


# ---------------------------------------------------------------- tabular


def test_tabular_record_keeps_columns_types_categories_and_slices(table):
    rec = table.info.record
    assert rec.columns == ["size", "color", "weight"]
    assert rec.types == ["numeric", "categorical", "numeric"]
    assert rec.categories == [[], ["blue", "green", "red"], []]
    assert rec.slices == [[0, 1], [1, 4], [4, 5]]
    assert rec.decimals[0] == 0 and rec.decimals[2] == 3
    assert (rec.target_name, rec.target_index, rec.target_type) == ("label", 3, "classification")
    assert rec.target_classes == ["a", "b"] == table.info.class_names


def test_tabular_codec_round_trip_is_exact(table):
    info, kind = table.info, kind_of(table.info)
    features = [row[:3] for row in ROWS]
    x = kind.encode(features, info)
    assert x.dtype == torch.float32 and x.shape == (10, 5)
    assert kind.decode(x, info) == features
    full = kind.encode(ROWS, info)  # with the target: one-hot classes after the features
    assert full.shape == (10, 7) and torch.equal(full[:, :5], x)
    assert kind.decode(full, info) == ROWS
    # the reader stored exactly what the codec makes of the same rows
    train = table.splits["train"].x
    assert any(torch.equal(train[i], x[j]) for i in range(len(train)) for j in range(10))
    assert {tuple(r) for r in kind.decode(train, info)} <= {tuple(r) for r in features}


def test_tabular_decode_inverts_scaling_and_picks_the_largest_category(table):
    info, kind = table.info, kind_of(table.info)
    rec = info.record
    z = torch.zeros(1, 5)  # every dimension at its training mean
    z[0, 1:4] = torch.tensor([-5.0, 3.0, 0.0])  # after un-scaling, "green" is largest
    (row,) = kind.decode(z, info)
    assert row[1] == "green"
    assert row[0] == round(rec.feature_mean[0]) and row[2] == round(rec.feature_mean[4], 3)
    with pytest.raises(UsageError, match="tabular samples have 4 values a row"):
        kind.decode(torch.zeros(2, 4), info)


def test_tabular_regression_target_round_trips_as_numbers(tmp_path):
    rows = [[i, "x" if i % 2 else "y", round(i * 1.5 + 0.25, 2)] for i in range(30)]
    path = write_table(tmp_path / "r.csv", ["a", "b", "price"], rows)
    info = load_dataset(path, DataConfig(tabular=TabularConfig(target="price"))).info
    assert info.task == "regression" and info.record.target_decimals == 2
    kind = kind_of(info)
    assert kind.decode(kind.encode(rows, info), info) == rows


def test_tabular_numeric_class_labels_stay_numbers(tmp_path):
    rows = [[i * 0.5, i % 3] for i in range(30)]
    path = write_table(tmp_path / "n.csv", ["x", "y"], rows)
    info = load_dataset(path).info
    assert info.class_names == ["0", "1", "2"]
    kind = kind_of(info)
    assert kind.decode(kind.encode(rows, info), info) == rows


def test_tabular_encode_refuses_unknown_categories_and_text_in_numbers(table):
    info, kind = table.info, kind_of(table.info)
    with pytest.raises(DataError, match="column 'color' has the value 'purple'"):
        kind.encode([[1, "purple", 2.0]], info)
    with pytest.raises(DataError, match="column 'size' holds numbers, not 'big'"):
        kind.encode([["big", "red", 2.0]], info)
    with pytest.raises(UsageError, match="a row has 2 values a row"):
        kind.encode([[1, "red"]], info)


def test_tabular_writer_csv_reads_back_with_names_and_categories(table, tmp_path):
    info, kind = table.info, kind_of(table.info)
    (path,) = kind.write(kind.encode(ROWS, info), tmp_path / "samples.csv", info)
    with open(path, newline="") as f:
        back = list(csv.reader(f))
    assert back[0] == HEADER
    assert [r[1] for r in back[1:]] == [r[1] for r in ROWS]  # category names, not numbers
    assert [float(r[2]) for r in back[1:]] == [r[2] for r in ROWS]
    # genlab's own reader reads it back: same columns, categories and classes
    again = load_dataset(path, DataConfig(val_fraction=0.2, test_fraction=0.0))
    assert again.info.record.columns == info.record.columns
    assert again.info.record.categories == info.record.categories
    assert again.info.class_names == info.class_names
    # features only: the header lacks the target
    (feats,) = kind.write(kind.encode([r[:3] for r in ROWS], info), tmp_path / "f.csv", info)
    header, rows, _ = read_rows(feats)
    assert header == HEADER[:3] and rows[0] == ["1", "red", "10.25"]


def test_tabular_writer_npy_holds_the_float_rows(table, tmp_path):
    info, kind = table.info, kind_of(table.info)
    (path,) = kind.write([r[:3] for r in ROWS], tmp_path / "x.npy", info)
    assert np.array_equal(np.load(path), kind.encode([r[:3] for r in ROWS], info).numpy())


# ---------------------------------------------------------------- DataInfo JSON


def test_info_json_form_is_header_plus_record(table):
    d = table.info.to_dict()
    assert d["kind"] == "tabular" and d["record"]["columns"] == ["size", "color", "weight"]
    assert "feature_names" not in d and "levels" not in d
    assert DataInfo.from_dict(json.loads(json.dumps(d))) == table.info
    with pytest.raises(UsageError, match="unknown data description keys colour"):
        DataInfo.from_dict({**d, "colour": 1})


def flat(kind: str, **fields) -> dict:
    """A data description as genlab 0.x wrote it into config.json."""
    base = {
        "source": "s",
        "kind": kind,
        "shape": [1],
        "levels": 0,
        "num_classes": 0,
        "task": "none",
        "class_names": [],
        "feature_names": [],
        "feature_mean": [],
        "feature_std": [],
        "target_name": "",
        "target_mean": 0.0,
        "target_std": 1.0,
        "n_train": 8,
        "n_val": 1,
        "n_test": 1,
        "fingerprint": "f",
        "vocab_size": 0,
        "tokenizer": "",
        "files": [],
    }
    return {**base, **fields}


def test_flat_image_and_text_descriptions_still_load():
    image = DataInfo.from_dict(flat("image", shape=[1, 8, 8], levels=17, target_name="label"))
    assert image.record == ImageRecord(levels=17) and image.shape == [1, 8, 8]
    text = DataInfo.from_dict(flat("text", vocab_size=65, tokenizer="char", files=["t.json"]))
    assert (text.record.vocab_size, text.record.tokenizer, text.files) == (65, "char", ["t.json"])
    assert text.n_train == 8 and text.fingerprint == "f"


def test_flat_tabular_description_rebuilds_columns_and_decodes(table):
    new = table.info
    rec = new.record
    old = flat(
        "tabular",
        shape=[5],
        task="classification",
        num_classes=2,
        class_names=["a", "b"],
        feature_names=rec.feature_names,
        feature_mean=rec.feature_mean,
        feature_std=rec.feature_std,
        target_name="label",
    )
    info = DataInfo.from_dict(old)
    got = info.record
    assert (got.columns, got.types, got.slices) == (rec.columns, rec.types, rec.slices)
    assert got.categories == rec.categories and got.target_classes == ["a", "b"]
    assert got.target_index == 3 and got.decimals == [-1, -1, -1]
    kind = kind_of(info)
    decoded = kind.decode(kind.encode(ROWS, info), info)
    assert [r[1] for r in decoded] == [r[1] for r in ROWS]
    assert all(math.isclose(a[2], b[2], rel_tol=1e-6) for a, b in zip(decoded, ROWS))
    assert [r[3] for r in decoded] == [r[3] for r in ROWS]


def test_a_run_directory_in_the_flat_form_still_loads(tmp_path):
    """config.json as genlab 0.x wrote it: flat data keys in "config" and in "data"."""
    import genlab
    from genlab.io.atomic import write_json_atomic

    rows = [[i, "x" if i % 3 else "y", round(i * 0.5 + 1, 1)] for i in range(40)]
    path = write_table(tmp_path / "t.csv", ["a", "b", "price"], rows)
    run = genlab.train(
        "mlp",
        str(path),
        tmp_path / "run",
        overrides=["data.target=price", "model.hidden=[8]", "train.batch_size=8"],
        steps=2,
        quiet=True,
    )
    # genlab 0.1.0 wrote config.json (no schema) and checkpoints without checkpoint.json
    meta = json.loads((run / "run.json").read_text())
    meta = {k: meta[k] for k in ("family", "genlab_version", "config", "data", "parameters")}
    (run / "run.json").unlink()
    for manifest in run.glob("checkpoints/step-*/checkpoint.json"):
        manifest.unlink()
    rec = meta["data"].pop("record")
    meta["data"] |= {
        "levels": 0,
        "vocab_size": 0,
        "tokenizer": "",
        "target_name": rec["target_name"],
        "target_mean": rec["target_mean"],
        "target_std": rec["target_std"],
        "feature_names": rec["feature_names"],
        "feature_mean": rec["feature_mean"],
        "feature_std": rec["feature_std"],
    }
    data_cfg = meta["config"]["data"]
    data_cfg |= {"target": data_cfg.pop("tabular")["target"], **data_cfg.pop("text")}
    write_json_atomic(run / "config.json", meta)

    model = genlab.load(run)
    assert model.info.record.target_name == "price"
    assert model.info.record.target_std == rec["target_std"]
    x = load_dataset(path, DataConfig(tabular=TabularConfig(target="price"))).batch(
        "test", torch.arange(3)
    )["x"]
    assert model.predict(x).shape[0] == 3
    _, cfg, _ = genlab.run.read_run(run)
    assert cfg.data.tabular.target == "price"
