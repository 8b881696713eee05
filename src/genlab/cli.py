"""genlab's command line: list | train | sample | eval | bench.

Exit status: 0 success, 1 data or run-time error, 2 usage or configuration error, 130 stopped
by Ctrl-C (after saving a checkpoint). Errors print one line; --debug shows the traceback.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import traceback
from pathlib import Path

import torch

from genlab._version import __version__
from genlab.errors import GenlabError, UsageError

EPILOG_TRAIN = """examples:
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

EPILOG_SAMPLE = """examples:
  genlab sample runs/demo -n 64 --out samples.png --seed 1
  genlab sample runs/demo -n 8 --interpolate 10 --out interpolation.png
  genlab sample runs/demo -n 16 --reconstruct --out reconstructions.png
  genlab sample runs/demo -n 1000 --out samples.npy          # the raw array, (N, C, H, W)
  genlab sample runs/shakespeare --prompt "ROMEO:" --max-new-tokens 500 --temperature 0.8 \\
      --top-k 50 --top-p 0.95 --seed 1 --out romeo.txt          # text streams to stdout
  genlab sample runs/ddpm -n 64 --sampler ddim --steps 50 --eta 0 --seed 1
  genlab sample runs/ddpm-cond -n 16 --class 3 --guidance-scale 3.0
  genlab sample runs/ddpm --inpaint digit.png --mask left-half --out filled.png
  genlab sample runs/gan -n 8 --interpolate 8 --out interpolation.png
  genlab sample runs/gan-cond -n 64 --class 7
  genlab sample runs/pixelcnn --complete digit.png --rows 14 -n 8 --out completed.png
"""

EPILOG_EVAL = """examples:
  genlab eval runs/demo                        # test split of the data the run was trained on
  genlab eval runs/demo --iw-samples 1000 --json nll.json
  genlab eval runs/demo --data other-digits/ --anomaly-scores --json scores.json
  genlab eval runs/gan --samples 5000 --seed 1     # sample quality next to real-vs-real
"""

EPILOG_BENCH = """examples:
  genlab bench --data mnist-sample --families vae,gan,pixelcnn --budget-minutes 5 --out bench/
  genlab bench --data path/to/mnist --preset mnist --budget-minutes 30 --out runs/bench \\
      --set gan:model.loss=hinge --set train.batch_size=64
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genlab",
        description="Train, sample and evaluate generative neural networks with one loop.",
    )
    p.add_argument("--version", action="version", version=f"genlab {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    # --debug is also accepted after the verb (SUPPRESS keeps a --debug given before it)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors"
    )

    sub.add_parser("list", help="families, presets and built-in datasets", parents=[common])

    fmt = argparse.RawDescriptionHelpFormatter
    t = sub.add_parser(
        "train",
        help="train a family into a run directory",
        epilog=EPILOG_TRAIN,
        formatter_class=fmt,
        parents=[common],
    )
    t.add_argument("family", help="model family (see 'genlab list')")
    t.add_argument(
        "--data",
        help="built-in name (digits, mnist-sample) or a path to IDX files, "
        "an image folder, a CSV file, a text file or a folder of .txt files; defaults to the "
        "run's data with --resume",
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
    t.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
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
        "--print-config",
        action="store_true",
        help="print the full configuration (after preset and --set) and exit",
    )

    s = sub.add_parser(
        "sample",
        help="generate from a trained run",
        epilog=EPILOG_SAMPLE,
        formatter_class=fmt,
        parents=[common],
    )
    s.add_argument("run_dir", help="run directory written by 'genlab train'")
    s.add_argument(
        "-n",
        type=int,
        help="number of samples, default 64 (rows with --interpolate; pairs with --reconstruct; "
        "completions with --inpaint, default 1)",
    )
    s.add_argument(
        "--out",
        help="output file: .png grid or .npy array (default RUN_DIR/samples/sample-seedS.png)",
    )
    s.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    # options passed on to the family's sample(); a family that does not take one says so
    o = s.add_argument_group(
        "sampling options (each family takes those its sample() accepts; see 'genlab list')"
    )
    o.add_argument(
        "--temperature",
        type=float,
        help="latent-noise scale (vae) or softmax temperature (autoregressive families)",
    )
    o.add_argument(
        "--class", dest="class_label", type=int, metavar="K", help="class to generate (conditional)"
    )
    o.add_argument("--prompt", help="text to continue (language models)")
    o.add_argument(
        "--max-new-tokens", type=int, metavar="N", help="tokens to generate (default 200)"
    )
    o.add_argument("--top-k", type=int, metavar="K", help="draw only among the K likeliest tokens")
    o.add_argument(
        "--top-p", type=float, metavar="P", help="draw from the smallest set of mass >= P (nucleus)"
    )
    o.add_argument("--sampler", choices=["ddpm", "ddim"], help="diffusion sampler")
    o.add_argument(
        "--steps", type=int, metavar="N", help="diffusion sampling steps (spread over the T steps)"
    )
    o.add_argument("--eta", type=float, help="DDIM noise: 0 deterministic, 1 ancestral")
    o.add_argument(
        "--guidance-scale",
        type=float,
        metavar="W",
        help="classifier-free guidance: 1 conditional, 0 unconditional, >1 stronger",
    )
    i = s.add_argument_group("inpainting (diffusion)")
    i.add_argument("--inpaint", metavar="IMAGE", help="PNG/JPEG image to complete")
    i.add_argument(
        "--mask",
        help="region to fill: a PNG of the image's size (white = fill) or left-half, "
        "right-half, top-half, bottom-half, center",
    )
    i.add_argument(
        "--resample-rounds",
        type=int,
        default=5,
        metavar="R",
        help="RePaint resampling rounds per step (default 5; 1 = plain replacement)",
    )
    s.add_argument(
        "--interpolate",
        type=int,
        metavar="STEPS",
        help="write -n latent interpolations of STEPS images between random points",
    )
    s.add_argument(
        "--reconstruct",
        action="store_true",
        help="write -n test images (odd rows) above their reconstructions (even rows)",
    )
    s.add_argument("--data", help="data for --reconstruct (default: the run's own)")
    c = s.add_argument_group("completion (autoregressive families: pixelcnn)")
    c.add_argument(
        "--complete",
        metavar="IMAGE",
        help="PNG/JPEG image of the run's size: keep its top --rows rows, generate the rest "
        "pixel by pixel; writes the image then -n completions (default 8)",
    )
    c.add_argument("--rows", type=int, help="rows of --complete's image to keep (default half)")
    _checkpoint_args(s)

    e = sub.add_parser(
        "eval",
        help="metrics of a trained run on held-out data",
        epilog=EPILOG_EVAL,
        formatter_class=fmt,
        parents=[common],
    )
    e.add_argument("run_dir", help="run directory written by 'genlab train'")
    e.add_argument("--data", help="data to evaluate on (default: the run's own data)")
    e.add_argument(
        "--split",
        choices=["test", "val", "train"],
        help="split to evaluate (default test; val when the data has no test split)",
    )
    e.add_argument("--json", help="write the metrics here (default RUN_DIR/eval-SPLIT.json)")
    e.add_argument(
        "--iw-samples",
        type=int,
        help="importance samples for likelihood estimates (VAE; default from config)",
    )
    e.add_argument(
        "--bound-timesteps",
        type=int,
        metavar="K",
        help="diffusion bound: K timesteps drawn per image (Monte-Carlo, default from config) "
        "or 0 for the exact sum over all timesteps",
    )
    e.add_argument(
        "--anomaly-scores",
        action="store_true",
        help="include per-example anomaly scores (negative ELBO) in the JSON",
    )
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--seed", type=int, default=0, help="seed of evaluation randomness")
    e.add_argument(
        "--samples",
        type=int,
        metavar="N",
        help="image families: sample-quality figures on N generated images, each next to the "
        "real-vs-real baseline (default 1000 for families without a likelihood, else off)",
    )
    e.add_argument(
        "--feature-steps",
        type=int,
        default=2000,
        metavar="N",
        help="training steps of the frozen cnn whose features judge samples (cached; default 2000)",
    )
    _checkpoint_args(e)

    b = sub.add_parser(
        "bench",
        help="train, sample and evaluate several families side by side on the same data",
        epilog=EPILOG_BENCH,
        formatter_class=fmt,
        parents=[common],
    )
    b.add_argument("--data", required=True, help="image data: a built-in name or a path")
    b.add_argument("--out", required=True, help="folder for runs/, comparison.md/.json, PNGs")
    b.add_argument(
        "--families",
        default="vae,gan,pixelcnn",
        help="comma-separated generative families (default vae,gan,pixelcnn)",
    )
    b.add_argument(
        "--budget-minutes",
        type=float,
        default=10.0,
        metavar="M",
        help="wall-clock training budget of each family (default 10)",
    )
    b.add_argument("--samples", type=int, default=1000, help="generated images scored per family")
    b.add_argument("--seed", type=int, default=0, help="training and sampling seed (default 0)")
    b.add_argument("--preset", help="use each family's preset of this name where it has one")
    b.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="[FAMILY:]KEY=VALUE",
        help="override a setting for every family, or for one with a FAMILY: prefix",
    )
    b.add_argument(
        "--feature-steps", type=int, default=2000, metavar="N", help="as for genlab eval"
    )
    b.add_argument(
        "--calibration-steps",
        type=int,
        default=10,
        metavar="K",
        help="timed steps that size each family's run to the budget (default 10)",
    )
    b.add_argument(
        "--nll-examples",
        type=int,
        default=0,
        metavar="N",
        help="likelihoods on the first N test images only (default 0: all)",
    )
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _checkpoint_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--which",
        default="best",
        help="checkpoint to use: best validation loss (default), latest, or step-N (a kept one)",
    )
    p.add_argument("--no-ema", action="store_true", help="use raw weights even if EMA was kept")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")


def cmd_list(_: argparse.Namespace) -> int:
    from genlab.data import BUILTINS
    from genlab.registry import FAMILIES

    print("families:")
    for name, (cls, presets) in FAMILIES.items():
        kind = "discriminative" if cls.discriminative else "generative"
        extra = f" (presets: {', '.join(presets)})" if presets else ""
        print(f"  {name:<10} {kind:<15} {cls.description}{extra}")
    print("built-in datasets:")
    for name, desc in BUILTINS.items():
        print(f"  {name:<13} {desc}")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from genlab.config import dumps
    from genlab.run import resolve_config, train

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
        print(dumps(cfg))
        return 0
    if not a.out:
        raise UsageError("train needs --out RUN_DIR, the run directory to create or resume")
    if not a.data and not a.resume:
        raise UsageError("train needs --data (a built-in name or a path); see 'genlab list'")
    run = train(
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
    )
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary
        _print_summary(Path(run))
    return 0


def _print_summary(run: Path) -> None:
    """The run's step and its selection figure (the family's `selection`), from the trainer
    state of its latest checkpoint."""
    from genlab.io.checkpoint import checkpoint_dir, read_json

    ckpt = checkpoint_dir(run, "latest")
    if ckpt is None:
        return
    s = read_json(ckpt / "trainer.json", "trainer state")
    key, mode, last = s.get("best_key", "loss"), s.get("best_mode", "min"), s.get("last_val")
    if s.get("best_step", -1) >= 0 and last is not None:
        line = f"trained {run}: step {s['step']}, validation {key} {last:.4f}"
        if mode == "last":  # e.g. an adversarial loss, which ranks no checkpoint
            line += " (no figure ranks its checkpoints: the latest counts as best)"
        else:
            line += f" (best {s['best_val']:.4f} at step {s['best_step']}, {mode}imum)"
        print(line)
    print(f"next: genlab sample {run}   |   genlab eval {run}")


SAMPLE_OPTIONS = {
    "temperature": "--temperature",
    "class_label": "--class",
    "sampler": "--sampler",
    "steps": "--steps",
    "eta": "--eta",
    "guidance_scale": "--guidance-scale",
    "prompt": "--prompt",
    "max_new_tokens": "--max-new-tokens",
    "top_k": "--top-k",
    "top_p": "--top-p",
}
"""sample() keyword -> command-line flag, for the options the CLI passes through."""


def sample_options(model, a: argparse.Namespace) -> dict:
    """The sampling options the user gave, checked against what the family's sample() takes."""
    accepted = inspect.signature(model.sample).parameters
    given = {k: getattr(a, k) for k in SAMPLE_OPTIONS if getattr(a, k, None) is not None}
    if any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        return given
    for key in given:
        if key not in accepted:
            takes = [flag for k, flag in SAMPLE_OPTIONS.items() if k in accepted]
            raise UsageError(
                f"'{model.family}' sampling does not take {SAMPLE_OPTIONS[key]}; "
                f"it takes {', '.join(takes) or 'no options'}"
            )
    return given


def cmd_sample(a: argparse.Namespace) -> int:
    import numpy as np

    from genlab.io.images import save_grid
    from genlab.run import load, load_data, read_run
    from genlab.sampling import interpolate

    model = load(a.run_dir, which=a.which, ema=not a.no_ema, device=a.device)
    if a.n is None and _streams_text(model):
        a.n = 1
    if a.n is None:
        a.n = 1 if a.inpaint else 8 if a.complete else 64
    if a.n < 1:
        raise UsageError(f"-n must be at least 1; got {a.n}")
    g = torch.Generator(device=a.device).manual_seed(a.seed)
    options = sample_options(model, a)
    if _streams_text(model):
        return _sample_text(model, a, g, options)
    if a.inpaint or a.mask:
        return _sample_inpaint(model, a, g, options)
    nrow = None
    with torch.no_grad():
        if a.interpolate is not None:
            images, nrow = interpolate(model, a.n, a.interpolate, generator=g), a.interpolate
            default = f"interpolation-seed{a.seed}.png"
        elif a.complete:
            images, nrow = _completions(model, a, g, options), min(a.n + 1, 9)
            default = f"completion-seed{a.seed}.png"
        elif a.reconstruct:
            if not hasattr(model, "reconstruct"):
                raise UsageError(f"'{model.family}' cannot reconstruct its input")
            _, cfg, info = read_run(a.run_dir)
            data = load_data(cfg, a.data or info.source, run_dir=a.run_dir)
            split = data.splits["test"]
            idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(a.seed))
            x = data.batch("test", idx[: a.n])["x"].to(a.device)
            recon = model.reconstruct(x)
            nrow = min(a.n, 8)
            pairs = [
                t for i in range(0, len(x), nrow) for t in (x[i : i + nrow], recon[i : i + nrow])
            ]
            images = torch.cat(pairs)
            default = f"reconstruction-seed{a.seed}.png"
        else:
            images = model.sample(a.n, generator=g, **options)
            default = f"sample-seed{a.seed}.png"
    out = Path(a.out) if a.out else Path(a.run_dir) / "samples" / default
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, images.cpu().numpy())
    elif out.suffix == ".png":
        save_grid(images, out, nrow=nrow)
    else:
        raise UsageError(f"--out must end in .png or .npy; got {out.name}")
    print(f"wrote {out} ({len(images)} images from {model.checkpoint})")
    return 0


def _streams_text(model) -> bool:
    """Whether the family's samples are text streamed as it is generated (language models)."""
    return "stream" in inspect.signature(model.sample).parameters


def _sample_text(model, a: argparse.Namespace, g: torch.Generator, options: dict) -> int:
    """Stream -n texts to stdout as they are generated; write them to --out (.txt) as well."""
    out = Path(a.out) if a.out else None
    if out is not None and out.suffix.lower() in (".png", ".npy"):
        raise UsageError(f"{model.family} samples are text; give --out a .txt file, not {out.name}")
    separator = "\n" + "-" * 40 + "\n"

    def write(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    texts = []
    for i in range(a.n):
        if i:
            write(separator)
        texts.append(model.sample(1, generator=g, stream=write, **options)[0])
    write("\n")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(separator.join(texts) + "\n", encoding="utf-8")
        print(f"wrote {out} ({a.n} text(s) from {model.checkpoint})", file=sys.stderr)
    return 0


def _completions(model, a: argparse.Namespace, g: torch.Generator, options: dict) -> torch.Tensor:
    """The image of --complete followed by -n completions of it below its top --rows rows."""
    from genlab.io.images import load_image

    if not hasattr(model, "complete"):
        raise UsageError(
            f"'{model.family}' cannot complete images; --complete needs an autoregressive image "
            "family such as pixelcnn"
        )
    x = load_image(a.complete, model.info.shape).to(a.device)  # (C, H, W) in [0, 1]
    rows = a.rows if a.rows is not None else model.info.shape[1] // 2
    filled = model.complete(x.expand(a.n, *x.shape).clone(), rows, generator=g, **options)
    return torch.cat([x.unsqueeze(0), filled])


def _sample_inpaint(model, a: argparse.Namespace, g: torch.Generator, options: dict) -> int:
    from genlab.inpaint import inpaint_file, save_inpainted

    if not (a.inpaint and a.mask):
        raise UsageError("inpainting needs both --inpaint IMAGE and --mask MASK")
    with torch.no_grad():
        images = inpaint_file(
            model, a.inpaint, a.mask, n=a.n, generator=g, rounds=a.resample_rounds, **options
        )
    out = Path(a.out) if a.out else Path(a.run_dir) / "samples" / f"inpaint-seed{a.seed}.png"
    paths = save_inpainted(images, out)
    shown = str(paths[0]) if len(paths) == 1 else f"{paths[0]} ... {paths[-1].name}"
    print(f"wrote {shown} ({len(images)} completions of {a.inpaint} from {model.checkpoint})")
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    from genlab.io.atomic import write_text_atomic
    from genlab.metrics.evaluate import evaluate
    from genlab.run import load, load_data, read_run

    model = load(a.run_dir, which=a.which, ema=not a.no_ema, device=a.device)
    _, cfg, info = read_run(a.run_dir)
    if a.iw_samples is not None and a.iw_samples < 1:
        raise UsageError(f"--iw-samples must be at least 1; got {a.iw_samples}")
    nll_options = {} if a.bound_timesteps is None else {"bound_timesteps": a.bound_timesteps}
    takes = inspect.signature(model.nll).parameters if hasattr(model, "nll") else {}
    for flag, key, given in (
        ("--iw-samples", "iw_samples", a.iw_samples),
        ("--bound-timesteps", "bound_timesteps", a.bound_timesteps),
    ):
        if given is not None and key not in takes:
            raise UsageError(f"'{model.family}' evaluation does not take {flag}")
    data = load_data(cfg, a.data or info.source, run_dir=a.run_dir)
    if a.split is None:  # e.g. a text corpus split 90/10 into train and validation only
        a.split = "test" if len(data.splits["test"]) or not len(data.splits["val"]) else "val"
    samples = a.samples
    if samples is None:  # a family with no likelihood is judged by its samples
        generative_image = not model.discriminative and data.info.kind == "image"
        has_likelihood = hasattr(model, "nll") or hasattr(model, "elbo")
        samples = 1000 if generative_image and not has_likelihood else 0
    if samples:  # the frozen judge of sample quality: trained once, then cached
        from genlab.judges import judge

        judge(data.info.source, steps=a.feature_steps, progress=sys.stderr.isatty())
    metrics = evaluate(
        model,
        data,
        a.split,
        batch_size=a.batch_size,
        seed=a.seed,
        iw_samples=a.iw_samples,
        nll_options=nll_options,
        anomaly_scores=a.anomaly_scores,
        progress=sys.stderr.isatty(),
        samples=samples,
        feature_steps=a.feature_steps,
    )
    metrics = {
        "run": str(a.run_dir),
        "checkpoint": model.checkpoint,
        "data": data.info.source,
        **metrics,
    }

    def show(v):
        return f"{v:.6g}" if isinstance(v, float) else f"{v}"

    for k, v in metrics.items():
        if k.endswith("_real") and k[: -len("_real")] in metrics:
            continue  # printed beside its figure
        if k == "anomaly_scores":
            s = torch.tensor(v)
            print(f"{k}: {len(v)} scores (median {s.median():.2f}, max {s.max():.2f}) in the JSON")
        elif f"{k}_real" in metrics:  # a sample-quality figure and its real-vs-real baseline
            print(f"{k}: {show(v)}   (real {a.split} vs train: {show(metrics[f'{k}_real'])})")
        else:
            print(f"{k}: {show(v)}")
    out = Path(a.json) if a.json else Path(a.run_dir) / f"eval-{a.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from genlab.bench import bench, parse_families

    comparison = bench(
        a.data,
        a.out,
        families=parse_families(a.families),
        budget_minutes=a.budget_minutes,
        samples=a.samples,
        seed=a.seed,
        preset=a.preset,
        overrides=a.overrides,
        feature_steps=a.feature_steps,
        calibration_steps=a.calibration_steps,
        nll_examples=a.nll_examples,
        quiet=a.quiet or not sys.stderr.isatty(),
    )
    print((Path(a.out) / "comparison.md").read_text())
    names = ", ".join(f"samples-{f}.png" for f in comparison["families"])
    print(f"wrote {a.out}/comparison.md, comparison.json, {names}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    verbs = {
        "list": cmd_list,
        "train": cmd_train,
        "sample": cmd_sample,
        "eval": cmd_eval,
        "bench": cmd_bench,
    }
    try:
        return verbs[args.verb](args)
    except GenlabError as e:
        if args.debug:
            traceback.print_exc()
        print(f"genlab {args.verb}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"genlab {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `genlab train ... --print-config | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
