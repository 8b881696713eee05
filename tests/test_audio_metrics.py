"""The frozen audio judge (melcnn on log-mel spectrograms) and the audio sample-quality figures,
on the `tiny_audio` clips (two classes: 500 Hz and 1500 Hz sines)."""

from __future__ import annotations

import pytest
import torch

from genlab.data import load_dataset
from genlab.judges import audio_judge
from genlab.metrics.audio import audio_judge_entry, audio_quality, judge_accuracy
from genlab.models.melcnn import mel_filters

STEPS = 40


@pytest.fixture(scope="module")
def data(tiny_audio):
    return load_dataset(str(tiny_audio))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("judges")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def judge(data, cache, one_thread):
    return audio_judge(data, steps=STEPS, cache_dir=cache)


def test_mel_filters_cover_the_band_in_order():
    fb = mel_filters(256, 40, 8000)  # (40, 129)
    assert fb.shape == (40, 129) and fb.min() >= 0 and fb.max() <= 1
    peaks = fb.argmax(1)
    assert torch.all(peaks[1:] >= peaks[:-1])  # low bands first
    assert fb[:, 1:-1].sum(0).min() > 0  # every inner frequency bin is in some band


def test_the_judge_is_trained_once_cached_and_tells_the_classes_apart(data, judge, cache):
    assert judge.test_accuracy == 1.0
    assert not judge.training and not any(p.requires_grad for p in judge.parameters())
    batch = data.batch("test", torch.arange(len(data.splits["test"])))
    assert judge_accuracy(judge, batch["x"], batch["y"]) == 1.0
    assert judge_accuracy(judge, batch["x"], 1 - batch["y"]) == 0.0
    entry = audio_judge_entry(data.info.fingerprint, STEPS, cache)
    assert (entry / "model.safetensors").exists() and (entry / "meta.json").exists()
    again = audio_judge(data, steps=STEPS, cache_dir=cache)  # loaded, not trained
    for a, b in zip(judge.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


class Replay(torch.nn.Module):
    """A "model" whose class-k samples are real test clips of class k (or of the other class)."""

    def __init__(self, data, swap: bool = False) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        part = data.splits["test"]
        self.clips = data.batch("test", torch.arange(len(part)))
        self.swap = swap

    def sample(self, n, *, generator=None, class_label=0):
        k = 1 - class_label if self.swap else class_label
        return self.clips["x"][self.clips["y"] == k][:n]

    @property
    def device(self):
        return torch.device("cpu")


def test_audio_quality_scores_real_clips_like_the_real_baseline(data, judge):
    good = audio_quality(Replay(data), data, judge, per_class=5)
    assert good["samples"] == 10 and good["judge_accuracy"] == 1.0
    assert good["judge_accuracy_real"] == 1.0 and good["judge_test_accuracy"] == 1.0
    assert good["fd"] >= 0 and good["fd_real"] >= 0
    bad = audio_quality(Replay(data, swap=True), data, judge, per_class=5)
    assert bad["judge_accuracy"] == 0.0  # every clip is of the other class


def test_genlab_bench_compares_wavenet_and_diffwave_on_audio(tiny_audio, tmp_path):
    from conftest import TINY
    from genlab.bench import bench

    families = ["wavenet", "diffwave"]
    sets = [f"{f}:{o}" for f in families for o in TINY[f] if not o.startswith("data.")]
    sets.append("train.batch_size=16")  # one data for both: diffwave decodes the mu-law tokens
    out = tmp_path / "bench"
    comparison = bench(
        str(tiny_audio), out, families=families, budget_minutes=0.01, samples=10,
        overrides=sets, feature_steps=STEPS, calibration_steps=2,
    )  # fmt: skip
    fams = comparison["families"]
    for name in families:
        r = fams[name]
        assert 0 <= r["judge_accuracy"] <= 1 and r["fd"] >= 0 and r["samples"] == 10
        assert sorted(p.name for p in out.glob(f"samples-{name}-*")) == [
            f"samples-{name}-0.wav", f"samples-{name}-1.wav", f"samples-{name}-spectrogram.png"
        ]  # fmt: skip
    assert "nll_nats" in fams["wavenet"] and "nll_nats" not in fams["diffwave"]
    assert comparison["real"]["judge_accuracy"] == fams["wavenet"]["judge_accuracy_real"]
    report = (out / "comparison.md").read_text()
    assert "| audio judge accuracy (the class asked for) |" in report
    for name in families:  # the report shows files that exist
        assert f"![{name}](samples-{name}-spectrogram.png)" in report
    assert "test images" not in report


def test_eval_samples_of_a_conditional_audio_run_use_the_audio_judge(tiny_audio, tmp_path, capsys):
    import json

    import genlab
    from conftest import TINY
    from genlab.cli import main

    run = genlab.train(
        "wavenet", str(tiny_audio), tmp_path / "w",
        overrides=[*TINY["wavenet"], "train.batch_size=16"], steps=2, quiet=True,
    )  # fmt: skip
    out = tmp_path / "eval.json"
    args = ["eval", str(run), "--samples", "10", "--feature-steps", str(STEPS), "--quiet"]
    assert main([*args, "--json", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["samples"] == 10 and 0 <= m["judge_accuracy"] <= 1 and m["fd"] >= 0
    assert m["judge_accuracy_real"] == 1.0  # the judge tells the two tones apart
    assert "precision" not in m  # no image figures
    uncond = genlab.train(
        "wavenet", str(tiny_audio), tmp_path / "u",
        overrides=[*TINY["wavenet"], "model.conditional=false", "train.batch_size=16"],
        steps=2, quiet=True,
    )  # fmt: skip
    assert main(["eval", str(uncond), "--samples", "10", "--feature-steps", str(STEPS)]) == 2
    assert "not a class-conditional generator" in capsys.readouterr().err
