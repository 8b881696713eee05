"""The GAN family: its own train_step inside the generic loop, losses, conditioning, health
warnings, EMA sampling and the command line."""

from __future__ import annotations

import inspect
import json
import math

import pytest
import torch

import genlab
from conftest import FEATURE_STEPS, run_cli, tiny_overrides
from genlab.config import apply_overrides
from genlab.data import load_dataset
from genlab.errors import UsageError
from genlab.io.checkpoint import load_optimizer_state
from genlab.registry import FAMILIES
from genlab.run import build_model
from genlab.runconfig import TrainConfig, default_config
from genlab.training import loop as training_loop
from genlab.training.step import StepHelper


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def tiny_gan(data, *extra: str):
    cfg = apply_overrides(default_config("gan"), tiny_overrides("gan", *extra))
    torch.manual_seed(0)
    return build_model("gan", cfg.model, data.info)


def helper(model, grad_clip: float = 0.0) -> StepHelper:
    """The loop's step helper for the model's own optimizers, alone in float32."""
    return StepHelper(model.configure_optimizers(TrainConfig()), grad_clip=grad_clip, model=model)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters (the biases right before batch norm are not trained)."""
    return {k: v.detach().clone() for k, v in module.named_parameters() if v.requires_grad}


def test_one_step_changes_both_networks_and_the_loop_names_no_family(digits):
    model = tiny_gan(digits)
    opts = helper(model)
    assert set(opts.optimizers) == {"generator", "discriminator"}
    frozen = [k for k, v in model.named_parameters() if not v.requires_grad]
    assert frozen == ["generator.project.0.bias", "generator.ups.0.bias"]  # cancelled by BN
    g0, d0 = snapshot(model.generator), snapshot(model.discriminator)
    out = model.train_step(digits.batch("train", torch.arange(32)), opts, 0)
    assert {"loss", "g_loss", "d_real_acc", "d_fake_acc"} <= set(out)
    for before, net in ((g0, model.generator), (d0, model.discriminator)):
        after = snapshot(net)
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        assert changed == list(before), f"unchanged: {set(before) - set(changed)}"
    # the one training loop reaches this only through the generic train_step hook
    source = inspect.getsource(training_loop)
    for name in FAMILIES:
        assert f'"{name}"' not in source and f"'{name}'" not in source
    assert "discriminator" not in source and "g_loss" not in source


@pytest.mark.parametrize(
    ("fixed", "moving", "falls"),
    [("g_lr", "d_lr", "loss"), ("d_lr", "g_lr", "g_loss")],
)
def test_steps_on_a_fixed_batch_move_each_loss_the_right_way(digits, fixed, moving, falls):
    """With one player (almost) frozen, the other's steps lower its own loss on a fixed batch."""
    model = tiny_gan(digits, f"model.{fixed}=1e-9", f"model.{moving}=2e-3")
    opts = helper(model)
    batch = digits.batch("train", torch.arange(32))
    losses = []
    for step in range(8):
        torch.manual_seed(1)  # the same noise every step
        losses.append(float(model.train_step(batch, opts, step)[falls]))
    assert losses[-1] < losses[0], losses
    if falls == "loss":  # the discriminator also gets better at telling them apart
        torch.manual_seed(1)
        acc = model.loss(batch)
        assert float(acc["d_real_acc"] + acc["d_fake_acc"]) > 1.0


@pytest.mark.parametrize("loss", ["hinge", "wgan-gp"])
def test_other_losses_and_spectral_norm(digits, loss):
    model = tiny_gan(digits, f"model.loss={loss}", "model.spectral_norm=true")
    opts = helper(model)
    batch = digits.batch("train", torch.arange(32))
    for step in range(3):
        out = model.train_step(batch, opts, step)
    assert all(torch.isfinite(v) for v in out.values())
    assert ("gp" in out) == (loss == "wgan-gp")
    if loss == "wgan-gp":
        assert float(out["gp"]) >= 0
    # every discriminator layer is divided by its largest singular value: the norm is about 1
    for _ in range(30):  # power iterations run in training-mode passes
        model.discriminator(batch["x"])
    conv = model.discriminator.convs[0]
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert float(sigma) == pytest.approx(1.0, abs=0.05)


def test_conditional_sampling_and_bad_classes(digits):
    model = tiny_gan(digits, "model.conditional=true").eval()
    g = torch.Generator().manual_seed(0)
    a = model.sample(4, generator=g, class_label=3)
    assert a.shape == (4, 1, 8, 8)
    b = model.sample(4, generator=torch.Generator().manual_seed(0), class_label=5)
    assert not torch.equal(a, b)  # same noise, another class
    with pytest.raises(UsageError, match="between 0 and 9"):
        model.sample(2, class_label=10)
    with pytest.raises(UsageError, match="unconditional"):
        tiny_gan(digits).eval().sample(2, class_label=1)
    # interpolation latents carry the class embedding: (n, 2 * latent_dim)
    z = model.prior(3, generator=g)
    assert z.shape == (3, 16) and model.decode(z).shape == (3, 1, 8, 8)


def test_health_warns_of_mode_collapse_and_divergence(digits, monkeypatch):
    model = tiny_gan(digits, "model.monitor_samples=64").eval()

    class OnlySevens(torch.nn.Module):
        def predict(self, x):
            return torch.nn.functional.one_hot(torch.full((len(x),), 7), 10).float()

    out = model.health({"d_real_acc": 1.0, "d_fake_acc": 0.99, "g_loss": 9.0}, judge=OnlySevens())
    assert out["classes_covered"] == 1 and out["class_histogram"][7] == 1.0
    collapse, diverging = sorted(out["warnings"], key=lambda w: not w.startswith("mode"))
    assert collapse.startswith("mode collapse") and "'7'" in collapse
    assert diverging.startswith("training is diverging")
    balanced = model.health({"d_real_acc": 0.6, "d_fake_acc": 0.7}, judge=OnlySevens())
    assert "training is diverging" not in " ".join(balanced.get("warnings", []))
    # right every time but unsure (generator loss 0.99: fakes judged real with p ~ 0.37)
    unsure = model.health({"d_real_acc": 1.0, "d_fake_acc": 1.0, "g_loss": 0.99})
    assert "training is diverging" not in " ".join(unsure.get("warnings", []))


def test_trained_in_the_loop_with_health_and_two_optimizers(tmp_path, feature_cache, capsys):
    extra = [
        "model.monitor_samples=40",
        f"model.monitor_classifier_steps={FEATURE_STEPS}",
        "train.ema_decay=0.9",
    ]
    run = genlab.train(
        "gan", "digits", tmp_path / "gan", overrides=tiny_overrides("gan", *extra), steps=6
    )
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    assert {"loss", "g_loss", "d_real_acc", "d_fake_acc", "lr_generator"} <= set(train[0])
    assert len(val) == 2 and all(len(r["class_histogram"]) == 10 for r in val)
    assert all(sum(r["class_histogram"]) == pytest.approx(1.0, abs=1e-4) for r in val)
    state = load_optimizer_state(run / "checkpoints" / "latest" / "optimizer.pt")
    assert set(state) == {"generator", "discriminator"}
    # best = latest for an adversarial loss; sampling uses the EMA weights by default
    assert (run / "checkpoints" / "best").resolve() == (run / "checkpoints" / "latest").resolve()
    g = torch.Generator().manual_seed(0)
    ema = genlab.load(run).sample(4, generator=g)
    raw = genlab.load(run, ema=False).sample(4, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(ema, raw)
    if any("warnings" in r for r in val):  # an untrained GAN may well collapse: it says so
        assert "genlab: warning at step" in capsys.readouterr().err


def test_command_line_interpolation_classes_and_sample_quality(tmp_path, feature_cache):
    run = tmp_path / "cgan"
    genlab.train(
        "gan",
        "digits",
        run,
        overrides=tiny_overrides("gan", "model.conditional=true"),
        steps=4,
        quiet=True,
    )
    r = run_cli(
        "sample", str(run), "-n", "2", "--interpolate", "5", "--out", str(tmp_path / "i.png")
    )
    assert r.returncode == 0, r.stderr
    assert "10 image samples" in r.stdout and (tmp_path / "i.png").exists()
    r = run_cli("sample", str(run), "-n", "3", "--class", "7", "--out", str(tmp_path / "s.npy"))
    assert r.returncode == 0, r.stderr
    r = run_cli("sample", str(run), "--style-mix", "0.5", "--out", str(tmp_path / "m.png"))
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0
    assert "--style-mix needs a run trained with model.generator=style" in r.stderr
    r = run_cli(
        "eval", str(run), "--samples", "40", "--feature-steps", str(FEATURE_STEPS), "--json",
        str(tmp_path / "e.json"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "(real test vs train:" in r.stdout
    metrics = json.loads((tmp_path / "e.json").read_text())
    for key in ("fd", "kid", "precision", "recall", "classes_covered", "conditional_accuracy"):
        assert key in metrics and f"{key}_real" in metrics
    assert metrics["samples"] == 40 and metrics["sample_seed"] == 0


def test_a_diverging_value_stops_training_with_one_line(tmp_path, monkeypatch):
    from genlab.errors import RunError
    from genlab.models.gan import GAN

    monkeypatch.setattr(GAN, "g_loss", lambda self, fake: fake.mean() * float("inf"))
    with pytest.raises(RunError, match="g_loss became (inf|-inf|nan) at step 1"):
        genlab.train("gan", "digits", tmp_path / "g", overrides=tiny_overrides("gan"), steps=3)


def test_trains_in_bf16_autocast_with_finite_losses(tmp_path, digits):
    """train.bf16 reaches a family's own train_step: its forwards run in bfloat16."""
    from genlab.training.loop import Trainer

    cfg = apply_overrides(default_config("gan"), tiny_overrides("gan", "train.bf16=true"))
    model = tiny_gan(digits)
    seen = []
    model.generator.ups[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    trainer = Trainer(model, digits, cfg.train, tmp_path, total_steps=6, quiet=True)
    logged = [trainer.train_step(step) for step in range(6)]
    assert torch.bfloat16 in seen
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for row in logged:
        assert {"loss", "g_loss", "lr_generator", "lr_discriminator"} <= set(row)
        assert all(math.isfinite(v) for v in row.values()), row


def test_the_summary_says_the_latest_checkpoint_counts_as_best(tmp_path, capsys):
    """A GAN's selection is "last": no "best 0.18 at step 200" for an adversarial loss."""
    from genlab.cli.train import print_summary as _print_summary

    run = genlab.train(
        "gan", "digits", tmp_path / "g", overrides=tiny_overrides("gan"), steps=4, quiet=True
    )
    capsys.readouterr()
    _print_summary(run)
    out = capsys.readouterr().out
    assert "step 4, validation loss" in out and "the latest counts as best" in out
    assert "at step" not in out
    assert f"next: genlab sample {run}   |   genlab eval {run}" in out


# the stable recipe ----------------------------------------------------------------------------
def test_the_default_recipe_is_ttur_r1_and_diffaug():
    cfg = default_config("gan").model
    assert cfg.d_lr > cfg.g_lr and cfg.r1_gamma > 0 and cfg.r1_every >= 1 and cfg.diffaug
    assert default_config("gan", "mnist").train.ema_decay > 0  # and the generator's EMA
    assert default_config("gan", "wgan").model.r1_gamma == 0  # its own penalty instead
    full, small = default_config("gan", "mnist-full"), default_config("gan", "mnist")
    assert not full.model.diffaug and (full.model.g_lr, full.model.d_lr) == (2e-4, 8e-4)
    assert full.model.r1_gamma == small.model.r1_gamma and full.train == small.train
    with pytest.raises(UsageError, match="r1_every"):
        apply_overrides(default_config("gan"), ["model.r1_every=0"]).model.validate()


def test_diff_augment_translates_and_cuts_out_differentiably():
    from genlab.models.gan import diff_augment

    x = torch.arange(64.0).view(1, 1, 8, 8)
    # u = 0.5 everywhere: no shift (the middle of [-1, 1]) and a 4x4 hole centred at (4, 4)
    out = diff_augment(x, torch.full((1, 4), 0.5))
    hole = torch.zeros(8, 8, dtype=torch.bool)
    hole[2:6, 2:6] = True
    assert torch.equal(out[0, 0][~hole], x[0, 0][~hole]) and (out[0, 0][hole] == 0).all()
    # u = 0 along y: the image moves up by one row... (shift -1), the last row is empty; the
    # cut-out square centred at (0, 0) covers rows and columns 0-1
    out = diff_augment(x, torch.tensor([[0.0, 0.5, 0.0, 0.0]]))
    assert torch.equal(out[0, 0, 2:7], x[0, 0, 3:8]) and (out[0, 0, 7] == 0).all()
    assert (out[0, 0, :2, :2] == 0).all() and torch.equal(out[0, 0, :2, 2:], x[0, 0, 1:3, 2:])
    # gradients reach every pixel that stays visible, and only those
    x = x.requires_grad_(True)
    diff_augment(x, torch.full((1, 4), 0.5)).sum().backward()
    assert torch.equal(x.grad[0, 0] == 1, ~hole)


def test_r1_penalty_is_the_squared_input_gradient_and_lazy(digits):
    model = tiny_gan(digits)
    x = digits.batch("train", torch.arange(8))["x"]
    xi = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.discriminator(xi).sum(), xi)
    penalty = model.r1_penalty(x, None)
    assert float(penalty.detach()) == pytest.approx(float(g.pow(2).sum() / len(x)), rel=1e-5)
    # lazy: it changes the discriminator's step only on steps that are multiples of r1_every
    batch = digits.batch("train", torch.arange(32))

    def d_after(step: int, gamma: float) -> torch.Tensor:
        m = tiny_gan(digits, f"model.r1_gamma={gamma}", "model.r1_every=2")
        torch.manual_seed(1)
        m.train_step(batch, helper(m), step)
        return m.discriminator.head.weight.detach()

    assert torch.equal(d_after(1, 0.0), d_after(1, 100.0))
    assert not torch.equal(d_after(2, 0.0), d_after(2, 100.0))


# acting on mode collapse ------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["warn", "restore"])
def test_a_forced_collapse_restores_the_last_good_weights_and_halves_the_rates(
    tmp_path, digits, monkeypatch, capsys, action
):
    """The health check says "collapsed" at the evaluation of step 4 (of 2, 4, 6): `restore`
    brings back step 2's weights and optimizer states and halves both learning rates."""
    from genlab.io.checkpoint import load_tensors
    from genlab.models.gan import GAN
    from genlab.training.loop import Trainer

    def health(self, val, *, generator=None, judge=None):
        return {"collapsed": True, "warnings": ["mode collapse (forced)"]} if calls.pop() else {}

    calls = [False, True, False]  # popped from the end: steps 2, 4, 6
    monkeypatch.setattr(GAN, "health", health)
    overrides = ["train.eval_every=2", "train.checkpoint_every=2", "train.schedule=constant"]
    overrides.append(f"train.on_collapse={action}")
    cfg = apply_overrides(default_config("gan"), tiny_overrides("gan", *overrides))
    model = tiny_gan(digits)
    trainer = Trainer(model, digits, cfg.train, tmp_path, total_steps=4, quiet=True)
    trainer.fit()
    step2 = load_tensors(tmp_path / "checkpoints" / "step-0000002" / "model.safetensors")
    now = {k: v for k, v in model.state_dict().items()}
    same = all(torch.equal(now[k], step2[k]) for k in step2)
    err = capsys.readouterr().err
    rates = trainer.set_learning_rates(4)
    if action == "warn":
        assert not same and trainer.state.lr_scale == 1.0 and "collapse at step" not in err
        assert rates == {"lr_generator": cfg.model.g_lr, "lr_discriminator": cfg.model.d_lr}
        return
    assert same  # rolled back to the checkpoint of the last healthy evaluation
    assert trainer.state.lr_scale == 0.5 and trainer.state.restores == 1
    assert rates == {"lr_generator": cfg.model.g_lr / 2, "lr_discriminator": cfg.model.d_lr / 2}
    line = [x for x in err.splitlines() if "collapse at step 4" in x]
    assert len(line) == 1 and "restored the weights of step 2" in line[0] and "x0.5" in line[0]
    assert not (tmp_path / "checkpoints" / "step-0000004").exists()  # collapsed: not kept
    # training goes on at the lowered rates and the state keeps them for --resume
    trainer.total_steps = 6
    trainer.fit()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = {r["step"]: r for r in rows if r["split"] == "train"}
    assert train[6]["lr_generator"] == pytest.approx(train[1]["lr_generator"] / 2)
    restored = [r for r in rows if r.get("restored_from") is not None]
    assert [(r["step"], r["restored_from"], r["lr_scale"]) for r in restored] == [(4, 2, 0.5)]
    saved = json.loads((tmp_path / "checkpoints" / "latest" / "trainer.json").read_text())
    assert saved["lr_scale"] == 0.5 and saved["good_step"] == 6


# the StyleGAN-style generator -----------------------------------------------------------------
def test_demodulation_gives_unit_weight_norms_whatever_the_style_scale():
    from genlab.models.gan import ModulatedConv2d

    torch.manual_seed(0)
    conv = ModulatedConv2d(16, 8, 3, w_dim=4).requires_grad_(False)
    x, w = torch.randn(2, 16, 32, 32), torch.randn(2, 4)
    out = conv(x, w)
    # a style 10x larger gives the same output: demodulation divides the scale out
    with torch.no_grad():
        conv.affine.weight.mul_(10)
        conv.affine.bias.mul_(10)
    assert torch.allclose(conv(x, w), out, atol=1e-5)
    # every output channel's (modulated) weights have unit L2 norm, so unit-variance independent
    # inputs give unit-variance outputs (away from the zero-padded border)
    inner = out[:, :, 1:-1, 1:-1] - conv.bias[None, :, None, None]
    assert float(inner.std()) == pytest.approx(1.0, abs=0.05)
    conv.demodulate = False  # without it, the output grows with the style
    assert float(conv(x, w).std()) > 5


def test_style_generator_shapes_noise_inputs_and_style_mixing(digits):
    model = tiny_gan(digits, "model.generator=style").eval()
    g = model.generator
    assert g.num_layers == 4  # constant layer, 2 up-sampling layers, to_image
    assert g.const.shape == (16, 2, 2) and len(g.mapping) == 2 * model.cfg.mapping_layers
    with torch.no_grad():
        for noise in g.noises:
            noise.strength.fill_(1.0)  # zero at initialization: turn the noise inputs on
        w = g.map(torch.randn(3, 8))  # (3, latent)
        ws = w[:, None].expand(-1, g.num_layers, -1)

        def synth(latents, seed):
            return g.synthesize(latents, torch.Generator().manual_seed(seed))

        a = synth(ws, 0)
        assert a.shape == (3, 1, 8, 8) and a.min() >= 0 and a.max() <= 1
        assert torch.equal(synth(ws, 0), a) and not torch.equal(synth(ws, 1), a)
        # mixing w with itself is no mixing, at every crossover; with another w it is
        for k in range(g.num_layers + 1):
            assert torch.equal(synth(g.mix(w, w, k), 0), a)
        other = g.map(torch.randn(3, 8))
        assert not torch.equal(synth(g.mix(w, other, 2), 0), a)
        # sampling: --style-mix 0 is plain sampling; style mixing changes the images
        plain = model.sample(4, generator=torch.Generator().manual_seed(0))
        again = model.sample(4, generator=torch.Generator().manual_seed(0), style_mix=0.0)
        mixed = model.sample(4, generator=torch.Generator().manual_seed(0), style_mix=0.5)
        assert torch.equal(plain, again) and not torch.equal(plain, mixed)
    with pytest.raises(UsageError, match="--style-mix needs a run trained with model.generator"):
        tiny_gan(digits).eval().sample(2, style_mix=0.5)
    with pytest.raises(UsageError, match=r"in \[0, 1\]"):
        model.sample(2, style_mix=1.5)


def test_style_generator_trains_conditionally_and_both_networks_change(digits):
    model = tiny_gan(digits, "model.generator=style", "model.conditional=true")
    opts = helper(model)
    g0 = snapshot(model.generator)
    out = model.train_step(digits.batch("train", torch.arange(32)), opts, 0)
    assert all(torch.isfinite(v) for v in out.values())
    after = snapshot(model.generator)
    changed = {k for k in g0 if not torch.equal(g0[k], after[k])}
    # everything but the class embedding rows of absent classes learns, noise strengths too
    assert {"const", "mapping.0.weight", "convs.0.weight", "noises.0.strength"} <= changed
    assert model.eval().sample(3, class_label=2).shape == (3, 1, 8, 8)


def test_the_mapping_network_learns_at_its_fraction_of_the_generator_rate(digits):
    """Adam's first step moves each weight by about its learning rate: the mapping network's
    by mapping_lr x g_lr, the synthesis layers' by g_lr."""
    model = tiny_gan(digits, "model.generator=style", "model.mapping_lr=0.01")
    (group, slow) = model.configure_optimizers(TrainConfig())["generator"].param_groups
    assert slow["lr"] == pytest.approx(0.01 * group["lr"])
    g0 = snapshot(model.generator)
    model.train_step(digits.batch("train", torch.arange(32)), helper(model), 0)
    after = snapshot(model.generator)
    moved = {k: float((after[k] - g0[k]).abs().max()) for k in g0}
    assert moved["convs.1.weight"] == pytest.approx(model.cfg.g_lr, rel=0.05)
    assert moved["mapping.0.weight"] == pytest.approx(0.01 * model.cfg.g_lr, rel=0.05)
    dcgan = tiny_gan(digits, "model.mapping_lr=0.01")  # no mapping network: one group
    assert len(dcgan.configure_optimizers(TrainConfig())["generator"].param_groups) == 1
    with pytest.raises(UsageError, match="model.mapping_lr"):
        tiny_gan(digits, "model.generator=style", "model.mapping_lr=0")


CONTRACT = ["steps_on_a_fixed_batch_lower_the_loss", "save_and_load_give_identical_outputs"]
CONTRACT += ["samples_or_predictions_have_the_right_shape", "resume_equals_uninterrupted"]


@pytest.mark.parametrize("name", CONTRACT)
def test_the_contract_holds_for_the_style_generator(name, digits, tmp_path, monkeypatch):
    """tests/test_contract.py's tests of the family, run with model.generator=style."""
    import conftest
    import test_contract

    tiny = [*conftest.TINY["gan"], "model.generator=style"]
    monkeypatch.setitem(conftest.TINY, "gan", tiny)
    test = getattr(test_contract, f"test_{name}")
    given = {"family": "gan", "data": digits, "data_spec": "digits", "tmp_path": tmp_path}
    given["monkeypatch"] = monkeypatch
    test(**{k: v for k, v in given.items() if k in inspect.signature(test).parameters})
