"""AUC and pAUC as DCASE 2020 Task 2 ranks them, and decision thresholds from normal clips.

pAUC convention: the **challenge's**, not scikit-learn's. The challenge defines
``pAUC = (1 / p) * integral_0^p TPR d(FPR)`` with ``p = 0.1``: the area under the ROC curve over
FPR in [0, p], normalised by p (a perfect detector gets 1, a random one p/2 = 0.05). It is *not*
McClish-standardised. scikit-learn's ``roc_auc_score(..., max_fpr=p)`` *is* standardised:
``sk = 0.5 * (1 + (A - p**2 / 2) / (p - p**2 / 2))`` with ``A = p * pAUC`` the raw area (random
gives 0.5). :func:`mcclish` converts ours to theirs (the tests check it against scikit-learn).
The ROC curve is interpolated linearly at FPR = p, as scikit-learn does; ties in scores count
half (the trapezoid of the tied step).

Per machine type, AUC and pAUC are the mean over the type's machine IDs of the per-ID values
(the DCASE 2020 baseline's "Average" rows); the overall figures are the mean over types, and the
harmonic mean over types (the ranking statistic of later DCASE editions) is reported beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_FPR = 0.1


def roc(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve points ``(fpr, tpr)`` from (0, 0) to (1, 1), one point per distinct score.

    Parameters
    ----------
    labels : np.ndarray
        1 for anomalous (positive), 0 for normal.
    scores : np.ndarray
        Higher = more anomalous.
    """
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes: {n_pos} anomalous, {n_neg} normal clips")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # end of each run of tied scores
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (= P(score of an anomaly > score of a normal clip), ties 1/2)."""
    fpr, tpr = roc(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def pauc(labels: np.ndarray, scores: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """Challenge pAUC: ROC area over FPR in [0, max_fpr], divided by ``max_fpr`` (not
    McClish-standardised; see the module docstring)."""
    if not 0 < max_fpr <= 1:
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr}")
    fpr, tpr = roc(labels, scores)
    stop = np.searchsorted(fpr, max_fpr, side="right")
    x, y = fpr[:stop], tpr[:stop]
    if x[-1] < max_fpr:  # interpolate the curve at max_fpr
        t = np.interp(max_fpr, fpr[stop - 1 : stop + 1], tpr[stop - 1 : stop + 1])
        x, y = np.r_[x, max_fpr], np.r_[y, t]
    return float(np.trapezoid(y, x) / max_fpr)


def mcclish(pauc_value: float, max_fpr: float = MAX_FPR) -> float:
    """Convert a challenge pAUC to scikit-learn's McClish-standardised ``max_fpr`` value."""
    raw, lo, hi = pauc_value * max_fpr, max_fpr**2 / 2, max_fpr
    return 0.5 * (1 + (raw - lo) / (hi - lo))


@dataclass(frozen=True)
class Scores:
    """Clip scores of one evaluation with what is needed to group them."""

    scores: np.ndarray
    labels: np.ndarray
    machine_types: Sequence[str]
    machine_ids: Sequence[str]


def _harmonic(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(len(v) / np.sum(1.0 / np.maximum(v, 1e-12)))


def evaluate_scores(s: Scores, max_fpr: float = MAX_FPR) -> dict:
    """AUC and pAUC per machine ID, per type (mean over IDs) and overall.

    Returns
    -------
    dict
        ``{"per_id": {type: {id: {"auc", "pauc", "n_normal", "n_anomaly"}}},
        "per_type": {type: {"auc", "pauc"}}, "mean": {"auc", "pauc"},
        "hmean": {"auc", "pauc"}, "max_fpr", "pauc_convention"}``.
    """
    types, ids = np.asarray(s.machine_types), np.asarray(s.machine_ids)
    per_id: dict[str, dict] = {}
    per_type: dict[str, dict] = {}
    for t in sorted(set(types.tolist())):
        per_id[t] = {}
        for i in sorted(set(ids[types == t].tolist())):
            m = (types == t) & (ids == i)
            y, x = s.labels[m], s.scores[m]
            per_id[t][i] = {
                "auc": auc(y, x),
                "pauc": pauc(y, x, max_fpr),
                "n_normal": int((y == 0).sum()),
                "n_anomaly": int((y == 1).sum()),
            }
        rows = per_id[t].values()
        per_type[t] = {k: float(np.mean([r[k] for r in rows])) for k in ("auc", "pauc")}
    return {
        "per_id": per_id,
        "per_type": per_type,
        "mean": {k: float(np.mean([v[k] for v in per_type.values()])) for k in ("auc", "pauc")},
        "hmean": {k: _harmonic([v[k] for v in per_type.values()]) for k in ("auc", "pauc")},
        "max_fpr": max_fpr,
        "pauc_convention": "challenge: area over FPR<=max_fpr divided by max_fpr (not McClish)",
    }


def auc_by_group(
    labels: np.ndarray, scores: np.ndarray, groups: Sequence, machine_ids: Sequence[str]
) -> dict:
    """AUC of each group of anomalies (a severity, a fault kind) against all normal clips:
    per machine ID, then the mean over IDs that have anomalies of that group.

    Returns
    -------
    dict
        ``{group: {"auc", "pauc", "n_anomaly"}}`` for every group value of anomalous clips.
    """
    labels, scores = np.asarray(labels), np.asarray(scores)
    groups, ids = np.asarray(groups), np.asarray(machine_ids)
    out = {}
    for g in sorted(set(groups[labels == 1].tolist())):
        rows = []
        for i in sorted(set(ids.tolist())):
            m = (ids == i) & ((labels == 0) | (groups == g))
            if (labels[m] == 1).any() and (labels[m] == 0).any():
                rows.append((auc(labels[m], scores[m]), pauc(labels[m], scores[m])))
        if rows:
            out[g] = {
                "auc": float(np.mean([r[0] for r in rows])),
                "pauc": float(np.mean([r[1] for r in rows])),
                "n_anomaly": int(((labels == 1) & (groups == g)).sum()),
            }
    return out


def fit_threshold(normal_scores: np.ndarray, quantile: float = 0.9) -> dict:
    """Decision threshold from the scores of held-out **normal** clips only (no anomalies).

    As the DCASE 2021 baseline: fit a gamma distribution (scipy, free location) to the scores
    and take its ``quantile``; if the fit fails or is degenerate, the empirical quantile.

    Parameters
    ----------
    normal_scores : np.ndarray
        Clip scores of normal clips the model was not trained on.
    quantile : float
        Fraction of normal clips that should fall below the threshold.

    Returns
    -------
    dict
        ``{"value", "method": "gamma"|"empirical", "quantile", "shape", "loc", "scale",
        "n_clips"}`` (JSON-able; stored with the model).
    """
    from scipy import stats

    x = np.asarray(normal_scores, dtype=np.float64)
    if len(x) < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"fit_threshold: need >= 2 finite normal scores, got {len(x)}")
    out = {"quantile": quantile, "n_clips": len(x), "shape": None, "loc": None, "scale": None}
    empirical = float(np.quantile(x, quantile))
    try:
        with np.errstate(all="ignore"):
            a, loc, scale = stats.gamma.fit(x)
        value = float(stats.gamma.ppf(quantile, a, loc=loc, scale=scale))
    except (RuntimeError, ValueError, FloatingPointError):
        value = float("nan")
    if np.isfinite(value) and x.min() <= value <= x.max() + (x.max() - x.min()):
        fit = {"shape": float(a), "loc": float(loc), "scale": float(scale)}
        return out | {"value": value, "method": "gamma"} | fit
    return out | {"value": empirical, "method": "empirical"}


def decisions(scores: np.ndarray, threshold: dict) -> np.ndarray:
    """1 where a clip score exceeds the fitted threshold (anomalous), else 0."""
    return (np.asarray(scores) > threshold["value"]).astype(np.int64)
