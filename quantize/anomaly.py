"""Anomaly checkpoint -> one full-int8 .tflite per machine type, and float vs int8 AUC/pAUC
(``aedfw quantize`` on an anomaly checkpoint).

Deployable methods (:data:`DEPLOY`): the dense autoencoders (``dense_ae``, ``dense_ae_small``),
the causal convolutional next-frame predictor (``causal_conv``) and the machine-ID classifier
(``id_classifier``, one model per machine type serving all its IDs; the own ID is a device
setting). Per machine type:

1. the detector's torch network and its Keras mirror (autoencoder and predictor:
   :func:`~quantize.keras_mirror.build_keras_anomaly`; ID classifier: the tagging mirror
   :func:`~quantize.keras_mirror.build_keras` ending at the logits), BatchNorm folded,
   drift-checked on calibration windows;
2. ``TFLiteConverter`` full int8 (:func:`~quantize.convert.keras_to_tflite`) with a
   representative set of ``calibration_windows`` windows drawn (seeded) from the type's normal
   training clips plus the extremes window, so the input format is the front end's
   (:func:`~quantize.convert.representative_set`, :func:`~quantize.convert.check_io`);
3. graph check (the method's ops and I/O shapes), exact TFLM arena, metadata (task
   ``anomaly``, the method, the score and its definition, the window, the machine type, the
   ID classifier's ``machine_ids``, the threshold in integer score units);
4. test split through the float torch model and the int8 model (TFLM, the host golden) and
   the integer score (:mod:`quantize.anomaly_scores`, the device's arithmetic): AUC/pAUC per
   type (:mod:`model_dev.anomaly.metrics`) of both.

The integer scores, their units and thresholds are defined in :mod:`quantize.anomaly_scores`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_dev.config_io import json_finite
from model_dev.fileio import atomic_write, atomic_write_text
from model_dev.frontend import FrontendConfig
from quantize.anomaly_scores import (  # noqa: F401 (the dense AE's, importable from here)
    SCORES,
    integer_window_scores,
    made_threshold,
    made_threshold_q,
    method_threshold_q,
    requantize,
    scales_of,
    threshold_q,
    window_scores,
)


@dataclass(frozen=True)
class Deploy:
    """How a method goes to the device: its graph's ops and its integer score in words."""

    ops: frozenset[str]
    score_definition: str


_CLIP = (
    "; clip: mean over windows ({frames} frames, hop {hop}, short clips padded with -128); "
    "anomalous when clip score >= thresholds_q"
)
_REQUANT = (
    "y_rq the int8 output requantised to the input scale/zero point (TFLite fixed-point "
    "multiplier, clamped to int8)"
)
#: The deployable methods (the keys are what this module converts).
DEPLOY = {
    "dense_ae": Deploy(
        frozenset({"RESHAPE", "FULLY_CONNECTED"}),
        "window: sum over the 5 x n_mels int8 inputs of (x - y_rq)^2, " + _REQUANT + _CLIP,
    ),
    "causal_conv": Deploy(
        frozenset({"CONV_2D", "RESHAPE"}),
        "window: T frames x n_mels int8 inputs x, output row j predicts frame j + k (k the "
        "context = T - rows + 1); sum over frames k..T-1 and all bands of (x[t] - y_rq[t - k])^2 "
        "(the last row, predicting frame T, is unused), " + _REQUANT + _CLIP,
    ),
    "id_classifier": Deploy(
        frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"}),
        "window: -log p(own machine ID) of the softmax over the int8 logits q (scale s), in "
        "2^-16 nats, from tables: d = max(q) - q, STEP[d_own] + LN(sum EXP[d]) with "
        "STEP[d] = round(2^16 s d), EXP[d] = round(2^24 exp(-s d)), LN = ln(S / 2^24) in Q16 "
        "(257-entry table of ln(1 + i/256), linear interpolation); |error| <= 3 * 2^-16 "
        "nats; own ID = index into machine_ids (build-time or protocol)" + _CLIP,
    ),
}
DEPLOY["group_made"] = Deploy(
    frozenset({"RESHAPE", "FULLY_CONNECTED"}),
    "window: Gaussian negative log-likelihood of the 5 x n_mels int8 inputs x in 2^-8 nats, "
    "from the int8 means (first half of the output, requantised to the input scale/zero point) "
    "and log-scales times log_scale_gain (second half) via tables: sum of "
    "((x - mu_rq)^2 E[q] + 2^(K-1)) >> K plus L[q], E[q] = round(2^(K+8) s_in^2/2 exp(-2 l(q))), "
    "L[q] = round(2^8 (l(q) - l(-128))), l(q) = s_out (q - zp_out) / log_scale_gain, "
    "saturated at 2^32 - 1" + _CLIP,
)
DEPLOY["dense_ae_small"] = DEPLOY["dense_ae"]
#: Anomaly methods this module converts.
QUANTIZABLE = tuple(DEPLOY)
#: The dense autoencoders' score (kept for callers written before the other methods).
SCORE = SCORES["dense_ae"]


# --------------------------------------------------------------------------------------------
# Conversion and report
# --------------------------------------------------------------------------------------------
def _int8(clip: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Dequantised front-end features back to their int8 values (checked exact)."""
    s = np.float32(cfg.input_scale)
    q = np.rint(clip / s + cfg.input_zero_point).astype(np.int8)
    if not np.array_equal(((q.astype(np.float32) - cfg.input_zero_point) * s), clip):
        raise ValueError("features are not dequantised front-end output of this front end")
    return q


def _calibration_clips(method: str, data, cfg: FrontendConfig) -> list[np.ndarray]:
    """int8 clips the representative windows are drawn from: the normal training clips, and
    for the ID classifier also its pseudo-instances (the classes it was trained on; without
    them a foreign sound drives its activations past the calibrated ranges, and the int8
    model picks another class than the float one: loud-tone AUC 0.93 instead of 0.99)."""
    clips = [_int8(c, cfg) for c in data.train]
    if method != "id_classifier":
        return clips
    from model_dev.anomaly.detectors import pseudo_instances

    s, zp = np.float32(cfg.input_scale), cfg.input_zero_point
    warped, _ = pseudo_instances(data.train, data.train_ids, len(data.ids))
    extra = [np.clip(np.rint(c / s + zp), -128, 127).astype(np.int8) for c in warped[len(clips) :]]
    return clips + extra


def clip_windows_q(layout, clip_q: np.ndarray) -> np.ndarray:
    """int8 model windows ``[n, frames, n_mels]`` of one int8 clip, as the float detector cuts
    them (:meth:`model_dev.anomaly.methods.Layout.windows`; short clips padded with -128)."""
    return layout.windows(clip_q, -128).reshape(-1, layout.frames, clip_q.shape[1])


def int8_clip_scores(
    tflite: bytes, layout, clips_q: list[np.ndarray], meta, own: np.ndarray | None = None
) -> dict:
    """Window and clip integer scores of int8 clips through the TFLM runtime (``meta``: the
    model's metadata; ``own``: the ID classifier's own-ID class index per clip)."""
    from quantize.runtime import run_tflm

    wins = [clip_windows_q(layout, c) for c in clips_q]
    owner = np.concatenate([np.full(len(w), i) for i, w in enumerate(wins)])
    windows = np.concatenate(wins)
    outputs = run_tflm(tflite, windows)
    own_w = None if own is None else np.asarray(own)[owner]
    scores = window_scores(meta, windows, outputs, own_w)
    clip = np.bincount(owner, scores, len(wins)) / np.bincount(owner, minlength=len(wins))
    return {
        "windows": windows,
        "outputs": outputs,
        "window_scores": scores,
        "owner": owner,
        "own": own_w,
        "clip": clip,
    }


def litert_parity(tflite: bytes, int8: dict, meta) -> dict:
    """TFLM (golden) vs LiteRT ``BUILTIN_REF`` on the windows of :func:`int8_clip_scores`: the
    share of equal output values and of equal integer window scores, the largest LSB
    difference (DESIGN contract 4 allows rare 1-2 LSB differences)."""
    from quantize.runtime import run_litert

    litert = run_litert(tflite, int8["windows"])
    diff = np.abs(litert.astype(np.int16) - int8["outputs"].astype(np.int16))
    scores = window_scores(meta, int8["windows"], litert, int8["own"])
    return {
        "values": int(diff.size),
        "exact_match_rate": float((diff == 0).mean()),
        "max_lsb_diff": int(diff.max(initial=0)),
        "window_scores_equal_rate": float((scores == int8["window_scores"]).mean()),
    }


def _auc_pauc(scores: np.ndarray, labels: np.ndarray, ids, mtype: str) -> dict:
    from model_dev.anomaly.metrics import Scores, evaluate_scores

    r = evaluate_scores(Scores(np.asarray(scores, np.float64), labels, [mtype] * len(ids), ids))
    return r["per_type"][mtype]


def _mirror(method: str, model, rep: np.ndarray):
    """The Keras mirror of a detector's network, its drift against torch (on the last
    ``DRIFT_WINDOWS`` of ``rep``), the expected output shape, the number of values its
    squared-error score compares and extra metadata (Group MADE: ``log_scale_gain``)."""
    from quantize.convert import DRIFT_WINDOWS
    from quantize.keras_mirror import (
        build_keras,
        build_keras_anomaly,
        build_keras_made,
        check_anomaly_drift,
        check_drift,
        check_made_drift,
        made_gain,
    )

    probe, spec = rep[-DRIFT_WINDOWS:], model.spec
    if method == "id_classifier":
        keras_model = build_keras(spec, model.net, logits=True)
        return keras_model, check_drift(keras_model, model.net, probe), (1, spec.n_classes), 0, {}
    if method == "group_made":  # both output halves share one int8 scale
        gain = made_gain(model, rep)
        keras_model = build_keras_made(model, gain)
        drift = check_made_drift(keras_model, model, probe, gain)
        return keras_model, drift, (1, 2 * spec.n_in), spec.n_in, {"log_scale_gain": gain}
    keras_model = build_keras_anomaly(spec, model)
    drift = check_anomaly_drift(keras_model, model, probe)
    if method == "causal_conv":
        rows = spec.window_frames - spec.context + 1
        return keras_model, drift, (1, rows, spec.n_mels), (rows - 1) * spec.n_mels, {}
    return keras_model, drift, (1, spec.n_in), spec.n_in, {}


def quantize_detector(
    record: dict,
    data,
    cfg: FrontendConfig,
    out: Path,
    *,
    calibration_windows: int = 200,
    seed: int = 0,
    checkpoint_sha256: str = "0" * 64,
    device: str = "cpu",
) -> dict:
    """Convert one machine type's detector and evaluate float vs int8 on its test split.

    Parameters
    ----------
    record : dict
        A detector record of an anomaly checkpoint (:func:`~model_dev.anomaly.pipeline.
        train_detector`).
    data : model_dev.anomaly.pipeline.TypeData
        The type's clips: calibration from ``data.train``, evaluation on ``data.test``.
    cfg : FrontendConfig
        The front end the features come from.
    out : Path
        The .tflite to write (atomically, metadata embedded).

    Returns
    -------
    dict
        ``model`` (path, bytes, ops, I/O quantisation, arena), ``float`` and ``int8``
        (``auc``, ``pauc``), ``delta_auc``, ``drift``, ``threshold``, ``decisions``,
        ``parity_tflm_litert`` (:func:`litert_parity`), and (not JSON) ``scores``: float
        clip scores and :func:`int8_clip_scores`.
    """
    from model_dev.anomaly.methods import Layout
    from model_dev.anomaly.pipeline import load_network, score_record
    from quantize.convert import (
        GraphError,
        check_graph,
        check_io,
        dequantize,
        keras_to_tflite,
        representative_set,
    )
    from quantize.metadata import ModelMetadata, embed_metadata, read_metadata
    from quantize.runtime import arena_size

    method, mtype = record["method"], data.machine_type
    if method not in QUANTIZABLE:
        raise ValueError(
            f"method {method!r} cannot be quantised (deployable: {', '.join(QUANTIZABLE)})"
        )
    layout, model = Layout(**record["layout"]), load_network(record)
    spec = model.spec
    cal = np.concatenate([clip_windows_q(layout, c) for c in _calibration_clips(method, data, cfg)])
    rng = np.random.default_rng(seed)
    cal = cal[np.sort(rng.choice(len(cal), min(calibration_windows, len(cal)), replace=False))]
    rep = dequantize(representative_set(cal), cfg)
    keras_model, drift, want_out, n_compared, extra = _mirror(method, model, rep)
    tflite = keras_to_tflite(keras_model, rep)
    source = f"converted {method} ({mtype})"
    info = check_graph(tflite, source)
    check_io(info, cfg, source)
    want = ((1, layout.frames, cfg.n_mels, 1), want_out)
    if (info.input_shape, info.output_shape) != want:
        raise GraphError(
            f"{source}: I/O shapes {info.input_shape} -> {info.output_shape}, "
            f"expected {want[0]} -> {want[1]}"
        )
    if not set(info.ops) <= DEPLOY[method].ops:
        raise GraphError(f"{source}: ops {sorted(set(info.ops))}, expected {DEPLOY[method].ops}")

    threshold = float(record["threshold"]["value"])  # the host detector's units
    device_threshold = threshold
    if method == "group_made":
        log_scale_sum = float(model.scale.double().log().sum())
        device_threshold = made_threshold(threshold, spec.n_in, log_scale_sum)
    definition = DEPLOY[method].score_definition.format(frames=layout.frames, hop=layout.hop)
    arena = arena_size(tflite)
    md = ModelMetadata.for_graph(
        info, cfg, ("anomalous",), (device_threshold,), layout.frames, layout.hop, arena, spec.name,
        checkpoint_sha256=checkpoint_sha256,
        state_dict_sha256=record.get("state_dict_sha256", ""),
        threshold_source=f"checkpoint ({record['threshold'].get('method')} fit on "
        f"{record['threshold'].get('n_clips')} held-out normal clips)",
        task="anomaly", score=SCORES[method], method=method, machine_type=mtype,
        score_definition=definition,
        machine_ids=tuple(record["ids"]) if method == "id_classifier" else (), **extra,
    )  # fmt: skip
    if method == "group_made":
        thr_q = made_threshold_q(device_threshold, n_compared, info, extra["log_scale_gain"])
    else:
        thr_q = method_threshold_q(method, threshold, n_compared, info.input_scale)
    md = dataclasses.replace(md, thresholds_q=(thr_q,), aggregation="mean")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(embed_metadata(tflite, md)))
    md = read_metadata(out)

    float_scores = score_record(record, data.test, data.test_ids, data.silence, device)
    own = data.test_ids if method == "id_classifier" else None
    int8 = int8_clip_scores(tflite, layout, [_int8(c, cfg) for c in data.test], md, own)
    parity = litert_parity(tflite, int8, md)
    ids = [data.ids[i] for i in data.test_ids]
    f, q = (_auc_pauc(s, data.test_labels, ids, mtype) for s in (float_scores, int8["clip"]))
    y = data.test_labels
    fired = {"float": float_scores > threshold, "int8": int8["clip"] >= thr_q}
    return {
        "machine_type": mtype,
        "model": {
            "path": str(out),
            "bytes": out.stat().st_size,
            "model_hash": md.model_hash,
            "ops": list(info.ops),
            "input": {"scale": md.input_scale, "zero_point": md.input_zero_point},
            "output": {"scale": md.output_scale, "zero_point": md.output_zero_point},
            "arena_bytes": md.arena_bytes,
        },
        "drift": drift,
        "calibration_windows": int(len(cal)) + 1,
        "n_clips": len(y),
        "n_windows": int(len(int8["windows"])),
        "float": f,
        "int8": q,
        "delta_auc": q["auc"] - f["auc"],
        "delta_pauc": q["pauc"] - f["pauc"],
        "parity_tflm_litert": parity,
        "threshold": {"value": threshold, "q": thr_q},
        "decisions": {
            k: {
                "tpr": float(d[y == 1].mean()) if (y == 1).any() else None,
                "fpr": float(d[y == 0].mean()) if (y == 0).any() else None,
            }
            for k, d in fired.items()
        },
        "scores": {"float": float_scores, "int8": int8},
    }


def quantize_anomaly(
    checkpoint: str | Path,
    out_dir: str | Path,
    root: str | Path,
    *,
    cache_dir: str | Path | None = None,
    calibration_windows: int = 200,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Quantise every machine type of an anomaly checkpoint found in the dataset at ``root``.

    Writes ``<out_dir>/<machine type>.tflite`` per type and ``<out_dir>/quantize.json`` and
    ``quantize.md`` (float vs int8 AUC/pAUC per type on the test split). Returns the report.
    """
    from model_dev.anomaly.pipeline import load_anomaly_checkpoint, prepare, type_data

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    ckpt = load_anomaly_checkpoint(checkpoint)
    if ckpt["method"] not in QUANTIZABLE:
        raise ValueError(
            f"{checkpoint}: method {ckpt['method']!r} cannot be quantised "
            f"(deployable: {', '.join(QUANTIZABLE)})"
        )
    cfg = FrontendConfig.from_dict(ckpt["frontend"], f"{checkpoint}: frontend")
    kind = ckpt["dataset"]["kind"]
    ms, fs = prepare(kind, root, cache_dir or Path(root) / ".features", cfg, progress)
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    types = {}
    for mtype, record in ckpt["detectors"].items():
        if mtype in ms.types:
            r = quantize_detector(
                record,
                type_data(ms, fs, mtype),
                cfg,
                out_dir / f"{mtype}.tflite",
                calibration_windows=calibration_windows,
                seed=seed,
                checkpoint_sha256=sha,
                device=device,
            )
            types[mtype] = {k: v for k, v in r.items() if k != "scores"}
    if not types:
        raise ValueError(
            f"{root}: none of the checkpoint's machine types {list(ckpt['detectors'])}"
        )
    mean = {
        f"{m}_{k}": float(np.mean([t[m][k] for t in types.values()]))
        for m in ("float", "int8")
        for k in ("auc", "pauc")
    }
    report = {
        "checkpoint": {"path": str(checkpoint), "sha256": sha},
        "task": "anomaly",
        "method": ckpt["method"],
        "score": SCORES[ckpt["method"]],
        "score_definition": DEPLOY[ckpt["method"]].score_definition.format(
            frames=ckpt["window"]["frames"], hop=ckpt["window"]["hop"]
        ),
        "split": "test",
        "pauc_convention": "challenge: area over FPR<=0.1 divided by 0.1 (not McClish)",
        "per_type": types,
        "mean": mean,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_finite(report), indent=1, allow_nan=False) + "\n"
    atomic_write_text(out_dir / "quantize.json", text)
    atomic_write_text(out_dir / "quantize.md", _markdown(report))
    return report


def _markdown(r: dict) -> str:
    lines = [
        f"# Quantisation report: anomaly, {r['method']}",
        "",
        f"- checkpoint: `{r['checkpoint']['path']}` (sha256 `{r['checkpoint']['sha256'][:16]}`)",
        f"- score: {r['score_definition']}",
        f"- pAUC: {r['pauc_convention']}",
        "",
        f"## AUC / pAUC on `{r['split']}`, float (torch) vs int8 (TFLM, integer score)",
        "",
        "| machine type | float AUC | int8 AUC | float pAUC | int8 pAUC | bytes | arena |",
        "|---|---|---|---|---|---|---|",
    ]
    for mtype, t in r["per_type"].items():
        lines.append(
            f"| {mtype} | {t['float']['auc']:.4f} | {t['int8']['auc']:.4f} | "
            f"{t['float']['pauc']:.4f} | {t['int8']['pauc']:.4f} | {t['model']['bytes']} | "
            f"{t['model']['arena_bytes']} |"
        )
    m = r["mean"]
    lines.append(
        f"| mean | {m['float_auc']:.4f} | {m['int8_auc']:.4f} | {m['float_pauc']:.4f} | "
        f"{m['int8_pauc']:.4f} | | |"
    )
    return "\n".join(lines) + "\n"
