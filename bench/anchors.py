"""The reference code genlab is compared against, loaded from ../shared/anchors/ for benchmarks
and parity tests only (never imported by genlab itself).

`nanogpt()` imports nanoGPT's own `model.py` (commit 3adf61e, MIT; see its SOURCE.md) from
`../shared/anchors/nanogpt/`, or returns None with the reason when the folder is absent.
`to_nanogpt(model)` builds nanoGPT's `GPT` with a genlab `gpt` model's configuration and copies
the weights over by name, so both compute the same function.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path
from types import ModuleType

import torch

ANCHORS = Path(__file__).resolve().parents[1].parent / "shared" / "anchors"
NANOGPT = ANCHORS / "nanogpt" / "model.py"


def nanogpt() -> tuple[ModuleType | None, str]:
    """nanoGPT's model module (under its own name, not on sys.path), or None and why not."""
    if not NANOGPT.is_file():
        return None, f"nanoGPT's model.py is not at {NANOGPT} (../shared/anchors is absent)"
    spec = importlib.util.spec_from_file_location("nanogpt_model", NANOGPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, ""


def nanogpt_names(n_layer: int) -> dict[str, str]:
    """genlab gpt parameter name -> nanoGPT GPT parameter name."""
    names = {
        "tok_emb.weight": "transformer.wte.weight",
        "pos_emb.weight": "transformer.wpe.weight",
        "ln_f.weight": "transformer.ln_f.weight",
        "ln_f.bias": "transformer.ln_f.bias",
    }
    for i in range(n_layer):
        g, n = f"blocks.{i}.", f"transformer.h.{i}."
        names |= {
            g + "ln1.weight": n + "ln_1.weight",
            g + "ln1.bias": n + "ln_1.bias",
            g + "attn.qkv.weight": n + "attn.c_attn.weight",
            g + "attn.qkv.bias": n + "attn.c_attn.bias",
            g + "attn.proj.weight": n + "attn.c_proj.weight",
            g + "attn.proj.bias": n + "attn.c_proj.bias",
            g + "ln2.weight": n + "ln_2.weight",
            g + "ln2.bias": n + "ln_2.bias",
            g + "mlp.0.weight": n + "mlp.c_fc.weight",
            g + "mlp.0.bias": n + "mlp.c_fc.bias",
            g + "mlp.2.weight": n + "mlp.c_proj.weight",
            g + "mlp.2.bias": n + "mlp.c_proj.bias",
        }
    return names


def nanogpt_model(module: ModuleType, vocab_size: int, cfg) -> torch.nn.Module:
    """nanoGPT's GPT for a genlab gpt `model.*` configuration (its own initialisation)."""
    conf = module.GPTConfig(
        block_size=cfg.block_size,
        vocab_size=vocab_size,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        dropout=cfg.dropout,
        bias=cfg.bias,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count
        return module.GPT(conf)


def to_nanogpt(module: ModuleType, model) -> torch.nn.Module:
    """nanoGPT's GPT holding a genlab gpt model's weights (every tensor copied, none left)."""
    ref = nanogpt_model(module, model.vocab_size, model.cfg)
    names = nanogpt_names(model.cfg.n_layer)
    theirs = dict(ref.named_parameters())
    ours = dict(model.named_parameters())
    if set(names[k] for k in ours) != set(theirs):
        raise ValueError("the two models' parameters do not correspond one to one")
    with torch.no_grad():
        for name, p in ours.items():
            theirs[names[name]].copy_(p)
    return ref.eval()
