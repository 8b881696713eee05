"""Tests for genlab.data: readers, splits, fingerprints, batches and one-line errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data import BUILTINS, DataConfig, DataInfo, load_dataset
from genlab.data.tabular import TabularConfig
from genlab.errors import DataError, UsageError

REAL_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


# ---------------------------------------------------------------- helpers


def settings(target: str = "", **common) -> DataConfig:
    """Data settings: the common keys given, and the CSV target column."""
    return DataConfig(**common, tabular=TabularConfig(target=target))


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX: images (N, H, W) get magic 0x803, labels (N,) 0x801."""
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x0800 | array.ndim
    head = magic.to_bytes(4, "big") + np.asarray(array.shape, dtype=">u4").tobytes()
    return head + array.tobytes()


def write_idx(folder: Path, name: str, array: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(array)
    path = folder / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_idx_dir(folder: Path, n: int = 40, n_test: int = 10, gz: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_x": rng.integers(0, 256, (n, 5, 4), dtype=np.uint8),
        "train_y": rng.integers(0, 3, n, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 5, 4), dtype=np.uint8),
        "test_y": rng.integers(0, 3, n_test, dtype=np.uint8),
    }
    write_idx(folder, "train-images-idx3-ubyte", arrays["train_x"], gz)
    write_idx(folder, "train-labels-idx1-ubyte", arrays["train_y"], gz)
    if n_test:
        write_idx(folder, "t10k-images-idx3-ubyte", arrays["test_x"], gz)
        write_idx(folder, "t10k-labels-idx1-ubyte", arrays["test_y"], gz)
    return arrays


def save_image(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def all_pairs(ds, split: str):
    """(x row, y) pairs of a split as hashable tuples, to compare contents regardless of order."""
    part = ds.splits[split]
    return sorted((tuple(part.x[i].flatten().tolist()), int(part.y[i])) for i in range(len(part)))


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_with_test_set(tmp_path, gz):
    arrays = make_idx_dir(tmp_path / "idx", gz=gz)
    ds = load_dataset(str(tmp_path / "idx"), settings(val_fraction=0.25))
    info = ds.info
    assert (info.kind, info.shape, info.record.levels, info.task) == (
        "image",
        [1, 5, 4],
        256,
        "classification",
    )
    assert info.num_classes == int(max(arrays["train_y"].max(), arrays["test_y"].max())) + 1
    assert info.class_names == [str(i) for i in range(info.num_classes)]
    assert (info.n_train, info.n_val, info.n_test) == (30, 10, 10)
    assert info.source == str((tmp_path / "idx").resolve())
    # the t10k files are the test split, exactly and in order
    test = ds.splits["test"]
    assert test.x.dtype == torch.uint8 and test.y.dtype == torch.int64
    assert np.array_equal(test.x.numpy()[:, 0], arrays["test_x"])
    assert np.array_equal(test.y.numpy(), arrays["test_y"])
    # train + val hold exactly the training pairs
    got = sorted(
        (tuple(p.x[i].flatten().tolist()), int(p.y[i]))
        for p in (ds.splits["train"], ds.splits["val"])
        for i in range(len(p))
    )
    want = sorted(
        (tuple(x.flatten().tolist()), int(y))
        for x, y in zip(arrays["train_x"], arrays["train_y"], strict=True)
    )
    assert got == want


def test_idx_gz_and_plain_give_same_fingerprint(tmp_path):
    make_idx_dir(tmp_path / "plain", gz=False)
    make_idx_dir(tmp_path / "gz", gz=True)
    a = load_dataset(tmp_path / "plain")
    b = load_dataset(tmp_path / "gz")
    assert a.info.fingerprint == b.info.fingerprint


def test_idx_without_test_or_labels(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    images = np.arange(50 * 3 * 3, dtype=np.uint8).reshape(50, 3, 3)
    # the alternative "-images.idx3-ubyte" spelling, no labels file
    write_idx(folder, "train-images.idx3-ubyte", images)
    ds = load_dataset(folder, settings(val_fraction=0.2, test_fraction=0.2))
    assert ds.info.task == "none" and ds.info.num_classes == 0 and ds.info.class_names == []
    assert (ds.info.n_train, ds.info.n_val, ds.info.n_test) == (30, 10, 10)
    assert all(ds.splits[s].y is None for s in ("train", "val", "test"))
    batch = ds.batch("train", torch.arange(3))
    assert set(batch) == {"x"}
    stored = np.concatenate([ds.splits[s].x.numpy()[:, 0] for s in ("train", "val", "test")])
    assert sorted(map(bytes, stored)) == sorted(map(bytes, images))


def test_idx_truncated(tmp_path):
    folder = tmp_path / "idx"
    make_idx_dir(folder, n_test=0)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[: 16 + 12])
    with pytest.raises(
        DataError,
        match=r"train-images-idx3-ubyte is truncated: header says 40 "
        r"images of 5x4 but the file holds 12 bytes",
    ):
        load_dataset(folder)


def test_idx_truncated_header(tmp_path):
    folder = tmp_path / "idx"
    make_idx_dir(folder, n_test=0)
    (folder / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte is truncated"):
        load_dataset(folder)


def test_idx_trailing_bytes(tmp_path):
    folder = tmp_path / "idx"
    make_idx_dir(folder, n_test=0)
    path = folder / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte is corrupt: .* 4 more bytes"):
        load_dataset(folder)


def test_idx_wrong_magic(tmp_path):
    folder = tmp_path / "idx"
    make_idx_dir(folder, n_test=0)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x04" + path.read_bytes()[4:])
    with pytest.raises(
        DataError,
        match=r"train-images-idx3-ubyte is not an IDX images file: "
        r"its magic number is 0x00000804, expected 0x00000803",
    ):
        load_dataset(folder)


def test_idx_swapped_files_hint(tmp_path):
    folder = tmp_path / "idx"
    arrays = make_idx_dir(folder, n_test=0)
    write_idx(folder, "train-labels-idx1-ubyte", arrays["train_x"])
    with pytest.raises(DataError, match="looks like an IDX images file"):
        load_dataset(folder)


def test_idx_corrupt_gzip(tmp_path):
    folder = tmp_path / "idx"
    make_idx_dir(folder, n_test=0, gz=True)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is not a valid gzip file"):
        load_dataset(folder)


def test_idx_truncated_gzip(tmp_path):
    folder = tmp_path / "idx"
    make_idx_dir(folder, n_test=0, gz=True)
    path = folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is a truncated gzip file"):
        load_dataset(folder)


def test_idx_label_count_mismatch(tmp_path):
    folder = tmp_path / "idx"
    make_idx_dir(folder, n=40, n_test=0)
    write_idx(folder, "train-labels-idx1-ubyte", np.zeros(39, dtype=np.uint8))
    with pytest.raises(
        DataError,
        match="train-labels-idx1-ubyte holds 39 labels but train-images-idx3-ubyte holds 40 images",
    ):
        load_dataset(folder)


def test_idx_labels_without_images(tmp_path):
    folder = tmp_path / "idx"
    make_idx_dir(folder, n_test=0)
    write_idx(folder, "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte has no matching images file"):
        load_dataset(folder)


def test_real_mnist():
    if not (REAL_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found at {REAL_MNIST}; put the four IDX files there to run")
    ds = load_dataset(str(REAL_MNIST))
    info = ds.info
    assert info.n_train + info.n_val == 60000 and info.n_test == 10000
    assert info.n_val == 6000
    assert info.shape == [1, 28, 28] and info.record.levels == 256
    assert info.class_names == [str(i) for i in range(10)]
    for split in ("train", "val", "test"):
        assert set(ds.splits[split].y.unique().tolist()) == set(range(10))


# ---------------------------------------------------------------- image folders


def test_image_folder_gray_classes(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    expected = {}
    for cls, count in (("cat", 6), ("dog", 4)):
        for i in range(count):
            pixels = rng.integers(0, 256, (6, 7), dtype=np.uint8)
            save_image(root / cls / f"{i}.png", pixels)
            expected[pixels.tobytes()] = cls
    ds = load_dataset(root, settings(val_fraction=0.2, test_fraction=0.2))
    info = ds.info
    assert info.shape == [1, 6, 7] and info.record.levels == 256
    assert info.class_names == ["cat", "dog"] and info.num_classes == 2
    assert info.task == "classification"
    assert (info.n_train, info.n_val, info.n_test) == (6, 2, 2)
    seen = 0
    for split in ("train", "val", "test"):
        part = ds.splits[split]
        for x, y in zip(part.x, part.y, strict=True):
            assert info.class_names[int(y)] == expected[x[0].numpy().tobytes()]
            seen += 1
    assert seen == 10


def test_image_folder_rgb_unlabelled(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "imgs"
    for i in range(8):
        save_image(root / f"{i}.PNG", rng.integers(0, 256, (5, 4, 3), dtype=np.uint8))
    save_image(root / "gray.jpg", np.full((5, 4), 77, dtype=np.uint8))  # promoted to RGB
    (root / "README.txt").write_text("not an image")
    ds = load_dataset(root)
    assert ds.info.shape == [3, 5, 4] and ds.info.task == "none"
    assert len(ds.splits["train"]) + len(ds.splits["val"]) + len(ds.splits["test"]) == 9
    batch = ds.batch("train", torch.arange(len(ds.splits["train"])))
    assert batch["x"].shape == (len(ds.splits["train"]), 3, 5, 4) and "y" not in batch
    # the gray JPEG became three equal channels
    x = np.concatenate([ds.splits[s].x.numpy() for s in ("train", "val", "test")])
    flat = [img for img in x if (img[0] == img[1]).all() and (img[1] == img[2]).all()]
    assert len(flat) == 1 and abs(int(flat[0].mean()) - 77) <= 2


def test_image_folder_empty(tmp_path):
    root = tmp_path / "empty"
    (root / "cats").mkdir(parents=True)
    from genlab.data.image import read_image_folder

    with pytest.raises(DataError, match="holds no images"):
        read_image_folder(root, str(root))
    with pytest.raises(DataError, match="found no data in the folder"):
        load_dataset(root)


def test_image_folder_mixed_sizes(tmp_path):
    root = tmp_path / "imgs"
    save_image(root / "a" / "1.png", np.zeros((8, 8), dtype=np.uint8))
    save_image(root / "b" / "2.png", np.zeros((8, 9), dtype=np.uint8))
    with pytest.raises(
        DataError,
        match=r"images differ in size: a/1.png is 8x8 but b/2.png is "
        r"9x8 .*resize",
    ):
        load_dataset(root)


def test_image_folder_corrupt_image(tmp_path):
    root = tmp_path / "imgs"
    for i in range(3):
        save_image(root / f"{i}.png", np.zeros((4, 4), dtype=np.uint8))
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="cannot read image bad.png"):
        load_dataset(root)


def test_image_folder_mixed_layout(tmp_path):
    root = tmp_path / "imgs"
    save_image(root / "top.png", np.zeros((4, 4), dtype=np.uint8))
    save_image(root / "cls" / "inner.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(DataError, match="mixes images at the top level .* class sub-folders"):
        load_dataset(root)


def test_image_folder_too_small(tmp_path):
    root = tmp_path / "imgs"
    for i in range(2):
        save_image(root / f"{i}.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(DataError, match="holds only 2 examples"):
        load_dataset(root)


# ---------------------------------------------------------------- CSV

MIXED_CSV = """\
size, color ,weight,label
1.0, red,10,a
2.0,blue ,20,b
3.0,red,?,a
4.0,,40,b
5.0,green,50,a
6.0,blue,60,b
7.0,red,70,a
8.0,green,80,b
9.0,blue,90,a
10.0,red,100,b
"""


def test_csv_features_and_standardization(tmp_path):
    path = write_csv(tmp_path / "mixed.csv", MIXED_CSV)
    ds = load_dataset(str(path), settings(val_fraction=0.2, test_fraction=0.2))
    info = ds.info
    rec = info.record
    assert info.kind == "tabular" and rec.target_name == "label"
    assert rec.feature_names == [
        "size",
        "color=?",
        "color=blue",
        "color=green",
        "color=red",
        "weight",
    ]
    assert info.shape == [6] and len(rec.feature_mean) == len(rec.feature_std) == 6
    assert info.task == "classification" and info.class_names == ["a", "b"]
    assert (info.n_train, info.n_val, info.n_test) == (6, 2, 2)
    train = ds.splits["train"]
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert torch.allclose(train.x.mean(0), torch.zeros(6), atol=1e-5)
    stds = train.x.std(0, unbiased=False)
    assert torch.all(((stds - 1).abs() < 1e-4) | (stds < 1e-6))
    # un-standardizing recovers the original values (one-hot columns are 0/1)
    raw = train.x.double() * torch.tensor(rec.feature_std) + torch.tensor(rec.feature_mean)
    onehot = raw[:, 1:5]
    assert torch.allclose(onehot.sum(1), torch.ones(len(train), dtype=torch.float64))
    assert set(raw[:, 0].round().tolist()) <= set(range(1, 11))
    json.dumps(info.to_dict())  # JSON-serializable


def test_csv_missing_numeric_gets_train_mean(tmp_path):
    path = write_csv(tmp_path / "mixed.csv", MIXED_CSV)
    ds = load_dataset(path, settings(val_fraction=0.0, test_fraction=0.0))
    info = ds.info
    assert (info.n_train, info.n_val, info.n_test) == (10, 0, 0)
    rec = info.record
    weight = rec.feature_names.index("weight")
    raw = ds.splits["train"].x[:, weight].double() * rec.feature_std[weight]
    raw += rec.feature_mean[weight]
    size = ds.splits["train"].x[:, 0].double() * rec.feature_std[0] + rec.feature_mean[0]
    row = int((size - 3.0).abs().argmin())
    known = [10, 20, 40, 50, 60, 70, 80, 90, 100]
    assert raw[row].item() == pytest.approx(sum(known) / len(known))


def test_csv_auto_task_detection(tmp_path):
    ints = "x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(30))
    ds = load_dataset(write_csv(tmp_path / "ints.csv", ints))
    assert ds.info.task == "classification" and ds.info.class_names == ["0", "1", "2"]

    floats = "x,target\n" + "".join(f"{i},{i * 0.5 + 1}\n" for i in range(30))
    ds = load_dataset(write_csv(tmp_path / "floats.csv", floats))
    assert ds.info.task == "regression" and ds.info.num_classes == 0
    assert ds.splits["train"].y.dtype == torch.float32
    assert abs(ds.splits["train"].y.mean().item()) < 1e-5
    y = ds.splits["test"].y.double() * ds.info.record.target_std + ds.info.record.target_mean
    assert all(abs(v * 2 - round(v * 2)) < 1e-4 for v in y.tolist())

    many = "x,class\n" + "".join(f"{i},{i}\n" for i in range(30))  # >20 distinct ints
    assert load_dataset(write_csv(tmp_path / "many.csv", many)).info.task == "regression"
    ds = load_dataset(tmp_path / "many.csv", settings(task="classification"))
    assert ds.info.num_classes == 30 and ds.info.class_names[:3] == ["0", "1", "2"]

    ds = load_dataset(tmp_path / "ints.csv", settings(task="regression"))
    assert ds.info.task == "regression"


def test_csv_class_names_merge_trailing_dot_and_gz(tmp_path):
    rows = "".join(
        f"{i}, {'<=50K' if i % 2 else '>50K'}{'.' if i % 3 else ''}\n" for i in range(30)
    )
    path = tmp_path / "adult.csv.gz"
    path.write_bytes(gzip.compress(("age,income\n" + rows).encode()))
    ds = load_dataset(path, settings(target="income"))
    assert ds.info.class_names == ["<=50K", ">50K"] and ds.info.record.target_name == "income"


def test_csv_empty_and_header_only(tmp_path):
    with pytest.raises(DataError, match="empty.csv is empty"):
        load_dataset(write_csv(tmp_path / "empty.csv", ""))
    with pytest.raises(DataError, match="head.csv has a header line but no data rows"):
        load_dataset(write_csv(tmp_path / "head.csv", "a,b,label\n\n"))


def test_csv_ragged_row(tmp_path):
    path = write_csv(tmp_path / "ragged.csv", "a,b,label\n1,2,x\n3,4,y\n5,6\n7,8,x\n")
    with pytest.raises(DataError, match="ragged.csv line 4 has 2 fields but the header has 3"):
        load_dataset(path)


def test_csv_unknown_target(tmp_path):
    path = write_csv(tmp_path / "t.csv", "age,income,hours\n1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match="no column 'incme'; did you mean 'income'"):
        load_dataset(path, settings(target="incme"))
    with pytest.raises(DataError, match=r"pass --set data.target=COLUMN with one of: age, income"):
        load_dataset(path)


def test_csv_without_header_hint(tmp_path):
    path = write_csv(tmp_path / "noheader.csv", "39, State-gov, <=50K\n50, Private, >50K\n")
    with pytest.raises(DataError, match="may lack a header line"):
        load_dataset(path)


def test_csv_regression_with_text_target(tmp_path):
    path = write_csv(tmp_path / "t.csv", "a,y\n1,x\n2,z\n3,x\n4,z\n5,x\n")
    with pytest.raises(DataError, match=r"non-numeric value 'x' \(line 2\)"):
        load_dataset(path, settings(task="regression"))


# ---------------------------------------------------------------- built-ins


def test_builtin_digits():
    ds = load_dataset("digits")
    info = ds.info
    assert info.source == "digits" and info.shape == [1, 8, 8] and info.record.levels == 17
    assert info.num_classes == 10 and info.class_names == [str(i) for i in range(10)]
    assert info.n_train + info.n_val + info.n_test == 1797
    assert (info.n_val, info.n_test) == (180, 180)
    x = torch.cat([ds.splits[s].x for s in ("train", "val", "test")])
    assert x.dtype == torch.uint8 and int(x.max()) == 16
    batch = ds.batch("val", torch.tensor([0, 5, 7]))
    assert batch["x"].dtype == torch.float32 and batch["x"].shape == (3, 1, 8, 8)
    assert batch["x"].min() >= 0.0 and batch["x"].max() <= 1.0
    assert torch.equal(batch["x"] * 16, ds.splits["val"].x[[0, 5, 7]].float())
    assert batch["y"].dtype == torch.int64 and batch["y"].shape == (3,)


def test_builtin_mnist_sample():
    ds = load_dataset("mnist-sample")
    info = ds.info
    assert info.shape == [1, 28, 28] and info.record.levels == 256 and info.num_classes == 10
    assert (info.n_train, info.n_val, info.n_test) == (4000, 500, 500)
    # the source is sorted by class: every split must still hold all ten classes
    for split in ("train", "val", "test"):
        assert set(ds.splits[split].y.tolist()) == set(range(10))
    assert int(ds.splits["train"].x.max()) == 255
    assert set(BUILTINS) == {"digits", "mnist-sample", "wine", "bach-chorales"}


# ---------------------------------------------------------------- splits and settings


def test_splits_deterministic_and_disjoint(tmp_path):
    a = load_dataset("digits", settings(seed=3))
    b = load_dataset("digits", settings(seed=3))
    c = load_dataset("digits", settings(seed=4))
    assert a.info.fingerprint == b.info.fingerprint
    assert a.info.fingerprint != c.info.fingerprint
    assert len(a.info.fingerprint) == 64
    assert torch.equal(a.splits["val"].x, b.splits["val"].x)
    # disjoint: with distinct rows, no row appears in two splits
    rows = "a,b,label\n" + "".join(f"{i},{i * 7 % 13},{i % 2}\n" for i in range(100))
    ds = load_dataset(write_csv(tmp_path / "rows.csv", rows))
    keys = {s: {tuple(r) for r in ds.splits[s].x.tolist()} for s in ("train", "val", "test")}
    assert sum(len(k) for k in keys.values()) == 100
    assert not (keys["train"] & keys["val"] or keys["train"] & keys["test"])
    assert not keys["val"] & keys["test"]


def test_info_round_trips_through_json():
    info = load_dataset("digits").info
    again = DataInfo.from_dict(json.loads(json.dumps(info.to_dict())))
    assert again == info


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"val_fraction": 0.6, "test_fraction": 0.4}, "must be below 1"),
        ({"task": "clustering"}, "unknown data.task"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(UsageError, match=message):
        load_dataset("digits", settings(**kwargs))


def test_unknown_spec_and_unsupported_file(tmp_path):
    with pytest.raises(
        DataError,
        match=r"no data at 'foo': not a built-in \(digits, mnist-sample, wine, bach-chorales\)",
    ):
        load_dataset("foo")
    other = tmp_path / "data.parquet"
    other.write_bytes(b"PAR1")
    with pytest.raises(DataError, match="unsupported file type; give a built-in name"):
        load_dataset(other)
    with pytest.raises(UsageError, match="unknown split"):
        load_dataset("digits").batch("dev", torch.tensor([0]))
