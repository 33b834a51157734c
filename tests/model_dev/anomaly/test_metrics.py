"""AUC and the challenge's pAUC against scikit-learn, a worked example, and thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from model_dev.anomaly.metrics import (
    Scores,
    auc,
    auc_by_group,
    decisions,
    evaluate_scores,
    fit_threshold,
    mcclish,
    pauc,
)


@pytest.mark.parametrize("seed", range(6))
def test_auc_and_pauc_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = np.round(rng.normal(y * rng.uniform(0, 2), 1), int(rng.integers(0, 3)))  # with ties
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    for p in (0.05, 0.1, 0.3):
        assert mcclish(pauc(y, s, p), p) == pytest.approx(roc_auc_score(y, s, max_fpr=p), abs=1e-12)


def test_pauc_worked_example_is_the_challenge_convention() -> None:
    # 10 normal clips scored 1..10; anomalies 12, 11, 10.5 (above every normal), 5.5, 0.5.
    y = np.r_[np.zeros(10), np.ones(5)]
    s = np.r_[np.arange(1, 11), 12, 11, 10.5, 5.5, 0.5]
    # up to FPR 0.1 (one false alarm, the normal clip at 10) the TPR is 3/5 throughout:
    # area 0.1 * 0.6 = 0.06, divided by 0.1 -> 0.6
    assert pauc(y, s) == pytest.approx(0.6)
    # scikit-learn's max_fpr standardises it (McClish): 0.5 * (1 + (0.06 - 0.005) / 0.095)
    assert roc_auc_score(y, s, max_fpr=0.1) == pytest.approx(0.5 * (1 + 0.055 / 0.095))
    # AUC: each anomaly beats 10, 10, 10, 5, 0 normals -> 35 / 50
    assert auc(y, s) == pytest.approx(0.7)
    # a perfect detector gets 1, a reversed one 0; FPR steps of 1/8 are interpolated at 0.1
    assert pauc([0, 0, 1, 1], [0, 1, 2, 3]) == 1.0 and pauc([0, 0, 1, 1], [3, 2, 1, 0]) == 0.0
    y8 = np.r_[np.zeros(8), 1, 1]
    assert pauc(y8, np.r_[np.arange(1, 9), 9, 7.5]) == pytest.approx(0.5)


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes: 0 anomalous, 3 normal"):
        auc([0, 0, 0], [1, 2, 3])


def test_per_id_per_type_means_and_groups() -> None:
    y = np.array([0, 0, 1, 1] * 3)
    good, bad = [1, 2, 3, 4], [4, 3, 2, 1]
    s = Scores(
        np.array(good + bad + good, dtype=float),
        y,
        ["fan"] * 8 + ["pump"] * 4,
        ["id_00"] * 4 + ["id_02"] * 4 + ["id_00"] * 4,
    )
    r = evaluate_scores(s)
    assert r["per_id"]["fan"]["id_00"]["auc"] == 1.0 and r["per_id"]["fan"]["id_02"]["auc"] == 0.0
    assert r["per_type"] == {"fan": {"auc": 0.5, "pauc": 0.5}, "pump": {"auc": 1.0, "pauc": 1.0}}
    assert r["mean"]["auc"] == 0.75 and r["hmean"]["auc"] == pytest.approx(2 / (1 / 0.5 + 1))
    sev = np.array([0, 0, 1, 2] * 3)
    g = auc_by_group(s.labels, s.scores, sev, s.machine_ids)
    assert set(g) == {1, 2} and g[1]["n_anomaly"] == 3


def test_threshold_from_normal_scores_only() -> None:
    rng = np.random.default_rng(0)
    normal = rng.gamma(2.0, 1.5, 4000)
    t = fit_threshold(normal, 0.9)
    assert t["method"] == "gamma" and t["n_clips"] == 4000
    assert np.mean(normal <= t["value"]) == pytest.approx(0.9, abs=0.02)
    assert decisions(np.array([0.0, 1e9]), t).tolist() == [0, 1]
    constant = fit_threshold(np.ones(5))  # degenerate fit -> the empirical quantile
    assert constant["value"] == 1.0
    with pytest.raises(ValueError, match="need >= 2 finite normal scores"):
        fit_threshold(np.array([np.nan, 1.0]))
