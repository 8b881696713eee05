"""Sample-quality metrics computed on feature vectors (from the frozen in-house `cnn`).

The functions on features are small and exact about their definitions:

- `frechet_distance`: Frechet distance between Gaussians fitted to two feature sets (Heusel et
  al. 2017), computed by torchmetrics' FrechetInceptionDistance on the given features.
- `kernel_inception_distance`: KID (Binkowski et al. 2018), the unbiased estimate of the squared
  MMD with the cubic polynomial kernel, averaged over random subsets (torchmetrics).
- `precision_recall`: improved precision and recall (Kynkaanniemi et al. 2019) from k-nearest-
  neighbour balls around real and generated features.
- `density_coverage`: density and coverage (Naeem et al. 2020), from balls around real features.
- `spread`: the mean distance between generated features relative to that between real ones
  (about 1 when they match; near 0 for collapsed samples).
- `class_coverage`: how many classes appear and the KL divergence of the class histogram from
  a reference histogram (the data's).
- `nearest_neighbour_distances`: each query's distance to its nearest reference (memorization).

`sample_quality(model, data)` generates images, embeds them and real images with the frozen
`cnn` judge (loaded by genlab.metrics.features; trained by genlab.judges) and reports every
figure next to the same figure for real test images against real training images (the
real-vs-real baseline).

Coverage and density come first: precision can be fooled. Precision counts the samples that fall
inside any real feature's k-NN ball, and the balls of the real set's outliers are wide; samples
that collapse to one point of feature space (noise, one blob) can all land inside one or a few
of them, giving precision near 1 with recall 0. Coverage (the share of real balls that hold a
sample) cannot be raised that way. `quality_warnings` says so in the output when it happens.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Any

import torch

from genlab.data import Dataset
from genlab.distributions import class_coverage
from genlab.errors import DataError, UsageError


class _Given(torch.nn.Module):
    """A pass-through "feature extractor", so torchmetrics' metrics take ready features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (N, D) and b (M, D):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Heusel et al. 2017)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=_Given(a.shape[1]))
    fid.update(a.detach().double().cpu(), real=True)
    fid.update(b.detach().double().cpu(), real=False)
    return max(0.0, float(fid.compute()))  # rounding can leave -1e-12 for identical sets


def kernel_inception_distance(
    a: torch.Tensor, b: torch.Tensor, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID between feature sets a (N, D) and b (M, D): the mean and standard deviation over
    `subsets` random subsets of min(subset_size, N, M) rows each of the unbiased squared MMD
    with kernel k(x, y) = (x.y / D + 1)^3 (Binkowski et al. 2018). About 0 for equal
    distributions (it can be slightly negative: the estimate is unbiased)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise UsageError("KID needs at least 2 feature vectors in each set")
    with warnings.catch_warnings():  # about keeping every feature in memory: ours are small
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=_Given(a.shape[1]), subsets=subsets, subset_size=size)
    kid.update(a.detach().double().cpu(), real=True)
    kid.update(b.detach().double().cpu(), real=False)
    with torch.random.fork_rng(devices=[]):  # its subsets come from the global generator
        torch.manual_seed(seed)
        mean, std = kid.compute()
    return float(mean), float(std)


def _distances(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Euclidean distances (N, M) between rows of a and b, in float64."""
    a, b = a.double(), b.double()
    return torch.cat([torch.cdist(a[i : i + chunk], b) for i in range(0, len(a), chunk)])


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from every row of x to its k-th nearest other row (N,)."""
    if len(x) <= k:
        raise UsageError(f"k-nearest-neighbour metrics need more than k={k} feature vectors")
    # column 0 of the sorted distances is the point itself (distance 0)
    return _distances(x, x).kthvalue(k + 1, dim=1).values


def precision_recall(real: torch.Tensor, fake: torch.Tensor, *, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): precision is the fraction of
    generated features inside some real feature's k-NN ball (fidelity), recall the fraction of
    real features inside some generated feature's k-NN ball (diversity)."""
    d = _distances(real, fake)  # (N_real, N_fake)
    precision = (d <= _knn_radii(real, k)[:, None]).any(0).double().mean()
    recall = (d <= _knn_radii(fake, k)[None, :]).any(1).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real: torch.Tensor, fake: torch.Tensor, *, k: int = 5) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020) with k-NN balls around the real features:
    density counts how many balls each generated feature falls in, divided by k (about 1 when
    the distributions match); coverage is the fraction of real balls that hold a generated
    feature."""
    inside = _distances(real, fake) <= _knn_radii(real, k)[:, None]  # (N_real, N_fake)
    density = inside.double().sum(0).mean() / k
    coverage = inside.any(1).double().mean()
    return {"density": float(density), "coverage": float(coverage)}


def spread(reference: torch.Tensor, generated: torch.Tensor, *, limit: int = 1000) -> float:
    """Mean distance between generated features over the mean distance between reference
    features (the first `limit` rows of each): about 1 when the spreads match, near 0 when the
    samples collapse to one point."""

    def mean_distance(x: torch.Tensor) -> float:
        x = x[:limit]
        n = len(x)
        return float(_distances(x, x).sum() / max(n * (n - 1), 1))

    return mean_distance(generated) / max(mean_distance(reference), 1e-12)


PRECISION_FOOLED = (0.8, 0.05)
"""Precision above the first and recall below the second: a warning (see the module docstring)."""


def quality_warnings(figures: dict[str, Any]) -> list[str]:
    """Warning lines for sample-quality figures that mislead on their own."""
    out = []
    p, r = figures.get("precision"), figures.get("recall")
    if p is not None and r is not None and p > PRECISION_FOOLED[0] and r < PRECISION_FOOLED[1]:
        cov = figures.get("coverage", math.nan)
        out.append(
            f"precision high ({p:.3f}), recall ~0 ({r:.3f}): samples collapsed or off-manifold; "
            f"precision counts samples inside wide real neighbourhoods, so judge by coverage "
            f"({cov:.3f}, real {figures.get('coverage_real', math.nan):.3f})"
        )
    sp, sp_real = figures.get("spread"), figures.get("spread_real")
    if sp is not None and sp_real is not None and sp < 0.5 * sp_real:
        out.append(
            f"the samples' spread is {sp:.3f} (real {sp_real:.3f}): they are much alike "
            "(collapsed); look at a grid of them"
        )
    return out


def conditional_accuracy(predicted: torch.Tensor, asked: torch.Tensor) -> float:
    """Fraction of images generated for class `asked` that the classifier puts in that class."""
    return float((predicted.cpu() == asked.cpu()).double().mean())


def nearest_neighbour_distances(query: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Distance (N,) from every query row to its nearest reference row."""
    a = query.double()
    return torch.cat(
        [
            torch.cat([torch.cdist(a[i : i + 1024], r) for r in reference.double().split(8192)], 1)
            .min(1)
            .values
            for i in range(0, len(a), 1024)
        ]
    )


# -------------------------------------------------------------------------------------------
# generated images against real ones


def _bar(items: Any, what: str, progress: bool) -> Any:
    """`items` with a progress bar on stderr (tqdm; none unless `progress`)."""
    from tqdm import tqdm

    return tqdm(items, desc=what, unit="batch", disable=not progress, leave=False)


@torch.no_grad()
def embed(
    extractor: torch.nn.Module,
    images: torch.Tensor,
    batch_size: int = 500,
    *,
    progress: bool = False,
    what: str = "embed",
):
    """Features (N, D) and predicted classes (N,) of images (N, C, H, W) in [0, 1]."""
    feats, preds = [], []
    for start in _bar(range(0, len(images), batch_size), what, progress):
        x = images[start : start + batch_size].float()
        feats.append(extractor.features(x))
        preds.append(extractor.predict(x).argmax(-1))
    return torch.cat(feats), torch.cat(preds)


def _split_images(data: Dataset, split: str, index: torch.Tensor) -> torch.Tensor:
    return data.batch(split, index)["x"]  # (N, C, H, W) in [0, 1]


MIN_SAMPLES = 10
"""The fewest generated images the sample-quality figures are computed on."""


def check_quality_settings(samples: int, feature_steps: int) -> None:
    """One-line UsageErrors for `--samples` and `--feature-steps`, checked before a judge is
    trained or anything is generated."""
    if samples < MIN_SAMPLES:
        raise UsageError(f"--samples must be at least {MIN_SAMPLES}; got {samples}")
    if feature_steps < 1:
        raise UsageError(f"--feature-steps must be at least 1; got {feature_steps}")


def is_conditional(model: Any) -> bool:
    """Whether the model generates a requested class (`sample(..., class_label=K)`)."""
    takes = {f.name for f in dataclasses.fields(model.SampleOptions)}
    return "class_label" in takes and bool(model.conditional)


@torch.no_grad()
def generate(
    model: Any,
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 250,
    class_label: int | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, float]:
    """n samples (n, C, H, W) on the CPU, drawn in batches from one seeded generator, and the
    seconds it took (`progress`: a progress bar on stderr)."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    options = {} if class_label is None else {"class_label": class_label}
    t0 = time.perf_counter()
    parts = [
        model.sample(min(batch_size, n - i), generator=g, **options).cpu()
        for i in _bar(range(0, n, batch_size), "generate", progress)
    ]
    return torch.cat(parts), time.perf_counter() - t0


def sample_quality(
    model: Any,
    data: Dataset,
    *,
    samples: int = 1000,
    seed: int = 0,
    split: str = "test",
    feature_steps: int = 2000,
    cache_dir: str | None = None,
    batch_size: int = 250,
    images: torch.Tensor | None = None,
    judge: torch.nn.Module | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Sample-quality figures of an image model in the features of the frozen `cnn`.

    `samples` images are generated with `seed` (or given as `images`, (N, C, H, W) in [0, 1]);
    `samples` training images are the reference. Each figure `X` comes with `X_real`: the same
    figure for up to `samples` real images of `split` against the same reference. The
    memorization check compares each set's nearest-neighbour distance to the whole training
    split. Conditional models also get `conditional_accuracy` (balanced classes, same seed).
    `judge`: the frozen `cnn` (genlab.judges.judge); by default the cached one of the data,
    trained `feature_steps` steps (an error says how to train it when there is none).
    `progress`: progress bars on stderr while generating and embedding.
    """
    from genlab.metrics.features import RECIPE, load_judge

    info = data.info
    if not model.generates() or info.kind != "image":
        raise UsageError(
            f"sample-quality metrics are for generative image families; '{model.family}' on "
            f"{info.kind} data has none"
        )
    if info.task != "classification":
        raise DataError(
            f"sample-quality metrics judge images with a classifier trained on the data's labels, "
            f"and '{info.source}' has none; use labelled data (class sub-folders or IDX labels)"
        )
    check_quality_settings(samples, feature_steps)
    extractor = judge or load_judge(info.source, steps=feature_steps, cache_dir=cache_dir)
    out: dict[str, Any] = {
        "samples": samples,
        "sample_seed": seed,
        "feature_extractor": f"cnn {RECIPE}, {feature_steps} steps",
        "feature_extractor_test_accuracy": extractor.test_accuracy,
    }

    # generated, reference (training) and real (held-out) images, each embedded once
    if images is None:
        model.eval()
        images, seconds = generate(
            model, samples, seed=seed, batch_size=batch_size, progress=progress
        )
        out["sample_ms_per_image"] = 1000 * seconds / samples
    images = images[:samples]
    pick = torch.Generator().manual_seed(seed)
    n_train, n_real = len(data.splits["train"]), len(data.splits[split])
    ref_idx = torch.randperm(n_train, generator=pick)[:samples]
    real_idx = torch.randperm(n_real, generator=pick)[:samples]
    fake_f, fake_c = embed(extractor, images)
    train_images = _split_images(data, "train", torch.arange(n_train))
    train_f, _ = embed(extractor, train_images, progress=progress, what="embed train")
    ref_f = train_f[ref_idx]
    real_f, real_c = embed(extractor, _split_images(data, split, real_idx))
    out |= {"reference_images": len(ref_idx), "real_images": len(real_idx), "real_split": split}

    train_y, k = data.splits["train"].y, info.num_classes
    kid_size = min(1000, len(fake_f), len(ref_f), len(real_f))

    def figures(feats: torch.Tensor, classes: torch.Tensor) -> dict[str, Any]:
        """Every figure of one set of images (features and predicted classes)."""
        kid, kid_std = kernel_inception_distance(ref_f, feats, subset_size=kid_size, seed=seed)
        cov = class_coverage(classes, k, train_y)
        dc = density_coverage(ref_f, feats)
        return {  # the figures noise cannot fool first
            "coverage": dc["coverage"],
            "density": dc["density"],
            "spread": spread(ref_f, feats),
            "fd": frechet_distance(ref_f, feats),
            "kid": kid,
            "kid_std": kid_std,
            **precision_recall(ref_f, feats),
            "classes_covered": cov["classes_covered"],
            "class_kl": cov["class_kl"],
            "class_histogram": cov["histogram"],
            "nn_distance": float(nearest_neighbour_distances(feats, train_f).mean()),
        }

    generated, real = figures(fake_f, fake_c), figures(real_f, real_c)
    for key in generated:  # each figure next to its real-vs-real baseline
        out[key], out[f"{key}_real"] = generated[key], real[key]
    # memorization: below 1, samples sit closer to training images than unseen real images do
    out["memorization_ratio"] = out["nn_distance"] / max(out["nn_distance_real"], 1e-12)
    out["kid_subset_size"] = kid_size
    out["warnings"] = quality_warnings(out)

    if is_conditional(model):
        per_class = max(1, math.ceil(samples / k))
        asked, preds = [], []
        for c in range(k):
            imgs, _ = generate(model, per_class, seed=seed + c, class_label=c)
            preds.append(embed(extractor, imgs)[1])
            asked.append(torch.full((per_class,), c))
        out["conditional_accuracy"] = conditional_accuracy(torch.cat(preds), torch.cat(asked))
        real_y = data.splits[split].y[real_idx]
        out["conditional_accuracy_real"] = conditional_accuracy(real_c, real_y)

    return out
