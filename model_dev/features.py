"""Feature cache: int8 front-end features computed once per (dataset, FrontendConfig).

An entry lives in ``CACHE/<dataset fingerprint>-<config hash>/`` (16 hex digits each), so a
changed audio file, label or config gives a new key and never a stale hit. An entry that left
unreadable files out (``skip_bad=True``) adds ``-skip-<hash of their paths>``: only a run that
also skips bad files may use it, so a run without ``--skip-bad`` never trains silently without
them. Entries are written to a temporary folder and renamed into place, so an interrupted run
leaves no half entry.

Every call warns (naming the files) about what would otherwise pass unnoticed: files skipped as
unreadable, clips too short for a single front-end frame (they would train as silence) and
labels with fewer than :data:`FEW_CLIPS` clips (a typo in a manifest becomes a class of its
own); :meth:`FeatureSet.label_counts` gives the clips per split and label.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model_dev.audio import AudioError
from model_dev.datasets import Dataset
from model_dev.fileio import atomic_dir
from model_dev.frontend import Frontend, FrontendConfig

CACHE_FORMAT = 1
#: A label with fewer clips than this in the whole dataset is warned about (a typo?).
FEW_CLIPS = 3


@dataclass
class FeatureSet:
    """Features of every clip of a dataset, concatenated along time.

    Attributes
    ----------
    features : np.ndarray
        int8 [total_frames, n_mels]; clip ``i`` is ``features[offsets[i]:offsets[i + 1]]``.
    offsets : np.ndarray
        int64 [n_clips + 1].
    labels : np.ndarray
        uint8 multi-hot [n_clips, n_classes].
    clip_ids, splits : list of str
        Per clip.
    classes : tuple of str
    config : FrontendConfig
    skipped : list of (str, str)
        Clips left out (``skip_bad=True``) and why.
    fingerprint : str
        The dataset fingerprint (``Dataset.fingerprint()``: clips, labels, splits, file sizes
        and times), "" if unknown.
    validation : dict or None
        ``Dataset.validation``: how the validate split was carved from train (not cached; the
        splits themselves are part of the fingerprint).
    """

    features: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    clip_ids: list[str]
    splits: list[str]
    classes: tuple[str, ...]
    config: FrontendConfig
    skipped: list[tuple[str, str]]
    fingerprint: str = ""
    validation: dict | None = None

    def __len__(self) -> int:
        return len(self.clip_ids)

    def clip(self, i: int) -> np.ndarray:
        """int8 features [frames, n_mels] of clip ``i``."""
        return self.features[self.offsets[i] : self.offsets[i + 1]]

    def indices(self, split: str | Sequence[str]) -> np.ndarray:
        """Indices of the clips in ``split`` (one name or several)."""
        wanted = {split} if isinstance(split, str) else set(split)
        return np.array([i for i, s in enumerate(self.splits) if s in wanted], dtype=np.int64)

    def skip_record(self) -> dict:
        """``{"skipped": [[path, why], ...]}`` when files were left out as unreadable
        (``--skip-bad``), else ``{}``: what checkpoints and reports record about them."""
        return {"skipped": [list(s) for s in self.skipped]} if self.skipped else {}

    def label_counts(self) -> dict[str, dict[str, int]]:
        """Clips per split and label: ``{split: {label: n}}`` (every label of every split)."""
        counts: dict[str, dict[str, int]] = {}
        labels = np.asarray(self.labels)
        for split in dict.fromkeys(self.splits):
            n = labels[self.indices(split)].sum(axis=0)
            counts[split] = {c: int(k) for c, k in zip(self.classes, n, strict=True)}
        return counts

    def warnings(self) -> list[str]:
        """What about the data would otherwise pass unnoticed (see the module docstring)."""
        found = []
        if self.skipped:
            found.append(
                f"{len(self.skipped)} file(s) left out as unreadable (--skip-bad): "
                + "; ".join(f"{path}: {why}" for path, why in self.skipped)
            )
        empty = [self.clip_ids[i] for i in np.flatnonzero(np.diff(self.offsets) == 0)]
        if empty:
            found.append(
                f"{len(empty)} clip(s) shorter than one front-end frame "
                f"({self.config.window_length} samples) have no features and train as "
                f"silence: {', '.join(empty)}"
            )
        per_label = np.asarray(self.labels).sum(axis=0)
        for c, (label, n) in enumerate(zip(self.classes, per_label, strict=True)):
            if n < FEW_CLIPS:
                which = [self.clip_ids[i] for i in np.flatnonzero(self.labels[:, c])]
                found.append(
                    f"label {label!r} has only {int(n)} clip(s) ({', '.join(which) or 'none'}): "
                    "a typo in the labels? Every distinct label becomes a class"
                )
        return found


def _cache_key(dataset: Dataset, cfg: FrontendConfig) -> str:
    return f"{dataset.fingerprint()[:16]}-{cfg.short_hash}"


# Worker state: the dataset and the Frontend, sent once per process.
_worker: dict = {}


@contextmanager
def _sigint_ignored():
    """Ignore SIGINT while processes are started: they inherit it (Python keeps an ignored
    SIGINT ignored), so a Ctrl-C during the start-up is not reported by every worker. Only the
    main thread can change signal handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _init_worker(dataset: Dataset, frontend: Frontend) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to report, once
    _worker["dataset"], _worker["frontend"] = dataset, frontend


def _extract(i: int) -> tuple[int, np.ndarray | None, str | None]:
    try:
        audio = _worker["dataset"].load(i)
    except AudioError as exc:
        return i, None, (str(exc.path), exc.reason)
    return i, _worker["frontend"](audio), None


def _compute(dataset: Dataset, cfg: FrontendConfig, jobs: int, progress: bool) -> list:
    results: list = [None] * len(dataset)
    bar = tqdm(total=len(dataset), desc="features", unit="clip", disable=not progress)
    frontend = Frontend(cfg)  # tables built once here and shipped to the workers
    if jobs <= 1:
        _init_worker(dataset, frontend)
        for i in range(len(dataset)):
            results[i] = _extract(i)
            bar.update()
    else:
        ctx = get_context("spawn")  # no fork: torch/TF may already hold threads in the parent
        with _sigint_ignored():  # workers start with Ctrl-C ignored, even before _init_worker
            pool = ctx.Pool(jobs, initializer=_init_worker, initargs=(dataset, frontend))
        with pool:
            for item in pool.imap_unordered(_extract, range(len(dataset)), chunksize=8):
                results[item[0]] = item
                bar.update()
    bar.close()
    return results


def _skip_entry(entry: Path, skipped_paths: list[str]) -> Path:
    """The entry of a run that left ``skipped_paths`` out (``skip_bad``) instead of failing."""
    digest = hashlib.sha256("\n".join(sorted(skipped_paths)).encode()).hexdigest()[:8]
    return entry.with_name(f"{entry.name}-skip-{digest}")


def _find_entry(entry: Path, skip_bad: bool) -> Path | None:
    """The cached entry a run may use: the complete one, or with ``skip_bad`` one that skipped."""
    if (entry / "index.json").is_file():
        return entry
    if skip_bad:
        for other in sorted(entry.parent.glob(f"{entry.name}-skip-*")):
            if (other / "index.json").is_file():
                return other
    return None


def _write_entry(
    entry: Path, dataset: Dataset, cfg: FrontendConfig, results: list, skip_bad: bool
) -> Path:
    kept = [(i, f) for i, f, err in results if err is None]
    errors = [err for _, _, err in results if err is not None]
    if errors and not skip_bad:
        raise AudioError(*errors[0])
    if errors:
        entry = _skip_entry(entry, [str(path) for path, _ in errors])
    labels = dataset.label_matrix()
    lengths = [len(f) for _, f in kept]
    index = {
        "format": CACHE_FORMAT,
        "dataset": dataset.name,
        "root": str(dataset.root),
        "fingerprint": dataset.fingerprint(),
        "frontend": cfg.to_dict(),
        "frontend_hash": cfg.hash,
        "classes": list(dataset.classes),
        "clip_ids": [dataset.clips[i].clip_id for i, _ in kept],
        "splits": [dataset.clips[i].split for i, _ in kept],
        "skipped": [[str(p), why] for p, why in dataset.skipped] + [list(e) for e in errors],
    }

    def fill(tmp: Path) -> None:
        feats = np.concatenate([f for _, f in kept]) if kept else np.zeros((0, cfg.n_mels), np.int8)
        np.save(tmp / "features.npy", feats)
        np.save(tmp / "offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
        np.save(tmp / "labels.npy", labels[[i for i, _ in kept]].astype(np.uint8))
        (tmp / "index.json").write_text(json.dumps(index, indent=1))

    atomic_dir(entry, fill)
    return entry


def _read_entry(entry: Path) -> FeatureSet:
    index = json.loads((entry / "index.json").read_text())
    if index.get("format") != CACHE_FORMAT:
        raise ValueError(f"{entry}: cache format {index.get('format')}, expected {CACHE_FORMAT}")
    return FeatureSet(
        features=np.load(entry / "features.npy", mmap_mode="r"),
        offsets=np.load(entry / "offsets.npy"),
        labels=np.load(entry / "labels.npy"),
        clip_ids=index["clip_ids"],
        splits=index["splits"],
        classes=tuple(index["classes"]),
        config=FrontendConfig.from_dict(index["frontend"], str(entry / "index.json")),
        skipped=[tuple(s) for s in index["skipped"]],
        fingerprint=index["fingerprint"],
    )


def features(
    dataset: Dataset,
    cache_dir: str | Path,
    cfg: FrontendConfig | None = None,
    *,
    jobs: int = 2,
    skip_bad: bool = False,
    progress: bool = True,
) -> FeatureSet:
    """Return the features of ``dataset``, computing and caching them on first use.

    Parameters
    ----------
    dataset : Dataset
        Clips to process (see :func:`model_dev.datasets.load_dataset`).
    cache_dir : str or Path
        Cache root; one sub-folder per (dataset fingerprint, config hash).
    cfg : FrontendConfig, optional
        Front-end config (default: ``FrontendConfig()``).
    jobs : int
        Worker processes.
    skip_bad : bool
        Leave out clips whose audio cannot be read and list them in ``skipped``, instead of
        raising :class:`~model_dev.audio.AudioError` naming the first one.
    progress : bool
        Show a progress bar.

    Warns
    -----
    UserWarning
        One per :meth:`FeatureSet.warnings` line (skipped files, clips without a frame, labels
        with very few clips), on every call.
    """
    cfg = cfg or FrontendConfig()
    key = Path(cache_dir) / _cache_key(dataset, cfg)
    entry = _find_entry(key, skip_bad)
    if entry is None:
        key.parent.mkdir(parents=True, exist_ok=True)
        results = _compute(dataset, cfg, jobs, progress)
        entry = _write_entry(key, dataset, cfg, results, skip_bad)
    fs = replace(_read_entry(entry), validation=dataset.validation)
    for message in fs.warnings():
        warnings.warn(message, stacklevel=2)
    return fs
