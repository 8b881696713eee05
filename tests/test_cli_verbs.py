"""The everyday verbs of issue 10: runs, info, plot, predict, export, files per sample, and the
messages a new user reads (next steps, hints, --version without torch).

Runs are trained once per module in this process on the built-in digits (8x8), with the tiny
configurations of the contract tests; the verbs are called in-process through `genlab.cli.main`
except where the process itself is what is checked (--version).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from conftest import ROOT, tiny_overrides
from genlab.cli import main


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `genlab ARGS` run in this process."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def error(capsys, status: int, *args: str) -> str:
    """The single error line of a failing `genlab ARGS`."""
    rc, _, err = cli(capsys, *args)
    assert rc == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def tiny_run(out: Path, family: str, steps: int = 6, data: str = "digits", *extra: str) -> Path:
    return genlab.train(
        family,
        data,
        out,
        overrides=tiny_overrides(family, *extra),
        steps=steps,
        quiet=True,
    )


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """runs/mlp and runs/cnn (classifiers of the digits) and runs/vae."""
    root = tmp_path_factory.mktemp("verbs") / "runs"
    tiny_run(root / "mlp", "mlp")
    tiny_run(root / "cnn", "cnn")
    tiny_run(root / "vae", "vae", 4)
    return root


# 12. genlab runs / genlab info ------------------------------------------------------------------
def test_runs_lists_each_run_with_family_data_steps_best_figure_and_time(runs_dir, capsys):
    rc, out, _ = cli(capsys, "runs", runs_dir, "--sort", "name")
    assert rc == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["run", "family", "data", "steps", "best", "time"]
    assert [line.split()[:4] for line in lines[1:]] == [
        [str(runs_dir / "cnn"), "cnn", "digits", "6/6"],
        [str(runs_dir / "mlp"), "mlp", "digits", "6/6"],
        [str(runs_dir / "vae"), "vae", "digits", "4/4"],
    ]
    state = json.loads((runs_dir / "mlp" / "checkpoints" / "latest" / "trainer.json").read_text())
    assert f"loss {state['best_val']:.4g} @{state['best_step']}" in lines[2]

    rc, out, _ = cli(capsys, "runs", runs_dir, "--json", "--sort", "metric")
    table = json.loads(out)
    best = [r["best"] for r in table]
    assert best == sorted(best)  # every run ranks by its validation loss: lowest first
    assert all(r["wall_s"] > 0 and r["problem"] == "" for r in table)


def test_runs_survives_a_damaged_run_and_refuses_a_missing_folder(runs_dir, tmp_path, capsys):
    root = tmp_path / "runs"
    shutil.copytree(runs_dir / "mlp", root / "good")
    (root / "bad").mkdir()
    (root / "bad" / "run.json").write_text("{not json")
    rc, out, _ = cli(capsys, "runs", root, "--sort", "name")
    assert rc == 0
    bad, good = out.strip().splitlines()[1:]
    assert "damaged" in bad and "run.json" in bad
    assert good.split()[1:4] == ["mlp", "digits", "6/6"]
    assert "no folder at" in error(capsys, 2, "runs", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "no runs under" in cli(capsys, "runs", tmp_path / "empty")[1]


def test_info_verifies_checkpoints_and_shows_evaluations(runs_dir, tmp_path, capsys):
    run = tmp_path / "mlp"
    shutil.copytree(runs_dir / "mlp", run, symlinks=True)
    assert cli(capsys, "eval", run)[0] == 0
    first = sorted((run / "checkpoints").glob("step-*"))[0]
    weights = first / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    weights.write_bytes(bytes(data))

    rc, out, _ = cli(capsys, "info", run)
    assert rc == 0
    assert f"{first.name}" in out and "damaged: model.safetensors does not match its sha256" in out
    assert "ok  <- best, latest" in out
    assert "eval-test.json: " in out and "accuracy" in out
    assert "model.hidden=[32]" in out  # settings as --set takes them

    rc, out, _ = cli(capsys, "info", run, "--json")
    d = json.loads(out)
    assert d["family"] == "mlp" and d["summary"]["step"] == 6
    status = {c["name"]: c["status"] for c in d["checkpoints"]}
    assert status[first.name].startswith("damaged") and list(status.values())[-1] == "ok"
    scored = json.loads((run / "eval-test.json").read_text())
    assert d["evaluations"]["eval-test.json"]["accuracy"] == scored["accuracy"]
    assert "not a genlab run directory" in error(capsys, 2, "info", tmp_path)


def test_info_and_runs_read_a_run_of_genlab_0_1(capsys):
    fixture = ROOT / "tests" / "fixtures" / "run-v0-pixelcnn"  # config.json, no hashes, no time
    d = json.loads(cli(capsys, "info", fixture, "--json")[1])
    assert d["schema"] == 0 and d["family"] == "pixelcnn"
    assert [c["status"] for c in d["checkpoints"]] == ["unverified"]
    assert "time not recorded" in cli(capsys, "info", fixture)[1]
    row = cli(capsys, "runs", fixture.parent)[1].splitlines()[1].split()
    assert row[1:4] == ["pixelcnn", "digits", "4/4"] and row[-1] == "-"


def test_training_time_adds_up_over_a_resume(tmp_path):
    run = tiny_run(tmp_path / "run", "mlp", 4)
    first = [r["elapsed_s"] for r in map(json.loads, (run / "metrics.jsonl").open())][-1]
    genlab.train("mlp", "", run, steps=8, resume=True, quiet=True)
    times = [r["elapsed_s"] for r in map(json.loads, (run / "metrics.jsonl").open())]
    assert times == sorted(times) and times[-1] > first > 0


# 13. genlab plot --------------------------------------------------------------------------------
def test_curves_are_the_journal_figures_by_split(runs_dir):
    from genlab.io.runs import curves

    logged = curves(runs_dir / "mlp")
    records = [json.loads(x) for x in (runs_dir / "mlp" / "metrics.jsonl").read_text().splitlines()]
    for split in ("train", "val"):
        want = [(r["step"], r["loss"]) for r in records if r["split"] == split]
        assert logged["loss"][split] == want and want
    assert "early_stop" not in logged and "elapsed_s" not in logged  # not figures


def test_plot_draws_several_runs_on_one_png(runs_dir, tmp_path, capsys):
    from PIL import Image

    one, both = tmp_path / "one.png", tmp_path / "both.png"
    assert cli(capsys, "plot", runs_dir / "mlp", "--out", one)[0] == 0
    rc, out, _ = cli(capsys, "plot", runs_dir / "mlp", runs_dir / "cnn", "--out", both, "--log")
    assert rc == 0 and out.strip() == f"wrote {both}"
    with Image.open(one) as a, Image.open(both) as b:
        assert a.format == b.format == "PNG" and a.width > 400 and a.height > 300
        assert a.tobytes() != b.tobytes()  # the second run's curves are on the figure
    rc, out, _ = cli(capsys, "plot", runs_dir / "mlp", "--metric", "accuracy")
    assert (runs_dir / "mlp" / "curves-accuracy.png").is_file()  # default: beside the run


def test_plot_refuses_a_figure_a_run_did_not_log(runs_dir, tmp_path, capsys):
    line = error(capsys, 2, "plot", runs_dir / "mlp", runs_dir / "vae", "--metric", "accuracy")
    assert f"{runs_dir / 'vae'} logged no 'accuracy'; it has loss" in line
    assert "writes a PNG" in error(capsys, 2, "plot", runs_dir / "mlp", "--out", tmp_path / "x.jpg")
    assert "not a genlab run directory" in error(capsys, 2, "plot", tmp_path)


# 14. genlab predict -----------------------------------------------------------------------------
def digits_test_images(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """n built-in digits as uint8 8x8 images on 256 levels, and their labels."""
    from genlab.data.builtin import builtin_images

    x, y, levels = builtin_images("digits")
    pixels = (x[-n:, 0].astype(np.float64) * 255 / (levels - 1)).round().astype(np.uint8)
    return pixels, y[-n:]


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray | None) -> Path:
    """IDX files (MNIST format) of uint8 images (N, H, W), gzip-compressed, and their labels."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    head = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, h, w))
    path = folder / f"{prefix}-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(head + images.tobytes()))
    if labels is not None:
        head = (0x801).to_bytes(4, "big") + n.to_bytes(4, "big")
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
            head + labels.astype(np.uint8).tobytes()
        )
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def expected(run: Path, images: np.ndarray) -> list[str]:
    """The classes the run's model gives uint8 images (N, H, W), computed here directly."""
    model = genlab.load(run)
    x = torch.from_numpy(images[:, None].astype(np.float32) / 255)
    with torch.no_grad():
        return [model.info.class_names[k] for k in model.predict(x).argmax(-1).tolist()]


def test_predict_an_image_folder_with_class_subfolders(runs_dir, tmp_path, capsys):
    images, labels = digits_test_images()
    folder = tmp_path / "digits"
    for i, (img, y) in enumerate(zip(images, labels)):
        (folder / str(y)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / str(y) / f"img{i:02d}.png")
    out = tmp_path / "predictions.csv"
    rc, said, _ = cli(capsys, "predict", runs_dir / "cnn", "--data", folder, "--out", out)
    assert rc == 0 and said.startswith(f"wrote {out} (12 predictions from step-")
    rows = read_csv(out)
    assert list(rows[0]) == ["input", "label", "predicted", *(f"p_{k}" for k in range(10))]
    order = sorted(range(12), key=lambda i: (str(labels[i]), i))  # class folders, then files
    assert [r["input"] for r in rows] == [f"{labels[i]}/img{i:02d}.png" for i in order]
    assert [r["label"] for r in rows] == [str(labels[i]) for i in order]
    assert [r["predicted"] for r in rows] == expected(runs_dir / "cnn", images[order])
    for r in rows:
        probs = [float(r[f"p_{k}"]) for k in range(10)]
        assert sum(probs) == pytest.approx(1, abs=1e-4)
        assert r["predicted"] == str(max(range(10), key=probs.__getitem__))
    # one image alone, no label
    one_image = next(folder.rglob("*.png"))
    rc, _, err = cli(capsys, "predict", runs_dir / "mlp", "--data", one_image, "--out", out)
    assert rc == 0, err
    one = read_csv(out)
    assert len(one) == 1 and list(one[0])[:2] == ["input", "predicted"]


def test_predict_reads_idx_files_and_folders(runs_dir, tmp_path, capsys):
    images, labels = digits_test_images(10)
    folder = tmp_path / "idx"
    train_file = write_idx(folder, "train", images[:6], labels[:6])
    write_idx(folder, "t10k", images[6:], None)
    out = tmp_path / "p.csv"
    assert cli(capsys, "predict", runs_dir / "cnn", "--data", train_file, "--out", out)[0] == 0
    rows = read_csv(out)
    assert [r["input"] for r in rows] == [f"train-images-idx3-ubyte.gz:{i}" for i in range(6)]
    assert [r["label"] for r in rows] == [str(v) for v in labels[:6]]
    assert [r["predicted"] for r in rows] == expected(runs_dir / "cnn", images[:6])
    # the folder: every images file (the unlabelled t10k set too), so no label column
    assert cli(capsys, "predict", runs_dir / "cnn", "--data", folder, "--out", out)[0] == 0
    rows = read_csv(out)
    assert "label" not in rows[0] and len(rows) == 10
    assert rows[0]["input"] == "t10k-images-idx3-ubyte.gz:0"
    assert [r["predicted"] for r in rows] == expected(
        runs_dir / "cnn", images[[*range(6, 10), *range(6)]]
    )


def test_predict_csv_rows_by_column_name(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=60), rng.normal(size=60)
    table = tmp_path / "train.csv"
    table.write_text(
        "a,b,label\n" + "".join(f"{x:.3f},{y:.3f},{int(x > y)}\n" for x, y in zip(a, b))
    )
    run = tiny_run(tmp_path / "mlp", "mlp", 6, str(table))
    inputs = tmp_path / "new.csv"
    inputs.write_text("b,extra,a\n0.5,x,-1.0\n-2.0,y,1.5\n")  # other order, an unused column
    out = tmp_path / "out.csv"
    assert cli(capsys, "predict", run, "--data", inputs, "--out", out)[0] == 0
    rows = read_csv(out)
    assert [r["input"] for r in rows] == ["1", "2"] and list(rows[0])[:2] == ["input", "predicted"]
    model = genlab.load(run)
    from genlab.data import KINDS

    x = KINDS["tabular"].encode([[-1.0, 0.5], [1.5, -2.0]], model.info)
    with torch.no_grad():
        want = [model.info.class_names[k] for k in model.predict(x).argmax(-1).tolist()]
    assert [r["predicted"] for r in rows] == want
    assert "lacks the column 'a'" in error(
        capsys, 1, "predict", run, "--data", write_text(tmp_path / "bad.csv", "b\n1\n")
    )


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_predict_refuses_generative_runs_and_wrong_inputs(runs_dir, tmp_path, capsys):
    line = error(capsys, 2, "predict", runs_dir / "vae", "--data", tmp_path)
    assert "'vae' is generative" in line and "mlp, cnn" in line
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(big)
    line = error(capsys, 1, "predict", runs_dir / "cnn", "--data", big)
    assert "28x28 images but the run's are 8x8" in line
    assert "no file or folder" in error(
        capsys, 2, "predict", runs_dir / "cnn", "--data", tmp_path / "x"
    )


def test_predict_a_regression_in_the_targets_units(tmp_path, capsys):
    rng = np.random.default_rng(1)
    a = rng.normal(size=60)
    table = write_text(
        tmp_path / "t.csv", "a,y\n" + "".join(f"{x:.3f},{100 + 10 * x:.2f}\n" for x in a)
    )
    run = tiny_run(tmp_path / "reg", "mlp", 6, str(table))
    out = tmp_path / "out.csv"
    assert cli(capsys, "predict", run, "--data", table, "--out", out)[0] == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["input", "label", "predicted"] and len(rows) == 60
    model = genlab.load(run)
    rec = model.info.record
    with torch.no_grad():
        z = model.predict(torch.tensor((a[:3, None] - rec.feature_mean) / rec.feature_std).float())
    want = (z * rec.target_std + rec.target_mean).tolist()
    assert [float(r["predicted"]) for r in rows[:3]] == pytest.approx(want, rel=1e-4)
    assert rows[0]["label"] == f"{100 + 10 * a[0]:.2f}"


# 15. one file per sample; genlab export ---------------------------------------------------------
@pytest.mark.parametrize("slash", [True, False])
def test_sample_into_a_folder_writes_the_grid_and_one_png_per_sample(
    runs_dir, tmp_path, capsys, slash
):
    folder = tmp_path / "out"
    if not slash:
        folder.mkdir()  # an existing folder needs no slash
    target = f"{folder}/" if slash else str(folder)
    rc, said, _ = cli(capsys, "sample", runs_dir / "vae", "-n", "5", "--out", target)
    assert rc == 0 and "(6 files)" in said
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["sample-seed0.png", *(f"sample-seed0-{i:03d}.png" for i in range(5))])
    cli(capsys, "sample", runs_dir / "vae", "-n", "5", "--out", tmp_path / "same.npy")
    want = (np.load(tmp_path / "same.npy") * 255).round().astype(np.uint8)  # the same samples
    for i in range(5):
        with Image.open(folder / f"sample-seed0-{i:03d}.png") as img:
            assert img.size == (8, 8)  # its own size: no border, not enlarged
            assert np.array_equal(np.asarray(img), want[i, 0])


def test_each_data_kind_writes_one_file_per_sample(tmp_path):
    from genlab.data import KINDS
    from genlab.data.core import DataInfo
    from genlab.data.tabular import TabularRecord

    text = DataInfo(source="t", kind="text", shape=[8])
    paths = KINDS["text"].write_each(["first text", "second"], tmp_path / "t", text, stem="s")
    assert [p.name for p in paths] == ["s.txt", "s-000.txt", "s-001.txt"]
    assert [p.read_text() for p in paths[1:]] == ["first text\n", "second\n"]
    rec = TabularRecord(
        columns=["a"],
        types=["numeric"],
        categories=[[]],
        decimals=[1],
        slices=[[0, 1]],
        feature_names=["a"],
        feature_mean=[0.0],
        feature_std=[1.0],
    )
    table = DataInfo(source="c", kind="tabular", shape=[1], record=rec)
    paths = KINDS["tabular"].write_each(torch.tensor([[1.0], [2.5]]), tmp_path / "c", table)
    assert [p.read_text() for p in paths] == ["a\n1.0\n2.5\n", "a\n1.0\n", "a\n2.5\n"]


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_export_torchscript_of_a_classifier_and_a_generator(runs_dir, tmp_path, capsys):
    out = tmp_path / "lenet.pt"
    rc, said, _ = cli(capsys, "export", runs_dir / "cnn", "--format", "torchscript", "--out", out)
    assert rc == 0 and "outputs within 0.0e+00 of genlab's" in said
    meta = json.loads((tmp_path / "lenet.pt.json").read_text())
    assert meta["exports"] == "predict" and meta["class_names"] == [str(k) for k in range(10)]
    assert meta["input"]["shape"] == ["B", 1, 8, 8]
    served = torch.jit.load(str(out))
    model = genlab.load(runs_dir / "cnn")
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(served(x), model.predict(x).softmax(-1), atol=1e-6)

    out = tmp_path / "vae.pt2"  # torch.export's format
    assert cli(capsys, "export", runs_dir / "vae", "--format", "pt2", "--out", out)[0] == 0
    served = torch.export.load(str(out)).module()
    vae = genlab.load(runs_dir / "vae")
    z = vae.prior(3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(served(z), vae.decode(z), atol=1e-6)
    meta = json.loads((tmp_path / "vae.pt2.json").read_text())
    assert meta["exports"] == "decode" and meta["output"]["shape"] == ["B", 1, 8, 8]


def test_export_refuses_families_that_sample_in_a_loop(tmp_path, capsys):
    for family in ("gpt", "rnn", "pixelcnn", "ddpm"):
        run = tmp_path / family
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"family": family}))
        line = error(capsys, 2, "export", run, "--format", "torchscript")
        assert f"'{family}' cannot be exported: it samples in a Python loop" in line
        assert "genlab export takes mlp, cnn, vae, gan" in line


def test_export_onnx_runs_in_onnx_reference_evaluator(runs_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "mlp.onnx"
    with monkeypatch.context() as m:  # without the extra: one line that says what to install
        m.setitem(sys.modules, "onnxscript", None)
        line = error(capsys, 2, "export", runs_dir / "mlp", "--format", "onnx", "--out", out)
        assert "pip install 'genlab[onnx]'" in line
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator

    assert cli(capsys, "export", runs_dir / "mlp", "--format", "onnx", "--out", out)[0] == 0
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    (served,) = ReferenceEvaluator(onnx.load(str(out))).run(None, {"x": x.numpy()})
    with torch.no_grad():
        want = genlab.load(runs_dir / "mlp").predict(x).softmax(-1)
    assert np.allclose(served, want.numpy(), atol=1e-5)


# 18. messages -----------------------------------------------------------------------------------
def test_next_steps_after_training_fit_the_family(runs_dir, capsys):
    from genlab.cli.train import print_summary

    print_summary(runs_dir / "cnn")
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == (
        f"next: genlab predict {runs_dir / 'cnn'} --data FILE_OR_FOLDER   |   "
        f"genlab eval {runs_dir / 'cnn'}"
    )
    print_summary(runs_dir / "vae")
    assert "next: genlab sample" in capsys.readouterr().out


def test_missing_data_lists_text_files_among_the_formats(tmp_path, capsys):
    line = error(
        capsys, 1, "train", "gpt", "--data", tmp_path / "poems.txt", "--out", tmp_path / "r"
    )
    assert "no data at" in line and "a UTF-8 text file" in line and "a CSV file" in line


def test_an_empty_test_split_suggests_the_validation_split(tmp_path, capsys):
    run = tiny_run(tmp_path / "run", "mlp", 2, "digits", "data.test_fraction=0")
    line = error(capsys, 1, "eval", run, "--split", "test")
    assert line.endswith(
        "the test split of 'digits' is empty; evaluate another split (--split val)"
    )


def test_temperature_zero_points_to_greedy_decoding(tiny_text, tmp_path, capsys):
    run = tiny_run(tmp_path / "gpt", "gpt", 2, str(tiny_text))
    line = error(capsys, 2, "sample", run, "--temperature", "0", "--max-new-tokens", "2")
    assert line.endswith(
        "--temperature must be positive; got 0.0; for greedy decoding use --top-k 1"
    )


def test_print_config_shows_the_step_count_of_epochs(tmp_path, capsys):
    from genlab.data import load_dataset

    n_train = len(load_dataset("digits").splits["train"])
    args = ["train", "mlp", "--data", "digits", "--out", tmp_path / "r", "--epochs", "5"]
    rc, out, err = cli(capsys, *args, "--print-config")
    train = json.loads(out)["train"]
    assert rc == 0 and train["epochs"] == 5
    assert train["steps"] == 5 * (n_train // train["batch_size"])
    assert f"--epochs 5 = {train['steps']} steps ({n_train} training examples" in err
    assert not (tmp_path / "r").exists()  # nothing trained, nothing written


def test_bench_writes_under_runs_by_default(tmp_path, capsys, monkeypatch):
    import genlab.bench

    seen = {}

    def fake_bench(data, out, **kw):
        seen["out"] = str(out)
        Path(out).mkdir(parents=True)
        (Path(out) / "comparison.md").write_text("table\n")
        return {"families": []}

    monkeypatch.setattr(genlab.bench, "bench", fake_bench)
    monkeypatch.chdir(tmp_path)
    assert cli(capsys, "bench", "--data", "digits", "--families", "vae")[0] == 0
    assert seen["out"] == str(Path("runs") / "bench-digits")
    cli(capsys, "bench", "--data", str(tmp_path / "my-digits") + "/", "--families", "vae")
    assert seen["out"] == str(Path("runs") / "bench-my-digits")


def test_sample_n_help_says_the_default_of_the_runs_family_and_data():
    from genlab.cli.sample import parser_for
    from genlab.registry import get_family

    def n_help(family: str, kind: str) -> str:
        p = parser_for(get_family(family)[0], kind)
        return next(a.help for a in p._actions if "-n" in a.option_strings)

    assert (
        n_help("gpt", "text") == "number of samples (default 1, each streamed as it is generated)"
    )
    assert n_help("gpt", "sequence") == "number of samples (default 4, each its own .mid file)"
    assert n_help("rnn", "audio") == "number of samples (default 64, each its own .wav file)"
    assert n_help("vae", "image").startswith("number of samples (default 64); rows with")
    assert n_help("pixelcnn", "image").endswith("completions with --complete (default 8)")


def test_version_imports_no_torch():
    code = (
        "import sys\n"
        "from genlab.cli import main\n"
        "for words in (['--version'], ['--help']):\n"
        "    try:\n"
        "        main(words)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules, 'numpy' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False False"
    assert r.stdout.startswith("genlab ")
