"""``aedfw validate``: hardware-in-the-loop proof that a device computes what the host expects.

For each clip of a dataset the device runs CLASSIFY (front end, windows, model, max aggregation,
thresholds) and sends back its features, per-window scores, clip scores and decisions. The host
reference computes the same from the same int16 audio: the Python front end
(:class:`model_dev.frontend.Frontend`), windows cut as in training
(:func:`model_dev.arch.clip_windows`), the ``tflite_micro`` runtime, max over windows, the
int8 thresholds of the model's metadata. Everything is compared byte for byte; the first
differing byte of each mismatching clip is named (clip, frame, band or window, class).

Before any clip, the device's HELLO must report the model's hash and front-end hash (and its
labels, thresholds and windowing); a mismatch is refused. A device reset during the run (HELLO
flag) is detected: the clip is redone after a new HELLO (``on_reset="resume"``) or the run stops
with the reset in the report (``"stop"``).

Outputs in ``out``: ``report.json``, ``report.md``, ``latency.png`` (per-clip latency and
per-window model cycles) and, on a mismatch, ``mismatch.png`` (host vs device features of the
first mismatching clip).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from host_tools.bench import open_device
from host_tools.device import (
    ClassifyResult,
    Device,
    DeviceReset,
    Hello,
    LinkCounters,
    ProtocolError,
    SerialLike,
)
from model_dev.config_io import json_finite
from model_dev.datasets import Dataset, load_dataset
from model_dev.evaluate import auprc
from model_dev.frontend import Frontend

CHUNK = 32  # clips per host-reference batch (one TFLM interpreter per batch)
MAX_LISTED = 20  # mismatches listed in full in the report


class HashMismatch(ValueError):
    """The device runs another model or front end than the one given; names both."""


@dataclass(frozen=True)
class Reference:
    """Host reference of one clip."""

    features: np.ndarray  # int8 [frames, mels]
    window_starts: np.ndarray  # int64 [windows]
    window_scores: np.ndarray  # int8 [windows, classes]
    clip_scores: np.ndarray  # int8 [classes]
    decisions: np.ndarray  # bool [classes]


def host_reference(tflite: bytes, meta, audios: Sequence[np.ndarray]) -> list[Reference]:
    """The host's answer for each clip (see the module docstring).

    Parameters
    ----------
    tflite : bytes
        The model.
    meta : quantize.metadata.ModelMetadata
        Its metadata (front end, window, hop, thresholds).
    audios : sequence of np.ndarray
        int16 clips.
    """
    from model_dev.arch import window_starts
    from quantize.runtime import clip_outputs

    fe = Frontend(meta.frontend)
    w, h = meta.window_frames, meta.window_hop_frames
    feats = [fe(a) for a in audios]
    return [
        Reference(f, np.asarray(window_starts(len(f), w, h), np.int64), *outputs)
        for f, outputs in zip(feats, clip_outputs(tflite, meta, feats), strict=True)
    ]


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
    n_classes = len(labels)
    for what, h, d in (
        ("window_scores", ref.window_scores, got.window_scores),
        ("clip_scores", ref.clip_scores[None], got.clip_scores[None]),
        ("decisions", ref.decisions[None], got.decisions[None]),
    ):
        if h.shape != d.shape:
            return {
                "what": what,
                "host": list(h.shape),
                "device": list(d.shape),
                "message": f"{what} shape: host {list(h.shape)}, device {list(d.shape)}",
            }
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


def check_hello(info: Hello, meta, model_path: str | Path) -> None:
    """Refuse a device whose HELLO does not describe ``meta``'s model and front end.

    Raises
    ------
    HashMismatch
        Naming the device's and the model file's values.
    """
    problems = []
    if info.model_hash != meta.model_hash:
        problems.append(
            f"model hash: device {info.model_hash}, {Path(model_path).name} {meta.model_hash}"
        )
    if info.frontend_hash != meta.frontend_hash:
        problems.append(
            f"front-end hash: device {info.frontend_hash}, {Path(model_path).name} "
            f"{meta.frontend_hash}"
        )
    pairs = {
        "labels": (info.labels, tuple(meta.labels)),
        "thresholds_q": (info.thresholds_q, tuple(meta.thresholds_q)),
        "window_hop_frames": (info.window_hop_frames, meta.window_hop_frames),
        "in_frames": (info.in_frames, meta.window_frames),
    }
    if not problems:  # the hashes agree: anything else that differs is a firmware bug
        problems += [f"{k}: device {d}, model {m}" for k, (d, m) in pairs.items() if d != m]
    if problems:
        raise HashMismatch(
            f"the device does not run {model_path}; refusing to validate ("
            + "; ".join(problems)
            + ")"
        )


def _open_dataset(data: str | Path | Dataset, kind: str) -> Dataset:
    if isinstance(data, Dataset):
        return data
    data = Path(data)
    if kind == "auto":
        if data.suffix == ".csv" or (data / "manifest.csv").exists():
            kind = "manifest"
        elif (data / "clips.csv").exists():
            kind = "synth"
        else:
            raise ValueError(
                f"{data}: neither a manifest .csv nor a synth corpus (clips.csv); pass the "
                "dataset kind (--dataset)"
            )
    return load_dataset(kind, data)


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def validate(
    port: str | SerialLike | Device,
    model: str | Path,
    data: str | Path | Dataset,
    *,
    dataset: str = "auto",
    split: str | None = None,
    limit: int | None = None,
    out: str | Path = "runs/validate",
    timeout: float = 2.0,
    retries: int = 10,
    max_payload: int | None = None,
    on_reset: str = "resume",
    max_resets: int = 3,
    progress: bool = True,
) -> dict:
    """Validate the device on ``port`` against ``model`` on the clips of ``data``.

    Parameters
    ----------
    port : str, SerialLike or Device
        A pyserial URL, an open port (e.g. a ``FaultyLink``) or a connected :class:`Device`.
    model : str or Path
        The .tflite (with aedfw metadata) the device was built from.
    data : str, Path or Dataset
        Dataset root (synth corpus folder or manifest CSV) or a loaded dataset.
    dataset : str
        Dataset kind for :func:`model_dev.datasets.load_dataset`; ``"auto"``: manifest for a
        .csv, synth for a folder with ``clips.csv``.
    split : str, optional
        Only this split (default: all clips).
    limit : int, optional
        Only the first ``limit`` clips.
    out : str or Path
        Report folder (created).
    timeout, retries, max_payload
        Link settings of :class:`Device` (ignored when ``port`` is a Device).
    on_reset : {"resume", "stop"}
        What to do when the device was reset mid-run.
    max_resets : int
        Stop after this many resets even when resuming.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        The report (also in ``out/report.json``); ``report["passed"]`` is True only if every
        requested clip was validated and matched.

    Raises
    ------
    HashMismatch
        The device runs another model or front end.
    quantize.metadata.MetadataError
        ``model`` has no valid aedfw metadata.
    """
    from quantize.metadata import read_metadata

    if on_reset not in ("resume", "stop"):
        raise ValueError(f"on_reset must be 'resume' or 'stop', got {on_reset!r}")
    model, out = Path(model), Path(out)
    meta = read_metadata(model)
    tflite = model.read_bytes()
    ds = _open_dataset(data, dataset)
    if split is not None:
        ds = ds.subset(split)
    indices = list(range(len(ds)))[:limit]
    if not indices:
        raise ValueError(f"{ds.root}: no clips to validate")

    dev, own = open_device(port, timeout=timeout, retries=retries, max_payload=max_payload)
    try:
        check_hello(dev.info or dev.hello(), meta, model)
        report = _run(dev, meta, tflite, ds, indices, on_reset, max_resets, progress, model)
    finally:
        if own:
            dev.close()
    report["model"] = {"path": str(model), "model_hash": meta.model_hash, "arch": meta.arch}
    report["dataset"] = {"root": str(ds.root), "kind": ds.name, "split": split, "limit": limit}
    out.mkdir(parents=True, exist_ok=True)
    report["files"] = {
        "json": str(out / "report.json"),
        "markdown": str(out / "report.md"),
        "latency_png": str(out / "latency.png"),
    }
    if report["first_mismatch"] is not None:
        report["files"]["mismatch_png"] = str(out / "mismatch.png")
        _plot_mismatch(out / "mismatch.png", report.pop("_mismatch_pair"), report)
    report.pop("_mismatch_pair", None)
    _plot_latency(out / "latency.png", report.pop("_latency"), report.pop("_window_cycles"))
    (out / "report.json").write_text(json.dumps(json_finite(report), indent=1) + "\n")
    (out / "report.md").write_text(markdown(report))
    return report


def _run(dev, meta, tflite, ds, indices, on_reset, max_resets, progress, model) -> dict:
    labels = tuple(meta.labels)
    truth_all = ds.label_matrix()
    column = {c: k for k, c in enumerate(ds.classes)}
    results: list[dict] = []
    mismatches: list[dict] = []
    resets: list[dict] = []
    host_scores, dev_scores, truth = [], [], []
    latency, window_cycles, stage = [], [], {"frontend": [], "model": [], "post": []}
    stopped, pair = None, None
    dev.counters = LinkCounters()  # link accounting of this run only
    t_start = time.perf_counter()
    bar = tqdm(total=len(indices), desc="validate", unit="clip", disable=not progress)
    for batch in _batches(len(indices), CHUNK):
        clips = [indices[i] for i in batch]
        audios = [ds.load(i) for i in clips]
        refs = host_reference(tflite, meta, audios)
        for i, audio, ref in zip(clips, audios, refs, strict=True):
            clip_id = ds.clips[i].clip_id
            while True:
                t0 = time.perf_counter()
                try:
                    got = dev.classify(audio)
                    break
                except DeviceReset as exc:
                    resets.append({"clip": clip_id, "index": i, "message": str(exc)})
                    if on_reset == "stop" or len(resets) > max_resets:
                        stopped = f"device reset while validating {clip_id}: {exc}"
                        break
                    check_hello(dev.hello(), meta, model)  # same firmware after the reset?
                except ProtocolError as exc:
                    stopped = f"link failure while validating {clip_id}: {exc}"
                    break
            if stopped:
                break
            latency.append(time.perf_counter() - t0)
            window_cycles += got.window_cycles.tolist()
            for k in stage:
                stage[k].append(got.cycles[k])
            diff = compare(ref, got, labels)
            results.append({"clip": clip_id, "match": diff is None})
            if diff is not None:
                mismatches.append({"clip": clip_id, "index": i, **diff})
                if pair is None:
                    pair = (clip_id, ref.features, got.features, diff)
            host_scores.append(ref.clip_scores)
            dev_scores.append(got.clip_scores)
            row = np.zeros(len(labels), np.uint8)
            for c, name in enumerate(labels):
                if name in column:
                    row[c] = truth_all[i, column[name]]
            truth.append(row)
            bar.update()
            bar.set_postfix(mismatches=len(mismatches), resets=len(resets))
        if stopped:
            break
    bar.close()
    elapsed = time.perf_counter() - t_start
    stats = None
    if stopped is None or not stopped.startswith("link failure"):
        try:
            s = dev.stats()
            stats = {k: getattr(s, k) for k in s.__dataclass_fields__}
        except ProtocolError:
            stats = None
    n_done = len(results)
    c = dev.counters
    wire, payload = c.bytes_sent + c.bytes_received, c.payload_sent + c.payload_received
    report = {
        "passed": stopped is None and not mismatches and n_done == len(indices),
        "n_requested": len(indices),
        "n_validated": n_done,
        "n_matched": n_done - len(mismatches),
        "n_mismatched": len(mismatches),
        "first_mismatch": mismatches[0] if mismatches else None,
        "mismatches": mismatches[:MAX_LISTED],
        "resets": resets,
        "stopped": stopped,
        "device": _hello_dict(dev.info),
        "auprc": _auprc(truth, host_scores, dev_scores, labels),
        "cycles": {k: _summary(v) for k, v in stage.items()}
        | {"model_per_window": _summary(window_cycles)},
        "latency_s": _summary(latency),
        "clips_per_s": n_done / elapsed if elapsed > 0 else None,
        "elapsed_s": elapsed,
        "link": {
            "requests": c.requests,
            "retransmissions": c.retransmissions,
            "bytes_sent": c.bytes_sent,
            "bytes_received": c.bytes_received,
            "payload_bytes": payload,
            "wire_bytes": wire,
            "efficiency": payload / wire if wire else None,
            "problems": dict(c.problems),
        },
        "device_stats": stats,
        "_mismatch_pair": pair,
        "_latency": latency,
        "_window_cycles": window_cycles,
    }
    return report


def _hello_dict(h: Hello | None) -> dict | None:
    if h is None:
        return None
    return {
        "firmware_version": h.firmware_version,
        "protocol_version": h.protocol_version,
        "model_hash": h.model_hash,
        "frontend_hash": h.frontend_hash,
        "labels": list(h.labels),
        "thresholds_q": list(h.thresholds_q),
        "max_payload": h.max_payload,
        "capabilities": sorted(h.capabilities),
    }


def _auprc(truth, host, device, labels) -> dict | None:
    """Micro/macro AUPRC of the host's and the device's int8 clip scores (None if no labels)."""
    if not truth or not np.any(truth):
        return None
    y = np.stack(truth)
    return {
        "host": auprc(y, np.stack(host).astype(np.float64), labels),
        "device": auprc(y, np.stack(device).astype(np.float64), labels),
    }


def _summary(values: Sequence[float]) -> dict | None:
    if not len(values):
        return None
    v = np.asarray(values, np.float64)
    return {
        "n": int(len(v)),
        "median": float(np.median(v)),
        "mean": float(v.mean()),
        "p95": float(np.percentile(v, 95)),
        "max": float(v.max()),
    }


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_latency(path: Path, latency: list[float], window_cycles: list[int]) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].hist(np.asarray(latency) * 1e3, bins=30)
    axes[0].set(xlabel="clip latency over the link (ms)", ylabel="clips", title="CLASSIFY")
    axes[1].hist(window_cycles, bins=30, color="tab:orange")
    axes[1].set(xlabel="device cycle counter per window", ylabel="windows", title="model")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _plot_mismatch(path: Path, pair, report: dict) -> None:
    clip_id, host, device, diff = pair
    plt = _plt()
    n = min(len(host), len(device))
    delta = device[:n].astype(np.int16) - host[:n].astype(np.int16)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), sharey=True)
    for ax, img, title in zip(
        axes,
        (host.T, device.T, delta.T),
        ("host (Python front end)", "device", "device - host"),
        strict=True,
    ):
        im = ax.imshow(img, aspect="auto", origin="lower", interpolation="nearest")
        ax.set(title=title, xlabel="frame")
        fig.colorbar(im, ax=ax)
    axes[0].set_ylabel("mel band")
    fig.suptitle(f"{clip_id}: {diff['message']}", fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def markdown(r: dict) -> str:
    """``report.md`` from the report dict."""
    verdict = "PASS" if r["passed"] else "FAIL"
    d = r["device"] or {}
    lines = [
        f"# aedfw validation: {verdict}",
        "",
        f"Model `{r['model']['path']}` ({r['model']['arch']}, hash "
        f"`{r['model']['model_hash'][:16]}`); device firmware {d.get('firmware_version')}, "
        f"front end `{str(d.get('frontend_hash'))[:16]}`.",
        f"Dataset `{r['dataset']['root']}` ({r['dataset']['kind']}): "
        f"{r['n_validated']}/{r['n_requested']} clips validated, {r['n_matched']} matched "
        "byte for byte (features, window scores, clip scores, decisions).",
        "",
    ]
    if r["stopped"]:
        lines += [f"**Stopped:** {r['stopped']}", ""]
    if r["resets"]:
        lines += [f"Device resets detected: {len(r['resets'])}"]
        lines += [f"- before clip `{x['clip']}`: {x['message']}" for x in r["resets"]]
        lines += [""]
    if r["mismatches"]:
        lines += [f"Mismatches ({r['n_mismatched']}; first {len(r['mismatches'])} listed):", ""]
        lines += [f"- `{m['clip']}`: {m['message']}" for m in r["mismatches"]]
        lines += ["", "![first mismatch](mismatch.png)", ""]
    if r["auprc"]:
        h, dv = r["auprc"]["host"], r["auprc"]["device"]
        lines += [
            "| AUPRC (int8 clip scores) | host | device |",
            "|---|---|---|",
            f"| micro | {_f(h['micro'])} | {_f(dv['micro'])} |",
            f"| macro | {_f(h['macro'])} | {_f(dv['macro'])} |",
            "",
        ]
    lines += ["| device cycle counter | median | mean | max |", "|---|---|---|---|"]
    for k, v in r["cycles"].items():
        if v:
            lines.append(f"| {k} per clip | {v['median']:.0f} | {v['mean']:.0f} | {v['max']:.0f} |")
    lines[-1] = lines[-1].replace("model_per_window per clip", "model per window")
    link = r["link"]
    lat = r["latency_s"] or {}
    lines += [
        "",
        f"Throughput: {_f(r['clips_per_s'], 2)} clips/s; latency median "
        f"{_f(lat.get('median', float('nan')) * 1e3, 1)} ms. Link: {link['requests']} requests, "
        f"{link['retransmissions']} retransmissions, efficiency (payload / wire bytes) "
        f"{_f(link['efficiency'])}.",
        "",
        "![latency](latency.png)",
        "",
    ]
    return "\n".join(lines)


def _f(v, digits: int = 4) -> str:
    return (
        "n/a"
        if v is None or (isinstance(v, float) and not math.isfinite(v))
        else (f"{v:.{digits}f}")
    )
