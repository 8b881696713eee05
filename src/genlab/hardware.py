"""What the machine can do, asked of PyTorch."""

from __future__ import annotations

import torch

from genlab.errors import UsageError

DEVICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The torch device a `--device` value names; `auto` takes a GPU when there is one.

    A device that this machine or this PyTorch build does not have is a one-line UsageError."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif _mps_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {name} asked for a GPU but PyTorch sees none; use --device cpu or auto"
            )
        if name == "cuda":
            name = f"cuda:{local_rank}"
        index = name.split(":", 1)[1]
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise UsageError(
                f"no GPU {name}: PyTorch sees {torch.cuda.device_count()}; use one of {DEVICES}"
            )
    elif name == "mps":
        if not _mps_available():
            raise UsageError(
                "--device mps needs an Apple GPU with PyTorch's MPS backend; "
                "use --device cpu or auto"
            )
    elif name != "cpu":
        raise UsageError(f"unknown device '{name}'; use {DEVICES}")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively: any CUDA GPU with bf16 support, or a CPU
    with AVX512-BF16 or AMX (elsewhere the CPU emulates it, slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
