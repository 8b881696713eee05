"""Diffusion: forward process, samplers, guidance, inpainting and the likelihood bound.

Sampler tests use analytic models: for Gaussian data N(mu, Sigma) the true noise given x_t is
E[eps | x_t] = sqrt(1 - a) (a Sigma + (1 - a) I)^-1 (x_t - sqrt(a) mu), a = alpha_bar_t, so any
error left is the sampler's own.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli, tiny_overrides
from genlab.cli import main
from genlab.config import apply_overrides
from genlab.data import load_dataset
from genlab.diffusion import inpainting, samplers
from genlab.diffusion.schedules import NoiseSchedule, linear_betas, make_schedule
from genlab.errors import UsageError
from genlab.run import build_model
from genlab.runconfig import default_config


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def tiny_ddpm(digits, *extra: str, seed: int = 0):
    """A tiny ddpm with random (not zero) output weights, so predictions depend on the input."""
    cfg = apply_overrides(default_config("ddpm"), tiny_overrides("ddpm", *extra))
    torch.manual_seed(seed)
    model = build_model("ddpm", cfg.model, digits.info).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and not p.any():  # the zero-initialized convolutions
                p.normal_(0, 0.05)
    return model


def gaussian_predict(schedule: NoiseSchedule, mu: torch.Tensor, cov: torch.Tensor):
    """predict(x_t, t) -> (x_0, eps) of the exact denoiser for data N(mu, cov) over the last
    dimension of x."""
    eye = torch.eye(len(cov), dtype=cov.dtype)

    def predict(x: torch.Tensor, t: int):
        a = schedule.alpha_bar(t).double()
        prec = torch.linalg.inv(a * cov + (1 - a) * eye)
        eps = (1 - a).sqrt() * (x.double() - a.sqrt() * mu) @ prec.T
        x0 = (x.double() - (1 - a).sqrt() * eps) / a.sqrt()
        return x0.to(x.dtype), eps.to(x.dtype)

    return predict


# forward process -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_forward_process_matches_its_closed_form(name):
    T = 1000
    sched = make_schedule(name, T)
    t_all = torch.arange(T, dtype=torch.float64)
    if name == "linear":
        closed = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0)
    else:
        f = torch.cos(((t_all + 1) / T + 0.008) / 1.008 * math.pi / 2) ** 2
        closed = f / math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    # (the cosine betas are clipped at 0.999 only in the last few steps)
    assert torch.allclose(sched.alpha_bar(torch.arange(T - 5)), closed[: T - 5].float(), atol=1e-5)
    assert sched.alpha_bar(-1) == 1

    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.tensor([-0.8, 0.1, 0.9]).expand(n, 3)
    for t in (0, 100, 500, 999):
        noise = torch.randn((n, 3), generator=g)
        x_t = sched.add_noise(x0, noise, t)
        a = float(closed[t])
        mean, var = math.sqrt(a) * x0[0], 1 - a
        se_mean = math.sqrt(var / n)
        assert (x_t.mean(0) - mean).abs().max() < 5 * se_mean, (t, x_t.mean(0), mean)
        assert torch.allclose(x_t.var(0), torch.full((3,), var), rtol=0.02), (t, x_t.var(0))
    # per-example timesteps broadcast over the image dimensions
    t = torch.tensor([0, 999])
    img = torch.ones(2, 1, 4, 4)
    out = sched.add_noise(img, torch.zeros_like(img), t)
    assert torch.allclose(out[:, 0, 0, 0], sched.alpha_bar(t).sqrt())


def test_linear_betas_rescale_with_the_number_of_steps():
    assert torch.allclose(
        linear_betas(1000)[[0, -1]], torch.tensor([1e-4, 0.02], dtype=torch.float64)
    )
    assert torch.allclose(
        linear_betas(100)[[0, -1]], torch.tensor([1e-3, 0.2], dtype=torch.float64)
    )


# samplers --------------------------------------------------------------------------------------
def test_ddim_eta0_is_deterministic_and_invertible():
    sched = make_schedule("linear", 1000)
    mu, cov = torch.tensor([0.3, -0.2], dtype=torch.float64), torch.diag(torch.tensor([0.2, 0.05]))
    predict = gaussian_predict(sched, mu.double(), cov.double())
    x_T = torch.randn((256, 2), generator=torch.Generator().manual_seed(0))
    ts = samplers.spaced_timesteps(1000, 100)

    def run(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return samplers.sample_loop(predict, sched, x_T, ts, sampler="ddim", eta=0.0, generator=g)

    x0 = run(1)
    assert torch.equal(x0, run(2))  # no randomness at all with eta = 0
    eta1 = samplers.sample_loop(
        predict, sched, x_T, ts, sampler="ddim", eta=1.0, generator=torch.Generator()
    )
    assert not torch.allclose(eta1, x0)

    # one step down and back up with the same prediction is exact
    x_t = x_T * 0.7
    x0_pred, eps = predict(x_t, 600)
    x_prev = samplers.ddim_step(sched, x_t, 600, 400, x0_pred, eps)
    assert torch.allclose(samplers.ddim_step(sched, x_prev, 400, 600, x0_pred, eps), x_t, atol=1e-5)

    # the whole chain inverts to within the discretization error
    back = samplers.ddim_invert(predict, sched, x0, ts)
    assert (back - x_T).abs().max() < 1e-2, (back - x_T).abs().max()
    again = samplers.sample_loop(predict, sched, back, ts, sampler="ddim")
    assert (again - x0).abs().max() < 1e-3
    rough = samplers.ddim_invert(predict, sched, x0, ts, iterations=1)  # the usual shortcut
    assert (rough - x_T).abs().max() > 10 * (back - x_T).abs().max()


@pytest.mark.parametrize(
    "sampler,steps,eta,rtol",
    [
        ("ddpm", 1000, 0.0, 0.03),
        ("ddim", 1000, 0.0, 0.03),
        ("ddim", 1000, 1.0, 0.03),
        ("ddim", 100, 0.0, 0.1),  # fewer steps shrink the variance (first-order steps)
    ],
)
def test_exact_denoiser_reproduces_gaussian_data(sampler, steps, eta, rtol):
    sched = make_schedule("linear", 1000)
    mu = torch.tensor([0.4, -0.3], dtype=torch.float64)
    cov = torch.tensor([[0.25, 0.1], [0.1, 0.16]], dtype=torch.float64)
    predict = gaussian_predict(sched, mu, cov)
    g = torch.Generator().manual_seed(0)
    n = 40_000
    x_T = torch.randn((n, 2), generator=g)
    ts = samplers.spaced_timesteps(1000, steps)
    x = samplers.sample_loop(predict, sched, x_T, ts, sampler=sampler, eta=eta, generator=g)
    x = x.double()
    se = (cov.diagonal() / n).sqrt()
    assert ((x.mean(0) - mu).abs() < 5 * se).all(), x.mean(0)
    assert torch.allclose(torch.cov(x.T), cov, rtol=rtol, atol=0.01), torch.cov(x.T)


def test_ddim_matches_diffusers_ddimscheduler_under_glides_clipping(digits):
    """genlab's DDIM step is diffusers' DDIMScheduler with `use_clipped_model_output=True` (eps
    re-derived from the clipped x0) on its own timesteps; diffusers' default keeps the network's
    eps after clipping, a different sampler (bench/diffusion_vs_diffusers.py reports both)."""
    diffusers = pytest.importorskip("diffusers", reason="diffusers (the bench extra) is absent")
    model = tiny_ddpm(digits)
    sched = model.schedule
    ref = diffusers.DDIMScheduler(
        num_train_timesteps=sched.timesteps,
        trained_betas=sched.betas.float().numpy(),
        clip_sample=True,
        set_alpha_to_one=True,
        timestep_spacing="leading",  # t - T // S is then the next timestep of the list
    )
    ref.set_timesteps(10)
    ts = [int(t) for t in ref.timesteps]
    assert ts[-1] == 0 and len(set(a - b for a, b in zip(ts, ts[1:], strict=False))) == 1
    x_T = torch.randn((4, 1, 8, 8), generator=torch.Generator().manual_seed(0))

    def theirs(clipped: bool) -> torch.Tensor:
        x = x_T.clone()
        for t in ref.timesteps:
            eps = model.net(x, torch.full((len(x),), int(t)), None)
            x = ref.step(eps, t, x, eta=0.0, use_clipped_model_output=clipped).prev_sample
        return x

    with torch.no_grad():
        ours = samplers.sample_loop(model.denoise, sched, x_T, ts, sampler="ddim", eta=0.0)
        assert torch.allclose(ours, theirs(True), atol=1e-4), (ours - theirs(True)).abs().max()
        assert (ours - theirs(False)).abs().max() > 0.1  # the default sampler differs


def test_spaced_timesteps_cover_the_range_and_reject_bad_counts():
    assert samplers.spaced_timesteps(1000, 1000) == list(range(999, -1, -1))
    ts = samplers.spaced_timesteps(1000, 50)
    assert len(ts) == 50 and ts[0] == 999 and ts[-1] == 0 and ts == sorted(ts, reverse=True)
    with pytest.raises(UsageError, match="--sample-steps"):
        samplers.spaced_timesteps(100, 101)


# inpainting ------------------------------------------------------------------------------------
def test_inpainting_keeps_every_unmasked_pixel_bit_identical(digits):
    model = tiny_ddpm(digits)
    x = digits.batch("test", torch.arange(4))["x"]
    fill = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    fill[..., 2:6, 1:5] = True
    g = torch.Generator().manual_seed(0)
    for sampler in ("ddpm", "ddim"):
        out = model.inpaint(x, fill, generator=g, rounds=2, sampler=sampler, sample_steps=4)
        assert out.shape == x.shape
        assert torch.equal(out[~fill.expand_as(x)], x[~fill.expand_as(x)])
        assert not torch.equal(out[fill.expand_as(x)], x[fill.expand_as(x)])
        assert out.min() >= 0 and out.max() <= 1


def test_resampling_fills_consistently_with_the_known_pixels():
    """Two pixels correlated at 0.95: filling the second given the first should follow the
    conditional N(0.95 x_1, 1 - 0.95^2); more resampling rounds get closer."""
    sched = make_schedule("linear", 1000)
    cov = torch.tensor([[1.0, 0.95], [0.95, 1.0]], dtype=torch.float64) * 0.25
    predict = gaussian_predict(sched, torch.zeros(2, dtype=torch.float64), cov)
    g = torch.Generator().manual_seed(0)
    n = 4000
    known = torch.distributions.MultivariateNormal(torch.zeros(2), cov.float()).sample((n,))
    keep = torch.tensor([True, False])
    ts = samplers.spaced_timesteps(1000, 50)
    err = {}
    for rounds in (1, 8):
        out = inpainting.inpaint_loop(
            predict, sched, known, keep, ts, sampler="ddpm", rounds=rounds, generator=g
        )
        assert torch.equal(out[:, 0], known[:, 0])
        err[rounds] = (out[:, 1] - 0.95 * known[:, 0]).pow(2).mean().item()
    conditional_var = 0.25 * (1 - 0.95**2)  # 0.024; unconditional variance is 0.25
    assert err[8] < 1.5 * conditional_var, err
    assert err[8] < err[1], err


# guidance --------------------------------------------------------------------------------------
def manual_sample(model, n, label, scale, g):
    """Reference: the sampling loop written out with the network called directly."""
    x = torch.randn((n, *model.info.shape), generator=g)
    ts = samplers.spaced_timesteps(model.cfg.timesteps, model.cfg.sample_steps)
    null = model.num_classes
    with torch.no_grad():
        for t, t_prev in zip(ts, [*ts[1:], -1], strict=True):
            tt = torch.full((n,), t)
            out_c = model.net(x, tt, torch.full((n,), label))
            out_u = model.net(x, tt, torch.full((n,), null))
            out = {1.0: out_c, 0.0: out_u}.get(scale, out_u + scale * (out_c - out_u))
            a = model.schedule.alpha_bar(t)
            x0 = ((x - (1 - a).sqrt() * out) / a.sqrt()).clamp(-1, 1)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
            a_p = model.schedule.alpha_bar(t_prev)
            x = a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps
    return ((x + 1) / 2).clamp(0, 1)


def test_guidance_scale_1_is_the_conditional_model_and_0_the_unconditional(digits):
    model = tiny_ddpm(digits, "model.conditional=true")
    samples = {}
    for scale in (1.0, 0.0, 2.5):
        got = model.sample(
            6,
            generator=torch.Generator().manual_seed(4),
            class_label=3,
            guidance_scale=scale,
            eta=0.0,
            sampler="ddim",
        )
        want = manual_sample(model, 6, 3, scale, torch.Generator().manual_seed(4))
        if scale in (0.0, 1.0):
            assert torch.equal(got, want), scale
        else:
            assert torch.allclose(got, want, atol=1e-5)
        samples[scale] = got
    assert not torch.allclose(samples[1.0], samples[0.0], atol=1e-3)
    assert not torch.allclose(samples[2.5], samples[1.0], atol=1e-3)
    # the general formula at scale 1 agrees with the conditional pass it short-cuts
    x, labels = torch.randn(3, 1, 8, 8), torch.tensor([3, 3, 3])
    combined = model.guided(labels, 1.0 + 1e-12)(x, 40)[0]
    assert torch.allclose(combined, model.guided(labels, 1.0)(x, 40)[0], atol=1e-5)


def test_conditional_training_drops_labels_and_options_are_checked(digits):
    model = tiny_ddpm(digits, "model.conditional=true", "model.label_dropout=0.5")
    assert model.net.label_emb.num_embeddings == digits.info.num_classes + 1
    batch = digits.batch("train", torch.arange(32))
    assert torch.isfinite(model.loss(batch)["loss"])
    with pytest.raises(UsageError, match="--class must be between 0 and 9"):
        model.sample(2, class_label=10)
    plain = tiny_ddpm(digits)
    with pytest.raises(UsageError, match="class-conditional"):
        plain.sample(2, class_label=1)
    with pytest.raises(UsageError, match="--eta"):
        plain.sample(2, eta=-1.0)
    with pytest.raises(UsageError, match="--sample-steps"):
        plain.sample(2, sample_steps=0)
    with pytest.raises(UsageError, match="norm_groups"):
        apply_overrides(default_config("ddpm"), ["model.channels=12", "model.norm_groups=8"])
    with pytest.raises(UsageError, match="model.attention"):
        apply_overrides(default_config("ddpm"), ["model.attention=[3]"])


@pytest.mark.parametrize("objective", ["eps", "x0", "v"])
def test_objectives_read_back_the_truth(objective):
    """A network that outputs its target exactly lets every objective recover x_0 and eps."""
    sched = make_schedule("cosine", 100)
    x0, noise = torch.rand(4, 1, 3, 3) * 2 - 1, torch.randn(4, 1, 3, 3)
    t = torch.tensor([0, 10, 50, 99])
    x_t = sched.add_noise(x0, noise, t)
    got_x0, got_eps = sched.to_x0_eps(objective, x_t, t, sched.target(objective, x0, noise, t))
    assert torch.allclose(got_x0, x0, atol=1e-3) and torch.allclose(got_eps, noise, atol=1e-3)


# likelihood bound ------------------------------------------------------------------------------
def test_monte_carlo_bound_agrees_with_the_full_sum(digits):
    model = tiny_ddpm(digits, "model.timesteps=40")
    batch = digits.batch("test", torch.arange(16))
    full = torch.stack(
        [
            model.nll(batch, generator=torch.Generator().manual_seed(s), bound_timesteps=0).mean()
            for s in range(3)
        ]
    )
    mc = torch.stack(
        [
            model.nll(
                batch, generator=torch.Generator().manual_seed(100 + s), bound_timesteps=4
            ).mean()
            for s in range(30)
        ]
    )
    se = math.sqrt(full.var() / len(full) + mc.var() / len(mc))
    assert abs(full.mean() - mc.mean()) < 4 * se + 1e-3 * full.mean(), (full, mc.mean(), se)
    assert mc.std() > 0  # it really is an estimate
    # the bound bounds the negative log-probability of quantized pixels: it is positive
    assert (model.nll(batch, bound_timesteps=0) > 0).all()
    assert "full sum over all 40" in model.nll_method(bound_timesteps=0)
    assert "4 timesteps" in model.nll_method(bound_timesteps=4)


def test_training_lowers_the_bound_below_the_uniform_distribution(digits):
    """A short training run beats log2(17 levels) = 4.09 bits/dim, the uniform model's."""
    cfg = apply_overrides(default_config("ddpm"), tiny_overrides("ddpm"))
    torch.manual_seed(0)
    model = build_model("ddpm", cfg.model, digits.info)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        batch = digits.batch("train", torch.randint(0, 1400, (64,), generator=g))
        loss = model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test = digits.batch("test", torch.arange(64))
    bpd = model.nll(test, generator=torch.Generator().manual_seed(0), bound_timesteps=0)
    bpd = bpd.mean() / (64 * math.log(2))
    assert bpd < math.log2(17), bpd


# command line ----------------------------------------------------------------------------------
def test_cli_train_sample_inpaint_and_eval(tmp_path, capsys):
    run = tmp_path / "run"
    over = [f"--set={o}" for o in tiny_overrides("ddpm", "model.conditional=true")]
    r = run_cli(
        "train", "ddpm", "--data", "digits", "--out", str(run), "--steps", "6", "--quiet", *over
    )  # one real process end to end; the rest in-process (faster)
    assert r.returncode == 0, r.stderr

    def cli(*args: str) -> tuple[int, str]:
        code = main([*args])
        return code, capsys.readouterr().err

    code, err = cli(
        "sample",
        str(run),
        "-n",
        "5",
        "--sampler",
        "ddpm",
        "--steps",
        "4",
        "--class",
        "3",
        "--guidance-scale",
        "2",
        "--out",
        str(tmp_path / "s.npy"),
    )
    assert code == 0, err
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (5, 1, 8, 8) and np.isfinite(s).all()

    # an image larger than the model's 8x8, with a mask file: output keeps size and pixels
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (12, 10), dtype=np.uint8)
    mask = np.zeros((12, 10), dtype=np.uint8)
    mask[3:9, 2:6] = 255
    Image.fromarray(img).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    code, err = cli(
        "sample",
        str(run),
        "--inpaint",
        str(tmp_path / "in.png"),
        "--mask",
        str(tmp_path / "mask.png"),
        "-n",
        "2",
        "--resample-rounds",
        "2",
        "--out",
        str(tmp_path / "out.png"),
    )
    assert code == 0, err
    for k in range(2):
        out = np.asarray(Image.open(tmp_path / f"out-{k}.png"))
        assert out.shape == img.shape and out.dtype == np.uint8
        assert (out[mask == 0] == img[mask == 0]).all()
        assert (out[mask > 0] != img[mask > 0]).any()
    # a named mask on an image of the model's size
    Image.fromarray(img[:8, :8]).save(tmp_path / "small.png")
    code, err = cli(
        "sample",
        str(run),
        "--inpaint",
        str(tmp_path / "small.png"),
        "--mask",
        "left-half",
        "--out",
        str(tmp_path / "half.png"),
    )
    assert code == 0, err
    out = np.asarray(Image.open(tmp_path / "half.png"))
    assert out.shape == (8, 8) and (out[:, 4:] == img[:8, 4:8]).all()

    code, err = cli(
        "sample", str(run), "--inpaint", str(tmp_path / "small.png"), "--mask", "middle"
    )
    assert code == 2 and "left-half" in err
    code, err = cli(
        "sample",
        str(run),
        "--inpaint",
        str(tmp_path / "small.png"),
        "--mask",
        str(tmp_path / "mask.png"),
    )
    assert code == 1 and "image's size" in err
    code, err = cli("sample", str(run), "--inpaint", str(tmp_path / "small.png"))
    assert code == 2 and "--mask" in err
    code, err = cli("sample", str(run), "--temperature", "2")
    assert code == 2 and "does not take --temperature" in err

    code, err = cli("eval", str(run), "--bound-timesteps", "0", "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    m = json.loads((tmp_path / "e.json").read_text())
    assert m["nll_method"].startswith("variational bound, full sum over all 100")
    assert m["bits_per_dim"] > 0
    code, err = cli("eval", str(run), "--iw-samples", "5")
    assert code == 2 and "does not take --iw-samples" in err
