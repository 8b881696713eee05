"""What the machine can do, asked of PyTorch."""

from __future__ import annotations

import torch


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
