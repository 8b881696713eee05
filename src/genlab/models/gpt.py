"""GPT: a decoder-only transformer language model (Radford et al. 2018/2019; nanoGPT's layout).

Token + learned position embeddings -> n_layer pre-LayerNorm blocks
[x + attn(LN(x)), x + MLP(LN(x))] -> LayerNorm -> linear head tied to the token embedding.
Attention is causal self-attention through `torch.nn.functional.scaled_dot_product_attention`
(on the CPU, short contexts: the same products written out, see `attend`).

`attention` picks a pattern of which earlier positions a position i may attend to, the fixed
sparse patterns of Sparse Transformers (Child et al. 2019, section 4.2) with stride `window`:
- `dense`: every j <= i.
- `local`: the last `window` positions, i - window < j <= i (the first half of the strided
  pattern; a sliding window).
- `strided`: local, plus every position a multiple of `window` back: (i - j) % window == 0
  (both halves of the strided pattern merged in one head).
Sparse patterns are boolean masks passed to `attend`.

Sampling keeps a key/value cache (`KVCache`), read and extended by the same blocks that
train (`Block(x, mask, cache)`), so each new token costs one position. Positions are learned
and absolute, so when the context fills, the cache is rebuilt from the last half of the context
(one batched forward pass every block_size/2 tokens): every token is predicted from between
block_size/2 and `block_size` tokens, and the cache never grows past them. `CachedStepper`
can run the one-token step fused into plain tensor operations, an optimisation of the module
path that computes the same logits (see docs/sequence-models.md for both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import DataInfo
from genlab.errors import UsageError
from genlab.text.lm import SampleOptions as TextSampleOptions
from genlab.text.lm import TextModel


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

    context_key: ClassVar[str] = "block_size"
    """The setting that holds the context, named in messages."""

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


@dataclass(frozen=True)
class SampleOptions(TextSampleOptions):
    context: Literal["rebuild", "exact"] = "rebuild"
    """When the context is full: 'rebuild' refills the key/value cache from its last half (one
    pass every block_size/2 tokens; each token sees block_size/2 to block_size tokens);
    'exact' reads the last block_size tokens for every token (nanoGPT's sampler; one full pass
    per token)."""


def attention_mask(kind: str, window: int, q_pos: torch.Tensor, k_pos: torch.Tensor):
    """(Tq, Tk) boolean mask, True where query position i may attend to key position j."""
    i, j = q_pos.view(-1, 1), k_pos.view(1, -1)
    allowed = j <= i
    if kind == "local":
        allowed &= i - j < window
    elif kind == "strided":
        allowed &= (i - j < window) | ((i - j) % window == 0)
    return allowed


EXPLICIT_MAX_KEYS = 256
"""On the CPU, attention over at most this many keys is computed as explicit products."""


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    causal: bool,
    dropout: float = 0.0,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs) + mask) v over (B, nh, T, hs) queries/keys/values.

    `mask` is a boolean (Tq, Tk) "may attend" mask; `causal` (with no mask) lets query i see keys
    j <= i. Through `scaled_dot_product_attention`, except on the CPU for several queries over
    short contexts, where the same products written out are faster than its CPU kernel
    (forward + backward, in float32 and more so under bfloat16 autocast: docs/sequence-models.md).
    """
    tq, tk = q.shape[-2], k.shape[-2]
    if q.device.type != "cpu" or tq == 1 or tk > EXPLICIT_MAX_KEYS:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal
        )
    if causal:  # SDPA's is_causal: the top-left aligned lower triangle
        mask = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril()
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, nh, Tq, Tk)
    if mask is not None:  # an added -inf mask: a cheaper backward than masked_fill's
        scores = scores + torch.zeros(
            mask.shape, dtype=scores.dtype, device=mask.device
        ).masked_fill(~mask, -math.inf)
    weights = scores.softmax(dim=-1, dtype=torch.float32).to(v.dtype)  # as SDPA: in float32
    if dropout > 0:
        weights = F.dropout(weights, dropout)
    return weights @ v


class KVCache:
    """What decoding keeps of the positions read so far, preallocated to the context length.

    `rows[layer, position]` is the (B, 3C) q/k/v projection of every sequence at that position,
    positions first (so that the fused step writes a projection into the cache by the matrix
    product itself); `heads(layer, end)` views the same numbers as queries, keys and values.
    `length` positions are held.
    """

    def __init__(
        self, n_layer: int, b: int, size: int, n_embd: int, n_head: int, like: torch.Tensor
    ) -> None:
        self.rows = torch.zeros(n_layer, size, b, 3 * n_embd, dtype=like.dtype, device=like.device)
        self.n_head = n_head
        self.length = 0
        self.layers = [LayerCache(self, i) for i in range(n_layer)]
        self._views: list[dict[int, tuple]] = [{} for _ in range(n_layer)]

    @property
    def size(self) -> int:
        """The most positions it holds."""
        return self.rows.shape[1]

    @property
    def batch(self) -> int:
        return self.rows.shape[2]

    def heads(self, layer: int, end: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of positions [0, end) of a layer, (B, nh, end, hs) each."""
        b = self.batch
        qkv = self.rows[layer, :end].view(end, b, 3, self.n_head, -1).permute(2, 1, 3, 0, 4)
        return qkv[0], qkv[1], qkv[2]

    def at(self, layer: int, p: int) -> tuple[torch.Tensor, ...]:
        """What a one-token fused step at position p reads and writes: its (B, 3C) row, its
        query, and the keys and values up to p. Views made once, not ~10 view operations per
        layer and token."""
        views = self._views[layer].get(p)
        if views is None:
            q, k, v = self.heads(layer, p + 1)
            views = (self.rows[layer, p], q[:, :, p:], k, v)
            self._views[layer][p] = views
        return views


class LayerCache:
    """One block's part of a `KVCache`, as `CausalSelfAttention` reads and extends it."""

    def __init__(self, cache: KVCache, layer: int) -> None:
        self.cache, self.layer = cache, layer

    def extend(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the (B, T, 3C) projections of the T positions after the held ones; the keys
        and values of every position up to them, (B, nh, length + T, hs) each."""
        start = self.cache.length
        end = start + qkv.shape[1]
        self.cache.rows[self.layer, start:end] = qkv.transpose(0, 1)  # (T, B, 3C)
        _, k, v = self.cache.heads(self.layer, end)
        return k, v


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, cache: LayerCache | None = None
    ) -> torch.Tensor:
        """(B, T, C) -> (B, T, C). `mask`: None for dense causal attention (T query positions
        over T keys, or one query over every held key); with `cache`, the keys and values of
        the positions before these T are read from it and these are added to it."""
        b, t, c = x.shape
        qkv = self.qkv(x)  # (B, T, 3C)
        q, k, v = qkv.split(c, dim=2)  # 3 x (B, T, C)
        # (B, T, C) -> (B, nh, T, hs)
        q = q.view(b, t, self.n_head, -1).transpose(1, 2)
        if cache is None:
            k = k.view(b, t, self.n_head, -1).transpose(1, 2)
            v = v.view(b, t, self.n_head, -1).transpose(1, 2)
        else:
            k, v = cache.extend(qkv)  # (B, nh, L + T, hs)
        dropout = self.dropout if self.training else 0.0
        y = attend(q, k, v, mask, mask is None and t > 1, dropout)  # (B, nh, T, hs)
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

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask, cache)
        return x + self.mlp(self.ln2(x))


class GPT(TextModel):
    family = "gpt"
    description = "decoder-only transformer language model (char or BPE tokens); KV-cached sampling"
    Config = Config
    SampleOptions = SampleOptions
    tiny = ("model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=16")

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
        """The attention mask of the configured pattern, or None for dense causal attention
        that needs none (queries at the keys' positions, or one query after all of them)."""
        if self.cfg.attention == "dense" and len(q_pos) in (1, len(k_pos)):
            return None
        return attention_mask(self.cfg.attention, self.cfg.window, q_pos, k_pos)

    @property
    def max_context(self) -> int:
        return self.cfg.block_size

    def logits(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) logits; with `cache`, the ids continue its positions and
        are added to it."""
        start = 0 if cache is None else cache.length
        end = start + ids.shape[1]
        if end > self.cfg.block_size:
            raise UsageError(
                f"a sequence of {end} tokens is longer than model.block_size {self.cfg.block_size}"
            )
        pos = torch.arange(start, end, device=ids.device)
        x = self.drop(self.tok_emb(ids) + self.pos_emb(pos))  # (B, T, C)
        mask = self.mask(pos, torch.arange(end, device=ids.device))
        layers = [None] * len(self.blocks) if cache is None else cache.layers
        for block, layer in zip(self.blocks, layers, strict=True):
            x = block(x, mask, layer)
        if cache is not None:
            cache.length = end
        return self.head(self.ln_f(x))  # (B, T, C) -> (B, T, V)

    def cached_stepper(self, fused: bool = True, context: str = "rebuild") -> CachedStepper:
        """KV-cached decoding, by default through the fused step (an optimisation of the module
        path that computes the same logits); `context` as in `SampleOptions`."""
        return CachedStepper(self, fused, exact=context == "exact")

    @torch.inference_mode()
    def sample(self, n: int, *, context: str = "rebuild", **options: Any) -> Any:
        """As `TextModel.sample`; `context="exact"` conditions every token on the last
        block_size tokens, as nanoGPT's sampler does (see `SampleOptions`)."""
        if context not in ("rebuild", "exact"):
            raise UsageError(f"context must be 'rebuild' or 'exact'; got {context!r}")
        return super().sample(n, stepper_options={"context": context}, **options)

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


COPY_MAX_PARAMETERS = 16_000_000
"""The fused step copies the matrices of models up to this size into a faster layout (64 MB)."""


class CachedStepper:
    """Key/value-cached decoding; rebuilds the cache from the last half of the context when it
    fills, or with `exact=True` from the last block_size tokens for every token once it is full
    (every token then sees a full context, at the cost of one full pass per token).

    Each step runs `GPT.logits` on the new token with the cache: the model's own modules, in
    the model's mode. `fused=True` computes the same function as plain tensor operations on the
    model's parameters (looked up once) in eval mode: a one-token step is a few dozen tiny
    operations, so the overhead of module calls counts (docs/sequence-models.md has the
    measured speed of both; tests/test_gpt.py holds them equal). The fused step writes each
    qkv projection into the cache by the product itself.
    """

    def __init__(self, model: GPT, fused: bool = False, exact: bool = False) -> None:
        self.model, self.fused = model, fused
        cfg = model.cfg
        self.size = cfg.block_size
        self.keep = cfg.block_size if exact else (cfg.block_size + 1) // 2
        self.ids = torch.empty(0)  # (B, L): the tokens the cache holds, L <= block_size
        self.cache: KVCache | None = None
        if fused:
            self.layers, self.head_t = _fused_parameters(model)

    def _fill(self, ids: torch.Tensor) -> torch.Tensor:
        m, cfg = self.model, self.model.cfg
        if self.cache is None or self.cache.batch != ids.shape[0]:
            b, like = ids.shape[0], m.tok_emb.weight
            self.cache = KVCache(cfg.n_layer, b, self.size, cfg.n_embd, cfg.n_head, like)
        self.cache.length, self.ids = 0, ids
        return self._read(ids)

    def start(self, ids: torch.Tensor) -> torch.Tensor:
        return self._fill(ids[:, -self.size :])  # a long prompt is cropped to the context

    def advance(self, token: torch.Tensor) -> torch.Tensor:
        token = token[:, None]  # (B, 1)
        if self.ids.shape[1] == self.size:  # full: rebuild from the most recent tokens
            return self._fill(torch.cat([self.ids, token], dim=1)[:, -self.keep :])
        self.ids = torch.cat([self.ids, token], dim=1)
        return self._read(token)

    def context(self) -> torch.Tensor:
        """The tokens the latest logits were predicted from."""
        return self.ids

    def _read(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids at the positions after the cache's -> (B, V) logits after the last one."""
        if self.fused:
            return self._read_fused(ids)
        return self.model.logits(ids, self.cache)[:, -1]

    def _read_fused(self, ids: torch.Tensor) -> torch.Tensor:
        """`_read` as plain tensor operations. Several tokens are read into an empty cache only
        (a prompt, a rebuild). Call it without gradients (`generate` runs under
        torch.inference_mode)."""
        m, cache = self.model, self.cache
        (b, t), c, eps = ids.shape, m.cfg.n_embd, m.ln_f.eps
        start, end = cache.length, cache.length + t
        if t > 1 and start:
            raise ValueError("several tokens are read into an empty cache only")
        mask = None
        if m.cfg.attention != "dense":
            mask = m.mask(torch.arange(start, end), torch.arange(end)).to(ids.device)
        if t == 1:  # the common case, in as few operations as it takes
            x = m.tok_emb.weight[ids[:, 0]] + m.pos_emb.weight[start]  # (B, C)
        else:
            x = (m.tok_emb.weight[ids.t()] + m.pos_emb.weight[:end, None]).reshape(t * b, c)
        for i, layer in enumerate(self.layers):
            g1, b1, w_qkv, b_qkv, w_proj, b_proj, g2, b2, w_fc, b_fc, w_out, b_out = layer
            if t == 1:
                rows, q, k, v = cache.at(i, start)
            else:
                rows, (q, k, v) = cache.rows[i, :end].view(t * b, -1), cache.heads(i, end)
            h = torch.layer_norm(x, (c,), g1, b1, eps)
            if b_qkv is None:
                torch.mm(h, w_qkv, out=rows)
            else:
                torch.addmm(b_qkv, h, w_qkv, out=rows)
            y = attend(q, k, v, mask, mask is None and t > 1)  # (B, nh, T, hs)
            y = y.reshape(b, c) if t == 1 else y.permute(2, 0, 1, 3).reshape(t * b, c)
            x = _residual(x, y, w_proj, b_proj)
            h = F.gelu(_linear(torch.layer_norm(x, (c,), g2, b2, eps), w_fc, b_fc))
            x = _residual(x, h, w_out, b_out)
        cache.length = end
        x = torch.layer_norm(x[-b:], (c,), m.ln_f.weight, m.ln_f.bias, eps)  # the last position
        return torch.mm(x, self.head_t)  # (B, V): the tied head


def _fused_parameters(model: GPT) -> tuple[list[tuple], torch.Tensor]:
    """The parameters each block's fused step uses, matrices transposed, and the transposed
    head; on a CPU, for models up to COPY_MAX_PARAMETERS, as contiguous copies (a one-row
    product with one is faster) made once per call, when the weights cannot change."""
    n_params = sum(p.numel() for p in model.parameters())
    copy = model.device.type == "cpu" and n_params <= COPY_MAX_PARAMETERS

    def t(w: torch.Tensor) -> torch.Tensor:
        return w.detach().t().contiguous() if copy else w.detach().t()

    layers = []
    for blk in model.blocks:
        qkv, proj, fc, out = blk.attn.qkv, blk.attn.proj, blk.mlp[0], blk.mlp[2]
        layers.append(
            (blk.ln1.weight, blk.ln1.bias, t(qkv.weight), qkv.bias, t(proj.weight), proj.bias)
            + (blk.ln2.weight, blk.ln2.bias, t(fc.weight), fc.bias, t(out.weight), out.bias)
        )
    return layers, t(model.tok_emb.weight)


def _linear(x: torch.Tensor, w_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ w_t (+ bias) for 2-d x, with the matrix given transposed."""
    return torch.mm(x, w_t) if bias is None else torch.addmm(bias, x, w_t)


def _residual(x: torch.Tensor, y: torch.Tensor, w_t: torch.Tensor, bias: torch.Tensor | None):
    """x + y @ w_t (+ bias) in one fused operation when there is no bias."""
    out = torch.addmm(x, y, w_t)
    return out if bias is None else out.add_(bias)


def shakespeare_cpu_preset(run):
    """nanoGPT's small CPU configuration for character-level Tiny Shakespeare (the benchmark),
    with bfloat16 matrix products where the CPU has native bfloat16 arithmetic."""
    run.train.bf16 = "auto"
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


def jsb_preset(run):
    """Polyphonic music (JSB Chorales, event tokens) on a CPU: a small dropout-regularised
    transformer over 128 tokens (about 26 time steps), the training pieces transposed by up to
    6 semitones each way (data.sequence.transpose, training only)."""
    run.model.n_layer, run.model.n_head, run.model.n_embd = 4, 4, 128
    run.model.block_size, run.model.dropout, run.model.bias = 128, 0.2, False
    run.data.sequence.transpose = 6
    t = run.train
    t.batch_size, t.steps, t.lr, t.warmup_steps = 32, 3000, 2e-3, 50
    t.min_lr_ratio, t.betas, t.weight_decay, t.grad_clip = 0.1, [0.9, 0.99], 0.1, 1.0
    t.eval_every, t.eval_batches = 250, 0
    return run


PRESETS = {
    "shakespeare-cpu": shakespeare_cpu_preset,
    "shakespeare": shakespeare_preset,
    "jsb": jsb_preset,
}
