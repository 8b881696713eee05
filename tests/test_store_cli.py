"""`genlab sample --store` and `genlab store search|show|export|gc`, as a user runs them."""

from __future__ import annotations

import json

import pytest

from conftest import FEATURE_STEPS, tiny_overrides
from genlab.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_text):
    import genlab

    root = tmp_path_factory.mktemp("runs")
    vae = genlab.train(
        "vae", "digits", root / "vae", steps=4, quiet=True, overrides=tiny_overrides("vae")
    )
    gpt = genlab.train(
        "gpt", str(tiny_text), root / "gpt", steps=4, quiet=True, overrides=tiny_overrides("gpt")
    )
    return {"vae": vae, "gpt": gpt, "root": root}


def cli(capsys, *words: str) -> tuple[int, str, str]:
    code = main(list(words))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sample_store_records_images_once_then_reports_duplicates(runs, tmp_path, capsys):
    store = str(tmp_path / "store")
    args = ["sample", str(runs["vae"]), "-n", "4", "--out", str(tmp_path / "s.png")]
    # --store takes no value: a flag before RUN_DIR does not swallow it
    first = ["sample", "--store", str(runs["vae"]), *args[2:], "--store-path", store]
    args += ["--store-path", store, "--feature-steps", str(FEATURE_STEPS)]
    first += ["--feature-steps", str(FEATURE_STEPS)]
    code, _, err = cli(capsys, *first)
    assert code == 0, err
    new = int(err.split("stored ")[1].split()[0])
    near = int(err.split(" near-duplicates")[0].split()[-1])
    assert new >= 1 and new + near == 4  # (an untrained model's images may look alike)
    code, _, err = cli(capsys, *args)  # same seed: the same four images
    assert code == 0 and "stored 0 new generations" in err and f"{new} duplicates" in err
    code, out, err = cli(capsys, "store", "search", "vae", "--kind", "image", "--mode",
                         "keyword", "--store-path", store, "--json")  # fmt: skip
    hits = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and len(hits) == new
    assert {h["kind"] for h in hits} == {"image"} and sum(h["seen"] for h in hits) == 8
    assert all(h["space"].startswith("image:cnn") for h in hits)
    # images are found by the judge's features: the nearest to one is itself
    like = hits[0]["sha256"][:10]
    code, out, _ = cli(capsys, "store", "search", "--like", like, "--k", "2", "--store-path",
                       store, "--json")  # fmt: skip
    near = [json.loads(x) for x in out.splitlines()]
    assert near[0]["sha256"] == hits[0]["sha256"] and near[0]["vector_rank"] == 1


def test_text_samples_search_show_export_gc(runs, tmp_path, capsys):
    store = str(tmp_path / "store")
    code, out, err = cli(
        capsys,
        "sample",
        str(runs["gpt"]),
        "--prompt",
        "ROMEO:",
        "-n",
        "2",
        "--max-new-tokens",
        "12",
        "--seed",
        "3",
        "--store-path",
        store,
    )
    assert code == 0, err
    assert "stored 2 new generations" in err
    code, out, _ = cli(capsys, "store", "search", "ROMEO", "--store-path", store, "--json")
    hits = [json.loads(x) for x in out.splitlines()]
    assert len(hits) == 2 and all(h["prompt"] == "ROMEO:" and h["run"] == "gpt" for h in hits)
    assert all(h["text"].startswith("ROMEO:") for h in hits)
    code, out, _ = cli(capsys, "store", "show", hits[0]["sha256"][:8], "--store-path", store)
    assert code == 0 and hits[0]["sha256"] in out and "file: " in out
    code, out, _ = cli(capsys, "store", "export", str(tmp_path / "ex"), "--store-path", store)
    assert code == 0 and "exported 2 generations" in out
    assert len((tmp_path / "ex" / "index.jsonl").read_text().splitlines()) == 2
    code, out, _ = cli(capsys, "store", "gc", "--store-path", store)
    assert code == 0 and out.strip() == "removed 0 files and 0 prompts"


def test_store_errors_are_one_line(runs, tmp_path, capsys):
    store = str(tmp_path / "store")
    code, _, err = cli(capsys, "store", "search", "--store-path", store)
    assert code == 2 and "search needs a query" in err
    code, _, err = cli(capsys, "store", "show", "zz", "--store-path", store)
    assert code == 2 and "neither an id nor" in err
    code, _, err = cli(capsys, "store", "search", "x", "--k", "0", "--store-path", store)
    assert code == 2 and "--k must be at least 1" in err
    code, _, err = cli(
        capsys, "sample", str(runs["vae"]), "--interpolate", "3", "-n", "2", "--store-path", store
    )
    assert code == 2 and "--store records plain samples" in err
    assert len(err.strip().splitlines()) == 1
