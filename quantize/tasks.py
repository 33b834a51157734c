"""What a model's scores mean, per task: the registry the stages dispatch on.

A model's metadata names its task (:attr:`quantize.metadata.ModelMetadata.task`). Everything
that depends on it — what the model's outputs must look like, the clip post-processing the
device must reproduce, the metrics of the reports — is looked up here, so a new task adds an
entry, not branches.

- ``tagging``: the int8 outputs are per-class scores; clip score = max over windows; a class
  fires when its clip score >= its int8 threshold; metric AUPRC.
- ``anomaly``: a window's score is an integer computed from the window and the model output
  by the model's method (:mod:`quantize.anomaly_scores`; dense autoencoder: sum of squared
  reconstruction errors at the input scale); the clip score is the exact mean over windows, kept
  as ``(sum, count)``; the clip is
  anomalous when ``sum >= thresholds_q[0] * count``; metric AUC/pAUC
  (:mod:`model_dev.anomaly.metrics`).
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
        What a score means (the metadata's ``score``; anomaly: per method,
        :data:`quantize.anomaly_scores.SCORES`, the dense autoencoders' here).
    metric : str
        Name of the headline metric of :attr:`metrics` (for reports).
    clip_post : callable
        ``(windows int8 [windows, frames, mels], outputs int8 [windows, outputs], meta,
        own=None) -> (window_scores [windows, k], clip_scores [m], decisions bool [labels])``:
        what the device computes for each window and at the end of a clip (``own``: the ID
        classifier's own machine-ID class index, None for the default; ignored otherwise).
        Tagging: the outputs themselves (int8, k = labels), the max over windows (int8,
        m = labels); anomaly: one integer score per window (uint32, k = 1), ``(sum, count)``
        of them (uint64, m = 2).
    metrics : callable
        ``(truth [clips, labels], clip_scores [clips, m], labels, ids=None) -> dict`` for reports,
        from the clip scores as :attr:`clip_post` returns them (tagging: ``micro``/``macro``
        AUPRC; anomaly: ``auc``, ``pauc``, mean over machine IDs when ``ids`` are given).
    check_outputs : callable
        ``(meta, output_shape) -> str or None``: what is wrong with the labels or the score for
        a model with that output shape (None: nothing).
    thresholds_q : callable
        ``(meta, info) -> tuple of int``: ``meta.thresholds`` in the integer units the decision
        compares with, for the graph's quantisation ``info`` (:class:`quantize.convert.GraphInfo`).
    """

    name: str
    score: str
    metric: str
    clip_post: Callable[..., tuple[np.ndarray, ...]]
    metrics: Callable[..., dict]
    check_outputs: Callable[[object, tuple[int, ...]], str | None]
    thresholds_q: Callable[[object, object], tuple[int, ...]]


def _tagging_clip_post(
    windows: np.ndarray, outputs: np.ndarray, meta, own: int | None = None
) -> tuple[np.ndarray, ...]:
    """Window scores = the int8 outputs; clip score = max over windows; a class fires when its
    score >= its int8 threshold (compared as int16: 128 never fires)."""
    clip = outputs.max(axis=0)
    return outputs, clip, clip.astype(np.int16) >= np.asarray(meta.thresholds_q, np.int16)


def _tagging_metrics(truth, scores, labels: Sequence[str], ids=None) -> dict:
    from model_dev.tagging_metrics import auprc

    return auprc(truth, np.asarray(scores, np.float64), labels)


def _tagging_thresholds_q(meta, info) -> tuple[int, ...]:
    from quantize.metadata import thresholds_to_q

    return thresholds_to_q(meta.thresholds, info.output_scale, info.output_zero_point)


def _anomaly_clip_post(
    windows: np.ndarray, outputs: np.ndarray, meta, own: int | None = None
) -> tuple[np.ndarray, ...]:
    """Integer window scores of the model's method (:func:`quantize.anomaly_scores.
    window_scores`, ``own``: the ID classifier's own machine-ID class); the clip mean as exact
    ``(sum, count)``; anomalous when ``sum >= thresholds_q[0] * count``."""
    from quantize.anomaly_scores import window_scores

    scores = window_scores(meta, windows, outputs, own=own).astype(np.uint32)
    total, count = int(scores.sum(dtype=np.uint64)), len(scores)
    fired = count > 0 and total >= meta.thresholds_q[0] * count
    return scores[:, None], np.array([total, count], np.uint64), np.array([fired])


def anomaly_stream(
    window_scores: np.ndarray, threshold_q: int, span: int, vote_n: int = 1, vote_k: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """A stream's decisions and alarms after each window score, as ``aed_anomaly_stream_push``
    computes them: decision = the mean of the last ``span`` scores (fewer at the start) >=
    ``threshold_q``, exactly (``sum >= threshold_q * count``); alarm = at least ``vote_k`` of the
    last ``vote_n`` decisions fired. Returns two bool arrays ``[windows]``."""
    s = np.asarray(window_scores, np.int64).reshape(-1)
    end = np.arange(1, len(s) + 1)
    sums, start = np.concatenate([[0], np.cumsum(s)]), np.maximum(end - span, 0)
    decisions = sums[end] - sums[start] >= threshold_q * (end - start)
    fired = np.concatenate([[0], np.cumsum(decisions)])
    return decisions, fired[end] - fired[np.maximum(end - vote_n, 0)] >= vote_k


def _anomaly_metrics(truth, clip_scores, labels: Sequence[str], ids=None) -> dict:
    """AUC/pAUC of the clip means: a model serves one machine type, so over all its clips (the
    mean over machine IDs when ``ids`` are given, as the quantisation report computes it)."""
    from model_dev.anomaly.metrics import Scores, evaluate_scores

    s = np.asarray(clip_scores, np.float64).reshape(-1, 2)
    y = np.asarray(truth).reshape(-1).astype(np.int64)
    ids = ["all"] * len(y) if ids is None else list(ids)
    r = evaluate_scores(Scores(s[:, 0] / s[:, 1], y, ["model"] * len(y), ids))
    return r["per_type"]["model"] | {"pauc_convention": r["pauc_convention"]}


def _tagging_check_outputs(meta, output_shape: tuple[int, ...]) -> str | None:
    n_outputs = int(np.prod(output_shape))
    if len(meta.labels) != n_outputs:
        return f"labels: {len(meta.labels)} labels for {n_outputs} model outputs"
    return None


def _anomaly_check_outputs(meta, output_shape: tuple[int, ...]) -> str | None:
    from quantize.anomaly_scores import check_outputs

    return check_outputs(meta, output_shape)


def _anomaly_thresholds_q(meta, info) -> tuple[int, ...]:
    from quantize.anomaly_scores import thresholds_q_of

    return thresholds_q_of(meta, info)


TASKS: dict[str, Task] = {
    "tagging": Task(
        "tagging", "probability", "AUPRC", _tagging_clip_post, _tagging_metrics,
        _tagging_check_outputs, _tagging_thresholds_q,
    ),
    "anomaly": Task(
        "anomaly", "reconstruction_sse", "AUC", _anomaly_clip_post, _anomaly_metrics,
        _anomaly_check_outputs, _anomaly_thresholds_q,
    ),
}  # fmt: skip


def task_of(meta) -> Task:
    """The :class:`Task` of a model's metadata; ValueError naming the task when unknown."""
    try:
        return TASKS[meta.task]
    except KeyError:
        raise ValueError(
            f"model task {meta.task!r} is not supported here (known: {', '.join(TASKS)})"
        ) from None
