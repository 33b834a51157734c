"""What the host expects of a device for one clip (:func:`host_reference`: the Python front
end, the windows, the ``tflite_micro`` runtime and the task's ``clip_post``) and the first
difference of a device's answer from it (:func:`compare`), for tagging and anomaly models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from host_tools.device import ClassifyResult
from model_dev.frontend import Frontend


@dataclass(frozen=True)
class Reference:
    """Host reference of one clip (scores in the form of the task's ``clip_post``)."""

    features: np.ndarray  # int8 [frames, mels]
    window_starts: np.ndarray  # int64 [windows]
    window_scores: np.ndarray  # int8 [windows, classes]; anomaly uint32 [windows, 1]
    clip_scores: np.ndarray  # int8 [classes]; anomaly uint64 [2]: (sum, windows)
    decisions: np.ndarray  # bool [classes]


def host_reference(
    tflite: bytes,
    meta,
    audios: Sequence[np.ndarray],
    features: list[np.ndarray] | None = None,
    own: list[int] | None = None,
) -> list[Reference]:
    """The host's answer for each clip (see the module docstring).

    Parameters
    ----------
    tflite : bytes
        The model.
    meta : quantize.metadata.ModelMetadata
        Its metadata (front end, window, hop, thresholds).
    audios : sequence of np.ndarray
        int16 clips.
    features : list of np.ndarray, optional
        Their front-end features from the feature cache (the Python front end's, cached);
        computed here when not given.
    own : list of int, optional
        ID classifier: each clip's own machine ID (class index), as MACHINE_ID set it on the
        device; default: the build-time default.
    """
    from model_dev.arch import window_starts
    from quantize.runtime import clip_outputs

    fe = Frontend(meta.frontend)
    w, h = meta.window_frames, meta.window_hop_frames
    feats = [fe(a) for a in audios] if features is None else features
    own_ids = {} if own is None else {"own": own}
    return [
        Reference(f, np.asarray(window_starts(len(f), w, h), np.int64), *outputs)
        for f, outputs in zip(feats, clip_outputs(tflite, meta, feats, **own_ids), strict=True)
    ]


def _shape_mismatch(what: str, host: np.ndarray, device: np.ndarray) -> dict:
    h, d = list(host.shape), list(device.shape)
    return {"what": what, "host": h, "device": d, "message": f"{what} shape: host {h}, device {d}"}


def compare(ref: Reference, got: ClassifyResult, labels: Sequence[str]) -> dict | None:
    """The first difference between the host reference and the device's answer, or None.

    Returns
    -------
    dict or None
        ``what`` (``features``, ``n_frames``, ``window_starts``, ``window_scores``,
        ``clip_scores``, ``decisions``), ``frame``/``band``/``window``/``class`` where they
        apply, ``byte`` (offset of the first differing byte in that tensor), ``host``,
        ``device`` and a one-line ``message``.
    """
    n_mels = ref.features.shape[1]
    if got.features.shape != ref.features.shape:
        n = min(len(got.features), len(ref.features))
        diff = np.argwhere(got.features[:n] != ref.features[:n])
        frame = int(diff[0, 0]) if len(diff) else n
        return {
            "what": "n_frames",
            "frame": frame,
            "byte": frame * n_mels,
            "host": int(len(ref.features)),
            "device": int(len(got.features)),
            "message": f"device sent {len(got.features)} feature frames, host has "
            f"{len(ref.features)} (first difference at frame {frame})",
        }
    diff = np.argwhere(got.features != ref.features)
    if len(diff):
        frame, band = (int(v) for v in diff[0])
        host, dev = int(ref.features[frame, band]), int(got.features[frame, band])
        return {
            "what": "features",
            "frame": frame,
            "band": band,
            "byte": frame * n_mels + band,
            "host": host,
            "device": dev,
            "differing_bytes": int(len(diff)),
            "message": f"features differ at frame {frame}, band {band} (byte "
            f"{frame * n_mels + band}): host {host}, device {dev}; {len(diff)} bytes differ",
        }
    if not np.array_equal(got.window_starts, ref.window_starts):
        return {
            "what": "window_starts",
            "host": ref.window_starts.tolist(),
            "device": got.window_starts.tolist(),
            "message": f"window starts differ: host {ref.window_starts.tolist()}, device "
            f"{got.window_starts.tolist()}",
        }
    if ref.clip_scores.dtype == np.uint64:  # anomaly: (sum, windows)
        return _compare_anomaly(ref, got)
    n_classes = len(labels)
    for what, h, d in (
        ("window_scores", ref.window_scores, got.window_scores),
        ("clip_scores", ref.clip_scores[None], got.clip_scores[None]),
        ("decisions", ref.decisions[None], got.decisions[None]),
    ):
        if h.shape != d.shape:
            return _shape_mismatch(what, h, d)
        diff = np.argwhere(h != d)
        if len(diff):
            window, c = (int(v) for v in diff[0])
            where = f"window {window} (start frame {int(ref.window_starts[window])}), " * (
                what == "window_scores"
            )
            return {
                "what": what,
                "window": window if what == "window_scores" else None,
                "class": labels[c],
                "byte": window * n_classes + c,
                "host": int(h[window, c]),
                "device": int(d[window, c]),
                "message": f"{what} differ at {where}class {labels[c]} (byte "
                f"{window * n_classes + c}): host {int(h[window, c])}, device "
                f"{int(d[window, c])}",
            }
    return None


#: What the parts of an anomaly clip's answer are called in mismatch messages.
ANOMALY_PARTS = {
    "window_scores": "window score",
    "clip_scores": ("clip score sum", "clip score windows"),
    "decisions": "decision",
}


def _compare_anomaly(ref: Reference, got: ClassifyResult) -> dict | None:
    """:func:`compare` for an anomaly clip: u32 window scores, the clip's (u64 sum, u32 count)
    and the decision; ``byte`` is the first differing byte of the value as the device sends it
    (little-endian), counted from the start of that tensor."""
    for what, h, d in (
        ("window_scores", ref.window_scores[:, 0], got.window_scores[:, 0]),
        ("clip_scores", ref.clip_scores, got.clip_scores),
        ("decisions", ref.decisions, got.decisions),
    ):
        if h.shape != d.shape:
            return _shape_mismatch(what, h, d)
        diff = np.flatnonzero(h != d)
        if not len(diff):
            continue
        i, size = int(diff[0]), d.dtype.itemsize
        hb, db = (np.ascontiguousarray(a[i : i + 1], d.dtype.newbyteorder("<")).tobytes()
                  for a in (h, d))  # fmt: skip
        byte = i * size + next(k for k in range(size) if hb[k] != db[k])
        host, dev = int(h[i]), int(d[i])
        if what == "window_scores":
            where = f"window {i} (start frame {int(ref.window_starts[i])})"
        elif what == "clip_scores":
            where = ANOMALY_PARTS[what][i]
        else:
            where = ANOMALY_PARTS[what]
        return {
            "what": what,
            "window": i if what == "window_scores" else None,
            "byte": byte,
            "host": host,
            "device": dev,
            "differing": int(len(diff)),
            "message": f"{what} differ at {where} (byte {byte}): host {host}, device {dev}"
            + (f"; {len(diff)} windows differ" if what == "window_scores" else ""),
        }
    return None
