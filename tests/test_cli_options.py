"""Options owned by families: flags built from their dataclasses, strict checks, modes refused
by the families that cannot do them, and --device on every verb.

Most checks need only the run's family, which the command line reads from the run manifest before
it loads anything: they run on a folder holding just `{"family": ...}` and take milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import genlab
from conftest import FIXTURES, TINY, TINY_DATA, tiny_overrides
from genlab.cli import main
from genlab.cli.evaluation import parser_for as eval_parser
from genlab.cli.parser import flags_of, options_from
from genlab.cli.sample import MODES, modes_of, trigger
from genlab.cli.sample import parser_for as sample_parser
from genlab.data import BUILTINS
from genlab.models.base import Completes, Inpaints, LatentSpace, Predictor, Reconstructs, Streams
from genlab.registry import FAMILIES

CLASSES = {name: cls for name, (cls, _) in FAMILIES.items()}
GENERATIVE = [name for name, cls in CLASSES.items() if cls.generates()]
MODE_VALUE = {"interpolate": "3", "reconstruct": None, "complete": "x.png", "inpaint": "x.png"}


def fake_run(tmp_path: Path, family: str) -> Path:
    """A folder that names its family and nothing else: enough for option parsing."""
    run = tmp_path / family
    run.mkdir(exist_ok=True)
    (run / "config.json").write_text(json.dumps({"family": family}))
    return run


def error_line(capsys, status: int, *args: str) -> str:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert rc == status, (rc, out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"genlab {args[0]}: error: "), lines[0]
    return lines[0]


def option_flags(parser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


# flags from dataclasses ------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(CLASSES))
def test_a_familys_flags_are_its_dataclass_fields_with_their_docstrings(family):
    cls = CLASSES[family]
    for options, parser in (
        (cls.SampleOptions, sample_parser(cls)),
        (cls.EvalOptions, eval_parser(cls)),
    ):
        flags = flags_of(options)
        assert [fl.name for fl in flags] == [f.name for f in dataclasses.fields(options)]
        for fl, f in zip(flags, dataclasses.fields(options), strict=True):
            assert fl.flag in option_flags(parser), (family, fl.flag)
            assert fl.help, f"{family}: field {fl.name} of {options.__name__} has no docstring"
            assert fl.flag == f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def test_flag_spellings_and_the_steps_alias():
    lm = {fl.name: fl for fl in flags_of(CLASSES["gpt"].SampleOptions)}
    assert lm["top_k"].flag == "--top-k" and lm["max_new_tokens"].flag == "--max-new-tokens"
    ddpm = {fl.name: fl for fl in flags_of(CLASSES["ddpm"].SampleOptions)}
    assert ddpm["class_label"].flag == "--class"
    assert ddpm["sample_steps"].spellings == ("--sample-steps", "--steps")
    assert ddpm["sampler"].metavar == "{ddpm,ddim}"
    parser = sample_parser(CLASSES["ddpm"])
    for words in (["--steps", "7"], ["--sample-steps", "7"]):
        a, extras = parser.parse_known_args(["RUN", *words])
        assert not extras
        assert options_from(a, CLASSES["ddpm"].SampleOptions).sample_steps == 7
    # --rows belongs to the family that completes images, --steps to the one that diffuses
    for name, cls in CLASSES.items():
        assert ("--rows" in option_flags(sample_parser(cls))) == (name == "pixelcnn")
        assert ("--steps" in option_flags(sample_parser(cls))) == (name == "ddpm")


def test_values_are_checked_by_the_strict_config_code(capsys, tmp_path):
    vae, ddpm = fake_run(tmp_path, "vae"), fake_run(tmp_path, "ddpm")
    line = error_line(capsys, 2, "sample", vae, "--temperature", "warm")
    assert "--temperature expects a number; got 'warm'" in line
    line = error_line(capsys, 2, "sample", vae, "--temperature", "0")
    assert "--temperature must be positive" in line
    line = error_line(capsys, 2, "sample", ddpm, "--sampler", "euler")
    assert "--sampler must be one of ddpm, ddim; got 'euler'" in line
    line = error_line(capsys, 2, "sample", ddpm, "--sample-steps", "1.5")
    assert "--sample-steps expects an integer" in line
    line = error_line(capsys, 2, "eval", vae, "--iw-samples", "many")
    assert "--iw-samples expects an integer" in line
    line = error_line(capsys, 2, "eval", ddpm, "--bound-timesteps", "-1")
    assert "--bound-timesteps must be 0 (all) or more" in line


def test_an_unknown_option_gets_a_did_you_mean(capsys, tmp_path):
    line = error_line(capsys, 2, "sample", fake_run(tmp_path, "vae"), "--temprature", "2")
    assert "unknown option --temprature for 'vae' sampling; did you mean --temperature?" in line
    line = error_line(capsys, 2, "sample", fake_run(tmp_path, "gpt"), "--max-tokens", "9")
    assert "unknown option --max-tokens for 'gpt' sampling; did you mean --max-new-tokens?" in line
    line = error_line(capsys, 2, "eval", fake_run(tmp_path, "vae"), "--iw-sample", "9")
    assert "did you mean --iw-samples?" in line
    line = error_line(capsys, 2, "sample", fake_run(tmp_path, "vae"), "--temp", "2")
    assert "did you mean --temperature?" in line  # no silent abbreviations


@pytest.mark.parametrize("family", list(CLASSES))
def test_every_family_refuses_the_options_and_modes_it_does_not_have(capsys, tmp_path, family):
    cls, run = CLASSES[family], fake_run(tmp_path, family)
    own = option_flags(sample_parser(cls))
    others = {
        s
        for other in CLASSES.values()
        for opts in (other.SampleOptions, *(m.options for m in modes_of(other)))
        for fl in flags_of(opts)
        for s in fl.spellings
    }
    for flag in sorted(others - own):
        switch = flag == "--reconstruct"
        line = error_line(capsys, 2, "sample", run, flag, *([] if switch else ["1"]))
        assert f"'{family}' sampling does not take {flag}" in line
    for mode in MODES:  # a mode is offered exactly when the family has the capability
        assert (mode in modes_of(cls)) == issubclass(cls, mode.capability)
        assert (trigger(mode) in own) == issubclass(cls, mode.capability)


def test_language_models_refuse_interpolate_and_reconstruct(capsys, tmp_path):
    run = fake_run(tmp_path, "gpt")
    line = error_line(capsys, 2, "sample", run, "--interpolate", "5")
    assert "'gpt' sampling does not take --interpolate" in line and "vae" in line
    line = error_line(capsys, 2, "sample", run, "--reconstruct")
    assert "'gpt' sampling does not take --reconstruct" in line


def test_modes_go_one_at_a_time_with_their_own_flags(capsys, tmp_path):
    vae, ddpm = fake_run(tmp_path, "vae"), fake_run(tmp_path, "ddpm")
    line = error_line(capsys, 2, "sample", vae, "--interpolate", "3", "--reconstruct")
    assert "give one of --interpolate, --reconstruct" in line
    assert "--data only goes with --reconstruct" in error_line(
        capsys, 2, "sample", vae, "--data", "digits"
    )
    line = error_line(capsys, 2, "sample", vae, "--interpolate", "3", "--temperature", "2")
    assert "--temperature does not apply to --interpolate" in line
    assert "--mask" in error_line(capsys, 2, "sample", ddpm, "--inpaint", "x.png")


def test_capabilities_are_protocols_not_names():
    assert not isinstance(object(), LatentSpace)
    for name, cls in CLASSES.items():
        assert issubclass(cls, Predictor) == cls.discriminative, name  # ddpm's is `denoise`
    assert {n for n, c in CLASSES.items() if issubclass(c, Streams)} == {"gpt", "rnn"}
    assert {n for n, c in CLASSES.items() if issubclass(c, Completes)} == {"pixelcnn"}
    assert {n for n, c in CLASSES.items() if issubclass(c, Inpaints)} == {"ddpm"}
    assert {n for n, c in CLASSES.items() if issubclass(c, Reconstructs)} == {"vae", "ddpm"}
    assert {n for n, c in CLASSES.items() if issubclass(c, LatentSpace)} == {"vae", "ddpm", "gan"}


# help and list -------------------------------------------------------------------------------
def test_sample_help_without_a_run_points_to_the_runs_help(capsys):
    assert main(["sample", "--help"]) == 0
    out = capsys.readouterr().out
    assert "genlab sample RUN --help" in out and "examples:" in out
    assert "--temperature" not in out.split("examples:")[0]  # no family's options
    assert main(["eval", "-h"]) == 0
    assert "genlab eval RUN --help" in capsys.readouterr().out


def test_sample_help_of_a_run_lists_its_familys_options(capsys, tmp_path):
    assert main(["sample", str(fake_run(tmp_path, "vae")), "--help"]) == 0
    out = capsys.readouterr().out.split("examples:")[0]
    assert "'vae' sampling options" in out and "--temperature" in out
    assert "--interpolate" in out and "--reconstruct" in out
    assert "--class" not in out and "--prompt" not in out and "--rows" not in out
    assert main(["eval", str(fake_run(tmp_path, "ddpm")), "--help"]) == 0
    out = capsys.readouterr().out.split("examples:")[0]
    assert "--bound-timesteps" in out and "--iw-samples" not in out


def test_list_shows_each_familys_sample_and_eval_options(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in GENERATIVE:
        cls = CLASSES[name]
        at = next(i for i, x in enumerate(lines) if x.split()[:1] == [name])
        block = "\n".join(lines[at + 1 : at + 4])
        for fl in flags_of(cls.SampleOptions) + flags_of(cls.EvalOptions):
            assert fl.flag in block, (name, fl.flag)
        for mode in modes_of(cls):
            assert trigger(mode) in block, (name, trigger(mode))


# --device on every verb ----------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["sample", "eval"])
def test_a_device_that_is_not_there_is_a_one_line_error(capsys, tmp_path, monkeypatch, verb):
    run = fake_run(tmp_path, "vae")
    line = error_line(capsys, 2, verb, run, "--device", "tpu")
    assert "unknown device 'tpu'" in line and "auto" in line
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only PyTorch
    line = error_line(capsys, 2, verb, run, "--device", "cuda")
    assert "--device cuda asked for a GPU but PyTorch sees none" in line


def test_train_and_bench_check_the_device_before_any_work(capsys, tmp_path):
    line = error_line(
        capsys, 2, "train", "vae", "--data", "digits", "--out", tmp_path / "R", "--device", "tpu"
    )
    assert "unknown device 'tpu'" in line
    assert not (tmp_path / "R").exists()
    line = error_line(
        capsys, 2, "bench", "--data", "digits", "--out", tmp_path / "B", "--device", "npu"
    )
    assert "unknown device 'npu'" in line
    assert not (tmp_path / "B").exists()


# real runs: --device auto, --sample-steps and its alias ---------------------------------------
@pytest.fixture(scope="module")
def ddpm_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ddpm") / "run"
    return genlab.train(
        "ddpm", "digits", run, overrides=tiny_overrides("ddpm"), steps=2, quiet=True
    )


def test_sample_with_device_auto_and_the_steps_alias(ddpm_run, tmp_path, capsys, monkeypatch):
    from genlab.models.ddpm import DDPM

    asked, sample_fn = [], DDPM.sample

    def spy(self, n, **kw):
        asked.append(kw["sample_steps"])
        return sample_fn(self, n, **kw)

    monkeypatch.setattr(DDPM, "sample", spy)

    def sample(name: str, *words: str) -> np.ndarray:
        out = tmp_path / f"{name}.npy"
        rc = main(["sample", str(ddpm_run), "-n", "2", "--seed", "3", "--out", str(out), *words])
        assert rc == 0, capsys.readouterr().err
        return np.load(out)

    auto = sample("auto", "--device", "auto", "--sample-steps", "3")
    cpu = sample("cpu", "--device", "cpu", "--sample-steps", "3")
    alias = sample("alias", "--device", "cpu", "--steps", "3")
    default = sample("default", "--device", "cpu")  # model.sample_steps=5
    assert auto.shape == (2, 1, 8, 8)
    if not torch.cuda.is_available():
        assert np.array_equal(auto, cpu)
    assert np.array_equal(alias, cpu) and default.shape == cpu.shape
    assert asked == [3, 3, 3, None]  # None: the run's model.sample_steps
    line = error_line(capsys, 2, "sample", ddpm_run, "--sample-steps", "0")
    assert "--sample-steps must be between 1 and the model's 100 timesteps" in line


# the families' own tiny configurations ------------------------------------------------------
def test_every_family_declares_its_tiny_test_configuration():
    for name, cls in CLASSES.items():
        assert cls.tiny, f"{name} declares no tiny configuration"
        assert TINY[name] == list(cls.tiny)
        assert cls.tiny_data in FIXTURES or cls.tiny_data in BUILTINS, name
        assert TINY_DATA.get(name, "digits") == FIXTURES.get(cls.tiny_data, cls.tiny_data)
