"""DiffWave: the network's shape and reach, training on either audio form, DDIM sampling through
genlab.diffusion, guidance and the CLI (tiny seeded models on the `tiny_audio` clips)."""

from __future__ import annotations

import pytest
import torch
from scipy.io import wavfile

from genlab.config import apply_overrides
from genlab.data import load_dataset
from genlab.errors import UsageError
from genlab.models.diffwave import DiffWave
from genlab.runconfig import default_config


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(data_path, *overrides: str):
    cfg = apply_overrides(default_config("diffwave"), [*DiffWave.tiny, *overrides])
    data = load_dataset(str(data_path), cfg.data)
    torch.manual_seed(0)
    return DiffWave(cfg.model, data.info).eval(), data


def test_the_network_is_non_causal_and_starts_at_zero_noise(tiny_audio):
    model, data = make(tiny_audio)
    x = data.batch("train", torch.arange(2))["x"]
    assert x.dtype == torch.float32 and x.shape == (2, 256)
    t = torch.tensor([3, 30])
    labels = torch.tensor([0, 1])
    assert torch.equal(model.net(x, t, labels), torch.zeros_like(x))  # zero-initialized output
    torch.nn.init.normal_(model.out.weight)
    base = model.net(x, t, labels)
    changed = x.clone()
    changed[:, 100] += 0.5
    after = model.net(changed, t, labels)
    diff = (after - base).abs().amax(0) > 0
    reach = 1 + 2 * sum(2 ** (i % 2) for i in range(4))  # kernel 3: +-dilation per layer = 13
    assert diff[99] and diff[101]  # both sides: non-causal
    assert diff.sum() == reach and diff[100 - reach // 2] and not diff[100 - reach // 2 - 1]


def test_loss_is_the_noise_mse_and_reads_mulaw_tokens_too(tiny_audio):
    model, data = make(tiny_audio)
    batch = data.batch("train", torch.arange(8))
    assert model.loss(batch)["loss"].item() == pytest.approx(1.0, abs=0.1)  # output 0, eps ~ N(0,1)
    tokens, tdata = make(tiny_audio, "data.audio.encoding=mulaw")
    tbatch = tdata.batch("train", torch.arange(8))
    assert tbatch["x"].dtype == torch.long
    wave = tokens.waveform(tbatch["x"])
    assert (wave - batch["x"]).abs().max() < 0.02  # mu-law decoded: within one level
    assert torch.isfinite(tokens.loss(tbatch)["loss"])


def test_ddim_sampling_is_deterministic_and_guided(tiny_audio):
    model, _ = make(tiny_audio)
    torch.nn.init.normal_(model.out.weight, std=0.1)
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    a = model.sample(3, generator=g(), class_label=1, seconds=0.01)
    b = model.sample(3, generator=g(), class_label=1, seconds=0.01)
    assert a.shape == (3, 80) and torch.equal(a, b) and a.abs().max() <= 1
    plain = model.sample(3, generator=g(), class_label=1, seconds=0.01, guidance_scale=1.0)
    assert torch.equal(a, plain)
    strong = model.sample(3, generator=g(), class_label=1, seconds=0.01, guidance_scale=3.0)
    assert not torch.equal(a, strong)
    ddpm = model.sample(2, generator=g(), sampler="ddpm", sample_steps=50, seconds=0.01)
    assert ddpm.shape == (2, 80) and torch.isfinite(ddpm).all()
    with pytest.raises(UsageError, match="--class must be between 0 and 1"):
        model.sample(1, class_label=2)
    with pytest.raises(UsageError, match="--sample-steps must be between 1 and"):
        model.sample(1, sample_steps=51)


def test_a_few_steps_lower_the_loss(tiny_audio):
    model, data = make(tiny_audio)
    model.train()
    batch = data.batch("train", torch.arange(32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        torch.manual_seed(1)
        loss = model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_cli_writes_a_wav_per_sample(tiny_audio, tmp_path):
    import genlab
    from conftest import run_cli

    run = tmp_path / "run"
    genlab.train(
        "diffwave", str(tiny_audio), run, overrides=list(DiffWave.tiny), quiet=True, steps=2
    )
    out = tmp_path / "out" / "d.wav"
    r = run_cli("sample", str(run), "--class", "1", "-n", "2", "--seconds", "0.02",
                "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["d-000.wav", "d-001.wav", "d-spectrogram.png"]
    rate, pcm = wavfile.read(out.parent / "d-000.wav")
    assert rate == 8000 and pcm.dtype.name == "int16" and len(pcm) == 160
