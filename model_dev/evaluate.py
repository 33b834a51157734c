""":func:`evaluate` of a checkpoint: its clip probabilities on a split, the metrics and PR curves
of :mod:`model_dev.tagging_metrics`, and operating thresholds saved into the checkpoint."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from model_dev.checkpoint import check_compatible, open_checkpoint, save_checkpoint
from model_dev.config_io import json_finite
from model_dev.device import resolve_device
from model_dev.features import FeatureSet
from model_dev.fileio import atomic_write_text
from model_dev.stage_inputs import DatasetSpec, checkpoint_frontend, trained_split
from model_dev.tagging_metrics import auprc, operating_thresholds, plot_pr_curves
from model_dev.train_config import TrainConfig
from model_dev.windows import predict, split_windows

THRESHOLD_SCORE = "sigmoid(max over windows of the logits); fires when score >= value"


def clip_probs(
    model: torch.nn.Module,
    fs: FeatureSet,
    splits: Sequence[str],
    hop_frames: int,
    device: torch.device,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot labels and clip scores (:data:`THRESHOLD_SCORE`) of the clips of ``splits``,
    windows cut every ``hop_frames`` frames as in training."""
    windows = split_windows(fs, splits, model.spec, hop_frames)
    logits = torch.from_numpy(predict(model, windows, device, batch_size))
    return windows.labels.numpy(), torch.sigmoid(logits).numpy()


def evaluate(
    checkpoint: str | Path,
    data: DatasetSpec | FeatureSet,
    split: str = "test",
    out_dir: str | Path | None = None,
    target_precision: float | None = None,
    *,
    device: str = "auto",
    batch_size: int = 64,
) -> dict:
    """AUPRC, per-class AP and operating thresholds of a checkpoint.

    Clip scores are ``sigmoid(max over windows of the logits)``, windows as in training. The
    per-class thresholds (:func:`~model_dev.tagging_metrics.operating_thresholds`, on the
    checkpoint's validation splits) are applied to ``split`` and written back into the checkpoint
    (atomically) under ``"thresholds"`` for the device's post-processing.

    Parameters
    ----------
    checkpoint : str or Path
        A checkpoint written by :func:`~model_dev.train.train`.
    data : DatasetSpec or FeatureSet
        The dataset (its features are computed with the checkpoint's front end) or features
        with the checkpoint's classes and front end.
    split : str
        Split to evaluate.
    out_dir : str or Path, optional
        If given, ``evaluation.json`` and ``pr_<split>.png`` are written there.
    target_precision : float, optional
        Thresholds at this precision instead of at maximum F1.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
    batch_size : int
        Clips per inference batch.

    Returns
    -------
    dict
        ``checkpoint``, ``kind``, ``arch``, ``state_dict_sha256``, ``frontend_hash``, ``split``,
        ``n_clips``, ``metrics`` (:func:`~model_dev.tagging_metrics.auprc`: micro, macro, chance,
        ``ap/<class>``), ``thresholds`` (``classes``, ``values`` (``inf``: never fires),
        ``split``, ``method``, ``target_precision``, ``score``), ``at_thresholds`` (per class:
        threshold, precision, recall, f1 on ``split``) and ``files``.
    """
    path = Path(checkpoint)
    model, ckpt = open_checkpoint(path, None)
    data = trained_split(data, ckpt)
    fs = data if isinstance(data, FeatureSet) else data.features(checkpoint_frontend(ckpt, path))
    check_compatible(ckpt, fs, str(path))
    cfg = TrainConfig.from_dict(ckpt["train_config"], f"{path}: train_config")
    dev = resolve_device(device)
    model.to(dev)

    def scores(splits: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return clip_probs(model, fs, splits, cfg.window_hop_frames, dev, batch_size)

    values = operating_thresholds(*scores(cfg.val_splits), target_precision)
    labels, probs = scores([split])
    method = "max_f1" if target_precision is None else "target_precision"
    thresholds = {"classes": list(fs.classes), "values": [float(v) for v in values]}
    thresholds |= {"split": ",".join(cfg.val_splits), "method": method}
    thresholds |= {"target_precision": target_precision, "score": THRESHOLD_SCORE}
    result = {
        "checkpoint": str(path),
        "kind": ckpt["kind"],
        "arch": ckpt["arch"]["name"],
        "state_dict_sha256": ckpt["state_dict_sha256"],
        "frontend_hash": ckpt["frontend_hash"],
        "split": split,
        "n_clips": len(labels),
        "metrics": auprc(labels, probs, fs.classes),
        "thresholds": thresholds,
        "at_thresholds": operating_points(labels, probs, values, fs.classes),
        "files": {},
    }
    result |= fs.skip_record()  # files left out as unreadable: the figures are without them
    save_checkpoint({**ckpt, "thresholds": thresholds}, path)
    if out_dir is not None:
        result["files"] = _write_evaluation(result, labels, probs, fs.classes, Path(out_dir))
    return result


def operating_points(
    labels: np.ndarray, probs: np.ndarray, values: np.ndarray, classes: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per class: the threshold and the precision, recall and F1 it gives on these clips."""
    decided, truth = probs >= values, labels > 0
    tp = (decided & truth).sum(0)
    precision = tp / np.maximum(decided.sum(0), 1)
    recall = tp / np.maximum(truth.sum(0), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return {
        c: {"threshold": float(values[i]), "precision": float(precision[i])}
        | {"recall": float(recall[i]), "f1": float(f1[i])}
        for i, c in enumerate(classes)
    }


def _write_evaluation(
    result: dict, labels: np.ndarray, probs: np.ndarray, classes: Sequence[str], out: Path
) -> dict[str, str]:
    """``pr_<split>.png`` and ``evaluation.json`` in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    split = result["split"]
    png = plot_pr_curves(
        labels, probs, tuple(classes), out / f"pr_{split}.png", title=f"{result['arch']}: {split}"
    )
    files = {"pr_curves": str(png), "evaluation": str(out / "evaluation.json")}
    text = json.dumps(json_finite({**result, "files": files}), indent=1, allow_nan=False) + "\n"
    atomic_write_text(out / "evaluation.json", text)
    return files
