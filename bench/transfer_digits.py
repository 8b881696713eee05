"""Benchmark: transfer learning from SimCLR to a classifier with few labels.

    python bench/transfer_digits.py                       # built-in digits, minutes on one core
    python bench/transfer_digits.py --data ../shared/data/mnist --pretrain-steps 2000

Pretrains `simclr` (lightly's 32-64-128-128 backbone) on the data without its labels, then
trains a `cnn` with the same encoder layout (kernel 3, batch norm) on N labelled examples per
class (`data.labels_per_class`), from scratch and fine-tuned from the SimCLR encoder
(`--init-from`, pretrained layers at train.lr x --lr-scale), with the same steps and seed.
Reports the test accuracy of both for each N. Prints key=value lines last.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

import genlab
from genlab.metrics.evaluate import evaluate
from genlab.run import load_data, read_run

CNN = ["model.channels=[32,64,128,128]", "model.kernel_size=3", "model.batch_norm=true"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="digits")
    p.add_argument("--pretrain-steps", type=int, default=600)
    p.add_argument("--steps", type=int, default=300, help="classifier steps of each arm")
    p.add_argument("--labels", default="10,100,0", help="labels per class (0: all)")
    p.add_argument("--lr-scale", type=float, default=0.1, help="train.pretrained_lr_scale")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        tmp = Path(tmp)
        pre = genlab.train(
            "simclr",
            a.data,
            tmp / "simclr",
            preset="mnist",
            overrides=["train.eval_every=200", "train.eval_batches=2"],
            steps=a.pretrain_steps,
            quiet=True,
        )
        for n in [int(v) for v in a.labels.split(",")]:
            over = [*CNN, "model.hidden=[128]", f"data.labels_per_class={n}", "train.eval_every=50"]
            accs = {}
            for arm, init in (("scratch", None), ("simclr", pre)):
                extra = [f"train.pretrained_lr_scale={a.lr_scale}"] if init else []
                run = genlab.train(
                    "cnn",
                    a.data,
                    tmp / f"cnn-{arm}-{n}",
                    overrides=[*over, *extra],
                    steps=a.steps,
                    init_from=init,
                    quiet=True,
                )
                _, cfg, info = read_run(run)
                data = load_data(cfg, a.data)
                accs[arm] = evaluate(genlab.load(run), data, "test", progress=False)["accuracy"]
                accs["train_examples"] = info.n_train
            rows.append((n, accs))
            print(f"labels_per_class={n or 'all'}: {accs}", flush=True)
    print(f"data={a.data}")
    print(f"pretrain_steps={a.pretrain_steps}")
    print(f"steps={a.steps}")
    for n, accs in rows:
        tag = n or "all"
        print(f"scratch_acc_{tag}={accs['scratch']:.4f}")
        print(f"simclr_acc_{tag}={accs['simclr']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
