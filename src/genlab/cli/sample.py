"""`genlab sample RUN`: generate from a trained run with its family's options.

The run's family is read first; its `SampleOptions` dataclass gives the sampling flags, and
each capability it has (a latent space, reconstruction, completion, inpainting: the Protocols
of `genlab.models.base`) adds the flags of that mode. Samples are written by the writer of the
run's data kind; a family that streams (text) prints as it generates.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.cli.parser import (
    add_checkpoint_args,
    add_device,
    add_flags,
    add_hidden_flags,
    flags_of,
    given,
    options_from,
    refuse_extras,
    run_parser,
)
from genlab.errors import UsageError
from genlab.models.base import Completes, Inpaints, LatentSpace, NoOptions, Reconstructs, Streams

EPILOG = """examples:
  genlab sample runs/demo -n 64 --out samples.png --seed 1
  genlab sample runs/demo -n 8 --interpolate 10 --out interpolation.png
  genlab sample runs/demo -n 16 --reconstruct --out reconstructions.png
  genlab sample runs/demo -n 1000 --out samples.npy          # the raw array, (N, C, H, W)
  genlab sample runs/shakespeare --prompt "ROMEO:" --max-new-tokens 500 --temperature 0.8 \\
      --top-k 50 --top-p 0.95 --seed 1 --out romeo.txt          # text streams to stdout
  genlab sample runs/ddpm -n 64 --sampler ddim --sample-steps 50 --eta 0 --seed 1
  genlab sample runs/ddpm-cond -n 16 --class 3 --guidance-scale 3.0
  genlab sample runs/ddpm --inpaint digit.png --mask left-half --out filled.png
  genlab sample runs/gan -n 8 --interpolate 8 --out interpolation.png
  genlab sample runs/gan-cond -n 64 --class 7
  genlab sample runs/pixelcnn --complete digit.png --rows 14 -n 8 --out completed.png
  genlab sample runs/chorales -n 4 --out chorale.mid      # MIDI + chorale-pianoroll.png
  genlab sample runs/chorales --prompt-midi opening.mid --out chorale.wav  # rendered audio
  genlab sample runs/wavenet --class 7 -n 8 --out digits.wav      # digits-000.wav ... + PNG
  genlab sample runs/wavenet --per-class -n 2 --bits 8 --out all.wav  # all-0.wav ... all-9.wav
"""

TEXT_SEPARATOR = "\n" + "-" * 40 + "\n"
"""Printed between two streamed samples."""


# modes: what a family can do besides sampling, by capability ---------------------------------
@dataclass(frozen=True)
class Interpolation:
    interpolate: int | None = field(default=None, metadata={"metavar": "STEPS"})
    """Write -n latent interpolations of STEPS images each, between random prior points."""


@dataclass(frozen=True)
class Reconstruction:
    reconstruct: bool = False
    """Write -n test images (odd rows) above their reconstructions (even rows)."""
    data: str | None = field(default=None, metadata={"metavar": "DATA"})
    """Data whose test images --reconstruct uses (default: the run's own)."""


@dataclass(frozen=True)
class Completion:
    complete: str | None = field(default=None, metadata={"metavar": "IMAGE"})
    """PNG/JPEG image of the run's size: keep its top --rows rows and generate the rest pixel
    by pixel; writes the image, then -n completions (default 8)."""
    rows: int | None = None
    """Rows of --complete's image to keep (default: half)."""


@dataclass(frozen=True)
class Inpainting:
    inpaint: str | None = field(default=None, metadata={"metavar": "IMAGE"})
    """PNG/JPEG image to complete (any size; the output keeps it); -n completions (default 1)."""
    mask: str | None = None
    """Region to fill: a PNG of the image's size (white = fill) or left-half, right-half,
    top-half, bottom-half, center."""
    resample_rounds: int = field(default=5, metadata={"metavar": "R"})
    """RePaint resampling rounds per denoising step (1: plain replacement)."""


@dataclass(frozen=True)
class Mode:
    """A way of sampling that a capability gives: its flags, the first of which turns it on."""

    name: str
    capability: type
    options: type
    title: str
    default_n: int = 64
    """-n when not given."""
    needs: tuple[str, ...] = ()
    """Fields that must be given with the first."""
    takes_family_options: bool = False
    """Whether the family's sampling options apply (passed to the capability's method)."""


MODES = (
    Mode("interpolate", LatentSpace, Interpolation, "interpolation (a latent space)"),
    Mode("reconstruct", Reconstructs, Reconstruction, "reconstruction (an autoencoder)"),
    Mode(
        "complete",
        Completes,
        Completion,
        "completion (an autoregressive image model)",
        default_n=8,
        takes_family_options=True,
    ),
    Mode(
        "inpaint",
        Inpaints,
        Inpainting,
        "inpainting (a diffusion model)",
        default_n=1,
        needs=("mask",),
        takes_family_options=True,
    ),
)


def modes_of(cls: type) -> list[Mode]:
    """The modes a family's class has the capabilities for."""
    return [m for m in MODES if issubclass(cls, m.capability)]


def trigger(mode: Mode) -> str:
    """The flag that turns a mode on."""
    return flags_of(mode.options)[0].flag


# parsing ------------------------------------------------------------------------------------
def _base(cls: type | None, data_kind: str | None = None) -> argparse.ArgumentParser:
    """The arguments of every run's sampling; with `cls`, the family's and its modes' flags.
    `data_kind`: the run's data kind (None: not known), which decides how -n counts by default
    and which output flags show."""
    if cls is None:
        description = (
            "Generate from a trained run. The sampling options belong to the run's family:\n"
            "'genlab sample RUN --help' lists those of RUN's family, 'genlab list' every family's."
        )
    else:
        description = f"Generate from a trained '{cls.family}' run ({cls.description})."
    p = run_parser("genlab sample", description, EPILOG)
    p.add_argument("-n", type=int, help=_n_help(cls, data_kind))
    p.add_argument(
        "--out",
        help="output file; its suffix picks the format of the run's data kind (images: .png "
        "grid or .npy array; 'genlab list' shows every kind's). A folder (DIR/ or an existing "
        "one) gets the grid and one file per sample. Default: RUN_DIR/samples/sample-seedS with "
        "the kind's first suffix; streamed text goes to stdout",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    for kind in _output_kinds():  # shown for the run's data kind, known (hidden) for others
        shown = kind.name == data_kind
        group = p.add_argument_group(f"{kind.name} output") if shown else p
        add_flags(group, kind.WriteOptions, quiet=not shown)
    add_checkpoint_args(p)
    add_device(p, what="sample")
    s = p.add_argument_group("keeping samples in the store ('genlab store')")
    s.add_argument(
        "--store",
        action="store_true",
        help="also record each sample in the store (runs/store or $GENLAB_STORE): duplicates "
        "are reported, not stored twice; find them with 'genlab store search'",
    )
    s.add_argument(
        "--store-path",
        metavar="PATH",
        help="record in this store instead: a folder or a postgresql:// address (implies --store)",
    )
    s.add_argument(
        "--feature-steps",
        type=int,
        default=2000,
        metavar="N",
        help="with --store, images: the frozen cnn judge (as for genlab eval) whose features "
        "embed them (default 2000)",
    )
    return p


def _n_help(cls: type | None, kind: str | None) -> str:
    """The help of -n, true of the run's family and data kind (as `run` picks the default)."""
    from genlab.data.kinds import KINDS

    if cls is None or kind not in KINDS:  # before the run is known
        return (
            "number of samples: default 1 for text (each streamed as it is generated), 64 for "
            "images, 4 for music; 'genlab sample RUN --help' says RUN's"
        )
    if KINDS[kind].streams and issubclass(cls, Streams):
        return "number of samples (default 1, each streamed as it is generated)"
    each = "" if kind == "image" else f", each its own {KINDS[kind].default_suffix()} file"
    counts = {
        "interpolate": "rows with --interpolate",
        "reconstruct": "pairs with --reconstruct",
        "complete": "completions with --complete (default 8)",
        "inpaint": "completions with --inpaint (default 1)",
    }
    also = "; ".join(counts[m.name] for m in modes_of(cls) if m.name in counts)
    default = KINDS[kind].default_samples
    return f"number of samples (default {default}{each})" + (f"; {also}" if also else "")


def _output_kinds() -> list[Any]:
    """The data kinds whose writers take options (their flags are offered to every run)."""
    from genlab.data.kinds import KINDS

    return [k for k in KINDS.values() if dataclasses.fields(k.WriteOptions)]


def write_options(a: argparse.Namespace, kind: Any) -> dict[str, Any]:
    """The writer options given for the run's data kind; a UsageError for another kind's."""
    for other in _output_kinds():
        if other is not kind and given(a, other.WriteOptions):
            flags = [
                fl.flag
                for fl in flags_of(other.WriteOptions)
                if fl.name in given(a, other.WriteOptions)
            ]
            raise UsageError(
                f"{', '.join(flags)} applies to {other.name} output; this run's data is {kind.name}"
            )
    if not dataclasses.fields(kind.WriteOptions):
        return {}
    chosen = given(a, kind.WriteOptions)
    return {
        k: v
        for k, v in dataclasses.asdict(options_from(a, kind.WriteOptions)).items()
        if k in chosen
    }


def per_class_samples(model, n: int, generator, options: dict[str, Any]) -> tuple[Any, list[int]]:
    """n samples of each class (or of --class only) and the class of each, for --per-class."""
    import torch

    if "class_label" not in options or not model.conditional:
        raise UsageError(
            "--per-class needs a class-conditional run (trained with --set model.conditional=true)"
        )
    chosen = options["class_label"]
    ks = range(model.info.num_classes) if chosen is None else [chosen]
    parts = [model.sample(n, generator=generator, **{**options, "class_label": k}) for k in ks]
    return torch.cat(parts), [k for k in ks for _ in range(n)]


def parser_for(cls: type, data_kind: str | None = None) -> argparse.ArgumentParser:
    """`genlab sample` for a run of family class `cls` on data of kind `data_kind` (a name)."""
    p = _base(cls, data_kind)
    if cls.SampleOptions is not NoOptions:
        add_flags(p.add_argument_group(f"'{cls.family}' sampling options"), cls.SampleOptions)
    for mode in modes_of(cls):
        add_flags(p.add_argument_group(mode.title), mode.options)
    return p


def _all_families() -> dict[str, type]:
    from genlab.registry import FAMILIES

    return {name: cls for name, (cls, _) in FAMILIES.items()}


def elsewhere() -> dict[str, list[str]]:
    """Every sampling flag of any family -> the families that take it."""
    out: dict[str, list[str]] = {}
    for name, cls in _all_families().items():
        for opts in (cls.SampleOptions, *(m.options for m in modes_of(cls))):
            for fl in flags_of(opts):
                for s in fl.spellings:
                    out.setdefault(s, []).append(name)
    return out


def _finder() -> argparse.ArgumentParser:
    """A parser that knows every family's flags, only to find RUN_DIR among the words."""
    p = _base(None)
    classes = [
        o
        for cls in _all_families().values()
        for o in (cls.SampleOptions, *(m.options for m in modes_of(cls)))
    ]
    add_hidden_flags(p, classes)
    return p


def parse(words: list[str]) -> tuple[argparse.Namespace, type] | None:
    """The parsed arguments and the run's family class; None when help was printed."""
    from genlab.cli.runs import run_data_kind, run_family
    from genlab.registry import get_family

    found, _ = _finder().parse_known_args(words)
    if found.run_dir is None:
        if found.help:
            _base(None).print_help()
            return None
        raise UsageError("sample needs RUN_DIR, a run directory written by 'genlab train'")
    cls = get_family(run_family(found.run_dir))[0]
    p = parser_for(cls, run_data_kind(found.run_dir))
    a, extras = p.parse_known_args(words)
    if a.help:
        p.print_help()
        return None
    own = [
        fl.flag
        for o in (cls.SampleOptions, *(m.options for m in modes_of(cls)))
        for fl in flags_of(o)
    ]
    known = [s for action in p._actions for s in action.option_strings]
    refuse_extras(
        extras, what=f"'{cls.family}' sampling", own=own, known=known, elsewhere=elsewhere()
    )
    return a, cls


# sampling -----------------------------------------------------------------------------------
def active_mode(a: argparse.Namespace, cls: type) -> Mode | None:
    """The mode the flags turn on, if any; one-line UsageErrors for flags that go together."""
    active = []
    for mode in modes_of(cls):
        chosen = given(a, mode.options)
        if not chosen:
            continue
        flags = {fl.name: fl.flag for fl in flags_of(mode.options)}
        first = next(iter(flags))
        if first not in chosen:
            extra = [flags[k] for k in chosen]
            goes = "goes" if len(extra) == 1 else "go"
            raise UsageError(f"{', '.join(extra)} only {goes} with {flags[first]}")
        missing = [flags[k] for k in mode.needs if k not in chosen]
        if missing:
            raise UsageError(f"{mode.title.split(' ')[0]} needs {flags[first]} and {missing[0]}")
        active.append(mode)
    if len(active) > 1:
        raise UsageError(f"give one of {', '.join(trigger(m) for m in active)}, not several")
    mode = active[0] if active else None
    if mode is not None and not mode.takes_family_options and given(a, cls.SampleOptions):
        names = given(a, cls.SampleOptions)
        flags = [fl.flag for fl in flags_of(cls.SampleOptions) if fl.name in names]
        does = "does" if len(flags) == 1 else "do"
        raise UsageError(f"{', '.join(flags)} {does} not apply to {trigger(mode)}")
    return mode


def run(words: list[str]) -> int:
    import torch

    from genlab.data.kinds import kind_of
    from genlab.hardware import resolve_device
    from genlab.run import load

    parsed = parse(words)
    if parsed is None:
        return 0
    a, cls = parsed
    options = dataclasses.asdict(options_from(a, cls.SampleOptions))
    mode = active_mode(a, cls)
    how = options_from(a, mode.options) if mode else None
    keep = a.store or a.store_path is not None
    if keep and mode is not None:
        raise UsageError(f"--store records plain samples; it does not go with {trigger(mode)}")
    if a.n is not None and a.n < 1:
        raise UsageError(f"-n must be at least 1; got {a.n}")
    device = resolve_device(a.device)
    model = load(a.run_dir, which=a.which, ema=not a.no_ema, device=str(device))
    for note in model.notes:  # e.g. EMA weights that have not caught up
        print(f"genlab: warning: {note}", file=sys.stderr)
    kind = kind_of(model.info)
    streams = kind.streams and isinstance(model, Streams)
    if a.n is None:
        a.n = 1 if streams else mode.default_n if mode else kind.default_samples
    g = torch.Generator(device=device).manual_seed(a.seed)
    if mode is not None and mode.name == "inpaint":  # written at the input image's own size
        return _inpaint(model, a, how, g, options)
    folder = out_folder(a.out)  # --out DIR/: one file per sample besides the grid
    out = Path(a.out) if a.out and folder is None else None
    if out is not None:
        kind.check_suffix(out)
    written = write_options(a, kind)
    if written.get("per_class") and mode is not None:
        raise UsageError(f"--per-class does not apply to {trigger(mode)}")
    if streams:
        status, samples = _stream(model, a, kind, out, g, options, device)
        if keep:
            _keep(model, a, samples, options)
        return status
    nrow = None
    with torch.no_grad():
        if written.pop("per_class", False):
            samples, written["classes"] = per_class_samples(model, a.n, g, options)
            written["per_class"], name = True, "sample"
        elif mode is None:
            samples, name = model.sample(a.n, generator=g, **options), "sample"
        elif mode.name == "interpolate":
            from genlab.sampling import interpolate

            samples = interpolate(model, a.n, how.interpolate, generator=g)
            nrow, name = how.interpolate, "interpolation"
        elif mode.name == "reconstruct":
            samples, nrow = _reconstructions(model, a, how, device)
            name = "reconstruction"
        else:  # complete
            samples = _completions(model, a, how, g, options, device)
            nrow, name = min(a.n + 1, 9), "completion"
    layout = {**written, **({} if nrow is None else {"nrow": nrow})}
    if folder is not None:
        paths = kind.write_each(samples, folder, model.info, stem=f"{name}-seed{a.seed}", **layout)
    else:
        out = out or Path(a.run_dir) / "samples" / f"{name}-seed{a.seed}{kind.default_suffix()}"
        paths = kind.write(samples, out, model.info, **layout)
    shown = _shown(paths)
    print(f"wrote {shown} ({len(samples)} {kind.name} samples from {model.checkpoint})")
    if keep:
        _keep(model, a, samples, options)
    return 0


def out_folder(out: str | None) -> Path | None:
    """The folder --out names (it ends with a slash or is an existing folder), else None."""
    if out and (out.endswith(("/", os.sep)) or Path(out).is_dir()):
        return Path(out)
    return None


def _shown(paths: list[Path]) -> str:
    """The files written, shortened when there are many (one per sample)."""
    if len(paths) <= 4:
        return ", ".join(str(p) for p in paths)
    return f"{paths[0]}, {paths[1]} ... {paths[-1].name} ({len(paths)} files)"


def _keep(model, a: argparse.Namespace, samples: Any, options: dict[str, Any]) -> None:
    """Record the samples in the store (--store, --store-path) and say what was kept."""
    from genlab.store import open_store
    from genlab.store.record import record, register_run

    if a.feature_steps < 1:
        raise UsageError(f"--feature-steps must be at least 1; got {a.feature_steps}")
    with open_store(a.store_path) as store:
        name = register_run(store, a.run_dir)
        prompt = options.get("prompt") if isinstance(options.get("prompt"), str) else None
        added = record(
            store, model, name, samples, seed=a.seed, options=options, prompt=prompt or None,
            judge_steps=a.feature_steps,
        )  # fmt: skip
        where = getattr(store, "root", None) or "the PostgreSQL store"
    counts = {s: sum(x.status == s for x in added) for s in ("new", "duplicate", "near-duplicate")}
    dups = [f"{x.status} of {x.id}" for x in added if x.status != "new"]
    print(
        f"stored {counts['new']} new generations in {where}; {counts['duplicate']} duplicates "
        f"and {counts['near-duplicate']} near-duplicates not stored again"
        + (f" ({', '.join(dups[:5])}{', ...' if len(dups) > 5 else ''})" if dups else ""),
        file=sys.stderr,
    )


def _stream(model, a, kind, out, g, options: dict[str, Any], device) -> tuple[int, list[str]]:
    """Print -n samples as they are generated; write them to --out as well."""
    import torch

    def emit(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    # one token at a time is a chain of tiny operations: a second thread only waits on the
    # first (far more on a busy machine). The command line owns its process, so it decodes on
    # one thread; library sampling leaves process-wide settings alone. Restored afterwards,
    # for callers of main() in a longer-lived process.
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        samples = []
        for i in range(a.n):
            if i:
                emit(TEXT_SEPARATOR)
            samples.append(model.stream(emit, generator=g, **options))
        emit("\n")
    finally:
        torch.set_num_threads(threads)
    folder = out_folder(a.out)  # --out DIR/: one file per sample besides all of them in one
    if out is not None or folder is not None:
        if folder is not None:
            paths = kind.write_each(samples, folder, model.info, stem=f"sample-seed{a.seed}")
        else:
            paths = kind.write(samples, out, model.info)
        shown = _shown(paths)
        print(f"wrote {shown} ({a.n} {kind.name} samples from {model.checkpoint})", file=sys.stderr)
    return 0, samples


def _reconstructions(model, a: argparse.Namespace, how: Reconstruction, device) -> tuple[Any, int]:
    """-n test images, each row of up to 8 above the row of their reconstructions."""
    import torch

    from genlab.run import load_data, read_run

    _, cfg, info = read_run(a.run_dir)
    data = load_data(cfg, how.data or info.source, run_dir=a.run_dir)
    split = data.splits["test"]
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(a.seed))
    x = data.batch("test", idx[: a.n])["x"].to(device)
    recon = model.reconstruct(x)
    nrow = min(a.n, 8)
    pairs = [t for i in range(0, len(x), nrow) for t in (x[i : i + nrow], recon[i : i + nrow])]
    return torch.cat(pairs), nrow


def _completions(model, a, how: Completion, g, options: dict[str, Any], device) -> Any:
    """The image of --complete followed by -n completions of it below its top --rows rows."""
    import torch

    from genlab.io.images import load_image

    x = load_image(how.complete, model.info.shape).to(device)  # (C, H, W) in [0, 1]
    rows = how.rows if how.rows is not None else model.info.shape[1] // 2
    filled = model.complete(x.expand(a.n, *x.shape).clone(), rows, generator=g, **options)
    return torch.cat([x.unsqueeze(0), filled])


def _inpaint(model, a, how: Inpainting, g, options: dict[str, Any]) -> int:
    import torch

    from genlab.inpaint import inpaint_file, save_inpainted

    with torch.no_grad():
        images = inpaint_file(
            model, how.inpaint, how.mask, n=a.n, generator=g, rounds=how.resample_rounds, **options
        )
    folder = out_folder(a.out)  # --out DIR/: the completions go into it, one file each
    out = Path(a.out) if a.out and folder is None else None
    out = out or (folder or Path(a.run_dir) / "samples") / f"inpaint-seed{a.seed}.png"
    paths = save_inpainted(images, out)
    shown = str(paths[0]) if len(paths) == 1 else f"{paths[0]} ... {paths[-1].name}"
    print(f"wrote {shown} ({len(images)} completions of {how.inpaint} from {model.checkpoint})")
    return 0
