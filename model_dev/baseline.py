"""The trivial baseline: logistic regression on each clip's mean log-mel.

It sees only the long-term spectrum, so the gap between it and a CNN shows how much of a
corpus's information lies in temporal structure.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from model_dev.features import FeatureSet
from model_dev.tagging_metrics import auprc


def fit_mean_baseline(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    classes: tuple[str, ...],
) -> dict[str, float]:
    """Fit standardised one-vs-rest logistic regression on clip vectors; AUPRC on the test set."""
    model = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(max_iter=2000)))
    model.fit(x_train, y_train)
    return auprc(y_test, model.predict_proba(x_test), classes)


def clip_means(fs: FeatureSet, indices: np.ndarray) -> np.ndarray:
    """Mean over time of each clip's dequantised features, [len(indices), n_mels]."""
    scale, zero = fs.config.input_scale, fs.config.input_zero_point
    return np.stack([(fs.clip(i).astype(np.float64) - zero).mean(axis=0) * scale for i in indices])


def mean_feature_baseline(fs: FeatureSet, train: str = "train", test: str = "test") -> dict:
    """The baseline on cached int8 features: fit on ``train``, report AUPRC on ``test``."""
    tr, te = fs.indices(train), fs.indices(test)
    return fit_mean_baseline(
        clip_means(fs, tr), fs.labels[tr], clip_means(fs, te), fs.labels[te], fs.classes
    )
