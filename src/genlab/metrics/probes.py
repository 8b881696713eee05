"""How good a representation is: a linear probe and k-nearest neighbours on labelled data.

Both learn from the frozen features of the labelled train split and are scored on another
split (test), beside the same probes on a randomly initialised encoder of the same
architecture and on raw pixels, the two floors a learned representation must beat.

- linear probe: scikit-learn's multinomial LogisticRegression on standardized features.
- kNN: cosine similarity to every train example; the k most similar vote with weight
  exp(similarity / 0.1) (the weighted kNN of Wu et al. 2018, which lightly's kNN also uses).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genlab.data import Dataset
from genlab.errors import DataError

KNN_TEMPERATURE = 0.1


@torch.no_grad()
def features(
    encode: Callable[[torch.Tensor], torch.Tensor],
    data: Dataset,
    split: str,
    index: torch.Tensor,
    *,
    device: torch.device,
    batch_size: int = 512,
) -> torch.Tensor:
    """encode(x) of the examples `index` of `split`, (N, D) float32 on the CPU."""
    out = []
    for start in range(0, len(index), batch_size):
        x = data.batch(split, index[start : start + batch_size])["x"].to(device)
        out.append(encode(x).float().flatten(1).cpu())
    return torch.cat(out)


def linear_probe(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor
) -> float:
    """Test accuracy of logistic regression fitted on standardized train features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x.numpy())
    clf = LogisticRegression(max_iter=1000)
    clf.fit(scaler.transform(train_x.numpy()), train_y.numpy())
    pred = clf.predict(scaler.transform(test_x.numpy()))
    return float(np.mean(pred == test_y.numpy()))


def knn_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    k: int = 200,
    num_classes: int | None = None,
    chunk: int = 1024,
) -> float:
    """Test accuracy of the similarity-weighted vote of the k most cosine-similar train
    examples (k is capped at the number of train examples)."""
    k = min(k, len(train_x))
    classes = num_classes or int(max(train_y.max(), test_y.max())) + 1
    bank = F.normalize(train_x, dim=1)
    correct = 0
    for start in range(0, len(test_x), chunk):
        q = F.normalize(test_x[start : start + chunk], dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)  # (n, k)
        votes = torch.zeros(len(q), classes).scatter_add_(
            1, train_y[idx], (sim / KNN_TEMPERATURE).exp()
        )
        correct += int((votes.argmax(1) == test_y[start : start + chunk]).sum())
    return correct / len(test_x)


def _random_twin(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy of `model` with freshly initialised weights (seeded), in eval mode."""
    twin = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in twin.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return twin.eval()


def probe_report(
    model: Any,
    data: Dataset,
    split: str = "test",
    *,
    probe_examples: int | None = None,
    knn_k: int = 200,
    seed: int = 0,
    baselines: bool = True,
) -> dict[str, Any]:
    """Linear-probe and kNN accuracy of `model.representation` on `split`, learnt from the
    labelled train split (its first `probe_examples` examples when given); with `baselines`,
    the same for a random encoder and for raw pixels (keys `random_*`, `pixels_*`)."""
    if data.info.task != "classification":
        raise DataError(
            f"the probes learn the labels of the data and '{data.info.source}' has no class "
            "labels; evaluate on labelled data (--data with class sub-folders or IDX labels)"
        )
    n_train = len(data.splits["train"])
    if probe_examples:
        n_train = min(n_train, probe_examples)
    train_idx = torch.arange(n_train)
    test_idx = torch.arange(len(data.splits[split]))
    train_y = data.splits["train"].y[:n_train].long()
    test_y = data.splits[split].y.long()
    k = min(knn_k, n_train)
    device = next(model.parameters()).device

    def scores(encode: Callable[[torch.Tensor], torch.Tensor]) -> tuple[float, float]:
        tr = features(encode, data, "train", train_idx, device=device)
        te = features(encode, data, split, test_idx, device=device)
        return (
            linear_probe(tr, train_y, te, test_y),
            knn_accuracy(tr, train_y, te, test_y, k=k, num_classes=data.info.num_classes),
        )

    model.eval()
    out: dict[str, Any] = {"probe_train_examples": n_train, "knn_k": k}
    out["linear_probe_acc"], out["knn_acc"] = scores(model.representation)
    if baselines:
        twin = _random_twin(model, seed)
        out["random_linear_probe_acc"], out["random_knn_acc"] = scores(twin.representation)
        out["pixels_linear_probe_acc"], out["pixels_knn_acc"] = scores(lambda x: x)
    return out
