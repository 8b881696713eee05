"""Benchmark: PixelCNN sampling with the column cache against the previous row-prefix sampler.

    python bench/pixelcnn_sampling.py [--batch 100] [--rounds 3] [--threads 1]

Both samplers run the same network (the `mnist` preset on 28x28 images, randomly initialised:
the cost of sampling does not depend on the weights) in one process, interleaved, under
torch.inference_mode with the same thread count. The prefix sampler is the algorithm genlab
used before (the vertical stack once per row, then the horizontal stack and head over the whole
row prefix for every pixel), rebuilt here from the model's public pieces; the cached sampler is
`model.sample`. Prints ms per image for each (median of --rounds) and the speed-up, last.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from genlab.data import DataInfo
from genlab.data.image import ImageRecord
from genlab.models.pixelcnn import PixelCNN
from genlab.run import build_model
from genlab.runconfig import default_config


def prefix_sample(model: PixelCNN, n: int, generator: torch.Generator) -> torch.Tensor:
    """The previous sampler: per pixel, a pass over the row prefix."""
    canvas = torch.zeros((n, *model.info.shape))
    conds = model._conds(None)
    _, _, height, width = canvas.shape
    for i in range(height):
        to_h = [t[:, :, i : i + 1] for t in model.vertical_inputs(canvas[:, :, : i + 1], conds)]
        for j in range(width):
            prefix = canvas[:, :, i : i + 1, : j + 1]
            logits = model.horizontal_logits(prefix, [t[..., : j + 1] for t in to_h], conds)
            canvas[:, :, i, j] = model._draw(logits[..., 0, j], 1.0, generator)
    return canvas


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=100, help="images per sampling call")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    info = DataInfo(source="bench", kind="image", shape=[1, 28, 28], record=ImageRecord(levels=2))
    model = build_model("pixelcnn", default_config("pixelcnn", "mnist").model, info).eval()
    times: dict[str, list[float]] = {"prefix": [], "cached": []}
    samplers = {
        "prefix": lambda g: prefix_sample(model, a.batch, g),
        "cached": lambda g: model.sample(a.batch, generator=g),
    }
    with torch.inference_mode():
        for r in range(a.rounds):
            for name, fn in samplers.items():
                t0 = time.perf_counter()
                fn(torch.Generator().manual_seed(r))
                times[name].append(1000 * (time.perf_counter() - t0) / a.batch)
                print(f"round {r} {name}: {times[name][-1]:.2f} ms/image", file=sys.stderr)
    prefix, cached = (statistics.median(times[k]) for k in ("prefix", "cached"))
    print(f"threads={a.threads}")
    print(f"batch={a.batch}")
    print(f"parameters={sum(p.numel() for p in model.parameters())}")
    print(f"sample_ms_per_image_prefix={prefix:.2f}")
    print(f"sample_ms_per_image_cached={cached:.2f}")
    print(f"sample_speedup_cached={prefix / cached:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
