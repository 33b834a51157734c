"""Feature cache: int8 front-end features computed once per (dataset, FrontendConfig).

An entry lives in ``CACHE/<dataset fingerprint>-<config hash>/`` (16 hex digits each), so a
changed audio file, label or config gives a new key and never a stale hit. Entries are written
to a temporary folder and renamed into place, so an interrupted run leaves no half entry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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


def _cache_key(dataset: Dataset, cfg: FrontendConfig) -> str:
    return f"{dataset.fingerprint()[:16]}-{cfg.short_hash}"


# Worker state: the dataset and the Frontend, sent once per process.
_worker: dict = {}


def _init_worker(dataset: Dataset, frontend: Frontend) -> None:
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
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(dataset, frontend)) as pool:
            for item in pool.imap_unordered(_extract, range(len(dataset)), chunksize=8):
                results[item[0]] = item
                bar.update()
    bar.close()
    return results


def _write_entry(
    entry: Path, dataset: Dataset, cfg: FrontendConfig, results: list, skip_bad: bool
) -> None:
    kept = [(i, f) for i, f, err in results if err is None]
    errors = [err for _, _, err in results if err is not None]
    if errors and not skip_bad:
        raise AudioError(*errors[0])
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
    """
    cfg = cfg or FrontendConfig()
    entry = Path(cache_dir) / _cache_key(dataset, cfg)
    if not (entry / "index.json").is_file():
        entry.parent.mkdir(parents=True, exist_ok=True)
        results = _compute(dataset, cfg, jobs, progress)
        _write_entry(entry, dataset, cfg, results, skip_bad)
    return replace(_read_entry(entry), validation=dataset.validation)
