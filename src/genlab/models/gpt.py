"""GPT: a decoder-only transformer language model (Radford et al. 2018/2019; nanoGPT's layout).

Token + learned position embeddings -> n_layer pre-LayerNorm blocks
[x + attn(LN(x)), x + MLP(LN(x))] -> LayerNorm -> linear head tied to the token embedding.
Attention is causal self-attention through `torch.nn.functional.scaled_dot_product_attention`.

`attention` picks a pattern of which earlier positions a position i may attend to, the fixed
sparse patterns of Sparse Transformers (Child et al. 2019, section 4.2) with stride `window`:
- `dense`: every j <= i.
- `local`: the last `window` positions, i - window < j <= i (the first half of the strided
  pattern; a sliding window).
- `strided`: local, plus every position a multiple of `window` back: (i - j) % window == 0
  (both halves of the strided pattern merged in one head).
Sparse patterns are boolean masks passed to scaled_dot_product_attention.

Sampling keeps a key/value cache, so each new token costs one position. Positions are learned
and absolute, so when the context fills, the cache is rebuilt from the last 3/4 of the context
(one batched forward pass every block_size/4 tokens): every token is predicted from at most
`block_size` tokens, and the cache never grows past them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import DataInfo
from genlab.errors import UsageError
from genlab.text.lm import LanguageModel


@dataclass
class Config:
    n_layer: int = 4
    """Number of transformer blocks."""
    n_head: int = 4
    """Attention heads per block (n_embd must divide by it)."""
    n_embd: int = 128
    """Width of the residual stream."""
    block_size: int = 64
    """Context length in tokens: the longest sequence the model reads; also the length of the
    training windows cut from the corpus."""
    dropout: float = 0.0
    """Dropout on embeddings, attention weights and residual branches while training."""
    bias: bool = False
    """Biases in the linear layers and LayerNorms (nanoGPT: False is a little better and faster)."""
    attention: Literal["dense", "local", "strided"] = "dense"
    """Which earlier positions attend: all (dense), or Sparse Transformer patterns (see top)."""
    window: int = 16
    """Window and stride of the local/strided patterns."""

    @property
    def context(self) -> int:
        """Tokens per training example (the data reader cuts windows of context + 1)."""
        return self.block_size

    def validate(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "block_size", "window"):
            if getattr(self, name) < 1:
                raise UsageError(f"model.{name} must be at least 1; got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise UsageError(
                f"model.n_embd ({self.n_embd}) must divide by model.n_head ({self.n_head})"
            )
        if not 0 <= self.dropout < 1:
            raise UsageError(f"model.dropout must be in [0, 1); got {self.dropout}")


def attention_mask(kind: str, window: int, q_pos: torch.Tensor, k_pos: torch.Tensor):
    """(Tq, Tk) boolean mask, True where query position i may attend to key position j."""
    i, j = q_pos.view(-1, 1), k_pos.view(1, -1)
    allowed = j <= i
    if kind == "local":
        allowed &= i - j < window
    elif kind == "strided":
        allowed &= (i - j < window) | ((i - j) % window == 0)
    return allowed


class KVCache:
    """Keys and values of the positions read so far, preallocated to the context length."""

    def __init__(self, n_layer: int, b: int, n_head: int, size: int, hs: int, like: torch.Tensor):
        shape = (n_layer, b, n_head, size, hs)
        self.k = torch.zeros(shape, dtype=like.dtype, device=like.device)
        self.v = torch.zeros(shape, dtype=like.dtype, device=like.device)
        self.length = 0  # positions held


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)  # 3 x (B, T, C)
        # (B, T, C) -> (B, nh, T, hs)
        q = q.view(b, t, self.n_head, -1).transpose(1, 2)
        k = k.view(b, t, self.n_head, -1).transpose(1, 2)
        v = v.view(b, t, self.n_head, -1).transpose(1, 2)
        causal = mask is None
        if cache is not None:  # write this step's keys/values, attend to all held so far
            start, end = cache.length, cache.length + t
            cache.k[layer, :, :, start:end] = k
            cache.v[layer, :, :, start:end] = v
            k, v = cache.k[layer, :, :, :end], cache.v[layer, :, :, :end]  # (B, nh, end, hs)
            causal = mask is None and start == 0 and t > 1  # one query sees every held key
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal,
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(b, t, c)  # (B, nh, T, hs) -> (B, T, C)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias),
            nn.GELU(),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x, mask=None, cache=None, layer=0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask, cache, layer)
        return x + self.mlp(self.ln2(x))


class GPT(LanguageModel):
    family = "gpt"
    description = "decoder-only transformer language model (char or BPE tokens); KV-cached sampling"
    Config = Config

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.tok_emb = nn.Embedding(self.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scaled init of residual projections
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., V) logits, through the token embedding (weight tying, Press & Wolf
        2017; one tensor, so checkpoints hold it once)."""
        return F.linear(x, self.tok_emb.weight)

    def mask(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor | None:
        """The attention mask of the configured pattern, or None for dense causal attention."""
        if self.cfg.attention == "dense":
            return None
        return attention_mask(self.cfg.attention, self.cfg.window, q_pos, k_pos)

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        if t > self.cfg.block_size:
            raise UsageError(
                f"a sequence of {t} tokens is longer than model.block_size {self.cfg.block_size}"
            )
        pos = torch.arange(t, device=ids.device)
        x = self.drop(self.tok_emb(ids) + self.pos_emb(pos))  # (B, T, C)
        mask = self.mask(pos, pos)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))  # (B, T, C) -> (B, T, V)

    def forward_cached(self, ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """(B, T) ids at the positions after the cache's -> (B, V) logits after the last one."""
        t = ids.shape[1]
        pos = torch.arange(cache.length, cache.length + t, device=ids.device)
        x = self.tok_emb(ids) + self.pos_emb(pos)  # (B, T, C)
        mask = self.mask(pos, torch.arange(cache.length + t, device=ids.device))
        for i, block in enumerate(self.blocks):
            x = block(x, mask, cache, i)
        cache.length += t
        return self.head(self.ln_f(x[:, -1]))  # (B, V)

    def stepper(self, cached: bool = True):
        return CachedStepper(self) if cached else UncachedStepper(self)

    def freeze(self, k: int) -> None:
        """Stop training the embeddings and the first k blocks (fine-tuning)."""
        if not 0 <= k <= self.cfg.n_layer:
            raise UsageError(
                f"train.freeze_layers must be between 0 and model.n_layer ({self.cfg.n_layer}); "
                f"got {k}"
            )
        frozen = [self.tok_emb, self.pos_emb, *self.blocks[:k]]
        for module in frozen:
            module.requires_grad_(False)


class UncachedStepper:
    """Each step runs the model on the last block_size tokens (nanoGPT's sampler)."""

    def __init__(self, model: GPT) -> None:
        self.model, self.ids = model, torch.empty(0)

    def start(self, ids: torch.Tensor) -> torch.Tensor:
        self.ids = ids
        return self._last()

    def advance(self, token: torch.Tensor) -> torch.Tensor:
        self.ids = torch.cat([self.ids, token[:, None]], dim=1)
        return self._last()

    def context(self) -> torch.Tensor:
        """The tokens the latest logits were predicted from."""
        return self.ids[:, -self.model.cfg.block_size :]

    def _last(self) -> torch.Tensor:
        return self.model.logits(self.context())[:, -1]  # (B, V)


class CachedStepper:
    """Key/value-cached decoding; rebuilds the cache from the last 3/4 when the context fills."""

    def __init__(self, model: GPT) -> None:
        self.model = model
        cfg = model.cfg
        self.size, self.keep = cfg.block_size, max(1, cfg.block_size - cfg.block_size // 4)
        self.ids = torch.empty(0)  # (B, L): the tokens the cache holds, L <= block_size
        self.cache: KVCache | None = None

    def _fill(self, ids: torch.Tensor) -> torch.Tensor:
        m, cfg = self.model, self.model.cfg
        hs = cfg.n_embd // cfg.n_head
        self.cache = KVCache(cfg.n_layer, ids.shape[0], cfg.n_head, self.size, hs, m.pos_emb.weight)
        self.ids = ids
        return m.forward_cached(ids, self.cache)

    def start(self, ids: torch.Tensor) -> torch.Tensor:
        return self._fill(ids[:, -self.size :])  # a long prompt is cropped to the context

    def advance(self, token: torch.Tensor) -> torch.Tensor:
        token = token[:, None]  # (B, 1)
        if self.ids.shape[1] == self.size:  # full: rebuild from the most recent tokens
            return self._fill(torch.cat([self.ids[:, -(self.keep - 1) :], token], dim=1))
        self.ids = torch.cat([self.ids, token], dim=1)
        return self.model.forward_cached(token, self.cache)

    def context(self) -> torch.Tensor:
        """The tokens the latest logits were predicted from."""
        return self.ids


def shakespeare_cpu_preset(run):
    """nanoGPT's small CPU configuration for character-level Tiny Shakespeare (the benchmark)."""
    run.model.n_layer, run.model.n_head, run.model.n_embd = 4, 4, 128
    run.model.block_size, run.model.dropout, run.model.bias = 64, 0.0, False
    run.data.val_fraction, run.data.test_fraction = 0.1, 0.0
    t = run.train
    t.batch_size, t.steps, t.lr, t.warmup_steps = 12, 2000, 1e-3, 100
    t.min_lr_ratio, t.betas, t.weight_decay, t.grad_clip = 0.1, [0.9, 0.99], 0.1, 1.0
    t.eval_every, t.eval_batches = 250, 200
    return run


def shakespeare_preset(run):
    """nanoGPT's GPU configuration for character-level Tiny Shakespeare (6 x 384, 256 context)."""
    run.model.n_layer, run.model.n_head, run.model.n_embd = 6, 6, 384
    run.model.block_size, run.model.dropout, run.model.bias = 256, 0.2, False
    run.data.val_fraction, run.data.test_fraction = 0.1, 0.0
    t = run.train
    t.batch_size, t.steps, t.lr, t.warmup_steps = 64, 5000, 1e-3, 100
    t.min_lr_ratio, t.betas, t.weight_decay, t.grad_clip = 0.1, [0.9, 0.99], 0.1, 1.0
    t.eval_every, t.eval_batches = 250, 200
    return run


PRESETS = {"shakespeare-cpu": shakespeare_cpu_preset, "shakespeare": shakespeare_preset}
