"""Benchmark: WaveNet and DiffWave on the Free Spoken Digit Dataset, class-conditional.

    python bench/wavenet_fsdd.py --minutes 30 --threads 1

Both families use their `fsdd` preset (8 kHz, 1-second clips, the seeded random split,
conditioned on the digit). Reports:

- `judge_test_accuracy`: the frozen melcnn judge (genlab.judges.audio_judge, trained once on the
  training split, cached) on the test split.
- `wavenet_rtf_batch1`, `wavenet_rtf_batch16`: real-time factor of cached generation, seconds of
  audio generated per second of compute (all clips of the batch counted).
- `wavenet_cache_speedup_batch1`, `..._batch16`: time per generated sample of the naive
  recompute (a full pass over the receptive field, as it costs once the field is full) over
  that of the cache.
- `<family>_train_samples_per_s`: audio samples (crop x batch) per second of training, and
  `<family>_steps`: steps that fit the budget (each family gets --minutes).
- `<family>_judge_accuracy`: the share of --per-class samples of each digit the judge assigns
  to the digit asked for; `<family>_fd`: Frechet distance in the judge's features to training
  clips; `judge_accuracy_real`, `fd_real`: the same for the held-out real clips.
- `diffwave_rtf_batch16`: real-time factor of DDIM sampling (the preset's 50 steps).

Published context: DiffWave (Kong et al. 2021) reports its class-conditional SC09 digits
(16 kHz) far more often recognised than WaveNet's, and orders of magnitude faster generation.
Targets of issue 12: cache >= 50x faster than naive; class-conditional judge accuracy >= 0.8
for the better family after 30 minutes. Prints key=value lines last.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

import genlab
from genlab.config import apply_overrides
from genlab.judges import audio_judge
from genlab.metrics.audio import audio_quality
from genlab.run import build_model, load_data
from genlab.runconfig import default_config

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GENLAB_SHARED_DATA") or ROOT.parent / "shared" / "data")
DEFAULT_DATA = SHARED / "fsdd" / "recordings"


def step_seconds(family: str, data, overrides: list[str], steps: int = 6) -> float:
    """Seconds per optimizer step of the preset's model on real batches (after one warm-up)."""
    cfg = apply_overrides(default_config(family, "fsdd"), overrides)
    torch.manual_seed(0)
    model = build_model(family, cfg.model, data.info).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    n = len(data.splits["train"])
    times = []
    for i in range(steps + 1):
        batch = data.batch("train", torch.randint(n, (cfg.train.batch_size,)))
        t0 = time.perf_counter()
        loss = model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


@torch.inference_mode()
def wavenet_speed(model, batch: int, seconds: float) -> tuple[float, float]:
    """(real-time factor of cached generation, cache speed-up over the naive recompute)."""
    rate = model.info.record.sample_rate
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    model.sample(batch, generator=g, class_label=0, seconds=seconds)
    cached = time.perf_counter() - t0
    steps = round(seconds * rate)
    rf = model.cfg.receptive_field
    window = torch.randint(256, (batch, rf))
    cond = model.condition(torch.zeros(batch, dtype=torch.long), None)
    model.logits(window, cond)  # warm-up
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        model.logits(window, cond)[:, :, -1].argmax(-1)
    naive_per_step = (time.perf_counter() - t0) / reps
    return batch * seconds / cached, naive_per_step / (cached / steps)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=30.0, help="training budget per family")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--per-class", type=int, default=10, help="samples per digit judged")
    p.add_argument("--judge-steps", type=int, default=1500)
    p.add_argument("--speed-seconds", type=float, default=0.25, help="audio per speed test")
    p.add_argument("--families", default="wavenet,diffwave")
    p.add_argument("--sample-seconds", type=float, default=1.0, help="length of judged samples")
    p.add_argument("--speed-only", action="store_true", help="wavenet speed, untrained, only")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.speed_only:  # the cost of generation does not depend on the weights
        cfg = default_config("wavenet", "fsdd")
        info = load_data(cfg, a.data).info
        model = build_model("wavenet", cfg.model, info).eval()
        for b in (1, 16):
            rtf, speedup = wavenet_speed(model, b, a.speed_seconds)
            print(f"wavenet_rtf_batch{b}={rtf:.4f}")
            print(f"wavenet_cache_speedup_batch{b}={speedup:.1f}")
        return 0
    if not Path(a.data).exists():
        print(f"no FSDD at {a.data}; give --data", file=sys.stderr)
        return 2
    out: dict[str, object] = Figures(minutes=a.minutes, threads=a.threads)
    t0 = time.perf_counter()
    data_mu = load_data(default_config("wavenet", "fsdd"), a.data)
    judge = audio_judge(data_mu, steps=a.judge_steps, progress=False)
    out["judge_test_accuracy"] = round(judge.test_accuracy, 4)
    out["judge_seconds"] = round(time.perf_counter() - t0, 1)
    for family in a.families.split(","):
        run_cfg = default_config(family, "fsdd")
        data = load_data(run_cfg, a.data)
        sec = step_seconds(family, data, [])
        crop = getattr(run_cfg.model, "crop", 0) or data.info.shape[0]
        out[f"{family}_train_samples_per_s"] = round(run_cfg.train.batch_size * crop / sec)
        steps = max(10, int(a.minutes * 60 / sec))
        out[f"{family}_steps"] = steps
        with tempfile.TemporaryDirectory() as tmp:
            t1 = time.perf_counter()
            run = genlab.train(
                family, a.data, Path(tmp) / family, preset="fsdd", steps=steps, quiet=True,
                overrides=[f"train.warmup_steps={min(100, steps // 10)}"],
            )  # fmt: skip
            out[f"{family}_train_minutes"] = round((time.perf_counter() - t1) / 60, 2)
            model = genlab.load(run)
        if family == "wavenet":
            for b in (1, 16):
                rtf, speedup = wavenet_speed(model, b, a.speed_seconds)
                out[f"wavenet_rtf_batch{b}"] = round(rtf, 4)
                out[f"wavenet_cache_speedup_batch{b}"] = round(speedup, 1)
        else:
            t1 = time.perf_counter()
            with torch.no_grad():
                model.sample(16, generator=torch.Generator().manual_seed(0), class_label=0)
            out[f"{family}_rtf_batch16"] = round(16 * 1.0 / (time.perf_counter() - t1), 4)
        q = audio_quality(
            model, data, judge, per_class=a.per_class, options={"seconds": a.sample_seconds}
        )
        out[f"{family}_judge_accuracy"] = round(q["judge_accuracy"], 4)
        out[f"{family}_fd"] = round(q["fd"], 4)
        out["judge_accuracy_real"] = round(q["judge_accuracy_real"], 4)
        out["fd_real"] = round(q["fd_real"], 4)
    for k, v in out.items():
        print(f"{k}={v}")
    return 0


class Figures(dict):
    """The bench's figures; each is also shown on stderr as soon as it is measured."""

    def __setitem__(self, key: str, value: object) -> None:
        print(f"  {key}: {value}", file=sys.stderr, flush=True)
        super().__setitem__(key, value)


if __name__ == "__main__":
    sys.exit(main())
