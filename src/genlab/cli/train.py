"""`genlab train FAMILY`: train a family into a run directory (or resume one)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from genlab.cli.parser import add_device, common
from genlab.errors import UsageError

EPILOG = """examples:
  genlab train vae --data digits --out runs/vae-digits --steps 2000
  genlab train vae --data mnist-sample --out runs/demo --preset demo
  genlab train mlp --data table.csv --out runs/mlp --set data.target=price \\
      --set model.hidden=[64,64]
  genlab train cnn --data path/to/mnist --out runs/lenet --epochs 5 --set train.lr=2e-3
  genlab train vae --out runs/demo --resume --steps 3000      # continue up to 3000 steps
  genlab train gpt --data input.txt --out runs/shakespeare --preset shakespeare-cpu
  genlab train rnn --data texts/ --out runs/lstm --set model.cell=gru --set data.tokenizer=bpe
  genlab train gpt --init-from runs/shakespeare --data other.txt --out runs/tuned \\
      --set train.freeze_layers=2 --steps 300
  torchrun --nproc_per_node=2 -m genlab train vae --data digits --out runs/ddp
"""


def add_parser(sub: Any) -> None:
    t = sub.add_parser(
        "train",
        help="train a family into a run directory",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common()],
    )
    t.add_argument("family", help="model family (see 'genlab list')")
    t.add_argument(
        "--data",
        help="a built-in data set or a path to data of any kind ('genlab list' shows both); "
        "defaults to the run's data with --resume",
    )
    t.add_argument("--out", help="run directory to create (or resume); required")
    t.add_argument("--preset", help="named configuration of the family (see 'genlab list')")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. train.lr=3e-4 or model.channels=[32,64]; repeatable",
    )
    n = t.add_mutually_exclusive_group()
    n.add_argument("--steps", type=int, help="total optimizer steps of the run")
    n.add_argument("--epochs", type=float, help="train for this many passes over the data")
    t.add_argument("--seed", type=int, help="training seed (default 0)")
    # default None: the run's train.device (auto unless set), which --resume keeps
    add_device(t, what="train", default=None)
    t.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its latest checkpoint"
    )
    t.add_argument(
        "--init-from",
        metavar="RUN_DIR",
        help="fine-tune: start from this run's weights, model settings and tokenizer",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument(
        "--tracker",
        choices=("mlflow", "tensorboard"),
        help="also log settings, metrics and files to MLflow (RUN/mlflow.db) or TensorBoard "
        "(RUN/tensorboard); needs the tracking extra",
    )
    t.add_argument(
        "--print-config",
        action="store_true",
        help="print the full configuration (after preset and --set) and exit",
    )


def run(a: argparse.Namespace) -> int:
    from genlab.config import dumps
    from genlab.hardware import resolve_device
    from genlab.run import resolve_config, train

    if a.device is not None:  # a device this machine lacks stops here, before any data loads
        resolve_device(a.device)
    if a.print_config:  # the configuration train() would use: --steps etc. are settings too
        if a.resume and not a.out:
            raise UsageError("--resume needs --out RUN_DIR, the run directory to continue")
        _, cfg = resolve_config(
            a.family,
            a.out or "",
            preset=a.preset,
            overrides=a.overrides,
            steps=a.steps,
            epochs=a.epochs,
            seed=a.seed,
            device=a.device,
            resume=a.resume,
            init_from=a.init_from,
        )
        if cfg.train.epochs > 0:  # the step count --epochs gives depends on the data's size
            _resolve_epochs(cfg, a.data, a.out if a.resume else None)
        print(dumps(cfg))
        return 0
    if not a.out:
        raise UsageError("train needs --out RUN_DIR, the run directory to create or resume")
    if not a.data and not a.resume:
        raise UsageError("train needs --data (a built-in name or a path); see 'genlab list'")
    run_dir = train(
        a.family,
        a.data or "",
        a.out,
        preset=a.preset,
        overrides=a.overrides,
        steps=a.steps,
        epochs=a.epochs,
        seed=a.seed,
        device=a.device,
        resume=a.resume,
        quiet=a.quiet,
        init_from=a.init_from,
        tracker=a.tracker,
    )
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary
        print_summary(Path(run_dir))
    return 0


def _resolve_epochs(cfg: Any, data: str | None, resumed: str | None) -> None:
    """Set train.steps to the count train.epochs gives on the data (read to count its training
    examples), and say how it was reached on stderr; without data, say that it cannot be."""
    import sys

    from genlab.run import epoch_steps, load_data, read_run

    spec = data or (read_run(resumed)[2].source if resumed else None)
    if not spec:
        print(
            f"genlab train: train.steps comes from --epochs {cfg.train.epochs:g} and the size of "
            "the data: give --data to see it",
            file=sys.stderr,
        )
        return
    n = len(load_data(cfg, spec, run_dir=resumed).splits["train"])
    cfg.train.steps = epoch_steps(cfg.train.epochs, n, cfg.train.batch_size)
    print(
        f"genlab train: --epochs {cfg.train.epochs:g} = {cfg.train.steps} steps ({n} training "
        f"examples // batch {cfg.train.batch_size} = {n // cfg.train.batch_size} steps an epoch)",
        file=sys.stderr,
    )


def print_summary(run: Path) -> None:
    """The run's step and its selection figure (the family's `selection`), from the trainer
    state of its latest checkpoint."""
    from genlab.io.checkpoint import checkpoint_dir
    from genlab.io.manifest import read_json_file

    ckpt = checkpoint_dir(run, "latest")
    if ckpt is None:
        return
    s = read_json_file(ckpt / "trainer.json", "trainer state")
    key, mode, last = s.get("best_key", "loss"), s.get("best_mode", "min"), s.get("last_val")
    if s.get("best_step", -1) >= 0 and last is not None:
        line = f"trained {run}: step {s['step']}, validation {key} {last:.4f}"
        if mode == "last":  # e.g. an adversarial loss, which ranks no checkpoint
            line += " (no figure ranks its checkpoints: the latest counts as best)"
        else:
            line += f" (best {s['best_val']:.4f} at step {s['best_step']}, {mode}imum)"
        print(line)
    from genlab.cli.runs import run_family
    from genlab.data.kinds import kind_of
    from genlab.io.manifest import read_manifest
    from genlab.registry import get_family
    from genlab.run import read_run

    info = read_run(run)[2]
    for note in kind_of(info).notes(info):  # e.g. augmentation, a table's missing values
        print(f"data: {note}")

    for choice in read_manifest(run).get("choices", []):  # settings chosen from the data
        print(choice)

    cls = get_family(run_family(run))[0]
    if cls.discriminative:  # nothing to sample: predict or score
        print(f"next: genlab predict {run} --data FILE_OR_FOLDER   |   genlab eval {run}")
    elif not cls.generates():  # a representation (simclr): only eval is next
        print(f"next: genlab eval {run}")
    else:
        print(f"next: genlab sample {run}   |   genlab eval {run}")
