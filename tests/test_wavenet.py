"""WaveNet: causality, the receptive field, exact likelihood, cached == naive generation, and
conditioning on class and speaker (tiny seeded models on the `tiny_audio` clips)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.io import wavfile

from genlab.config import apply_overrides
from genlab.data import load_dataset
from genlab.errors import DataError, UsageError
from genlab.models.wavenet import WaveNet
from genlab.runconfig import default_config


@pytest.fixture(autouse=True)
def one_thread():
    """Generation is a chain of tiny operations: on a shared machine a second thread only waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(
    data_path, *overrides: str, data_overrides: tuple[str, ...] = ()
) -> tuple[WaveNet, object]:
    cfg = apply_overrides(default_config("wavenet"), [*WaveNet.tiny, *overrides, *data_overrides])
    data = load_dataset(str(data_path), cfg.data)
    torch.manual_seed(0)
    return WaveNet(cfg.model, data.info).eval(), data


@pytest.fixture(scope="module")
def conditioned(tiny_audio):
    """Class- and speaker-conditional, kernel 3, two stacks: every path of the cache."""
    return make(tiny_audio, "model.kernel=3", "model.stacks=2", "model.speaker_conditional=true")


def test_receptive_field_and_causality(conditioned):
    model, data = conditioned
    rf = model.cfg.receptive_field
    assert rf == 1 + 2 * 2 * (2**4 - 1)  # 61: (kernel - 1) x stacks x (2^layers - 1), plus 1
    batch = data.batch("train", torch.arange(2))
    x = batch["x"].clone()
    cond = model.condition(batch["y"], batch["speaker"])
    t = 150
    base = model.logits(model._shifted(x), cond)
    changed = x.clone()
    changed[:, t] = (changed[:, t] + 7) % 256
    after = model.logits(model._shifted(changed), cond)
    assert torch.equal(base[:, :, : t + 1], after[:, :, : t + 1])  # x_t never predicts itself
    assert not torch.equal(base[:, :, t + 1], after[:, :, t + 1])
    assert torch.equal(base[:, :, t + rf + 1 :], after[:, :, t + rf + 1 :])  # beyond its field
    assert not torch.equal(base[:, :, t + rf], after[:, :, t + rf])


def test_nll_is_exact_and_near_8_bits_per_sample_untrained(conditioned):
    model, data = conditioned
    batch = data.batch("test", torch.arange(3))
    nll = model.nll(batch)
    x = batch["x"]
    logits = model.logits(model._shifted(x), model.condition(batch["y"], batch["speaker"]))
    by_hand = -torch.log_softmax(logits, 1).gather(1, x.unsqueeze(1)).squeeze(1).sum(1)
    assert torch.allclose(nll, by_hand, rtol=1e-6)
    bits = nll / (x.shape[1] * math.log(2))  # an untrained model is about uniform: 8 bits
    assert ((bits > 7.5) & (bits < 8.5)).all(), bits


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_cached_generation_equals_naive_recompute(conditioned, temperature):
    model, _ = conditioned
    kw = dict(class_label=1, speaker="b", seconds=0.025, temperature=temperature)  # 200 samples
    fast = model.sample(3, generator=torch.Generator().manual_seed(4), **kw)
    slow = model.sample(3, generator=torch.Generator().manual_seed(4), cached=False, **kw)
    assert fast.shape == (3, 200) and fast.dtype == torch.long
    assert torch.equal(fast, slow)  # bit for bit, past the 61-sample receptive field


def test_cached_logits_match_a_full_pass(conditioned):
    """Teacher-forced, the cache's logits are the full pass's at every step."""
    model, data = conditioned
    batch = data.batch("val", torch.arange(2))
    x = batch["x"][:, :120]
    cond = model.condition(batch["y"], batch["speaker"])
    full = model.logits(model._shifted(x), cond)  # (B, V, T)
    step = model._cached_step(2, cond)
    prev = torch.full((2,), model.silence)
    with torch.inference_mode():
        for t in range(x.shape[1]):
            assert torch.allclose(step(prev), full[:, :, t], atol=1e-5), t
            prev = x[:, t]


def test_a_few_steps_learn_the_tiny_clips(tiny_audio):
    model, data = make(tiny_audio)
    model.train()
    batch = data.batch("train", torch.arange(32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.nll(batch).mean().item()
    for _ in range(25):
        torch.manual_seed(1)
        loss = model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.nll(batch).mean().item() < 0.6 * first


def test_conditioning_errors(tiny_audio, conditioned):
    model, _ = conditioned
    with pytest.raises(UsageError, match="unknown --speaker 'zed'; the speakers are a, b"):
        model.sample(1, speaker="zed", seconds=0.001)
    with pytest.raises(UsageError, match="--class must be between 0 and 1"):
        model.sample(1, class_label=5, seconds=0.001)
    with pytest.raises(UsageError, match="--seconds must be positive"):
        model.sample(1, seconds=0)
    plain, _ = make(tiny_audio, "model.conditional=false")
    with pytest.raises(UsageError, match="--speaker needs a run trained"):
        plain.sample(1, speaker="a", seconds=0.001)
    with pytest.raises(UsageError, match="--class needs a run trained"):
        plain.sample(1, class_label=0, seconds=0.001)
    assert plain.sample(2, seconds=0.002).shape == (2, 16)  # 16 samples at 8 kHz
    with pytest.raises(DataError, match="set it to mulaw"):
        make(tiny_audio, data_overrides=("data.audio.encoding=float",))


def test_loss_reads_random_crops_in_training_and_whole_clips_in_eval(conditioned):
    model, data = conditioned
    batch = data.batch("train", torch.arange(4))
    model.eval()
    whole = model.loss(batch)["loss"]
    x = batch["x"]
    logits = model.logits(model._shifted(x), model.condition(batch["y"], batch["speaker"]))
    assert torch.allclose(whole, F.cross_entropy(logits, x))
    assert whole.item() == pytest.approx(model.nll(batch).sum().item() / x.numel(), rel=1e-5)


def test_cli_writes_per_class_8_bit_wavs_and_a_spectrogram(tiny_audio, tmp_path):
    import genlab
    from conftest import run_cli

    run = tmp_path / "run"
    genlab.train("wavenet", str(tiny_audio), run, overrides=list(WaveNet.tiny), quiet=True, steps=2)
    out = tmp_path / "out" / "all.wav"
    r = run_cli("sample", str(run), "--per-class", "-n", "2", "--bits", "8", "--seconds", "0.01",
                "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["all-0.wav", "all-1.wav", "all-spectrogram.png"]
    rate, pcm = wavfile.read(out.parent / "all-1.wav")
    assert rate == 8000 and pcm.dtype == np.uint8
    assert len(pcm) == 80 + 2000 + 80  # two 0.01 s samples, 0.25 s of silence between
    assert (pcm[80:2080] == 128).all()
    r = run_cli("sample", str(run), "--speaker", "a", "--out", str(tmp_path / "x.wav"))
    assert r.returncode == 2 and "not speaker-conditional" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_audio_input_is_one_line_naming_the_file(tmp_path):
    from conftest import run_cli

    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "0_a_0.wav").write_text("not audio at all")
    r = run_cli("train", "wavenet", "--data", str(folder), "--out", str(tmp_path / "r"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "0_a_0.wav' is not a readable WAV file" in lines[0]


def test_a_sequence_model_on_audio_names_its_context_setting(tiny_audio):
    from genlab.run import build_model

    data = load_dataset(str(tiny_audio))  # clips of 256 samples
    cfg = default_config("gpt")
    with pytest.raises(UsageError, match=r"context \(model.block_size\) is 64; .* set "):
        build_model("gpt", cfg.model, data.info)
    # another whole-number setting equal to the context does not blur the name
    cfg = apply_overrides(default_config("gpt"), ["model.block_size=16", "model.window=16"])
    with pytest.raises(UsageError, match=r"context \(model.block_size\) is 16; .* set "):
        build_model("gpt", cfg.model, data.info)
    cfg = apply_overrides(default_config("rnn"), ["model.seq_len=100"])
    with pytest.raises(UsageError, match=r"set model.seq_len=256 to match the data"):
        build_model("rnn", cfg.model, data.info)
