"""The contract every registered family keeps (ARCHITECTURE.md): build, learn, round-trip,
sample, resume."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from safetensors.torch import load_file

import genlab
from conftest import tiny_data_spec, tiny_overrides
from genlab.config import apply_overrides, to_dict
from genlab.data import load_dataset
from genlab.data.kinds import kind_of
from genlab.errors import UsageError
from genlab.io.atomic import write_json_atomic
from genlab.io.checkpoint import save_checkpoint
from genlab.registry import FAMILIES
from genlab.run import build_model, load_data
from genlab.runconfig import default_config
from genlab.training.loop import Interrupted, Trainer


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture
def data_spec(family, request) -> str:
    """What `family` learns in these tests."""
    return tiny_data_spec(family, request)


@pytest.fixture
def data(family, data_spec, digits):
    """The family's data set, cut for its tiny configuration (e.g. a text model's context)."""
    if data_spec == "digits":
        return digits
    return load_data(apply_overrides(default_config(family), tiny_overrides(family)), data_spec)


def tiny_model(family: str, data):
    cfg = apply_overrides(default_config(family), tiny_overrides(family))
    torch.manual_seed(0)
    return cfg, build_model(family, cfg.model, data.info, data.files)


def outputs(model, batch) -> torch.Tensor | list[str]:
    """What a family produces from fixed inputs and a fixed seed."""
    with torch.no_grad():
        if model.discriminative:
            return model.predict(batch["x"])
        if not model.generates():  # a representation family (simclr)
            return model.representation(batch["x"])
        return model.sample(6, generator=torch.Generator().manual_seed(3))


def same(a: torch.Tensor | list[str], b: torch.Tensor | list[str]) -> bool:
    """Identical outputs: equal tensors, or equal lists (text families sample strings)."""
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


@pytest.mark.parametrize("family", list(FAMILIES))
def test_steps_on_a_fixed_batch_lower_the_loss(family, data):
    _, model = tiny_model(family, data)
    batch = data.batch("train", torch.arange(64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        torch.manual_seed(1)  # the same noise every step: only the weights change
        loss = model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("family", list(FAMILIES))
def test_save_and_load_give_identical_outputs(family, data, tmp_path):
    cfg, model = tiny_model(family, data)
    batch = data.batch("test", torch.arange(16))
    model.loss(batch)["loss"].backward()  # perturb nothing, but exercise a full pass first
    model.eval()
    save_checkpoint(tmp_path, 7, model)
    write_json_atomic(
        tmp_path / "config.json",
        {"family": family, "config": to_dict(cfg), "data": data.info.to_dict()},
    )
    for name, content in data.files.items():  # e.g. a tokenizer, as genlab.train writes them
        (tmp_path / name).write_bytes(content)
    loaded = genlab.load(tmp_path)
    assert loaded.checkpoint == "step-0000007"
    assert same(outputs(model, batch), outputs(loaded, batch))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_samples_or_predictions_have_the_right_shape(family, data):
    _, model = tiny_model(family, data)
    model.eval()
    x = data.batch("test", torch.arange(5))["x"]
    if model.discriminative:
        assert model.predict(x).shape == (5, data.info.num_classes)
        with pytest.raises(UsageError, match="discriminative"):
            model.sample(4)
    elif not model.generates():  # features, and a clear refusal to sample
        assert model.representation(x).dim() == 2 and len(model.representation(x)) == 5
        with pytest.raises(UsageError, match="does not generate"):
            model.sample(4)
    elif data.info.kind == "text":  # n texts of the prompt and max_new_tokens tokens after it
        texts = model.sample(5, generator=torch.Generator().manual_seed(0), max_new_tokens=9)
        assert len(texts) == 5 and all(isinstance(t, str) for t in texts)
        assert [len(model.tokenizer.encode(t)) for t in texts] == [9] * 5  # char tokens
    elif data.info.kind == "tabular":  # encoded rows that decode to rows of every column
        s = model.sample(5, generator=torch.Generator().manual_seed(0))
        assert s.shape == (5, *data.info.shape) and torch.isfinite(s).all()
        rows = kind_of(data.info).decode(s, data.info)
        assert len(rows) == 5 and all(len(r) == len(data.info.record.columns) for r in rows)
    elif data.info.kind == "audio":  # mu-law tokens or waveforms, decoded by the data's codec
        s = model.sample(5, generator=torch.Generator().manual_seed(0))
        assert s.shape == (5, *data.info.shape)
        wave = torch.as_tensor(kind_of(data.info).decode(s, data.info))
        assert torch.isfinite(wave).all() and wave.abs().max() <= 1
    else:
        s = model.sample(5, generator=torch.Generator().manual_seed(0))
        assert s.shape == (5, *data.info.shape)
        assert torch.isfinite(s).all() and s.min() >= 0 and s.max() <= 1


@pytest.mark.parametrize("family", list(FAMILIES))
def test_resume_equals_uninterrupted(family, data_spec, tmp_path, monkeypatch):
    extra = ["train.ema_decay=0.9", "train.warmup_steps=2"]
    kw = dict(overrides=tiny_overrides(family, *extra), quiet=True, seed=5, steps=7)
    full = genlab.train(family, data_spec, tmp_path / "full", **kw)

    step_once = Trainer.train_step

    def ctrl_c_after_step_5(self, step):  # Ctrl-C arrives during the 5th step
        out = step_once(self, step)
        if step == 4:
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(Trainer, "train_step", ctrl_c_after_step_5)
    with pytest.raises(Interrupted, match="interrupted at step 5"):
        genlab.train(family, data_spec, tmp_path / "part", **kw)
    monkeypatch.undo()
    part = tmp_path / "part"
    assert (part / "checkpoints" / "latest").resolve().name == "step-0000005"
    genlab.train(family, "", part, resume=True, quiet=True)
    for name in ("model.safetensors", "ema.safetensors"):
        a = load_file(str(full / "checkpoints" / "latest" / name))
        b = load_file(str(part / "checkpoints" / "latest" / name))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)

    def curve(run):
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], r["split"], r["loss"]) for r in rows]

    assert curve(full) == curve(part)
    assert [s for s, split, _ in curve(full) if split == "train"] == list(range(1, 8))
