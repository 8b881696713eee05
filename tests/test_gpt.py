"""GPT: the key/value cache against plain recomputation, the sliding context, sampling options,
Sparse Transformer attention patterns, freezing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from genlab.data import DataInfo
from genlab.data.text import TextRecord
from genlab.errors import RunError, UsageError
from genlab.hardware import native_bf16
from genlab.models.gpt import GPT, Config, KVCache, attend, attention_mask
from genlab.run import resolve_config
from genlab.sequence.decoding import filter_logits, generate, next_token
from genlab.text import train_tokenizer

VOCAB = "abcdefghijklmnopqrstuvwxyz .\n"


def make_gpt(**kw) -> GPT:
    cfg = Config(**{"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 16, **kw})
    info = DataInfo(
        source="t", kind="text", shape=[cfg.block_size], num_classes=0, task="none",
        record=TextRecord(vocab_size=len(VOCAB)),
    )  # fmt: skip
    torch.manual_seed(0)
    model = GPT(cfg, info).eval()
    model.tokenizer = train_tokenizer("char", [VOCAB], vocab_size=0)
    return model


PATHS = ("fused", "module", "recompute")
"""The decoding paths: the KV cache through the fused step (the default) or through the
model's modules, and recomputing the context every step."""


def stepper_of(model: GPT, path: str):
    if path == "recompute":
        return model.stepper(cached=False)
    return model.cached_stepper(fused=path == "fused")


def run_steps(model: GPT, prompt: torch.Tensor, steps: int, path: str, forced=None):
    """Decoding through a stepper, greedy or feeding the `forced` (B, steps) tokens; each step's
    logits and the context they were predicted from."""
    stepper = stepper_of(model, path)
    logits, contexts, ids = [], [], prompt
    with torch.no_grad():
        out = stepper.start(prompt)
        for step in range(steps):
            logits.append(out)
            contexts.append(stepper.context().clone())
            token = out.argmax(-1) if forced is None else forced[:, step]
            ids = torch.cat([ids, token[:, None]], dim=1)
            out = stepper.advance(token)
    return ids, logits, contexts


@pytest.mark.parametrize(
    ("attention", "bias"), [("dense", False), ("local", False), ("strided", False), ("dense", True)]
)
def test_fused_module_and_uncached_greedy_decoding_agree_within_the_context(attention, bias):
    model = make_gpt(attention=attention, window=4, bias=bias)
    if bias:  # biases start at zero: give them values, so that a dropped one would show
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    steps = model.cfg.block_size - prompt.shape[1]  # fills the context exactly
    ids_u, logits_u, _ = run_steps(model, prompt, steps, "recompute")
    forced = torch.randint(0, len(VOCAB), (2, steps), generator=torch.Generator().manual_seed(1))
    _, forced_u, _ = run_steps(model, prompt, steps, "recompute", forced=forced)
    for path in ("fused", "module"):
        ids_c, logits_c, _ = run_steps(model, prompt, steps, path)
        assert torch.equal(ids_c, ids_u), path
        for a, b in zip(logits_c, logits_u, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        # and on varied text: random tokens fed through both paths
        _, logits_c, _ = run_steps(model, prompt, steps, path, forced=forced)
        for a, b in zip(logits_c, forced_u, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("path", ["fused", "module"])
@pytest.mark.parametrize(
    ("size", "attention"),
    [(16, "dense"), (16, "local"), (16, "strided"), (1, "dense"), (2, "dense"), (3, "local")],
)
def test_past_the_context_every_token_sees_at_most_block_size_tokens(size, attention, path):
    model = make_gpt(block_size=size, attention=attention, window=4)
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])  # two sequences, longer than some contexts
    g = torch.Generator().manual_seed(2)
    forced = torch.randint(0, len(VOCAB), (2, 4 * size + 4), generator=g)
    ids, logits, contexts = run_steps(model, prompt, 4 * size + 4, path, forced=forced)
    for step, (out, ctx) in enumerate(zip(logits, contexts, strict=True)):
        end = prompt.shape[1] + step  # tokens known when this step's logits were computed
        assert min(size, (size + 1) // 2, end) <= ctx.shape[1] <= size
        assert torch.equal(ctx, ids[:, end - ctx.shape[1] : end])  # the most recent tokens
        with torch.no_grad():  # the same logits as a plain forward pass on that context
            torch.testing.assert_close(out, model.logits(ctx)[:, -1], atol=1e-5, rtol=0)
    # the cache is rebuilt, never grown: it holds at most block_size positions
    stepper = stepper_of(model, path)
    with torch.no_grad():
        stepper.start(prompt)
        for t in ids[:, 3:].t():
            stepper.advance(t)
            assert stepper.cache.length <= size and stepper.cache.size == size
    # the uncached path slides: every step reads the last block_size tokens
    _, logits_u, contexts_u = run_steps(model, prompt, 4 * size + 4, "recompute")
    assert max(c.shape[1] for c in contexts_u) == size


def test_a_prompt_longer_than_the_context_is_cropped():
    model = make_gpt()
    prompt = "the quick brown fox jumps over the lazy dog. " * 3  # 135 characters > 16
    text = model.sample(1, prompt=prompt, max_new_tokens=5, top_k=1)[0]
    assert text.startswith(prompt) and len(text) == len(prompt) + 5
    ids = torch.tensor([model.tokenizer.encode(prompt)])
    with torch.no_grad():
        first = model.logits(ids[:, -16:])[0, -1].argmax().item()
    assert text[len(prompt)] == model.tokenizer.decode([first])


@pytest.mark.parametrize("attention", ["dense", "strided"])
def test_cached_generation_through_the_modules_equals_recomputing_token_for_token(attention):
    model = make_gpt(attention=attention, window=4)
    prompt = torch.tensor([[1, 2, 3], [7, 8, 9]])
    steps = 3 * model.cfg.block_size  # past the context: the cache is rebuilt several times
    with torch.inference_mode():
        module = generate(model.cached_stepper(fused=False), prompt, steps, top_k=1)
    recompute = model.generate_ids(prompt, steps, cached=False, greedy=True)
    fused = model.generate_ids(prompt, steps, greedy=True)
    assert torch.equal(module, recompute) and torch.equal(fused, recompute)
    assert len(set(recompute[0, 3:].tolist())) > 1  # not one token repeated


def test_the_module_path_is_the_training_forward_with_a_cache():
    """The cache is an argument of the same blocks that train: in train mode, dropout applies
    with the same draws, and positions read in two calls give the logits of one call."""
    model = make_gpt(dropout=0.5).train()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        cache = KVCache(2, 1, 16, 32, 2, model.tok_emb.weight)
        torch.manual_seed(0)
        a = model.logits(ids, cache)
        torch.manual_seed(0)
        b = model.logits(ids)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)  # same draws of the dropout masks
        assert not torch.allclose(a, model.logits(ids))  # and dropout did draw
        model.eval()
        cache.length = 0
        first, rest = model.logits(ids[:, :4], cache), model.logits(ids[:, 4:], cache)
        whole = model.logits(ids)
        torch.testing.assert_close(torch.cat([first, rest], 1), whole, atol=1e-5, rtol=0)
        assert cache.length == 6


def test_zero_new_tokens_returns_the_prompt_and_top_k_1_is_greedy():
    model = make_gpt()
    assert model.sample(2, prompt="hello", max_new_tokens=0) == ["hello", "hello"]
    g = torch.Generator().manual_seed(0)
    drawn = model.sample(1, prompt="abc", max_new_tokens=30, top_k=1, generator=g)[0]
    ids = torch.tensor([model.tokenizer.encode("abc")])
    greedy = model.generate_ids(ids, 30, greedy=True)[0, 3:].tolist()
    assert drawn == "abc" + model.tokenizer.decode(greedy)


def test_streaming_gives_the_same_text_piece_by_piece():
    model = make_gpt()
    pieces = []
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    text = model.sample(1, prompt="ab", max_new_tokens=40, generator=g1, stream=pieces.append)
    assert "".join(pieces) == text[0]
    assert model.sample(1, prompt="ab", max_new_tokens=40, generator=g2) == text
    assert len(pieces) > 10  # streamed as generated, not at the end


@pytest.mark.parametrize(
    "options, message",
    [
        ({"temperature": 0.0}, "--temperature must be positive"),
        ({"temperature": -1.0}, "--temperature must be positive"),
        ({"top_k": 0}, "--top-k must be a positive"),
        ({"top_p": 0.0}, r"--top-p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"--top-p must be in \(0, 1\]"),
        ({"max_new_tokens": -1}, "--max-new-tokens must be 0 or more"),
        ({"prompt": "Hello"}, r"never seen: 'H'"),
    ],
)
def test_bad_sampling_options_are_usage_errors(options, message):
    with pytest.raises(UsageError, match=message):
        make_gpt().sample(1, **options)


def test_top_k_and_top_p_keep_the_likeliest_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    kept = torch.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [[True, True, False, False, False]]
    kept = torch.isfinite(filter_logits(logits, top_p=0.8))  # 0.5 + 0.2 < 0.8 <= 0.85
    assert kept.tolist() == [[True, True, True, False, False]]
    kept = torch.isfinite(filter_logits(logits, top_p=0.3))  # the top token is always kept
    assert kept.tolist() == [[True, False, False, False, False]]


def test_sparse_masks_are_the_fixed_patterns_of_child_et_al():
    pos = torch.arange(12)
    for kind in ("local", "strided"):
        mask = attention_mask(kind, 4, pos, pos)
        for i in range(12):
            for j in range(12):
                local = 0 <= i - j < 4
                strided = j <= i and (i - j) % 4 == 0
                want = local if kind == "local" else local or strided
                assert bool(mask[i, j]) == want, (kind, i, j)


@pytest.mark.parametrize("attention", ["local", "strided"])
def test_a_position_only_depends_on_the_tokens_its_pattern_allows(attention):
    model = make_gpt(n_layer=1, attention=attention, window=4)  # one layer: no indirect paths
    ids = torch.randint(0, len(VOCAB), (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model.logits(ids)[0]
    i = 13
    allowed = attention_mask(attention, 4, torch.arange(16), torch.arange(16))[i]
    for j in range(i):
        changed = ids.clone()
        changed[0, j] = (ids[0, j] + 1) % len(VOCAB)
        with torch.no_grad():
            moved = not torch.allclose(model.logits(changed)[0, i], base[i], atol=1e-6)
        assert moved == bool(allowed[j]), (attention, j)


def test_freeze_stops_training_the_embeddings_and_the_first_blocks():
    model = make_gpt(n_layer=3)
    model.freeze(2)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "tok_emb.weight" in frozen and "pos_emb.weight" in frozen
    assert all(n.split(".")[1] in ("0", "1") for n in frozen if n.startswith("blocks."))
    assert any(n.startswith("blocks.2.") for n, p in model.named_parameters() if p.requires_grad)
    with pytest.raises(UsageError, match="between 0 and model.n_layer"):
        model.freeze(4)


def test_bad_model_settings_are_usage_errors():
    with pytest.raises(UsageError, match="must divide by model.n_head"):
        Config(n_embd=30, n_head=4).validate()
    with pytest.raises(UsageError, match="model.block_size must be at least 1"):
        Config(block_size=0).validate()


@pytest.mark.parametrize("attention", ["dense", "local", "strided"])
def test_explicit_cpu_attention_equals_sdpa_values_and_gradients(attention):
    """On the CPU, short contexts are attended with explicit products (faster there); they are
    the same function as scaled_dot_product_attention, forward and backward."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 12, 8, generator=g, requires_grad=True) for _ in range(3))
    pos = torch.arange(12)
    mask = None if attention == "dense" else attention_mask(attention, 4, pos, pos)
    grad = torch.randn(2, 3, 12, 8, generator=g)
    ours = attend(q, k, v, mask, mask is None)
    ours_grads = torch.autograd.grad(ours, (q, k, v), grad)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
    their_grads = torch.autograd.grad(theirs, (q, k, v), grad)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    for a, b in zip(ours_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_explicit_cpu_attention_under_bfloat16_autocast_stays_close_to_sdpa():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 12, 8, generator=g) for _ in range(3))
    exact = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = attend(q, k, v, None, True).float()
        theirs = F.scaled_dot_product_attention(q, k, v, is_causal=True).float()
    # bfloat16 keeps 8 bits of mantissa: both are within its rounding of the float32 result
    assert (ours - exact).abs().max() < 0.03 and (theirs - exact).abs().max() < 0.03


def test_a_model_whose_probabilities_are_nan_is_an_error_not_token_zero():
    with pytest.raises(RunError, match="not numbers"):
        next_token(torch.full((1, 5), float("nan")))


def test_draws_follow_the_probabilities_and_never_pick_an_excluded_token():
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    logits = probs.log().expand(40_000, 4)  # 40,000 independent draws at once
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(next_token(logits, generator=g), minlength=4) / 40_000
    torch.testing.assert_close(counts, probs, atol=0.01, rtol=0)  # 4 standard deviations
    assert counts[3] == 0
    counts = torch.bincount(next_token(logits, top_k=2, generator=g), minlength=4) / 40_000
    torch.testing.assert_close(counts, torch.tensor([0.625, 0.375, 0, 0]), atol=0.01, rtol=0)
    assert counts[2] == counts[3] == 0
    hot = torch.bincount(next_token(logits, temperature=0.5, generator=g), minlength=4) / 40_000
    sharpened = probs**2 / (probs**2).sum()  # temperature 0.5 squares the probabilities
    torch.testing.assert_close(hot, sharpened, atol=0.01, rtol=0)


def test_the_shakespeare_cpu_preset_is_nanogpts_configuration(tmp_path):
    _, cfg = resolve_config("gpt", tmp_path, preset="shakespeare-cpu")
    m, t = cfg.model, cfg.train
    assert (m.n_layer, m.n_head, m.n_embd, m.block_size, m.dropout, m.bias) == (4, 4, 128, 64, 0, 0)
    assert (t.batch_size, t.steps, t.lr, t.warmup_steps, t.min_lr_ratio) == (
        12,
        2000,
        1e-3,
        100,
        0.1,
    )
    assert (t.betas, t.weight_decay, t.grad_clip, cfg.data.val_fraction) == (
        [0.9, 0.99],
        0.1,
        1,
        0.1,
    )
    assert t.bf16 == "auto"  # bfloat16 only where the device has it, decided at run time


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs Linux's /proc/cpuinfo")
def test_native_bf16_agrees_with_the_cpu_flags():
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert native_bf16(torch.device("cpu")) == bool(flags & {"avx512_bf16", "amx_bf16"})
