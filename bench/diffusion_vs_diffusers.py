"""Benchmark: genlab's `ddpm` (`mnist` preset) against diffusers on full MNIST, same machine,
same data, same wall-clock training budget.

    pip install diffusers            # benchmark-only; genlab itself never imports it
    python bench/diffusion_vs_diffusers.py --minutes 30

The diffusers side is what users pick today: `UNet2DModel` with block_out_channels (32, 64, 64),
one residual block per level and attention at the lowest resolution (1.1M parameters), a
`DDPMScheduler` (linear betas, 1000 steps, epsilon prediction) for training and a
`DDIMScheduler` for 50-step sampling (eta 0). It is trained with genlab's own recipe (AdamW,
the `mnist` preset's learning rate, warm-up, cosine decay, gradient clipping, EMA and batch 64,
sized so the schedule ends with the budget), so the comparison is of the networks and the
sampling code, not of the optimizer. Both are judged by the same Frechet distance to the 10,000
test images in the features of genlab's frozen `cnn` (see bench/diffusion_mnist.py).

Prints `genlab_*` and `diffusers_*` key=value lines last, and their ratios.
"""

from __future__ import annotations

import argparse
import copy
import resource
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import genlab
from genlab.run import load_data
from genlab.runconfig import default_config
from genlab.training.optim import build_optimizer, lr_at

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diffusion_mnist import DEFAULT_DATA, ROOT, Judge, calibrate, timed_samples  # noqa: E402


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


def train_diffusers(data, minutes: float, calibration_steps: int, seed: int = 0):
    """The diffusers U-Net trained with genlab's mnist recipe for `minutes`: (EMA model, step
    seconds, steps, training seconds)."""
    from diffusers import DDPMScheduler

    tc = default_config("ddpm", "mnist").train
    torch.manual_seed(seed)
    unet = diffusers_unet()
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    opt = build_optimizer(unet, tc)
    ema = AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(tc.ema_decay), use_buffers=True)
    train = data.splits["train"]
    g = torch.Generator().manual_seed(seed)

    def step(i: int, total: int) -> None:
        idx = torch.randint(0, len(train), (tc.batch_size,), generator=g)
        x0 = data.batch("train", idx)["x"] * 2 - 1
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, 1000, (len(x0),), generator=g)
        loss = F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), tc.grad_clip)
        for group in opt.param_groups:
            group["lr"] = lr_at(i, tc, total)
        opt.step()
        ema.update_parameters(unet)

    # calibrate on a throw-away copy of the state, then train for the budget from the start
    state = copy.deepcopy((unet.state_dict(), opt.state_dict()))
    for i in range(3):
        step(i, 1000)
    t0 = time.perf_counter()
    for i in range(calibration_steps):
        step(i, 1000)
    step_s = (time.perf_counter() - t0) / calibration_steps
    unet.load_state_dict(state[0])
    opt.load_state_dict(state[1])
    ema = AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(tc.ema_decay), use_buffers=True)
    total = max(50, int(minutes * 60 / step_s * 0.95))
    print(f"diffusers: {step_s * 1000:.0f} ms/step -> {total} steps", file=sys.stderr)
    unet.train()
    t0 = time.perf_counter()
    for i in range(total):
        step(i, total)
    return ema.module.eval(), step_s, total, time.perf_counter() - t0


@torch.no_grad()
def diffusers_sample(unet, n: int, generator: torch.Generator, steps: int = 50) -> torch.Tensor:
    """n images in [0, 1] by diffusers' DDIMScheduler (eta 0, its default settings)."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=1000)
    scheduler.set_timesteps(steps)
    x = torch.randn((n, 1, 28, 28), generator=generator)
    for t in scheduler.timesteps:
        x = scheduler.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
    return ((x + 1) / 2).clamp(0, 1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="training budget of EACH model")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-diffusion-vs-diffusers"))
    p.add_argument("--fd-samples", type=int, default=1000)
    p.add_argument("--sample-batch", type=int, default=100)
    p.add_argument("--calibration-steps", type=int, default=20)
    a = p.parse_args()
    try:
        import diffusers
    except ImportError:
        print(
            "this benchmark compares with diffusers, which is not installed: run "
            "'pip install diffusers' (a benchmark-only dependency; genlab does not need it)",
            file=sys.stderr,
        )
        return 2
    if not Path(a.data).exists():
        print(f"MNIST not found at {a.data}; pass --data DIR with the IDX files", file=sys.stderr)
        return 1

    # genlab: the mnist preset, sized to the budget
    step_s = calibrate("ddpm", a.data, "mnist", [], a.calibration_steps)
    steps = max(50, int(a.minutes * 60 / step_s * 0.95))
    print(f"genlab: {step_s * 1000:.0f} ms/step -> {steps} steps", file=sys.stderr)
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    genlab.train("ddpm", a.data, out, preset="mnist", steps=steps, quiet=True)
    g_train_s = time.perf_counter() - t0
    model = genlab.load(out)
    data = load_data(default_config("ddpm", "mnist"), a.data)

    unet, d_step_s, d_steps, d_train_s = train_diffusers(data, a.minutes, a.calibration_steps)

    judge = Judge(a.data, data)
    n, b = a.fd_samples, a.sample_batch
    g_images, g_ms = timed_samples(
        lambda m, gen: model.sample(m, generator=gen, sampler="ddim", steps=50, eta=0.0), n, b
    )
    d_images, d_ms = timed_samples(lambda m, gen: diffusers_sample(unet, m, gen), n, b)
    g_fd, d_fd = judge.fd(g_images), judge.fd(d_images)

    print(f"diffusers_version={diffusers.__version__}")
    print(f"fd_samples={n}")
    print(f"fd_real={judge.fd_real(n):.3f}")
    print(f"genlab_parameters={sum(p.numel() for p in model.parameters())}")
    print(f"genlab_steps={steps}")
    print(f"genlab_train_seconds={g_train_s:.1f}")
    print(f"genlab_train_step_ms={step_s * 1000:.1f}")
    print(f"genlab_sample_ms_per_image_ddim_50={g_ms:.1f}")
    print(f"genlab_fd_ddim_50={g_fd:.3f}")
    print(f"diffusers_parameters={sum(p.numel() for p in unet.parameters())}")
    print(f"diffusers_steps={d_steps}")
    print(f"diffusers_train_seconds={d_train_s:.1f}")
    print(f"diffusers_train_step_ms={d_step_s * 1000:.1f}")
    print(f"diffusers_sample_ms_per_image_ddim_50={d_ms:.1f}")
    print(f"diffusers_fd_ddim_50={d_fd:.3f}")
    print(f"sample_time_ratio_genlab_over_diffusers={g_ms / d_ms:.3f}")
    print(f"fd_ratio_genlab_over_diffusers={g_fd / d_fd:.3f}")
    print(f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
