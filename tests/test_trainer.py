"""The training loop and what it writes: failures, early stopping, atomic checkpoints, the
learning-rate schedule, optimizers, metrics.jsonl, resume guards, EMA, seeds and epochs.

Every run is a tiny seeded mlp on the built-in 8x8 digits (conftest.tiny_overrides)."""

from __future__ import annotations

import errno
import json
import math
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genlab
import genlab.io.checkpoint
from conftest import tiny_overrides
from genlab.config import apply_overrides
from genlab.data import load_dataset
from genlab.errors import RunError, UsageError
from genlab.models.mlp import MLP
from genlab.run import build_model
from genlab.runconfig import TrainConfig, default_config
from genlab.training import loop as train_loop
from genlab.training.ema import ema_decay_at
from genlab.training.loop import Trainer
from genlab.training.optim import build_optimizer, lr_at


def train(run: Path, steps: int | None, *extra: str, **kw) -> Path:
    """A tiny mlp run on digits; `extra` settings are applied after the tiny ones."""
    return genlab.train(
        "mlp", "digits", run, steps=steps, overrides=tiny_overrides("mlp", *extra), quiet=True, **kw
    )


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def linked(run: Path, which: str = "latest") -> str:
    """The checkpoint folder a link of the run points at."""
    return os.readlink(run / "checkpoints" / which)


def weights(run: Path, which: str = "latest", name: str = "model.safetensors") -> dict:
    return load_file(str(run / "checkpoints" / which / name))


def model_bytes(run: Path) -> bytes:
    return (run / "checkpoints" / "latest" / "model.safetensors").read_bytes()


def snapshot(run: Path) -> dict[str, bytes | str]:
    """Every file's bytes and every link's target in a run directory."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(run):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            key = p.relative_to(run).as_posix()
            if p.is_symlink():
                out[key] = os.readlink(p)
            elif p.is_file():
                out[key] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


# 1. non-finite loss ------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(bad, tmp_path, monkeypatch):
    real_loss = MLP.loss
    calls = []

    def loss_breaks_from_5th_call(self, batch):
        out = real_loss(self, batch)
        calls.append(self.training)
        if len(calls) >= 5:
            out["loss"] = out["loss"] * bad  # the loss is positive: nan or +inf
        return out

    monkeypatch.setattr(MLP, "loss", loss_breaks_from_5th_call)
    run = tmp_path / "run"
    with pytest.raises(RunError) as err:  # no evaluation before step 8: calls are train steps
        train(run, 8, "train.checkpoint_every=2", "train.eval_every=100")
    monkeypatch.undo()

    msg = str(err.value)
    assert "\n" not in msg
    assert f"loss became {bad} at step 5:" in msg
    assert "the last good checkpoint (step-0000004) is kept" in msg
    assert calls == [True] * 5
    assert sorted(os.listdir(run / "checkpoints")) == ["latest", "step-0000002", "step-0000004"]
    assert linked(run) == "step-0000004"
    assert [r["step"] for r in rows(run)] == [1, 2, 3, 4]
    model = genlab.load(run, which="latest")
    assert model.checkpoint == "step-0000004"
    assert all(torch.isfinite(t).all() for t in model.state_dict().values())


# 2. early stopping -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("val_losses", "stop_step", "best_step"),
    [([1.0, 1.1, 1.2, 1.3, 1.4], 3, 1), ([1.0, 1.2, 0.8, 0.9, 0.95, 1.0, 1.1], 5, 3)],
    ids=["rising-after-first", "improvement-resets-patience"],
)
def test_early_stopping_after_patience_evaluations_without_improvement(
    val_losses, stop_step, best_step, tmp_path, monkeypatch
):
    losses = iter(val_losses)
    monkeypatch.setattr(Trainer, "evaluate", lambda self: {"loss": next(losses)})
    run = train(tmp_path / "run", 10, "train.patience=2", "train.eval_every=1")

    records = rows(run)
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == list(range(1, stop_step + 1))
    assert [r["loss"] for r in val] == val_losses[:stop_step]
    assert [r["early_stop"] for r in val] == [False] * (stop_step - 1) + [True]
    assert records[-1] == val[-1]  # nothing trained after the stop
    assert max(r["step"] for r in records) == stop_step
    assert linked(run, "best") == f"step-{best_step:07d}"
    assert linked(run, "latest") == f"step-{stop_step:07d}"
    assert genlab.load(run).checkpoint == f"step-{best_step:07d}"


# 3. atomic checkpoints ---------------------------------------------------------------------
def test_a_checkpoint_write_that_fails_midway_leaves_the_previous_one(tmp_path, monkeypatch):
    real_write = genlab.io.checkpoint.write_bytes_atomic
    written = []

    def disk_full_on_second_save(filename, content):
        if Path(filename).name != "model.safetensors":
            return real_write(filename, content)
        written.append(filename)
        if len(written) == 2:  # write only the first half of the file, as a full disk would
            Path(filename).write_bytes(content[: len(content) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        return real_write(filename, content)

    settings = ("train.checkpoint_every=2", "train.eval_every=100")
    monkeypatch.setattr(genlab.io.checkpoint, "write_bytes_atomic", disk_full_on_second_save)
    run = tmp_path / "run"
    with pytest.raises(RunError, match="No space left on device.*previous checkpoint is kept"):
        train(run, 6, *settings)  # saves at step 2, then fails while saving step 4
    monkeypatch.undo()

    assert linked(run) == "step-0000002"
    leftovers = [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".step-")]
    assert [p.name[: len(".step-0000004.")] for p in leftovers] == [".step-0000004."]
    assert Path(written[1]).parent == leftovers[0]  # the half-written file is in the temp folder
    assert genlab.load(run, which="latest").checkpoint == "step-0000002"
    assert weights(run).keys() == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}

    # the next successful save (resuming from step 2) removes the leftover; the resumed run ends
    # bit-identical to an uninterrupted one, so the kept checkpoint was complete
    train(run, 6, *settings, resume=True)
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert linked(run) == "step-0000006"
    assert model_bytes(run) == model_bytes(train(tmp_path / "uninterrupted", 6, *settings))


# 4. learning-rate schedule -----------------------------------------------------------------
def test_warmup_rises_linearly_from_lr_over_warmup_to_lr():
    cfg = TrainConfig(lr=0.01, warmup_steps=4)
    assert [lr_at(s, cfg, 100) for s in range(5)] == pytest.approx(
        [0.0025, 0.005, 0.0075, 0.01, 0.01]
    )


def test_cosine_decays_from_lr_to_lr_times_min_lr_ratio_at_the_last_step():
    cfg = TrainConfig(lr=0.01, warmup_steps=2, schedule="cosine", min_lr_ratio=0.1)
    total = 11  # steps 0..10: warm-up 0..1, cosine over steps 2..10 (8 intervals)
    lrs = [lr_at(s, cfg, total) for s in range(total)]
    c = math.cos(math.pi / 4)
    assert lrs[2:] == pytest.approx(
        [
            0.01,  # start: the peak
            0.001 + 0.009 * (1 + math.cos(math.pi / 8)) / 2,
            0.001 + 0.009 * (1 + c) / 2,  # a quarter
            0.001 + 0.009 * (1 + math.cos(3 * math.pi / 8)) / 2,
            0.0055,  # halfway: the mean of peak and floor
            0.001 + 0.009 * (1 - math.cos(3 * math.pi / 8)) / 2,
            0.001 + 0.009 * (1 - c) / 2,
            0.001 + 0.009 * (1 - math.cos(math.pi / 8)) / 2,
            0.001,  # the last step: lr * min_lr_ratio
        ]
    )
    assert lr_at(total + 5, cfg, total) == pytest.approx(0.001)  # never below the floor


def test_constant_schedule_stays_at_lr_after_warmup():
    cfg = TrainConfig(lr=0.01, warmup_steps=2, schedule="constant")
    assert [lr_at(s, cfg, 50) for s in range(50)] == pytest.approx([0.005] + [0.01] * 49)
    no_warmup = TrainConfig(lr=0.01, schedule="constant")
    assert {lr_at(s, no_warmup, 50) for s in range(50)} == {0.01}


# 5. optimizers -----------------------------------------------------------------------------
def tiny_mlp(digits):
    cfg = apply_overrides(default_config("mlp"), tiny_overrides("mlp"))
    torch.manual_seed(0)
    return build_model("mlp", cfg.model, digits.info)


def test_weight_decay_only_on_parameters_with_two_or_more_dims(digits):
    model = tiny_mlp(digits)
    model.net[2].bias.requires_grad_(False)  # frozen: in no group
    opt = build_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.05))
    groups = {g["weight_decay"]: [id(p) for p in g["params"]] for g in opt.param_groups}
    named = dict(model.named_parameters())
    assert groups == {
        0.05: [id(named["net.0.weight"]), id(named["net.2.weight"])],  # (32, 64) and (10, 32)
        0.0: [id(named["net.0.bias"])],
    }


def test_sgd_has_momentum_and_adam_betas_come_from_the_config(digits):
    model = tiny_mlp(digits)
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, momentum=0.7))
    assert type(sgd) is torch.optim.SGD
    assert [(g["lr"], g["momentum"]) for g in sgd.param_groups] == [(0.1, 0.7), (0.1, 0.7)]
    default = build_optimizer(model, TrainConfig(optimizer="sgd"))
    assert [g["momentum"] for g in default.param_groups] == [0.9, 0.9]
    for name, cls in [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)]:
        opt = build_optimizer(model, TrainConfig(optimizer=name, lr=0.02, betas=[0.8, 0.95]))
        assert type(opt) is cls
        assert [(g["lr"], g["betas"]) for g in opt.param_groups] == [(0.02, (0.8, 0.95))] * 2


# 6. metrics.jsonl --------------------------------------------------------------------------
def test_metrics_jsonl_has_train_lines_every_log_every_and_val_lines_at_eval_every(tmp_path):
    extra = ("train.log_every=2", "train.eval_every=3", "train.warmup_steps=3")
    run = train(tmp_path / "run", 7, *extra)
    records = rows(run)
    assert [(r["step"], r["split"]) for r in records] == [
        (2, "train"),
        (3, "val"),
        (4, "train"),
        (6, "train"),
        (6, "val"),
        (7, "train"),  # the last step is always logged and evaluated
        (7, "val"),
    ]
    for split in ("train", "val"):
        steps = [r["step"] for r in records if r["split"] == split]
        assert steps == sorted(set(steps))  # strictly increasing

    cfg = apply_overrides(default_config("mlp"), tiny_overrides("mlp", *extra)).train
    windows = [(0, 1), (2, 3), (4, 5), (6,)]  # 0-based optimizer steps behind each train line
    for r, window in zip([r for r in records if r["split"] == "train"], windows, strict=True):
        assert set(r) == {"step", "split", "loss", "accuracy", "lr", "examples_per_s", "elapsed_s"}
        assert 0 < r["loss"] < 10 and 0 <= r["accuracy"] <= 1
        lrs = [lr_at(s, cfg, 7) for s in window]
        assert min(lrs) - 1e-12 <= r["lr"] <= max(lrs) + 1e-12
        assert r["examples_per_s"] > 0
    assert records[-2]["lr"] == pytest.approx(cfg.lr * cfg.min_lr_ratio)  # step 7 alone
    elapsed = [r["elapsed_s"] for r in records]  # training seconds so far, never going back
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0
    for r in records:
        if r["split"] == "val":
            assert set(r) == {"step", "split", "loss", "accuracy", "early_stop", "elapsed_s"}
            assert 0 < r["loss"] < 10 and r["early_stop"] is False


# 7. resume guards --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("guards") / "run", 3)


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_resume_needs_an_existing_run(where, tmp_path):
    out = tmp_path / "nothing-here" if where == "missing" else tmp_path
    with pytest.raises(UsageError, match=re.escape(str(out))):  # the message names the folder
        train(out, 6, resume=True)
    assert os.listdir(tmp_path) == []  # nothing was created


def test_a_new_run_refuses_a_directory_that_holds_one_and_leaves_it_untouched(finished_run):
    before, latest = snapshot(finished_run), model_bytes(finished_run)
    with pytest.raises(UsageError, match="already holds a run; add --resume"):
        train(finished_run, 6)
    assert model_bytes(finished_run) == latest
    assert snapshot(finished_run) == before


@pytest.mark.parametrize(
    ("setting", "message"),
    [("model.hidden=[16]", "cannot change model"), ("data.seed=1", "cannot change data")],
)
def test_resume_refuses_changed_model_or_data_settings(setting, message, finished_run):
    before = snapshot(finished_run)
    with pytest.raises(UsageError, match=message):
        train(finished_run, 6, setting, resume=True)
    assert snapshot(finished_run) == before


# 8. EMA ------------------------------------------------------------------------------------
def test_ema_weights_are_the_moving_average_and_load_picks_them(tmp_path):
    extra = ("train.ema_decay=0.9", "train.schedule=constant")
    one, two = train(tmp_path / "one", 1, *extra), train(tmp_path / "two", 2, *extra)
    w1, e1 = weights(one), weights(one, name="ema.safetensors")
    w2, e2 = weights(two), weights(two, name="ema.safetensors")
    for k in w1:
        assert torch.equal(e1[k], w1[k])  # the first update copies the weights
        d = ema_decay_at(0.9, 1)  # the warm-up: min(0.9, 2 / 11) after one averaged step
        assert torch.allclose(e2[k], d * w1[k] + (1 - d) * w2[k], atol=1e-7), k

    with_ema = genlab.load(two, which="latest", ema=True).state_dict()
    raw = genlab.load(two, which="latest", ema=False).state_dict()
    assert all(torch.equal(with_ema[k], e2[k]) and torch.equal(raw[k], w2[k]) for k in w2)
    assert any(not torch.equal(with_ema[k], raw[k]) for k in w2)


def test_no_ema_file_without_ema(tmp_path):
    run = train(tmp_path / "run", 2, "train.ema_decay=0")
    assert sorted(os.listdir(run / "checkpoints" / "latest")) == [
        "checkpoint.json",
        "model.safetensors",
        "optimizer.pt",
        "trainer.json",
    ]
    with_ema = genlab.load(run, which="latest", ema=True).state_dict()
    raw = genlab.load(run, which="latest", ema=False).state_dict()
    assert all(torch.equal(with_ema[k], raw[k]) for k in raw)


# 9. determinism ----------------------------------------------------------------------------
def test_same_seed_gives_identical_bits_and_another_seed_other_weights(tmp_path):
    dropout = "model.dropout=0.2"  # random draws in every step, not only at initialization
    a = train(tmp_path / "a", 4, dropout, seed=3)
    b = train(tmp_path / "b", 4, dropout, seed=3)
    c = train(tmp_path / "c", 4, dropout, seed=4)
    assert model_bytes(a) == model_bytes(b)

    def curve(run):
        return [(r["step"], r["split"], r["loss"]) for r in rows(run)]

    assert curve(a) == curve(b)
    wa, wc = weights(a), weights(c)
    assert all(not torch.equal(wa[k], wc[k]) for k in wa)


def test_past_permute_max_examples_each_step_draws_its_batch_from_its_own_seed(
    digits, tmp_path, monkeypatch
):
    """A corpus larger than memory has too many windows to permute: batches are then drawn
    at random per step, as reproducible (and resumable) as the permutation."""
    monkeypatch.setattr(train_loop, "PERMUTE_MAX", 100)
    cfg = apply_overrides(default_config("mlp"), tiny_overrides("mlp"))

    def draws(run: str) -> list[torch.Tensor]:
        model = build_model("mlp", cfg.model, digits.info)
        trainer = Trainer(model, digits, cfg.train, tmp_path / run, total_steps=9, quiet=True)
        out = [trainer.batch_indices(step) for step in (0, 1, 5, 1)]
        assert trainer._perm.numel() == 0  # no permutation was built
        return out

    a, b = draws("a"), draws("b")
    n = len(digits.splits["train"])
    assert all(len(x) == 32 and x.min() >= 0 and x.max() < n for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # a function of the step
    assert torch.equal(a[1], a[3]) and not torch.equal(a[0], a[1])


# 10. epochs --------------------------------------------------------------------------------
def test_one_epoch_is_one_pass_of_full_batches(tmp_path):
    n_train = len(load_dataset("digits").splits["train"])
    assert n_train % 32 != 0  # so that a partial last batch exists (and is dropped)
    quiet = ("train.log_every=1000", "train.eval_every=1000", "train.checkpoint_every=1000")
    run = train(tmp_path / "run", None, *quiet, epochs=1.5)
    expected = math.ceil(1.5 * (n_train // 32))
    assert [(r["step"], r["split"]) for r in rows(run)] == [
        (expected, "train"),
        (expected, "val"),
    ]
    assert linked(run) == f"step-{expected:07d}"


def test_an_empty_validation_split_is_refused_before_training(tmp_path):
    with pytest.raises(UsageError, match="validation split is empty"):
        train(tmp_path / "run", 3, "data.val_fraction=0")
    assert not (tmp_path / "run" / "checkpoints").exists()


# 11. mixed precision ----------------------------------------------------------------------
def test_bf16_runs_matrix_products_in_bfloat16_keeps_float32_weights_and_learns(digits, tmp_path):
    losses, seen = {}, []
    for bf16 in (True, False):
        extra = (f"train.bf16={bf16}", "train.lr=0.01")
        cfg = apply_overrides(default_config("mlp"), tiny_overrides("mlp", *extra))
        torch.manual_seed(0)
        model = build_model("mlp", cfg.model, digits.info)
        hook = model.net[0].register_forward_hook(lambda m, inputs, out: seen.append(out.dtype))
        trainer = Trainer(
            model, digits, cfg.train, tmp_path / f"{bf16}", total_steps=80, quiet=True
        )
        losses[bf16] = [trainer.train_step(step)["loss"] for step in range(80)]
        hook.remove()
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert seen[0] == torch.bfloat16 and seen[-1] == torch.float32  # autocast on this CPU too
    first, last = sum(losses[True][:10]), sum(losses[True][-10:])
    assert last < 0.5 * first
    assert abs(last - sum(losses[False][-10:])) < 0.1 * last  # and learns as float32 does


# 12. the selection metric -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "accuracies", "best_step", "stop_step"),
    [("max", [0.5, 0.7, 0.6, 0.65], 2, 4), ("min", [0.5, 0.7, 0.4, 0.45, 0.6], 3, 5)],
)
def test_the_family_selection_picks_the_best_checkpoint_and_stops_early(
    mode, accuracies, best_step, stop_step, tmp_path, monkeypatch, capsys
):
    from genlab.cli.train import print_summary as _print_summary
    from genlab.models.base import Selection

    figures = iter(accuracies)
    monkeypatch.setattr(MLP, "selection", Selection("accuracy", mode))
    monkeypatch.setattr(Trainer, "evaluate", lambda self: {"loss": 1.0, "accuracy": next(figures)})
    run = train(tmp_path / "run", 10, "train.patience=2", "train.eval_every=1")
    assert [r["accuracy"] for r in rows(run) if r["split"] == "val"] == accuracies[:stop_step]
    assert linked(run, "best") == f"step-{best_step:07d}"
    assert linked(run, "latest") == f"step-{stop_step:07d}"
    state = json.loads((run / "checkpoints" / "latest" / "trainer.json").read_text())
    best = accuracies[best_step - 1]
    assert (state["best_key"], state["best_mode"], state["best_val"]) == ("accuracy", mode, best)
    assert state["last_val"] == accuracies[stop_step - 1]
    capsys.readouterr()
    _print_summary(run)  # what `genlab train` prints at the end
    out = capsys.readouterr().out
    assert (
        f"step {stop_step}, validation accuracy {accuracies[stop_step - 1]:.4f} "
        f"(best {best:.4f} at step {best_step}, {mode}imum)" in out
    )
    assert f"next: genlab predict {run} --data FILE_OR_FOLDER   |   genlab eval {run}" in out
    assert "genlab sample" not in out  # mlp: no samples


def test_selection_last_keeps_the_latest_as_best_and_never_stops_early(
    tmp_path, monkeypatch, capsys
):
    from genlab.cli.train import print_summary as _print_summary
    from genlab.models.base import Selection

    monkeypatch.setattr(MLP, "selection", Selection(mode="last"))
    losses = iter([1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(Trainer, "evaluate", lambda self: {"loss": next(losses)})
    run = train(tmp_path / "run", 4, "train.patience=1", "train.eval_every=1")
    assert not any(r.get("early_stop") for r in rows(run))  # rising loss, patience 1: no stop
    assert linked(run, "best") == linked(run, "latest") == "step-0000004"
    capsys.readouterr()
    _print_summary(run)
    out = capsys.readouterr().out
    assert "validation loss 4.0000 (no figure ranks its checkpoints" in out and "best" in out


def test_a_selection_key_the_evaluation_lacks_is_a_one_line_error(tmp_path, monkeypatch):
    from genlab.models.base import Selection

    monkeypatch.setattr(MLP, "selection", Selection("fid", "min"))
    with pytest.raises(RunError, match="ranks checkpoints by 'fid', which its evaluation"):
        train(tmp_path / "run", 2, "train.eval_every=1")


# 13. resume after a kill --------------------------------------------------------------------
def train_rows(run: Path) -> list[tuple]:
    return [(r["step"], r["split"], r["loss"]) for r in rows(run)]


def test_resume_drops_a_torn_last_metrics_line_with_a_warning(tmp_path, capsys, monkeypatch):
    import signal

    settings = ("train.checkpoint_every=2", "train.eval_every=3")
    full = train(tmp_path / "full", 6, *settings)
    step_once = Trainer.train_step

    def ctrl_c_in_step_4(self, step):
        out = step_once(self, step)
        if step == 3:
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(Trainer, "train_step", ctrl_c_in_step_4)
    part = tmp_path / "part"
    with pytest.raises(train_loop.Interrupted):
        train(part, 6, *settings)
    monkeypatch.undo()
    # then killed while writing the line of step 5: the file ends mid-line
    line5 = (full / "metrics.jsonl").read_text().splitlines()[5]
    assert json.loads(line5)["step"] == 5
    with open(part / "metrics.jsonl", "a") as f:
        f.write(line5[: len(line5) // 2])
    capsys.readouterr()
    train(part, 6, *settings, resume=True)
    err = capsys.readouterr().err
    assert err.count("dropped the torn last line") == 1 and "metrics.jsonl" in err
    assert train_rows(part) == train_rows(full)

    # a file cut in the middle of its real last line: that line is dropped, the rest is kept
    data = (part / "metrics.jsonl").read_bytes()
    (part / "metrics.jsonl").write_bytes(data[: len(data) - 20])
    train(part, 7, *settings, resume=True)  # resuming needs steps to train
    assert "dropped the torn last line" in capsys.readouterr().err
    kept = len(train_rows(full)) - 1
    assert train_rows(part)[:kept] == train_rows(full)[:-1]


def test_a_damaged_line_before_the_last_is_an_error(tmp_path):
    run = train(tmp_path / "run", 4, "train.checkpoint_every=2")
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[1] = lines[1][:10]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunError, match="metrics.jsonl line 2 is damaged"):
        train(run, 6, resume=True)


def test_a_checkpoint_of_the_single_optimizer_format_resumes(tmp_path):
    """Checkpoints written before optimizers were named hold {"optimizer": state}."""
    settings = ("train.checkpoint_every=2", "train.eval_every=100", "train.warmup_steps=2")
    full = train(tmp_path / "full", 4, *settings)
    part = train(tmp_path / "part", 2, *settings)
    path = part / "checkpoints" / "latest" / "optimizer.pt"
    saved = torch.load(path, weights_only=True)
    assert set(saved["optimizers"]) == {"model"}  # the default step's optimizer, by name
    torch.save({"optimizer": saved["optimizers"]["model"]}, path)
    (path.parent / "checkpoint.json").unlink()  # such checkpoints were written before it, too
    assert set(genlab.io.checkpoint.load_optimizer_state(path)) == {"model"}
    train(part, 4, *settings, resume=True)
    assert model_bytes(part) == model_bytes(full)


# 14. bf16 resolved at run time ------------------------------------------------------------
def test_bf16_auto_is_resolved_on_the_device_when_training_starts(digits, tmp_path):
    from genlab.hardware import native_bf16

    cfg = apply_overrides(default_config("mlp"), tiny_overrides("mlp", "train.bf16=auto")).train
    assert cfg.bf16 == "auto"  # the setting stays "auto" in run.json
    model = build_model("mlp", default_config("mlp").model, digits.info)
    trainer = Trainer(model, digits, cfg, tmp_path, total_steps=2, quiet=True)
    assert trainer.bf16 is native_bf16(torch.device("cpu"))
    assert trainer.helper.bf16 is trainer.bf16
    assert TrainConfig().bf16 is False  # the default does not change a family's numbers
    with pytest.raises(UsageError, match="train.bf16"):
        apply_overrides(default_config("mlp"), ["train.bf16=sometimes"])
