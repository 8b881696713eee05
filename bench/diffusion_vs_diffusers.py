"""Benchmark: genlab's `ddpm` (`mnist` preset) against diffusers on full MNIST, each with its own
recipe and its best learning rate, networks and samplers compared apart.

    pip install -e ".[bench]"        # diffusers, benchmark-only; genlab itself never imports it
    python bench/diffusion_vs_diffusers.py --minutes 30 --sweep-minutes 3

What each side gets:

- genlab: the `mnist` preset (0.63M-parameter U-Net, AdamW, warm-up, cosine decay, clipping 1.0,
  EMA 0.995 with warm-up, batch 64), trained through `genlab.train`.
- diffusers: `UNet2DModel` with block_out_channels (32, 64, 64), one residual block per level and
  attention at the lowest resolution (1.1M parameters), a `DDPMScheduler` (linear betas, 1000
  steps, epsilon) and the recipe of diffusers' own unconditional training example
  (examples/unconditional_image_generation/train_unconditional.py): AdamW betas (0.95, 0.999),
  weight decay 1e-6, eps 1e-8, cosine schedule with 500 warm-up steps (capped here at a fifth of
  a short run), gradient clipping 1.0, `EMAModel` with warm-up (inv_gamma 1, power 3/4, max decay
  0.9999), batch 16.

Learning rate: each side is trained for --sweep-minutes at every rate of --lrs (default 1e-4,
3e-4 and 1e-3), scored by the Frechet distance of --sweep-samples DDIM-50 samples from its own
sampler, and keeps its best rate for the --minutes run.

Sampling: both samplers use the same 50 timesteps (evenly spaced over 0..999 from 999, rounded:
genlab's spacing, which is diffusers' `timestep_spacing="linspace"`; diffusers' default
"leading" spacing would start at 980), eta 0, x0 clipped to [-1, 1]. Every network is sampled
with both samplers (genlab's `sample_loop` and diffusers' `DDIMScheduler`), so
`fd_ratio_networks_*` compares the networks under one sampler and `fd_ratio_samplers_*` the
samplers on one network. The two samplers differ in two of diffusers' defaults:
`use_clipped_model_output=False` (the step keeps the network's eps after clipping x0, where
genlab re-derives eps from the clipped x0, as GLIDE does) and a previous timestep of
t - 1000 // 50 whatever the spacing (genlab steps to the next timestep of the list). A third
sampler, `diffusers_clipped`, is the DDIMScheduler with `use_clipped_model_output=True`, which
separates the two; with "leading" spacing too, it agrees with genlab's to float precision
(tests/test_diffusion.py's parity test). Frechet distance is to the 10,000 test images in the
features of genlab's frozen `cnn` (see bench/diffusion_mnist.py), with `fd_real` the floor.

Runtime settings, the same for both sides: torch's default intra-op threads (or --threads),
budgets in wall time (or, with --cpu-budget, in this process's CPU time: both step times are
then measured on that clock, so other work on the machine does not shrink either run),
float32, no torch.compile, sampling under torch.inference_mode. Prints key=value lines last.
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import genlab
from genlab.diffusion import samplers
from genlab.diffusion.schedules import make_schedule
from genlab.run import load_data
from genlab.runconfig import default_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from budget import add_budget_args, apply_threads  # noqa: E402
from diffusion_mnist import DEFAULT_DATA, ROOT, Judge, calibrate  # noqa: E402

SAMPLE_STEPS = 50
RECIPE = {  # diffusers' train_unconditional.py defaults
    "batch_size": 16,
    "betas": (0.95, 0.999),
    "weight_decay": 1e-6,
    "eps": 1e-8,
    "warmup_steps": 500,
    "grad_clip": 1.0,
    "ema_max_decay": 0.9999,
    "ema_inv_gamma": 1.0,
    "ema_power": 0.75,
}


def diffusers_unet():
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=28,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    )


class DiffusersRun:
    """A diffusers U-Net trained with diffusers' example recipe at `lr`."""

    def __init__(self, data, lr: float, seed: int = 0) -> None:
        from diffusers import DDPMScheduler
        from diffusers.training_utils import EMAModel

        torch.manual_seed(seed)
        self.data, self.lr = data, lr
        self.unet = diffusers_unet()
        self.scheduler = DDPMScheduler(num_train_timesteps=1000)
        self.opt = torch.optim.AdamW(
            self.unet.parameters(),
            lr=lr,
            betas=RECIPE["betas"],
            weight_decay=RECIPE["weight_decay"],
            eps=RECIPE["eps"],
        )
        self.ema = EMAModel(
            self.unet.parameters(),
            decay=RECIPE["ema_max_decay"],
            use_ema_warmup=True,
            inv_gamma=RECIPE["ema_inv_gamma"],
            power=RECIPE["ema_power"],
        )
        self.g = torch.Generator().manual_seed(seed)

    def step(self) -> None:
        train = self.data.splits["train"]
        idx = torch.randint(0, len(train), (RECIPE["batch_size"],), generator=self.g)
        x0 = self.data.batch("train", idx)["x"] * 2 - 1
        noise = torch.randn(x0.shape, generator=self.g)
        t = torch.randint(0, 1000, (len(x0),), generator=self.g)
        noisy = self.scheduler.add_noise(x0, noise, t)
        loss = F.mse_loss(self.unet(noisy, t).sample, noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), RECIPE["grad_clip"])
        self.opt.step()
        self.sched.step()
        self.ema.step(self.unet.parameters())
        self.opt.zero_grad(set_to_none=True)

    def train(self, steps: int) -> float:
        """Train for `steps` optimizer steps; returns the seconds taken."""
        from diffusers.optimization import get_scheduler

        warmup = min(RECIPE["warmup_steps"], steps // 5)
        self.sched = get_scheduler(
            "cosine", self.opt, num_warmup_steps=warmup, num_training_steps=steps
        )
        self.unet.train()
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        seconds = time.perf_counter() - t0
        self.ema.copy_to(self.unet.parameters())  # sample from the EMA weights
        self.unet.eval()
        return seconds

    def step_seconds(self, n: int, clock=time.perf_counter) -> float:
        """Seconds per training step on `clock`, timed on a throw-away copy."""
        probe = DiffusersRun(self.data, self.lr, seed=1)
        probe.sched = torch.optim.lr_scheduler.LambdaLR(probe.opt, lambda _: 1.0)
        for _ in range(3):
            probe.step()
        t0 = clock()
        for _ in range(n):
            probe.step()
        return (clock() - t0) / n


# the two samplers, each usable on either network ----------------------------------------------
def genlab_sampler(eps_fn, schedule, n: int, g: torch.Generator) -> torch.Tensor:
    """genlab's DDIM (eta 0, x0 clipped) over SAMPLE_STEPS linspace timesteps."""

    def predict(x, t):
        x0, _ = schedule.to_x0_eps("eps", x, t, eps_fn(x, t))
        x0 = x0.clamp(-1, 1)
        return x0, schedule.eps_from_x0(x, t, x0)

    x_T = torch.randn((n, 1, 28, 28), generator=g)
    ts = samplers.spaced_timesteps(schedule.timesteps, SAMPLE_STEPS)
    return samplers.sample_loop(predict, schedule, x_T, ts, sampler="ddim", eta=0.0)


def diffusers_sampler(
    eps_fn, betas: torch.Tensor, n: int, g: torch.Generator, clipped_eps: bool = False
) -> torch.Tensor:
    """diffusers' DDIMScheduler (eta 0, clip_sample) with genlab's linspace spacing; with
    `clipped_eps`, its `use_clipped_model_output=True` (eps re-derived from the clipped x0)."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(
        num_train_timesteps=len(betas),
        trained_betas=betas.float().numpy(),
        timestep_spacing="linspace",
        clip_sample=True,
        set_alpha_to_one=True,
    )
    sched.set_timesteps(SAMPLE_STEPS)
    x = torch.randn((n, 1, 28, 28), generator=g)
    for t in sched.timesteps:
        step = sched.step(eps_fn(x, int(t)), t, x, eta=0.0, use_clipped_model_output=clipped_eps)
        x = step.prev_sample
    return x


def diffusers_clipped_sampler(eps_fn, betas: torch.Tensor, n: int, g: torch.Generator):
    return diffusers_sampler(eps_fn, betas, n, g, clipped_eps=True)


@torch.inference_mode()
def draw(sampler, eps_fn, schedule_arg, n: int, batch: int, seed: int = 0):
    """n images in [0, 1] and milliseconds per image."""
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    parts = [sampler(eps_fn, schedule_arg, min(batch, n - i), g) for i in range(0, n, batch)]
    ms = 1000 * (time.perf_counter() - t0) / n
    return ((torch.cat(parts) + 1) / 2).clamp(0, 1), ms


def genlab_eps(model):
    """eps(x_t, t) of a genlab ddpm run (epsilon objective)."""
    if model.cfg.objective != "eps":
        raise SystemExit("this benchmark compares epsilon-prediction networks")

    def eps(x, t):
        tt = torch.full((len(x),), int(t))
        return model.net(x, tt, None)

    return eps


def diffusers_eps(unet):
    return lambda x, t: unet(x, torch.full((len(x),), int(t))).sample


def train_genlab(data_dir: str, out: Path, lr: float, minutes: float, step_s: float):
    steps = max(50, int(minutes * 60 / step_s * 0.95))
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    genlab.train(
        "ddpm", data_dir, out, preset="mnist", overrides=[f"train.lr={lr}"], steps=steps,
        quiet=True,
    )  # fmt: skip
    return genlab.load(out), steps, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="final training budget of EACH")
    p.add_argument("--sweep-minutes", type=float, default=3.0, help="budget per swept rate")
    p.add_argument("--lrs", default="1e-4,3e-4,1e-3", help="learning rates swept on both sides")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-diffusion-vs-diffusers"))
    p.add_argument("--fd-samples", type=int, default=1000)
    p.add_argument("--sweep-samples", type=int, default=250)
    p.add_argument("--sample-batch", type=int, default=100)
    p.add_argument("--calibration-steps", type=int, default=20)
    add_budget_args(p)
    a = p.parse_args()
    try:
        import diffusers
    except ImportError:
        print(
            "this benchmark compares with diffusers, which is not installed: run "
            "pip install -e '.[bench]' (diffusers, benchmark-only; genlab does not need it)",
            file=sys.stderr,
        )
        return 2
    if not Path(a.data).exists():
        print(f"MNIST not found at {a.data}; pass --data DIR with the IDX files", file=sys.stderr)
        return 1
    apply_threads(a)
    lrs = [float(v) for v in a.lrs.split(",")]
    out = Path(a.out)
    data = load_data(default_config("ddpm", "mnist"), a.data)
    judge = Judge(a.data, data)
    schedule = make_schedule("linear", 1000)  # the DDPMScheduler's betas (checked below)
    d_betas = diffusers.DDPMScheduler(num_train_timesteps=1000).betas.double()
    if not torch.allclose(schedule.betas.double().cpu(), d_betas, atol=1e-7):
        raise SystemExit("genlab's and diffusers' linear betas differ: the swap would be unfair")

    clock = time.process_time if a.cpu_budget else time.perf_counter
    g_step_s = calibrate("ddpm", a.data, "mnist", [], a.calibration_steps, clock)
    d_step_s = DiffusersRun(data, 1e-4).step_seconds(a.calibration_steps, clock)
    print(
        f"genlab {g_step_s * 1000:.0f} ms/step, diffusers {d_step_s * 1000:.0f} ms/step",
        file=sys.stderr,
    )

    # learning-rate sweep, each side scored with its own sampler
    sweep: dict[tuple[str, float], float] = {}
    for lr in lrs:
        model, _, _ = train_genlab(
            a.data, out / f"sweep-genlab-{lr:g}", lr, a.sweep_minutes, g_step_s
        )
        images, _ = draw(genlab_sampler, genlab_eps(model), model.schedule, a.sweep_samples, 125)
        sweep[("genlab", lr)] = judge.fd(images)
        run = DiffusersRun(data, lr)
        run.train(max(50, int(a.sweep_minutes * 60 / d_step_s * 0.95)))
        images, _ = draw(diffusers_sampler, diffusers_eps(run.unet), d_betas, a.sweep_samples, 125)
        sweep[("diffusers", lr)] = judge.fd(images)
        print(
            f"lr {lr:g}: genlab FD {sweep[('genlab', lr)]:.1f}, "
            f"diffusers FD {sweep[('diffusers', lr)]:.1f}",
            file=sys.stderr,
        )
    g_lr = min(lrs, key=lambda lr: sweep[("genlab", lr)])
    d_lr = min(lrs, key=lambda lr: sweep[("diffusers", lr)])

    # the full budget, each at its best rate
    model, g_steps, g_train_s = train_genlab(a.data, out / "genlab", g_lr, a.minutes, g_step_s)
    run = DiffusersRun(data, d_lr)
    d_steps = max(50, int(a.minutes * 60 / d_step_s * 0.95))
    d_train_s = run.train(d_steps)

    n, b = a.fd_samples, a.sample_batch
    nets = {"genlab": genlab_eps(model), "diffusers": diffusers_eps(run.unet)}
    fd, ms = {}, {}
    for net, eps_fn in nets.items():
        sched_g = model.schedule if net == "genlab" else schedule
        betas = sched_g.betas.double().cpu()
        for name, sampler, arg in (
            ("genlab", genlab_sampler, sched_g),
            ("diffusers", diffusers_sampler, betas),
            ("diffusers_clipped", diffusers_clipped_sampler, betas),
        ):
            images, ms[net, name] = draw(sampler, eps_fn, arg, n, b)
            fd[net, name] = judge.fd(images)

    print(f"diffusers_version={diffusers.__version__}")
    print(f"threads={torch.get_num_threads()}")
    print(f"cpu_budget={a.cpu_budget}")
    print(f"sample_steps={SAMPLE_STEPS}")
    print("timestep_spacing=linspace")
    for side in ("genlab", "diffusers"):
        for lr in lrs:
            print(f"sweep_fd_{side}_lr{lr:g}={sweep[(side, lr)]:.3f}")
    print(f"sweep_minutes={a.sweep_minutes}")
    print(f"fd_samples={n}")
    print(f"fd_real={judge.fd_real(n):.3f}")
    print(f"genlab_lr={g_lr:g}")
    print(f"genlab_parameters={sum(p.numel() for p in model.parameters())}")
    print(f"genlab_batch_size={default_config('ddpm', 'mnist').train.batch_size}")
    print(f"genlab_steps={g_steps}")
    print(f"genlab_train_seconds={g_train_s:.1f}")
    print(f"genlab_train_step_ms={g_step_s * 1000:.1f}")
    print(f"diffusers_lr={d_lr:g}")
    print(f"diffusers_parameters={sum(p.numel() for p in run.unet.parameters())}")
    print(f"diffusers_batch_size={RECIPE['batch_size']}")
    print(f"diffusers_steps={d_steps}")
    print(f"diffusers_train_seconds={d_train_s:.1f}")
    print(f"diffusers_train_step_ms={d_step_s * 1000:.1f}")
    for (net, sampler), v in fd.items():
        print(f"fd_{net}_net_{sampler}_sampler={v:.3f}")
    for (net, sampler), v in ms.items():
        print(f"sample_ms_per_image_{net}_net_{sampler}_sampler={v:.1f}")
    for sampler in ("genlab", "diffusers", "diffusers_clipped"):
        r = fd["genlab", sampler] / fd["diffusers", sampler]
        print(f"fd_ratio_networks_genlab_over_diffusers_{sampler}_sampler={r:.3f}")
    for net in ("genlab", "diffusers"):
        r = fd[net, "genlab"] / fd[net, "diffusers"]
        print(f"fd_ratio_samplers_genlab_over_diffusers_{net}_net={r:.3f}")
        r = fd[net, "genlab"] / fd[net, "diffusers_clipped"]
        print(f"fd_ratio_samplers_genlab_over_diffusers_clipped_{net}_net={r:.3f}")
        r = ms[net, "genlab"] / ms[net, "diffusers"]
        print(f"sample_time_ratio_samplers_genlab_over_diffusers_{net}_net={r:.3f}")
    r = ms["genlab", "genlab"] / ms["diffusers", "diffusers"]
    print(f"sample_time_ratio_genlab_over_diffusers={r:.3f}")
    print(f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
    return 0 if all(math.isfinite(v) for v in fd.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
