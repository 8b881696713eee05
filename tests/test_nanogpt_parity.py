"""genlab's gpt against nanoGPT's own model.py (../shared/anchors/nanogpt, a benchmark reference
only): the same weights give the same logits, and the exact-window sampler conditions every
token on the context nanoGPT's `generate` would."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from anchors import nanogpt, to_nanogpt  # noqa: E402
from test_gpt import make_gpt  # noqa: E402

NANOGPT, WHY = nanogpt()
pytestmark = pytest.mark.skipif(NANOGPT is None, reason=WHY)


@pytest.mark.parametrize("bias", [False, True])
def test_same_weights_give_the_same_logits(bias: bool) -> None:
    model = make_gpt(bias=bias)
    ref = to_nanogpt(NANOGPT, model)
    ids = torch.randint(0, model.vocab_size, (3, model.cfg.block_size))
    with torch.no_grad():
        ours = model.logits(ids)
        theirs, _ = ref(ids, ids)  # with targets nanoGPT returns every position's logits
        last, _ = ref(ids)  # without, the last position's only
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours[:, -1:], last, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("context", ["exact", "rebuild"])
def test_exact_window_conditions_like_nanogpt(context: str) -> None:
    """Decoding past the context (fed random tokens): the exact window predicts every token
    from the last block_size tokens, as nanoGPT's generate crops them; the half-window rebuild
    differs once the context has filled."""
    model = make_gpt()
    ref = to_nanogpt(NANOGPT, model)
    size = model.cfg.block_size
    ids = torch.randint(0, model.vocab_size, (2, 3 * size))
    stepper = model.cached_stepper(context=context)
    same = []
    with torch.no_grad():
        ours = stepper.start(ids[:, :5])
        for t in range(5, ids.shape[1]):
            theirs, _ = ref(ids[:, max(0, t - size) : t])
            same.append(torch.allclose(ours, theirs[:, -1], rtol=1e-4, atol=1e-5))
            ours = stepper.advance(ids[:, t])
    filled = size - 5  # steps before the context is full: equal either way
    assert all(same[: filled + 1])
    assert all(same) == (context == "exact")


def test_sample_takes_the_context_option() -> None:
    model = make_gpt()
    a = model.sample(
        1, max_new_tokens=40, context="exact", generator=torch.Generator().manual_seed(1)
    )
    assert len(a[0]) == 40
