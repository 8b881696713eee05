"""Anomaly detection: AUROC and AUPRC against scikit-learn, and the scores models give."""

from __future__ import annotations

import pytest
import torch

from genlab.data import load_dataset
from genlab.metrics.anomaly import auprc, auroc, available_scores, detection_report
from genlab.run import build_model
from genlab.runconfig import default_config

metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("ties", [False, True])
def test_auroc_and_auprc_match_scikit_learn(ties):
    g = torch.Generator().manual_seed(0)
    normal = torch.randn(40, generator=g)
    anomalous = torch.randn(25, generator=g) + 1.0
    if ties:  # rounded scores: many ties, inside and across the two groups
        normal, anomalous = normal.round(), anomalous.round()
    y = [0] * len(normal) + [1] * len(anomalous)
    s = torch.cat([normal, anomalous]).tolist()
    assert auroc(normal, anomalous) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)
    assert auprc(normal, anomalous) == pytest.approx(
        metrics.average_precision_score(y, s), abs=1e-12
    )


def test_auroc_of_perfect_and_reversed_scores():
    a, b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([3.0, 4.0])
    assert auroc(a, b) == 1.0 and auroc(b, a) == 0.0 and auprc(a, b) == 1.0


def test_each_family_scores_by_what_it_can_compute():
    data = load_dataset("digits")
    seen = {}
    for family in ("vae", "pixelcnn", "cnn"):
        cfg = default_config(family)
        seen[family] = available_scores(build_model(family, cfg.model, data.info))
    assert seen == {"vae": ["nll", "neg_elbo", "recon"], "pixelcnn": ["nll"], "cnn": []}


def test_detection_report_gives_auroc_and_auprc_per_score():
    data = load_dataset("digits")
    cfg = default_config("vae")
    torch.manual_seed(0)
    model = build_model("vae", cfg.model, data.info)
    y = data.splits["test"].y
    normal = (data, "test", torch.nonzero(y == 0).flatten())
    anomalous = (data, "test", torch.nonzero(y != 0).flatten())
    out = detection_report(model, normal, anomalous, ["neg_elbo", "recon"])
    assert out["normal"] == int((y == 0).sum()) and out["anomalous"] == int((y != 0).sum())
    for key in ("neg_elbo_auroc", "neg_elbo_auprc", "recon_auroc", "recon_auprc"):
        assert 0.0 <= out[key] <= 1.0


def test_anomaly_verb_reports_auroc_of_a_one_class_run(tmp_path, capsys):
    import json

    import genlab
    from genlab.cli import main

    over = ["model.channels=[8,16]", "model.hidden=32", "model.latent_dim=4"]
    over += ["train.batch_size=16", "train.eval_every=3", "data.classes=[0]"]
    run = genlab.train("vae", "digits", tmp_path / "vae", overrides=over, steps=3, quiet=True)
    assert main(["anomaly", str(run), "--normal-classes", "0", "--scores", "recon"]) == 0
    report = json.loads((run / "anomaly-test.json").read_text())
    y = load_dataset("digits").splits["test"].y  # all test digits, not the run's class 0 only
    assert report["normal"] == int((y == 0).sum()) and report["anomalous"] == int((y != 0).sum())
    assert 0 <= report["recon_auroc"] <= 1 and "recon_auroc:" in capsys.readouterr().out
    assert main(["anomaly", str(run)]) == 2  # neither --anomalous nor --normal-classes
