"""The contract every registered family keeps (ARCHITECTURE.md): build, learn, round-trip,
sample, resume."""

from __future__ import annotations

import dataclasses
import json
import signal

import pytest
import torch
from safetensors.torch import load_file

import genlab
from conftest import tiny_overrides
from genlab.config import apply_overrides, to_dict
from genlab.data import load_dataset
from genlab.errors import UsageError
from genlab.io.checkpoint import save_checkpoint, write_json_atomic
from genlab.registry import FAMILIES, default_config
from genlab.run import build_model
from genlab.train.loop import Interrupted, Trainer


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def tiny_model(family: str, data):
    cfg = apply_overrides(default_config(family), tiny_overrides(family))
    torch.manual_seed(0)
    return cfg, build_model(family, cfg.model, data.info)


def outputs(model, batch) -> torch.Tensor:
    """What a family produces from fixed inputs and a fixed seed."""
    with torch.no_grad():
        if model.discriminative:
            return model.predict(batch["x"])
        return model.sample(6, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_steps_on_a_fixed_batch_lower_the_loss(family, digits):
    _, model = tiny_model(family, digits)
    batch = digits.batch("train", torch.arange(64))
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
def test_save_and_load_give_identical_outputs(family, digits, tmp_path):
    cfg, model = tiny_model(family, digits)
    batch = digits.batch("test", torch.arange(16))
    model.loss(batch)["loss"].backward()  # perturb nothing, but exercise a full pass first
    model.eval()
    save_checkpoint(tmp_path, 7, model)
    write_json_atomic(
        tmp_path / "config.json",
        {"family": family, "config": to_dict(cfg), "data": dataclasses.asdict(digits.info)},
    )
    loaded = genlab.load(tmp_path)
    assert loaded.checkpoint == "step-0000007"
    assert torch.equal(outputs(model, batch), outputs(loaded, batch))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_samples_or_predictions_have_the_right_shape(family, digits):
    _, model = tiny_model(family, digits)
    model.eval()
    x = digits.batch("test", torch.arange(5))["x"]
    if model.discriminative:
        assert model.predict(x).shape == (5, digits.info.num_classes)
        with pytest.raises(UsageError, match="discriminative"):
            model.sample(4)
    else:
        s = model.sample(5, generator=torch.Generator().manual_seed(0))
        assert s.shape == (5, *digits.info.shape)
        assert torch.isfinite(s).all() and s.min() >= 0 and s.max() <= 1


@pytest.mark.parametrize("family", list(FAMILIES))
def test_resume_equals_uninterrupted(family, tmp_path, monkeypatch):
    extra = ["train.ema_decay=0.9", "train.warmup_steps=2"]
    kw = dict(overrides=tiny_overrides(family, *extra), quiet=True, seed=5, steps=7)
    full = genlab.train(family, "digits", tmp_path / "full", **kw)

    step_once = Trainer.train_step

    def ctrl_c_after_step_5(self, step):  # Ctrl-C arrives during the 5th step
        out = step_once(self, step)
        if step == 4:
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(Trainer, "train_step", ctrl_c_after_step_5)
    with pytest.raises(Interrupted, match="interrupted at step 5"):
        genlab.train(family, "digits", tmp_path / "part", **kw)
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
