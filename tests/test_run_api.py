"""The Python API as a user calls it: inference without autograd in every family, and a
resume that would train nothing refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import genlab
from conftest import run_cli, tiny_data_spec, tiny_overrides
from genlab.config import apply_overrides
from genlab.errors import UsageError
from genlab.models.base import EvidenceBound, Likelihood, Reconstructs
from genlab.registry import FAMILIES
from genlab.run import build_model, load_data
from genlab.runconfig import default_config


@pytest.fixture
def tiny(family, request):
    """An untrained tiny model of `family` (eval mode) and its data."""
    cfg = apply_overrides(default_config(family), tiny_overrides(family))
    data = load_data(cfg, tiny_data_spec(family, request))
    torch.manual_seed(0)
    return build_model(family, cfg.model, data.info, data.files).eval(), data


@pytest.mark.parametrize("family", list(FAMILIES))
def test_inference_methods_return_tensors_without_grad(family, tiny):
    model, data = tiny
    batch = data.batch("test", torch.arange(4))
    g = torch.Generator().manual_seed(0)
    outs = []
    if model.discriminative:
        outs.append(model.predict(batch["x"]))
    elif not model.generates():  # a representation learner (simclr)
        outs.append(model.representation(batch["x"]))
    elif data.info.kind != "text":
        outs.append(model.sample(2, generator=g))
    if isinstance(model, Likelihood):
        outs.append(model.nll(batch, generator=g))
    if isinstance(model, EvidenceBound):
        outs.append(model.elbo(batch, generator=g))
    if isinstance(model, Reconstructs):
        outs.append(model.reconstruct(batch["x"]))
    assert outs
    for out in outs:
        assert isinstance(out, torch.Tensor) and not out.requires_grad
    assert any(p.requires_grad for p in model.parameters())  # training still has autograd
    loss = model.loss(batch)["loss"]
    assert loss.requires_grad


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("api") / "vae"
    genlab.train("vae", "digits", run, overrides=tiny_overrides("vae"), steps=6, quiet=True)
    return run


def test_a_loaded_run_samples_without_grad(vae_run):
    images = genlab.load(vae_run).sample(16)
    assert images.shape == (16, 1, 8, 8) and not images.requires_grad


def test_resume_to_a_step_the_run_has_passed_is_a_usage_error(vae_run, capsys):
    before = (vae_run / "run.json").read_text()
    with pytest.raises(UsageError, match=r"already at step 6 .*give --steps above 6"):
        genlab.train("vae", "", vae_run, steps=6, resume=True, quiet=True)
    with pytest.raises(UsageError, match="already at step 6"):
        genlab.train("vae", "", vae_run, steps=3, resume=True)  # not quiet: still no bar
    assert capsys.readouterr().err == ""
    assert (vae_run / "run.json").read_text() == before  # its configuration is untouched


def test_resume_without_new_steps_on_the_command_line_is_one_line(vae_run):
    r = run_cli("train", "vae", "--out", str(vae_run), "--resume", "--steps", "4")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "genlab train: error: the run is already at step 6 (asked for 4); give --steps above 6 "
        "to train further"
    ]
    assert r.stdout == ""


def test_the_end_of_training_preview_has_the_size_asked_for(tmp_path, monkeypatch):
    """train.preview_samples sets how many images the final grid samples; 0 writes none."""
    from genlab.models.vae import VAE

    asked = []
    real = VAE.sample
    monkeypatch.setattr(VAE, "sample", lambda self, n, **kw: asked.append(n) or real(self, n, **kw))
    for n in (4, 0):
        out = genlab.train(
            "vae", "digits", tmp_path / f"p{n}", steps=2, quiet=True,
            overrides=[*tiny_overrides("vae"), f"train.preview_samples={n}"],
        )  # fmt: skip
        grids = list((Path(out) / "samples").glob("step-*.png"))
        assert len(grids) == (1 if n else 0)
    assert asked == [4]
    with pytest.raises(UsageError, match="train.preview_samples must be 0 or more"):
        apply_overrides(default_config("vae"), ["train.preview_samples=-1"])
