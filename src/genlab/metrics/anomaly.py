"""Anomaly detection with a trained generative model: per-example scores and how well they
separate normal from anomalous data (AUROC, AUPRC).

A model scores an example by what it can compute (never by its family name):
- `nll`: negative log-likelihood in nats (exact for pixelcnn and the text models, a bound for
  ddpm and the VAE's importance-weighted estimate);
- `neg_elbo`: the negative evidence lower bound (vae);
- `recon`: squared error of the model's reconstruction, summed over dimensions (vae; ddpm's
  deterministic DDIM round trip).
Higher means more anomalous. AUROC is the probability that a random anomalous example scores
above a random normal one (ties count half); AUPRC is the average precision with the anomalous
examples as the positive class.
"""

from __future__ import annotations

from typing import Any

import torch

from genlab.data import Dataset
from genlab.errors import UsageError
from genlab.metrics.evaluate import check_compatible
from genlab.models.base import EvidenceBound, Likelihood, Reconstructs

SCORES = ("nll", "neg_elbo", "recon")


def available_scores(model: Any) -> list[str]:
    """The scores `model` can compute, in the order of SCORES."""
    have = {
        "nll": isinstance(model, Likelihood),
        "neg_elbo": isinstance(model, EvidenceBound),
        "recon": isinstance(model, Reconstructs),
    }
    return [s for s in SCORES if have[s]]


@torch.no_grad()
def anomaly_scores(
    model: Any,
    data: Dataset,
    split: str,
    index: torch.Tensor,
    score: str,
    *,
    batch_size: int = 256,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Per-example scores (N,) of the examples `index` of `split` (higher: more anomalous).
    Randomness is seeded per batch; `options` go to `nll` (e.g. iw_samples)."""
    if score not in available_scores(model):
        raise UsageError(
            f"'{model.family}' cannot compute the '{score}' score; it has: "
            f"{', '.join(available_scores(model)) or 'none'}"
        )
    model.eval()
    out = []
    for i, start in enumerate(range(0, len(index), batch_size)):
        idx = index[start : start + batch_size]
        batch = {k: v.to(model.device) for k, v in data.batch(split, idx).items()}
        g = torch.Generator(device=model.device).manual_seed(seed * 100_003 + i)
        if score == "nll":
            s = model.nll(batch, generator=g, **(options or {}))
        elif score == "neg_elbo":
            s = -model.elbo(batch, generator=g)
        else:
            x = batch["x"]
            s = (model.reconstruct(x) - x).pow(2).flatten(1).sum(1)
        out.append(s.float().cpu())
    return torch.cat(out)


def auroc(normal: torch.Tensor, anomalous: torch.Tensor) -> float:
    """Area under the ROC curve of scores where the anomalous examples are positives: the
    Mann-Whitney statistic with average ranks for ties."""
    scores = torch.cat([normal, anomalous]).double()
    _, group, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    last_rank = counts.cumsum(0).double()  # rank (from 1) of each distinct value's last copy
    ranks = (last_rank - (counts - 1) / 2)[group]  # the average rank of its ties
    n, m = len(normal), len(anomalous)
    return float((ranks[n:].sum() - m * (m + 1) / 2) / (n * m))


def auprc(normal: torch.Tensor, anomalous: torch.Tensor) -> float:
    """Average precision with the anomalous examples as positives: the sum over thresholds
    (each distinct score, highest first) of precision times the gain in recall."""
    scores = torch.cat([normal, anomalous]).double()
    positive = torch.cat([torch.zeros(len(normal)), torch.ones(len(anomalous))]).double()
    order = scores.argsort(descending=True)
    scores, positive = scores[order], positive[order]
    tp = positive.cumsum(0)
    last = torch.ones(len(scores), dtype=torch.bool)  # the last example of each tied run
    last[:-1] = scores[1:] != scores[:-1]
    tp = tp[last]
    seen = torch.arange(1, len(scores) + 1, dtype=torch.float64)[last]
    precision, recall = tp / seen, tp / len(anomalous)
    gain = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.float64))
    return float((precision * gain).sum())


def detection_report(
    model: Any,
    normal: tuple[Dataset, str, torch.Tensor],
    anomalous: tuple[Dataset, str, torch.Tensor],
    scores: list[str] | None = None,
    *,
    batch_size: int = 256,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """AUROC and AUPRC of each score (default: every score the model has) on the normal and
    anomalous examples, each given as (dataset, split, example indices)."""
    for data, _, index in (normal, anomalous):
        check_compatible(model, data)
        if not len(index):
            raise UsageError("anomaly detection needs normal and anomalous examples; one is empty")
    scores = scores or available_scores(model)
    if not scores:
        raise UsageError(
            f"'{model.family}' has no likelihood or reconstruction to score anomalies with; "
            "use a vae, pixelcnn, ddpm, gpt or rnn run"
        )
    out: dict[str, Any] = {"normal": len(normal[2]), "anomalous": len(anomalous[2])}
    for score in scores:
        kw = dict(batch_size=batch_size, seed=seed, options=options if score == "nll" else None)
        a = anomaly_scores(model, *normal, score, **kw)
        b = anomaly_scores(model, *anomalous, score, **kw)
        out[f"{score}_auroc"] = auroc(a, b)
        out[f"{score}_auprc"] = auprc(a, b)
    return out
