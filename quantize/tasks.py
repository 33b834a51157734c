"""What a model's scores mean, per task: the registry the stages dispatch on.

A model's metadata names its task (:attr:`quantize.metadata.ModelMetadata.task`). Everything
that depends on it — the clip post-processing the device must reproduce, the metrics of the
reports — is looked up here, so a new task (``anomaly`` next) adds an entry, not branches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Task:
    """One task's host-side definitions.

    Attributes
    ----------
    name : str
        The metadata's ``task``.
    score : str
        What an int8 output score means (the metadata's ``score``).
    metric : str
        Name of the headline metric of :attr:`metrics` (for reports).
    clip_post : callable
        ``(window_scores int8 [windows, outputs], meta) -> (clip_scores int8 [outputs],
        decisions bool [outputs])``: what the device computes at the end of a clip.
    metrics : callable
        ``(truth [clips, classes], scores [clips, classes], labels) -> dict`` for reports
        (needs ``"micro"``).
    """

    name: str
    score: str
    metric: str
    clip_post: Callable[[np.ndarray, object], tuple[np.ndarray, np.ndarray]]
    metrics: Callable[[np.ndarray, np.ndarray, Sequence[str]], dict]


def _tagging_clip_post(window_scores: np.ndarray, meta) -> tuple[np.ndarray, np.ndarray]:
    """Clip score = max over windows; a class fires when its score >= its int8 threshold
    (compared as int16: 128 never fires)."""
    clip = window_scores.max(axis=0)
    return clip, clip.astype(np.int16) >= np.asarray(meta.thresholds_q, np.int16)


def _tagging_metrics(truth: np.ndarray, scores: np.ndarray, labels: Sequence[str]) -> dict:
    from model_dev.evaluate import auprc

    return auprc(truth, scores, labels)


TASKS: dict[str, Task] = {
    "tagging": Task("tagging", "probability", "AUPRC", _tagging_clip_post, _tagging_metrics),
}


def task_of(meta) -> Task:
    """The :class:`Task` of a model's metadata; ValueError naming the task when unknown."""
    try:
        return TASKS[meta.task]
    except KeyError:
        raise ValueError(
            f"model task {meta.task!r} is not supported here (known: {', '.join(TASKS)})"
        ) from None
