"""`genlab export RUN --format torchscript|onnx`: the run's network as a file other runtimes
serve, with a JSON that says what goes in and what comes out.

What is exported depends on what the family can do in one forward pass (its capabilities, never
its name): a classifier's class probabilities (or a regression's value in the target's units)
from its inputs; a generator's data from latent codes when its `decode` is one pass
(`one_pass_decode`). Families that generate in a Python loop (token by token, pixel by pixel,
step by step of a diffusion) have no single network that samples, and are refused.

ONNX goes through `torch.onnx` and needs the optional `onnx` extra (onnx and onnxscript).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from genlab.cli.parser import add_checkpoint_args, common
from genlab.errors import UsageError

FORMATS = {"torchscript": ".pt", "pt2": ".pt2", "onnx": ".onnx"}

EPILOG = """examples:
  genlab export runs/lenet --format torchscript   # runs/lenet/export/model.pt, model.pt.json
  genlab export runs/vae --format pt2             # torch.export's ExportedProgram
  genlab export runs/gan --format onnx --out gan.onnx   # needs: pip install 'genlab[onnx]'
"""

BATCH = 2
"""Examples in the input the network is traced with (the batch size stays free)."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's network as TorchScript, torch.export (.pt2) or ONNX to serve elsewhere",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common()],
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory of 'genlab train'")
    p.add_argument(
        "--format",
        required=True,
        choices=list(FORMATS),
        help="torchscript (.pt: torch.jit.load, LibTorch), pt2 (.pt2: torch.export.load) or "
        "onnx (.onnx: onnxruntime and other ONNX runtimes)",
    )
    p.add_argument(
        "--out",
        help="file to write (default RUN_DIR/export/model.pt, .pt2 or .onnx); FILE.json "
        "beside it describes the inputs and outputs",
    )
    add_checkpoint_args(p)


def exportable(cls: type) -> str | None:
    """What a family exports ("predict" or "decode"), or None."""
    from genlab.models.base import LatentSpace

    if cls.discriminative:
        return "predict"
    if cls.one_pass_decode and issubclass(cls, LatentSpace):
        return "decode"
    return None


def run(a: argparse.Namespace) -> int:
    import torch

    from genlab.cli.runs import run_family
    from genlab.registry import FAMILIES, get_family
    from genlab.run import load

    cls = get_family(run_family(a.run_dir))[0]
    what = exportable(cls)
    if what is None:
        takes = ", ".join(name for name, (c, _) in FAMILIES.items() if exportable(c))
        raise UsageError(
            f"'{cls.family}' cannot be exported: it samples in a Python loop (token by token, "
            "pixel by pixel or step by step), not in one forward pass of a network; genlab "
            f"export takes {takes} runs"
        )
    suffix = FORMATS[a.format]
    out = Path(a.out) if a.out else Path(a.run_dir) / "export" / f"model{suffix}"
    if out.suffix.lower() != suffix:
        raise UsageError(f"--format {a.format} writes a {suffix} file; --out {out.name} is not")
    if a.format == "onnx":
        _require_onnx()
    model = load(a.run_dir, which=a.which, ema=not a.no_ema, device="cpu")
    if what == "decode" and not model.one_pass_decode:  # e.g. a vae with a pixelcnn decoder
        raise UsageError(
            f"this {cls.family} run decodes pixel by pixel or step by step (its settings chose "
            "such a decoder, e.g. model.decoder=pixelcnn), not in one forward pass; only "
            "one-pass decoders export"
        )
    net, example, meta = (_predictor if what == "predict" else _decoder)(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if a.format == "torchscript":
            exported = _torchscript(net, example, out)
        elif a.format == "pt2":
            exported = _pt2(net, example, out)
        else:
            exported = _onnx(net, example, out, (meta["input"]["name"], meta["output"]["name"]))
        # the file, loaded back, against genlab on the traced batch and on another batch size
        probe = torch.cat([example, example[:1]])
        diff = max(float((exported(x) - net(x)).abs().max()) for x in (example, probe))
    meta = {
        "family": cls.family,
        "run": str(a.run_dir),
        "checkpoint": model.checkpoint,
        "format": a.format,
        **meta,
        "max_abs_difference_on_reload": diff,
    }
    sidecar = out.with_name(out.name + ".json")
    from genlab.io.atomic import write_json_atomic

    write_json_atomic(sidecar, meta)
    print(
        f"wrote {out} and {sidecar} ({cls.family} {meta['exports']}; reloaded, outputs within "
        f"{diff:.1e} of genlab's)"
    )
    return 0


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise UsageError(
            "ONNX export needs onnx and onnxscript: pip install 'genlab[onnx]' (or export "
            "--format torchscript)"
        ) from None


def _predictor(model: Any) -> tuple[Any, Any, dict[str, Any]]:
    """A classifier as probabilities (B, K), or a regression in its target's units (B,), from
    inputs in the model's form."""
    import torch

    info = model.info

    class Predict(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.model.predict(x)
            if info.task == "classification":
                return out.softmax(-1)
            return out * info.record.target_std + info.record.target_mean

    example = torch.rand(BATCH, *info.shape)
    meta: dict[str, Any] = {
        "exports": "predict",
        "input": {"name": "x", "shape": ["B", *info.shape]},
    }
    if info.kind == "image":
        meta["input"]["values"] = "float32 pixels in [0, 1] (0-255 divided by 255)"
    else:
        rec = info.record
        meta["input"]["values"] = (
            "float32 encoded features: each numeric column standardized, each category one-hot "
            "and standardized (x - feature_mean) / feature_std, in feature_names order"
        )
        meta["input"].update(
            feature_names=rec.feature_names,
            feature_mean=rec.feature_mean,
            feature_std=rec.feature_std,
        )
    if info.task == "classification":
        meta["output"] = {
            "name": "y",
            "shape": ["B", info.num_classes],
            "values": "class probabilities",
        }
        meta["class_names"] = list(info.class_names)
    else:
        meta["output"] = {"name": "y", "shape": ["B"], "values": "the predicted target value"}
    return Predict().eval(), example, meta


def _decoder(model: Any) -> tuple[Any, Any, dict[str, Any]]:
    """A generator: latent codes (B, D) from its prior -> data in the model's form."""
    import torch

    class Decode(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.model.decode(z)

    example = model.prior(BATCH, generator=torch.Generator().manual_seed(0))
    meta = {
        "exports": "decode",
        "input": {
            "name": "z",
            "shape": ["B", int(example.shape[1])],
            "values": "latent codes: draws of the standard normal N(0, I) (a conditional GAN's "
            "second half is the class embedding of genlab's prior)",
        },
        "output": {
            "name": "x",
            "shape": ["B", *model.info.shape],
            "values": "images, float32 in [0, 1]",
        },
    }
    return Decode().eval(), example, meta


def _torchscript(net: Any, example: Any, out: Path) -> Any:
    """Trace and save; the saved file, loaded back, as a function of the input."""
    import io

    import torch

    from genlab.io.atomic import write_bytes_atomic

    traced = torch.jit.trace(net, (example,), check_trace=True)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    write_bytes_atomic(out, buffer.getvalue())
    return torch.jit.load(str(out))


def _pt2(net: Any, example: Any, out: Path) -> Any:
    """torch.export's program with a free batch size, saved; loaded back, as a function."""
    import io

    import torch

    from genlab.io.atomic import write_bytes_atomic

    program = torch.export.export(
        net, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},)
    )
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    write_bytes_atomic(out, buffer.getvalue())
    return torch.export.load(str(out)).module()


def _onnx(net: Any, example: Any, out: Path, names: tuple[str, str]) -> Any:
    """Export through torch.onnx with a free batch size and check the file; the saved file, run
    by onnx's reference evaluator, as a function of the input."""
    import logging
    import warnings

    import onnx
    import torch
    from onnx.reference import ReferenceEvaluator

    # the exporter logs what it skips (torchvision's operators) and warns of its own deprecations
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            input_names=[names[0]],
            output_names=[names[1]],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            verbose=False,
        )
    program.save(str(out))
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    evaluator = ReferenceEvaluator(proto)

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(evaluator.run(None, {names[0]: x.numpy()})[0])

    return run
