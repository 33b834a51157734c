"""AUPRC, thresholds and PR plots on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from model_dev.tagging_metrics import auprc, operating_thresholds, plot_pr_curves

CLASSES = ("a", "b", "c")


def test_average_precision_by_hand():
    # class a: ranking 1(+) 2(-) 3(+): AP = (1/1 + 2/3) / 2 = 5/6
    # class b: perfect ranking: AP = 1; class c: no positives: excluded from macro
    labels = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    scores = np.array([[0.9, 0.8, 0.1], [0.8, 0.7, 0.2], [0.7, 0.1, 0.3], [0.1, 0.2, 0.4]])
    m = auprc(labels, scores, CLASSES)
    assert m["ap/a"] == pytest.approx(5 / 6)
    assert m["ap/b"] == pytest.approx(1.0)
    assert np.isnan(m["ap/c"])
    assert m["macro"] == pytest.approx((5 / 6 + 1) / 2)
    assert m["chance"] == pytest.approx(4 / 12)
    # micro pools the 12 pairs; tied scores form one threshold: >=.9 (P 1, R 1/4),
    # >=.8 (2 of 3, R 2/4), >=.7 (4 of 5, R 1): AP = 1/4 + 1/4 * 2/3 + 1/2 * 4/5
    assert m["micro"] == pytest.approx(1 / 4 + 1 / 4 * 2 / 3 + 1 / 2 * 4 / 5)


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        auprc(np.zeros((4, 2)), np.zeros((4, 2)), CLASSES)


def test_thresholds_max_f1_and_target_precision():
    labels = np.array([[1], [1], [0], [1], [0], [0]])
    scores = np.array([[0.9], [0.8], [0.7], [0.6], [0.3], [0.2]])
    # max F1: threshold 0.6 (P 3/4, R 1, F1 6/7) beats 0.8 (P 1, R 2/3, F1 0.8)
    assert operating_thresholds(labels, scores)[0] == pytest.approx(0.6)
    assert operating_thresholds(labels, scores, target_precision=1.0)[0] == pytest.approx(0.8)
    assert np.isinf(operating_thresholds(np.zeros((3, 1)), np.ones((3, 1)))[0])


def test_pr_plot_is_a_png(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.random((50, 3)) < 0.3
    path = plot_pr_curves(labels, rng.random((50, 3)) + labels, CLASSES, tmp_path / "pr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
