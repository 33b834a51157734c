"""``aedfw quantize``: checkpoint -> checked full-int8 .tflite with metadata, and its report.

Steps of :func:`quantize`:

1. load the student checkpoint (a teacher is refused) and check that the features come from the
   front end and classes it was trained on;
2. representative set: ``calibration_windows`` windows drawn (seeded) from the training split's
   clips, cut exactly as in training (:func:`model_dev.arch.clip_windows`);
3. :func:`~quantize.convert.convert` (drift guard, converter, graph and input-format checks);
4. evaluation on ``split``: per window, float torch logits, int8 LiteRT (``BUILTIN_REF``) and
   int8 TFLM scores; clip scores = max over the clip's windows (the device's aggregation);
   micro/macro AUPRC of each and the int8 - float deltas;
5. parity TFLM vs LiteRT on every evaluated window (exact-match rate, max LSB difference; TFLM
   is the host golden);
6. exact TFLM arena (:func:`~quantize.runtime.arena_size`);
7. thresholds: the checkpoint's (written by ``aedfw evaluate``), else max-F1 thresholds of the
   float model on the validation split(s), mapped to int8 (:func:`~quantize.metadata.
   thresholds_to_q`);
8. metadata embedded; ``<out>``, ``<stem>.quant.json``, ``<stem>.quant.md`` and
   ``<stem>.scores.png`` written.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from model_dev.arch import clip_windows
from model_dev.config_io import json_finite
from model_dev.features import FeatureSet
from model_dev.fileio import atomic_write, atomic_write_text
from model_dev.stage_inputs import CheckpointInputs, DatasetSpec, checkpoint_inputs
from model_dev.tagging_metrics import auprc, operating_thresholds
from model_dev.train_config import TrainConfig
from quantize.convert import convert_checked, dequantize
from quantize.metadata import ModelMetadata, embed_metadata, read_metadata
from quantize.runtime import arena_size, run_litert, run_tflm


def split_windows(
    fs: FeatureSet, splits: str | Sequence[str], window: int, hop: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All model windows of the clips of ``splits``.

    Returns
    -------
    windows : np.ndarray
        int8 ``[n_windows, window, n_mels]``.
    starts : np.ndarray
        int64 ``[n_clips]``: index of each clip's first window (for ``np.maximum.reduceat``).
    clips : np.ndarray
        Clip indices into ``fs`` (the first ``limit`` of the split).
    """
    idx = fs.indices(splits)[:limit]
    if not len(idx):
        raise ValueError(f"no clips in split(s) {splits!r}; the data has {sorted(set(fs.splits))}")
    per_clip = [clip_windows(fs.clip(i), window, hop) for i in idx]
    starts = np.cumsum([0] + [len(w) for w in per_clip[:-1]]).astype(np.int64)
    return np.concatenate(per_clip), starts, idx


def calibration_set(
    fs: FeatureSet, splits: Sequence[str], window: int, hop: int, n: int, seed: int = 0
) -> np.ndarray:
    """``n`` windows (or all, if fewer) drawn without replacement from ``splits``, int8."""
    windows, _, _ = split_windows(fs, splits, window, hop)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(windows), min(n, len(windows)), replace=False))
    return windows[pick]


@torch.no_grad()
def float_logits(model: torch.nn.Module, windows_q: np.ndarray, fs: FeatureSet) -> np.ndarray:
    """Torch logits ``[N, n_classes]`` (float64) of int8 windows, in batches of 256."""
    model.eval()
    out = [
        model(torch.from_numpy(dequantize(windows_q[s : s + 256], fs.config)))[0].double()
        for s in range(0, len(windows_q), 256)
    ]
    return torch.cat(out).numpy()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parity(golden: np.ndarray, other: np.ndarray, classes: Sequence[str]) -> dict:
    """Agreement of two int8 score arrays ``[N, C]`` (``golden`` = TFLM).

    Returns
    -------
    dict
        ``windows``, ``values``, ``exact_match_rate`` (of values), ``windows_exact_rate``,
        ``max_lsb_diff``, ``lsb_diff_counts`` (|diff| -> count) and ``per_class`` exact rates.
    """
    diff = np.abs(golden.astype(np.int16) - other.astype(np.int16))
    values, counts = np.unique(diff, return_counts=True)
    return {
        "windows": int(diff.shape[0]),
        "values": int(diff.size),
        "exact_match_rate": float((diff == 0).mean()) if diff.size else 1.0,
        "windows_exact_rate": float((diff == 0).all(axis=1).mean()) if diff.size else 1.0,
        "max_lsb_diff": int(diff.max(initial=0)),
        "lsb_diff_counts": {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)},
        "per_class": {c: float((diff[:, i] == 0).mean()) for i, c in enumerate(classes)},
    }


def _plot(path: Path, float_probs: np.ndarray, int8_probs: np.ndarray, classes, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    for c, name in enumerate(classes):
        ax.scatter(float_probs[:, c], int8_probs[:, c], s=6, alpha=0.6, label=name)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlabel="float (torch) clip score", ylabel="int8 (TFLM) clip score, dequantised")
    ax.set(xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(fontsize=7, markerscale=2, loc="upper left")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _markdown(r: dict) -> str:
    m, e, p = r["model"], r["evaluation"], r["parity"]
    rows = [
        ("float (torch)", e["float"]),
        ("int8 LiteRT BUILTIN_REF", e["int8_litert"]),
        ("int8 TFLM", e["int8_tflm"]),
    ]
    lines = [
        f"# Quantisation report: {r['checkpoint']['arch']}",
        "",
        f"- model: `{m['path']}`, {m['bytes']} bytes, hash `{m['model_hash'][:16]}`",
        f"- checkpoint: `{r['checkpoint']['path']}` (sha256 `{r['checkpoint']['sha256'][:16]}`)",
        f"- front end: `{r['frontend_hash'][:16]}`; input scale {m['input']['scale']!r}, "
        f"zero point {m['input']['zero_point']}; output scale {m['output']['scale']!r}, "
        f"zero point {m['output']['zero_point']}",
        f"- ops: {', '.join(f'{k} x{v}' for k, v in m['op_counts'].items())}",
        f"- TFLM arena: {r['arena_bytes']} bytes (host runtime, exact to 16 bytes)",
        f"- conversion: {r['conversion_seconds']:.1f} s, {r['calibration']['windows']} "
        f"calibration windows; Keras-torch drift {r['drift']:.2g}",
        "",
        f"## AUPRC on `{e['split']}` ({e['n_clips']} clips, {e['n_windows']} windows)",
        "",
        "| model | micro | macro |",
        "|---|---|---|",
        *[f"| {n} | {s['micro']:.4f} | {s['macro']:.4f} |" for n, s in rows],
        "",
        f"int8 (TFLM) - float: micro {e['delta_micro']:+.4f}, macro {e['delta_macro']:+.4f}",
        "",
        "## Parity: TFLM (golden) vs LiteRT BUILTIN_REF",
        "",
        f"{p['values']} output values of {p['windows']} windows: exact-match rate "
        f"{p['exact_match_rate']:.4%} (windows fully equal: {p['windows_exact_rate']:.4%}), "
        f"max difference {p['max_lsb_diff']} LSB.",
        "",
        "## Thresholds",
        "",
        f"Source: {r['thresholds']['source']}. A class fires when its int8 clip score >= q.",
        "",
        "| class | probability | int8 q |",
        "|---|---|---|",
        *[
            f"| {c} | {t:.4f} | {q} |"
            for c, t, q in zip(
                r["thresholds"]["classes"],
                r["thresholds"]["values"],
                r["thresholds"]["q"],
                strict=True,
            )
        ],
        "",
    ]
    return "\n".join(lines)


def quantize(
    checkpoint: str | Path,
    out: str | Path,
    data: DatasetSpec | FeatureSet,
    *,
    split: str = "test",
    limit: int | None = None,
    calibration_windows: int = 200,
    seed: int = 0,
) -> dict:
    """Quantise a student checkpoint to a full-int8 .tflite and report what it cost.

    Parameters
    ----------
    checkpoint : str or Path
        Student checkpoint (``best.pt``) from :func:`model_dev.train.train`; loaded once.
    out : str or Path
        The .tflite to write; the reports go next to it (``<stem>.quant.json``,
        ``<stem>.quant.md``, ``<stem>.scores.png``).
    data : DatasetSpec or FeatureSet
        The dataset (its features are computed under the checkpoint's front end), or features
        already computed with it. Training split for calibration, ``split`` for evaluation,
        validation split(s) for thresholds when the checkpoint has none.
    split : str
        Evaluation split.
    limit : int, optional
        Evaluate only the first ``limit`` clips of ``split``.
    calibration_windows : int
        Size of the representative set.
    seed : int
        Seed of the calibration draw.

    Returns
    -------
    dict
        The report (also written as JSON); see the module docstring.

    Raises
    ------
    ValueError
        Teacher or unreadable checkpoint, mismatched front end or classes, empty split, and
        the conversion errors of :func:`~quantize.convert.convert`.
    """
    inputs = checkpoint_inputs(checkpoint, data, expect_kind="student")
    out, fs, model = Path(out), inputs.features, inputs.model
    cfg = TrainConfig.from_dict(inputs.meta["train_config"], f"{inputs.path}: train_config")
    wf, hop = model.spec.window_frames, cfg.window_hop_frames

    cal = calibration_set(fs, cfg.train_splits, wf, hop, calibration_windows, seed)
    t0 = time.perf_counter()
    tflite, info, drift = convert_checked(model, cal, fs.config)
    conversion_seconds = time.perf_counter() - t0

    evaluation = _evaluate(model, tflite, info, fs, split, wf, hop, limit)
    thresholds, source = _thresholds(inputs, cfg, wf, hop)
    md = ModelMetadata.for_graph(
        info, fs.config, fs.classes, thresholds, wf, hop, arena_size(tflite), model.spec.name,
        checkpoint_sha256=_sha256_file(inputs.path),
        state_dict_sha256=inputs.meta["state_dict_sha256"],
        threshold_source=source,
    )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(embed_metadata(tflite, md)))
    md = read_metadata(out)
    report = _report(inputs, out, md, info, evaluation, source)
    report |= {
        "conversion_seconds": conversion_seconds,
        "calibration": {"windows": int(len(cal)) + 1, "splits": list(cfg.train_splits)},
        "drift": drift,
        **fs.skip_record(),  # files left out as unreadable: the figures are without them
    }
    _write_report(report, evaluation["scores"], fs.classes, model.spec.name, split)
    return report


def _evaluate(model, tflite: bytes, info, fs: FeatureSet, split, wf, hop, limit) -> dict:
    """Float, LiteRT and TFLM clip scores of ``split``, their AUPRC and the TFLM-LiteRT parity."""
    windows, starts, clips = split_windows(fs, split, wf, hop, limit)
    labels = np.asarray(fs.labels)[clips]
    logits = float_logits(model, windows, fs)
    litert = run_litert(tflite, windows)
    tflm = run_tflm(tflite, windows)

    def deq(q: np.ndarray) -> np.ndarray:
        clip_q = np.maximum.reduceat(q, starts, axis=0).astype(np.float64)
        return (clip_q - info.output_zero_point) * info.output_scale

    scores = {
        "float": _sigmoid(np.maximum.reduceat(logits, starts, axis=0)),
        "int8_litert": deq(litert),
        "int8_tflm": deq(tflm),
    }
    metrics = {k: auprc(labels, v, fs.classes) for k, v in scores.items()}
    return {
        "split": split,
        "n_clips": int(len(clips)),
        "n_windows": int(len(windows)),
        "metrics": metrics,
        "parity": parity(tflm, litert, fs.classes),
        "scores": scores,
    }


def _thresholds(inputs: CheckpointInputs, cfg: TrainConfig, wf: int, hop: int):
    """The checkpoint's thresholds (``aedfw evaluate``), else float max-F1 on validation."""
    fs, stored = inputs.features, inputs.meta.get("thresholds")
    if stored and tuple(stored.get("classes", ())) == tuple(fs.classes):
        source = f"checkpoint ({stored.get('method')} on {stored.get('split')})"
        return [float(v) for v in stored["values"]], source
    val_w, val_starts, val_clips = split_windows(fs, cfg.val_splits, wf, hop)
    logits = float_logits(inputs.model, val_w, fs)
    val_scores = _sigmoid(np.maximum.reduceat(logits, val_starts, axis=0))
    val_labels = np.asarray(fs.labels)[val_clips]
    thresholds = [float(t) for t in operating_thresholds(val_labels, val_scores)]
    return thresholds, f"computed by quantize (float max F1 on {','.join(cfg.val_splits)})"


def _report(inputs: CheckpointInputs, out: Path, md, info, evaluation: dict, source: str):
    stem = out.with_suffix("")
    op_counts: dict[str, int] = {}
    for op in info.ops:
        op_counts[op] = op_counts.get(op, 0) + 1
    metrics = evaluation["metrics"]
    tensor = {
        "input": {
            "shape": list(info.input_shape),
            "scale": info.input_scale,
            "zero_point": info.input_zero_point,
        },
        "output": {
            "shape": list(info.output_shape),
            "scale": info.output_scale,
            "zero_point": info.output_zero_point,
        },
    }
    return {
        "checkpoint": {
            "path": str(inputs.path),
            "sha256": md.checkpoint_sha256,
            "arch": md.arch,
            "state_dict_sha256": md.state_dict_sha256,
        },
        "frontend_hash": md.frontend_hash,
        "task": md.task,
        "model": {
            "path": str(out),
            "bytes": out.stat().st_size,
            "model_hash": md.model_hash,
            "ops": list(info.ops),
            "op_counts": op_counts,
            "tensor_types": info.tensor_types,
            **tensor,
        },
        "evaluation": {
            "split": evaluation["split"],
            "n_clips": evaluation["n_clips"],
            "n_windows": evaluation["n_windows"],
            **metrics,
            "delta_micro": metrics["int8_tflm"]["micro"] - metrics["float"]["micro"],
            "delta_macro": metrics["int8_tflm"]["macro"] - metrics["float"]["macro"],
            "delta_micro_litert": metrics["int8_litert"]["micro"] - metrics["float"]["micro"],
        },
        "parity": evaluation["parity"],
        "arena_bytes": md.arena_bytes,
        "thresholds": {
            "classes": list(md.labels),
            "values": list(md.thresholds),
            "q": list(md.thresholds_q),
            "source": source,
        },
        "files": {
            "model": str(out),
            "json": f"{stem}.quant.json",
            "markdown": f"{stem}.quant.md",
            "png": f"{stem}.scores.png",
        },
    }


def _write_report(report: dict, scores: dict, classes, arch: str, split: str) -> None:
    files = report["files"]
    title = f"{arch}: float vs int8 clip scores ({split})"
    _plot(Path(files["png"]), scores["float"], scores["int8_tflm"], classes, title)
    text = json.dumps(json_finite(report), indent=1, allow_nan=False) + "\n"
    atomic_write_text(Path(files["json"]), text)
    atomic_write_text(Path(files["markdown"]), _markdown(report))
