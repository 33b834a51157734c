"""Multi-label tagging metrics from clip scores: AUPRC (average precision), per-class operating
thresholds and PR curves.

numpy and scikit-learn only: validating a device scores its outputs with these and loads no
torch (:func:`~model_dev.evaluate.evaluate` runs a checkpoint and uses them too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve


def auprc(labels: np.ndarray, scores: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    """Micro and macro average precision, per-class AP and the micro chance level.

    Parameters
    ----------
    labels : np.ndarray
        Multi-hot ground truth, [n_clips, n_classes].
    scores : np.ndarray
        Scores of the same shape (any monotone scale: probabilities, logits, int8).
    classes : tuple of str
        Class names, for the ``ap/<class>`` keys.

    Returns
    -------
    dict
        ``micro``, ``macro`` (mean over classes with at least one positive), ``chance`` (the
        fraction of positive labels: micro AUPRC of random scores) and ``ap/<class>``
        (NaN for a class without positives).
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 2 or labels.shape[1] != len(classes):
        raise ValueError(
            f"labels {labels.shape} and scores {scores.shape} must both be [n, {len(classes)}]"
        )
    present = labels.sum(axis=0) > 0
    per_class = np.full(len(classes), np.nan)
    for c in np.flatnonzero(present):
        per_class[c] = average_precision_score(labels[:, c], scores[:, c])
    return {
        "micro": float(average_precision_score(labels.ravel(), scores.ravel())),
        "macro": float(per_class[present].mean()) if present.any() else float("nan"),
        "chance": float(labels.mean()),
        **{f"ap/{c}": float(a) for c, a in zip(classes, per_class, strict=True)},
    }


def operating_thresholds(
    labels: np.ndarray, scores: np.ndarray, target_precision: float | None = None
) -> np.ndarray:
    """Per-class score thresholds for the device's decision ``score >= threshold``.

    Parameters
    ----------
    labels, scores : np.ndarray
        [n_clips, n_classes], as for :func:`auprc`.
    target_precision : float, optional
        If given, the lowest threshold whose precision reaches it (the most recall at that
        precision); a class that never reaches it gets its maximum-F1 threshold. If None, the
        threshold of maximum F1.

    Returns
    -------
    np.ndarray
        float64 [n_classes]; ``inf`` for a class without positives (never fires).
    """
    thresholds = np.full(labels.shape[1], np.inf)
    for c in range(labels.shape[1]):
        if labels[:, c].sum() == 0:
            continue
        precision, recall, cut = precision_recall_curve(labels[:, c], scores[:, c])
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1))
        if target_precision is not None:
            reach = np.flatnonzero(precision >= target_precision)
            best = int(reach[0]) if reach.size else best
        thresholds[c] = cut[best]
    return thresholds


def plot_pr_curves(
    labels: np.ndarray,
    scores: np.ndarray,
    classes: tuple[str, ...],
    path: str | Path,
    title: str = "Precision-recall",
) -> Path:
    """Write a PNG with one precision-recall curve per class and the micro curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = auprc(labels, scores, classes)
    fig, ax = plt.subplots(figsize=(7, 6))
    for c, name in enumerate(classes):
        if labels[:, c].sum():
            p, r, _ = precision_recall_curve(labels[:, c], scores[:, c])
            ax.plot(r, p, lw=1, label=f"{name} (AP {metrics[f'ap/{name}']:.2f})")
    p, r, _ = precision_recall_curve(labels.ravel(), scores.ravel())
    ax.plot(r, p, "k", lw=2.5, label=f"micro (AP {metrics['micro']:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path
