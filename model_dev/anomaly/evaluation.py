"""Evaluate an anomaly checkpoint on a dataset's test split (``aedfw evaluate`` on an anomaly
checkpoint): AUC and challenge pAUC per machine ID and type, AUC per fault kind and severity,
decisions at the stored thresholds, ROC curves and score histograms as PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model_dev.anomaly.metrics import (
    Scores,
    auc_by_group,
    decisions,
    evaluate_scores,
    roc,
)
from model_dev.anomaly.pipeline import (
    TypeData,
    load_anomaly_checkpoint,
    prepare,
    score_record,
    supervised_half,
    type_data,
)
from model_dev.config_io import json_finite
from model_dev.fileio import atomic_write, atomic_write_text
from model_dev.frontend import FrontendConfig


def _test_mask(record: dict, data: TypeData) -> np.ndarray:
    """Test clips to evaluate: all, except the supervised method's labelled training half."""
    if record["method"] == "supervised":
        return ~supervised_half(data)
    return np.ones(len(data.test), dtype=bool)


def score_type(record: dict, data: TypeData, device: str = "auto") -> dict:
    """Scores, labels and groups of one machine type's evaluated test clips."""
    keep = _test_mask(record, data)
    clips = [c for c, k in zip(data.test, keep, strict=True) if k]
    index = {m: i for i, m in enumerate(record["ids"])}
    unknown = sorted({data.ids[i] for i in data.test_ids[keep]} - set(index))
    if unknown and record["method"] == "id_classifier":
        raise ValueError(f"{data.machine_type}: the ID classifier knows no machine IDs {unknown}")
    own = np.array([index.get(data.ids[i], 0) for i in data.test_ids[keep]], dtype=np.int64)
    scores = score_record(record, clips, own, data.silence, device)
    return {
        "scores": scores,
        "labels": data.test_labels[keep],
        "ids": [data.ids[i] for i in data.test_ids[keep]],
        "faults": [f for f, k in zip(data.test_faults, keep, strict=True) if k],
        "severities": data.test_severities[keep],
        "clip_ids": [c for c, k in zip(data.test_clip_ids, keep, strict=True) if k],
    }


def _plot(per_type: dict[str, dict], out: Path, title: str) -> list[str]:
    """ROC curves and normal/anomalous score histograms, one panel per type; PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, draw in (("roc.png", "roc"), ("histograms.png", "hist")):
        n = len(per_type)
        fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
        for ax, (mtype, r) in zip(axes[0], per_type.items(), strict=True):
            y, s = r["labels"], r["scores"]
            if draw == "roc":
                fpr, tpr = roc(y, s)
                ax.plot(fpr, tpr)
                ax.plot([0, 1], [0, 1], ":", color="grey")
                ax.axvline(0.1, color="grey", lw=0.5)
                ax.set_xlabel("false positive rate")
                ax.set_ylabel("true positive rate")
            else:
                bins = np.histogram_bin_edges(s, 30)
                ax.hist(s[y == 0], bins, alpha=0.6, label="normal")
                ax.hist(s[y == 1], bins, alpha=0.6, label="anomalous")
                ax.axvline(r["threshold"], color="k", lw=1, label="threshold")
                ax.set_xlabel("clip score")
                ax.legend(fontsize=7)
            ax.set_title(mtype)
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        path = out / name
        atomic_write(path, lambda tmp, f=fig: f.savefig(tmp, format="png", dpi=90))
        plt.close(fig)
        written.append(str(path))
    return written


def evaluate_anomaly(
    checkpoint: str | Path,
    root: str | Path,
    out_dir: str | Path | None = None,
    *,
    kind: str = "dcase",
    cache_dir: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Evaluate an anomaly checkpoint on the test split of a machine dataset.

    Parameters
    ----------
    checkpoint : str or Path
        Written by :func:`~model_dev.anomaly.pipeline.train_anomaly`.
    root : str or Path
        Dataset folder.
    out_dir : str or Path, optional
        Where to write ``evaluation.json``, ``roc.png`` and ``histograms.png``.
    kind : {"dcase", "mimii"}
        Dataset layout.
    cache_dir : str or Path, optional
        Feature cache (default ``<root>/.features``).
    device : str
        Torch device.
    progress : bool
        Progress bars.

    Returns
    -------
    dict
        :func:`~model_dev.anomaly.metrics.evaluate_scores` output plus ``per_severity`` and
        ``per_fault`` (per type), ``decisions`` (per type: threshold, true/false positive
        rates at it), ``method``, ``score``, ``uses_anomalies``, ``checkpoint``.
    """
    ckpt = load_anomaly_checkpoint(checkpoint)
    cfg = FrontendConfig.from_dict(ckpt["frontend"], f"{checkpoint}: frontend")
    ms, fs = prepare(kind, root, cache_dir or Path(root) / ".features", cfg, progress)
    per_type = {}
    for mtype, record in ckpt["detectors"].items():
        if mtype not in ms.types:
            continue
        r = score_type(record, type_data(ms, fs, mtype), device)
        r["threshold"] = record["threshold"]["value"]
        per_type[mtype] = r
    if not per_type:
        raise ValueError(
            f"{root}: none of the checkpoint's machine types {list(ckpt['detectors'])}"
        )
    cat = {
        k: np.concatenate([np.asarray(r[k]) for r in per_type.values()])
        for k in ("scores", "labels", "ids")
    }
    types = [t for t, r in per_type.items() for _ in r["labels"]]
    result = evaluate_scores(Scores(cat["scores"], cat["labels"], types, list(cat["ids"])))
    result["per_severity"], result["per_fault"], result["decisions"] = {}, {}, {}
    for mtype, r in per_type.items():
        result["per_severity"][mtype] = auc_by_group(
            r["labels"], r["scores"], r["severities"], r["ids"]
        )
        result["per_fault"][mtype] = auc_by_group(r["labels"], r["scores"], r["faults"], r["ids"])
        d = decisions(r["scores"], ckpt["detectors"][mtype]["threshold"])
        y = r["labels"]
        result["decisions"][mtype] = {
            "threshold": r["threshold"],
            "tpr": float(d[y == 1].mean()) if (y == 1).any() else None,
            "fpr": float(d[y == 0].mean()) if (y == 0).any() else None,
        }
    meta = {"method": ckpt["method"], "score": ckpt["score"], "checkpoint": str(checkpoint)}
    meta["uses_anomalies"] = ckpt["method"] == "supervised"
    result = meta | result
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result["plots"] = _plot(per_type, out, f"{ckpt['method']}: {ckpt['score']}")
        text = json.dumps(json_finite(result), indent=1, allow_nan=False, default=str)
        atomic_write_text(out / "evaluation.json", text + "\n")
    return result
