"""``aedfw validate``: hardware-in-the-loop proof that a device computes what the host expects.

For each clip of a dataset the device runs CLASSIFY (front end, windows, model, max aggregation,
thresholds) and sends back its features, per-window scores, clip scores and decisions. The host
reference computes the same from the same int16 audio: the Python front end
(:class:`model_dev.frontend.Frontend`), windows cut as in training
(:func:`model_dev.arch.clip_windows`), the ``tflite_micro`` runtime, max over windows, the
int8 thresholds of the model's metadata. Everything is compared byte for byte; the first
differing byte of each mismatching clip is named (clip, frame, band or window, class).

An anomaly model (metadata task ``anomaly``) serves one machine type: the clips are that type's
test clips (``split``) of a machine dataset in the DCASE 2020 Task 2 layout (the synthetic
machine corpus or a real development set); the device sends one u32 score per window and the
clip mean as (sum, windows) with its decision (docs/protocol.md), compared byte for byte with
the host reference of :data:`quantize.tasks.TASKS` ``["anomaly"]``; the report gives the
device's AUC/pAUC next to the host's.

Before any clip, the device's HELLO must report the model's hash and front-end hash (and its
labels, thresholds and windowing; for anomaly models the method, machine type and score); a
mismatch is refused. A device reset during the run (HELLO
flag) is detected: the clip is redone after a new HELLO (``on_reset="resume"``) or the run stops
with the reset in the report (``"stop"``).

A dead link (port closed, device gone, no valid answer after every retry) stops the run with a
message naming the port and the clip; the report of the clips done so far is still written.
``progress.json`` records every validated clip after each batch (and when the run stops), so
``resume=True`` (``aedfw validate --resume``) continues a stopped, interrupted or killed run from
where it stopped instead of starting over.

Outputs in ``out``: ``report.json``, ``report.md``, ``report.html`` (all of it on one
self-contained page), ``progress.json``, ``latency.png`` (per-clip latency and per-window model
cycles), ``host_vs_device.png`` (host and device features of the first clip) and, on a
mismatch, ``mismatch.png`` (host vs device features of the first mismatching clip).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import serial
from tqdm import tqdm

from host_tools.device import (
    ClassifyResult,
    Device,
    DeviceReset,
    Hello,
    LinkCounters,
    ProtocolError,
    SerialLike,
    open_device,
)
from host_tools.reference import Reference, compare, host_reference
from host_tools.validate_report import (
    html,
    markdown,
    plot_features,
    plot_latency,
    plot_mismatch,
)
from model_dev.config_io import json_finite
from model_dev.datasets import Dataset, load_dataset
from model_dev.features import FeatureSet
from model_dev.fileio import atomic_write_text, write_json
from model_dev.stage_inputs import DatasetSpec, dataset_kind

CHUNK = 32  # clips per host-reference batch (one TFLM interpreter per batch)
MAX_LISTED = 20  # mismatches listed in full in the report


class HashMismatch(ValueError):
    """The device runs another model or front end than the one given; names both."""


#: HELLO fields an anomaly device reports besides the tagging ones.
ANOMALY_HELLO = ("method", "machine_type", "score")


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
        "task": (info.task, meta.task),
    }
    if meta.task == "anomaly":
        pairs |= {k: (getattr(info, k), getattr(meta, k)) for k in ANOMALY_HELLO}
        pairs["machine_ids"] = (info.machine_ids, tuple(meta.machine_ids))
    if not problems:  # the hashes agree: anything else that differs is a firmware bug
        problems += [f"{k}: device {d}, model {m}" for k, (d, m) in pairs.items() if d != m]
    if problems:
        raise HashMismatch(
            f"the device does not run {model_path}; refusing to validate ("
            + "; ".join(problems)
            + ")"
        )


def _open_dataset(data: str | Path | Dataset, kind: str, split: str | None) -> Dataset:
    if not isinstance(data, Dataset):
        data = load_dataset(dataset_kind(data, kind), data)
    return data if split is None else data.subset(split)


@dataclass(frozen=True)
class _Clips:
    """The clips to validate: the dataset, each clip's truth in the model's label order, the
    group AUCs are averaged over (anomaly: machine IDs) and cached host features."""

    dataset: Dataset
    truth: np.ndarray  # uint8 [clips, labels]
    groups: list[str] | None = None
    features: FeatureSet | None = None
    own: list[int] | None = None  # ID classifier: each clip's own machine ID (class index)


def _tagging_clips(data, meta, kind: str, split: str | None, progress: bool) -> _Clips:
    features = None
    if isinstance(data, DatasetSpec):
        if data.cache is not None:
            features = data.features(meta.frontend, progress=progress)
        data = data.load()
    ds = _open_dataset(data, kind, split)
    labels = ds.label_matrix()
    column = {c: k for k, c in enumerate(ds.classes)}
    zero = np.zeros(len(ds), labels.dtype)  # 0 for classes the dataset lacks
    truth = np.stack([labels[:, column[n]] if n in column else zero for n in meta.labels], 1)
    return _Clips(ds, truth.astype(np.uint8), None, features)


def _machine_clips(data, meta, kind: str, split: str, progress: bool) -> _Clips:
    """An anomaly model's clips: its machine type's ``split`` clips of a DCASE-layout dataset,
    truth 1 for anomalous clips, grouped by machine ID."""
    from model_dev.anomaly.data import load_machines, machine_features

    spec = data if isinstance(data, DatasetSpec) else None
    kind = spec.kind if spec is not None and kind == "auto" else kind
    if isinstance(data, Dataset) or kind not in ("auto", "dcase"):
        raise ValueError(
            f"{meta.machine_type} anomaly model: validation reads a machine dataset folder in "
            "the DCASE 2020 Task 2 layout (TYPE/{train,test}/{normal,anomaly}_id_XX_*.wav, e.g. "
            f"`aedfw data synth-machines`), got {getattr(data, 'root', data)} ({kind})"
        )
    root = spec.root if spec else Path(data)
    ms = load_machines("dcase", root, skip_bad=bool(spec and spec.skip_bad))
    keep = [k for k, (t, s) in enumerate(zip(ms.machine_types, ms.splits, strict=True))
            if t == meta.machine_type and s == split]  # fmt: skip
    if not keep:
        raise ValueError(
            f"{root}: no {split} clips of machine type {meta.machine_type!r} "
            f"(types: {', '.join(ms.types)}; the model watches {meta.machine_type})"
        )
    features = None
    if spec is not None and spec.cache is not None:
        features = machine_features(ms, spec.cache, meta.frontend, progress=progress)
    ds = dataclasses.replace(ms.dataset, clips=[ms.dataset.clips[k] for k in keep])
    truth = ms.labels[keep][:, None].astype(np.uint8)
    own = None
    if meta.machine_ids:  # ID classifier: each clip is scored against its own machine ID
        unknown = sorted({ms.machine_ids[k] for k in keep} - set(meta.machine_ids))
        if unknown:
            raise ValueError(
                f"{root}: {meta.machine_type} test clips of machine IDs {unknown} the model was "
                f"not trained on (it knows {', '.join(meta.machine_ids)})"
            )
        own = [meta.machine_ids.index(ms.machine_ids[k]) for k in keep]
    return _Clips(ds, truth, [ms.machine_ids[k] for k in keep], features, own)


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def validate(
    port: str | SerialLike | Device,
    model: str | Path,
    data: str | Path | Dataset | DatasetSpec,
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
    resume: bool = False,
) -> dict:
    """Validate the device on ``port`` against ``model`` on the clips of ``data``.

    Parameters
    ----------
    port : str, SerialLike or Device
        A pyserial URL, an open port (e.g. a ``FaultyLink``) or a connected :class:`Device`.
    model : str or Path
        The .tflite (with aedfw metadata) the device was built from.
    data : str, Path, Dataset or DatasetSpec
        Dataset root (synth corpus folder or manifest CSV), a loaded dataset, or a
        :class:`~model_dev.stage_inputs.DatasetSpec`, whose feature cache (if it names one)
        gives the host's features (computed and cached under the model's front end on first
        use).
    dataset : str
        Dataset kind for :func:`model_dev.datasets.load_dataset`; ``"auto"``: found from the
        metadata file (:func:`model_dev.stage_inputs.dataset_kind`).
    split : str, optional
        Only this split (default: all clips; an anomaly model: ``"test"``).
    limit : int, optional
        Only the first ``limit`` clips.
    out : str or Path
        Report folder (created).
    timeout, retries, max_payload
        Link settings of :class:`Device` (ignored when ``port`` is a Device).
    on_reset : {"resume", "stop"}
        What to do when the device was reset mid-run; ``max_resets``: stop after that many.
    progress : bool
        Show a progress bar.
    resume : bool
        Continue the run recorded in ``out/progress.json`` (same model, dataset, split and
        limit): its clips are kept, only the others are sent to the device.

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
        ``model`` has no valid aedfw metadata, or metadata that does not fit its graph (the
        front end's zero point and scale against the model input's, among others).
    ValueError
        ``resume`` with a ``progress.json`` of another model or dataset.
    """
    from quantize.metadata import check_model

    if on_reset not in ("resume", "stop"):
        raise ValueError(f"on_reset must be 'resume' or 'stop', got {on_reset!r}")
    model, out = Path(model), Path(out)
    meta, tflite, _ = check_model(model)
    if meta.task == "anomaly":
        split = split or "test"
        clips = _machine_clips(data, meta, dataset, split, progress)
    else:
        clips = _tagging_clips(data, meta, dataset, split, progress)
    ds = clips.dataset
    indices = list(range(len(ds)))[:limit]
    if not indices:
        raise ValueError(f"{ds.root}: no clips to validate")
    identity = {
        "model": {"path": str(model), "model_hash": meta.model_hash, "arch": meta.arch},
        "dataset": {"root": str(ds.root), "kind": ds.name, "split": split, "limit": limit},
    }
    done = _resumed(out / PROGRESS, identity) if resume else []

    dev, own = open_device(port, timeout=timeout, retries=retries, max_payload=max_payload)
    try:
        check_hello(dev.info or dev.hello(), meta, model)
        run = _Run(dev, _port_name(port), meta, tflite, model, on_reset, max_resets)
        run.progress = (out / PROGRESS, identity)
        run.clips = clips
        run.restore(done)
        report = run.validate(ds, indices, progress)
    finally:
        if own:
            dev.close()
    report |= identity
    _write_outputs(report, run, out)
    return report


#: Per-clip record of a run (see :func:`validate`'s ``resume``).
PROGRESS = "progress.json"


def _port_name(port: str | SerialLike | Device) -> str:
    """How error messages name the port: the URL or device path where there is one."""
    if isinstance(port, Device):
        port = port.port
    if isinstance(port, str):
        return port
    return getattr(port, "name", None) or getattr(port, "portstr", None) or type(port).__name__


def _resumed(path: Path, identity: dict) -> list[dict]:
    """The clip records of ``path`` (none if it does not exist); refuses another run's."""
    if not path.exists():
        return []
    try:
        saved = json.loads(path.read_text())
        clips = saved["clips"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: cannot resume from it ({exc})") from None
    mine = {"model_hash": identity["model"]["model_hash"], "dataset": identity["dataset"]}
    theirs = {"model_hash": (saved.get("model") or {}).get("model_hash"),
              "dataset": saved.get("dataset")}  # fmt: skip
    for key, value in mine.items():
        if theirs[key] != value:
            raise ValueError(
                f"{path}: cannot resume, it records {key} {theirs[key]}, this run is {value}"
            )
    return clips


def _write_outputs(report: dict, run: _Run, out: Path) -> None:
    """report.json, report.md, report.html, latency.png, host_vs_device.png and, on a
    mismatch, mismatch.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    report["files"] = {
        "json": str(out / "report.json"),
        "markdown": str(out / "report.md"),
        "html": str(out / "report.html"),
        "latency_png": str(out / "latency.png"),
    }
    if run.pair is not None:
        report["files"]["mismatch_png"] = str(out / "mismatch.png")
        plot_mismatch(out / "mismatch.png", run.pair, report)
    if run.first is not None:
        report["files"]["host_vs_device_png"] = str(out / "host_vs_device.png")
        same = np.array_equal(run.first[1], run.first[2])
        note = "identical" if same else "features differ"
        plot_features(out / "host_vs_device.png", *run.first, note)
    plot_latency(out / "latency.png", run.latency, run.window_cycles)
    atomic_write_text(out / "report.json", json.dumps(json_finite(report), indent=1) + "\n")
    atomic_write_text(out / "report.md", markdown(report))
    html(report, out).write(out / "report.html")


@dataclass
class _Run:
    """One validation run: the device, the model, and what the clips so far gave."""

    dev: Device
    port: str
    meta: object
    tflite: bytes
    model: Path
    on_reset: str
    max_resets: int
    results: list[dict] = field(default_factory=list)  # per clip, as in progress.json
    progress: tuple[Path, dict] | None = None  # (progress.json, run identity)
    mismatches: list[dict] = field(default_factory=list)
    resets: list[dict] = field(default_factory=list)
    host_scores: list[np.ndarray] = field(default_factory=list)
    dev_scores: list[np.ndarray] = field(default_factory=list)
    truth: list[np.ndarray] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # per scored clip (anomaly: machine ID)
    latency: list[float] = field(default_factory=list)
    window_cycles: list[int] = field(default_factory=list)
    stage: dict = field(default_factory=lambda: {"frontend": [], "model": [], "post": []})
    stopped: str | None = None
    pair: tuple | None = None  # (clip, host features, device features, diff) of the first
    first: tuple | None = None  # (clip, host features, device features) of the first clip
    n_resumed: int = 0  # clips taken over from progress.json
    clips: _Clips | None = None  # what is validated: dataset, truth, groups, cached features

    def _cached(self, ds: Dataset, clips: list[int]) -> list[np.ndarray] | None:
        """The cached features of ``clips`` of ``ds`` (None without a feature cache)."""
        features = self.clips.features
        if features is None:
            return None
        row = {clip_id: k for k, clip_id in enumerate(features.clip_ids)}
        return [features.clip(row[ds.clips[i].clip_id]) for i in clips]

    def _score(self, index: int, truth) -> None:
        """Note the truth (and the AUC group) of a scored clip."""
        self.truth.append(truth)
        if self.clips.groups is not None:
            self.groups.append(self.clips.groups[index])

    def restore(self, records: list[dict]) -> None:
        """Take over the clips of an earlier run of the same model and dataset."""
        self.n_resumed = len(records)
        dtype = np.uint64 if self.meta.task == "anomaly" else np.int8  # clip_post's clip scores
        for r in records:
            self.results.append(r)
            if r["mismatch"] is not None:
                self.mismatches.append(r["mismatch"])
            self.host_scores.append(np.asarray(r["host_scores"], dtype))
            self.dev_scores.append(np.asarray(r["device_scores"], dtype))
            self._score(r["index"], self.clips.truth[r["index"]])

    def save_progress(self) -> None:
        """Write ``progress.json``: every clip validated so far (atomically)."""
        if self.progress is not None:
            path, identity = self.progress
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, {**identity, "clips": self.results, "stopped": self.stopped})

    def validate(self, ds: Dataset, indices: list[int], progress: bool) -> dict:
        """Classify ``indices`` of ``ds`` (those not done yet) on the device, compare, return
        the report; ``progress.json`` is written after every batch and when interrupted."""
        done, truth = {r["index"] for r in self.results}, self.clips.truth
        todo = [i for i in indices if i not in done]
        self.dev.counters = LinkCounters()  # link accounting of this run only
        t_start = time.perf_counter()
        bar = tqdm(total=len(indices), initial=len(indices) - len(todo), desc="validate",
                   unit="clip", disable=not progress)  # fmt: skip
        try:
            for batch in _batches(len(todo), CHUNK):
                clips = [todo[i] for i in batch]
                audios = [ds.load(i) for i in clips]
                own = None if self.clips.own is None else [self.clips.own[i] for i in clips]
                refs = host_reference(self.tflite, self.meta, audios, self._cached(ds, clips), own)
                for i, audio, ref in zip(clips, audios, refs, strict=True):
                    got = self._classify(audio, ds.clips[i].clip_id, i)
                    if got is None:
                        break
                    self._add(ds.clips[i].clip_id, i, ref, got, truth[i])
                    bar.update()
                    bar.set_postfix(mismatches=len(self.mismatches), resets=len(self.resets))
                self.save_progress()
                if self.stopped:
                    break
        except KeyboardInterrupt:
            self.stopped = "interrupted"
            self.save_progress()
            raise
        finally:
            bar.close()
        return self._report(len(indices), time.perf_counter() - t_start)

    def _classify(self, audio: np.ndarray, clip_id: str, index: int) -> ClassifyResult | None:
        """CLASSIFY one clip, redoing it after a device reset (or stopping, per ``on_reset``);
        None when the run stops."""
        while True:
            t0 = time.perf_counter()
            try:
                if self.clips.own is not None:
                    self.dev.machine_id(self.clips.own[index])
                got = self.dev.classify(audio)
            except DeviceReset as exc:
                self.resets.append({"clip": clip_id, "index": index, "message": str(exc)})
                if self.on_reset == "stop" or len(self.resets) > self.max_resets:
                    self.stopped = f"device reset while validating {clip_id}: {exc}"
                    return None
                check_hello(self.dev.hello(), self.meta, self.model)  # same firmware after it?
                continue
            except (ProtocolError, serial.SerialException, OSError) as exc:
                self.stopped = (
                    f"link failure on {self.port} while validating clip {clip_id} (#{index}): "
                    f"{exc}; the clips before it are in the report, --resume continues from it"
                )
                return None
            self.latency.append(time.perf_counter() - t0)
            return got

    def _add(self, clip_id: str, index: int, ref: Reference, got: ClassifyResult, truth) -> None:
        self.window_cycles += got.window_cycles.tolist()
        for k, values in self.stage.items():
            values.append(got.cycles[k])
        diff = compare(ref, got, self.meta.labels)
        mismatch = None if diff is None else json_finite({"clip": clip_id, "index": index, **diff})
        self.results.append(
            {
                "index": index,
                "clip": clip_id,
                "match": diff is None,
                "mismatch": mismatch,
                "host_scores": ref.clip_scores.tolist(),
                "device_scores": got.clip_scores.tolist(),
            }
        )
        if self.first is None:
            self.first = (clip_id, ref.features, got.features)
        if mismatch is not None:
            self.mismatches.append(mismatch)
            if self.pair is None:
                self.pair = (clip_id, ref.features, got.features, diff)
        self.host_scores.append(ref.clip_scores)
        self.dev_scores.append(got.clip_scores)
        self._score(index, truth)

    def _device_stats(self) -> dict | None:
        if self.stopped is not None and self.stopped.startswith("link failure"):
            return None
        try:
            s = self.dev.stats()
        except (ProtocolError, serial.SerialException, OSError):
            return None
        return {k: getattr(s, k) for k in s.__dataclass_fields__}

    def _report(self, n_requested: int, elapsed: float) -> dict:
        n_done, c = len(self.results), self.dev.counters
        wire, payload = c.bytes_sent + c.bytes_received, c.payload_sent + c.payload_received
        return {
            "passed": self.stopped is None and not self.mismatches and n_done == n_requested,
            "n_requested": n_requested,
            "n_validated": n_done,
            "n_resumed": self.n_resumed,
            "n_matched": n_done - len(self.mismatches),
            "n_mismatched": len(self.mismatches),
            "first_mismatch": self.mismatches[0] if self.mismatches else None,
            "mismatches": self.mismatches[:MAX_LISTED],
            "resets": self.resets,
            "stopped": self.stopped,
            "device": _hello_dict(self.dev.info),
            "task": self.meta.task,
            "metrics": _metrics(
                self.meta, self.truth, self.host_scores, self.dev_scores, self.groups or None
            ),
            "cycles": {k: _summary(v) for k, v in self.stage.items()}
            | {"model_per_window": _summary(self.window_cycles)},
            "latency_s": _summary(self.latency),
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
            "device_stats": self._device_stats(),
        }


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
        "task": h.task,
    } | ({k: getattr(h, k) for k in ANOMALY_HELLO} if h.anomaly else {})


def _metrics(meta, truth, host, device, groups=None) -> dict | None:
    """The task's metrics (:mod:`quantize.tasks`; tagging: micro/macro AUPRC; anomaly: AUC and
    pAUC, averaged over machine IDs) of the host's and the device's clip scores; None without
    labels (anomaly: without both normal and anomalous clips)."""
    from quantize.tasks import task_of

    y = np.stack(truth) if truth else np.zeros((0, 1), np.uint8)
    if not np.any(y) or (meta.task == "anomaly" and np.all(y)):
        return None
    task = task_of(meta)
    return {
        "name": task.metric,
        "host": task.metrics(y, np.stack(host), meta.labels, groups),
        "device": task.metrics(y, np.stack(device), meta.labels, groups),
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
