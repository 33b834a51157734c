"""Machine-sound datasets: the DCASE 2020 Task 2 layout, MIMII's original layout, and features.

Both layouts become one :class:`MachineSet`: a :class:`~model_dev.datasets.Dataset` (one class,
``"anomaly"``; splits ``train`` and ``test``) plus, per clip, the machine type, the machine ID and,
where known (the synthetic corpus' ``machines.csv``), the fault kind and severity. Real data drops
in with no code change. Every file is checked when listed (header only); a bad one raises
:class:`~model_dev.audio.AudioError` naming it, or is left out and listed with ``skip_bad=True``.

* DCASE: ``ROOT/<type>/train/normal_id_XX_*.wav``,
  ``ROOT/<type>/test/{normal,anomaly}_id_XX_*.wav``.
* MIMII: ``ROOT/<snr>_<type>/<type>/id_XX/{normal,abnormal}/*.wav`` (or ``ROOT/<type>/id_XX/...``).
  MIMII has no split; as the challenge did, each ID's abnormal clips and as many normal ones
  (the last in name order) form the test split, the other normal clips the training split.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model_dev.audio import AudioError, check_audio
from model_dev.datasets import AUDIO_SUFFIXES, ClipRef, Dataset
from model_dev.features import FeatureSet, features
from model_dev.frontend import FrontendConfig

#: The anomaly task's front end: DCASE 2020 baseline-like (64 ms windows, 32 ms hop, 128 mels),
#: still the bit-exact integer front end (2048-point FFT of the zero-padded 1024-sample frame).
ANOMALY_FRONTEND = FrontendConfig(
    window_length=1024, hop_length=512, fft_size=2048, n_mels=128, fmin_hz=50.0, fmax_hz=8000.0
)
CLASSES = ("anomaly",)
_DCASE_NAME = re.compile(r"^(normal|anomaly)_(id_\d+)_.+$")
_MIMII_ID = re.compile(r"^id_\d+$")


@dataclass
class MachineSet:
    """Clips of one or more machine types with their machine IDs and normal/anomaly labels.

    Attributes
    ----------
    dataset : Dataset
        The clips (``labels`` is ``("anomaly",)`` for anomalous clips, ``()`` for normal ones).
    machine_types, machine_ids : list of str
        Per clip.
    faults : list of str
        Per clip: fault kind of an anomalous synthetic clip, ``""`` otherwise or if unknown.
    severities : list of int
        Per clip: 1..3 for synthetic faults, 0 otherwise.
    """

    dataset: Dataset
    machine_types: list[str]
    machine_ids: list[str]
    faults: list[str] = field(default_factory=list)
    severities: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.dataset)
        self.faults = self.faults or [""] * n
        self.severities = self.severities or [0] * n

    @property
    def labels(self) -> np.ndarray:
        """int ``[n_clips]``: 1 anomalous, 0 normal."""
        return np.array([int(bool(c.labels)) for c in self.dataset.clips], dtype=np.int64)

    @property
    def splits(self) -> list[str]:
        """Per clip ``"train"`` or ``"test"``."""
        return [c.split for c in self.dataset.clips]

    @property
    def types(self) -> list[str]:
        """Machine types present, sorted."""
        return sorted(set(self.machine_types))


def _checked(entries: list[tuple[ClipRef, dict]], skip_bad: bool) -> tuple[list, list]:
    kept, skipped = [], []
    for clip, info in entries:
        try:
            check_audio(clip.path)
        except AudioError as exc:
            if not skip_bad:
                raise
            skipped.append((clip.path, exc.reason))
            continue
        kept.append((clip, info))
    return kept, skipped


def _machine_set(name: str, root: Path, entries: list, skip_bad: bool) -> MachineSet:
    if not entries:
        raise ValueError(f"{root}: no {name} clips found")
    kept, skipped = _checked(sorted(entries, key=lambda e: e[0].clip_id), skip_bad)
    ds = Dataset(name, root, CLASSES, [c for c, _ in kept], skipped)
    return MachineSet(
        ds,
        [i["type"] for _, i in kept],
        [i["id"] for _, i in kept],
        [i.get("fault", "") for _, i in kept],
        [i.get("severity", 0) for _, i in kept],
    )


def _clip(root: Path, path: Path, anomalous: bool, split: str) -> ClipRef:
    return ClipRef(path.relative_to(root).as_posix(), path, CLASSES if anomalous else (), split)


def _synth_meta(root: Path) -> dict[str, dict]:
    """Fault and severity per file from the synthetic corpus' ``machines.csv`` (if present)."""
    table = root / "machines.csv"
    if not table.is_file():
        return {}
    with table.open(newline="") as f:
        return {
            r["file"]: {"fault": r["fault"], "severity": int(r["severity"] or 0)}
            for r in csv.DictReader(f)
        }


def load_dcase(root: str | Path, *, skip_bad: bool = False) -> MachineSet:
    """Load a DCASE 2020 Task 2 layout (development set, or the synthetic corpus).

    Parameters
    ----------
    root : str or Path
        Folder holding one sub-folder per machine type.
    skip_bad : bool
        Leave out unreadable files (listed in ``dataset.skipped``) instead of raising.

    Raises
    ------
    AudioError
        A bad audio file (named).
    ValueError
        No clips; a file name that is not ``{normal,anomaly}_id_XX_*`` (named); an anomalous
        clip in a training split.
    """
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise ValueError(f"{root}: dataset root not found")
    meta = _synth_meta(root)
    entries = []
    for path in sorted(root.glob("*/*/*")):
        split = path.parent.name
        if path.suffix.lower() not in AUDIO_SUFFIXES or split not in ("train", "test"):
            continue
        match = _DCASE_NAME.match(path.stem)
        if match is None:
            raise ValueError(f"{path}: not a DCASE clip name ({{normal,anomaly}}_id_XX_*.wav)")
        if split == "train" and match[1] == "anomaly":
            raise ValueError(f"{path}: anomalous clip in a training split")
        clip = _clip(root, path, match[1] == "anomaly", split)
        info = {"type": path.parent.parent.name, "id": match[2], **meta.get(clip.clip_id, {})}
        entries.append((clip, info))
    return _machine_set("dcase", root, entries, skip_bad)


def _mimii_type_dirs(root: Path, snr: str | None) -> list[Path]:
    """``<snr>_<type>/<type>`` folders (or ``<type>`` folders directly holding ``id_XX``)."""
    direct = [p for p in sorted(root.iterdir()) if p.is_dir() and any(p.glob("id_*"))]
    if direct:
        return direct
    groups = [p for p in sorted(root.iterdir()) if p.is_dir() and "_" in p.name]
    snrs = sorted({p.name.rsplit("_", 1)[0] for p in groups})
    if snr is None and len(snrs) > 1:
        raise ValueError(f"{root}: several SNR folders {snrs}; choose one with snr=")
    chosen = [p for p in groups if snr is None or p.name.rsplit("_", 1)[0] == snr]
    return [p / p.name.rsplit("_", 1)[1] for p in chosen if (p / p.name.rsplit("_", 1)[1]).is_dir()]


def load_mimii(root: str | Path, *, snr: str | None = None, skip_bad: bool = False) -> MachineSet:
    """Load MIMII's original layout, splitting it as the challenge did (module docstring).

    Parameters
    ----------
    root : str or Path
        Folder holding ``<snr>_<type>/`` folders (e.g. ``6_dB_fan``) or ``<type>/`` folders.
    snr : str, optional
        Which SNR prefix to use (e.g. ``"6_dB"``, ``"-6_dB"``); required if several are present.
    skip_bad : bool
        As in :func:`load_dcase`.
    """
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise ValueError(f"{root}: dataset root not found")
    entries = []
    for type_dir in _mimii_type_dirs(root, snr):
        for id_dir in sorted(p for p in type_dir.iterdir() if _MIMII_ID.match(p.name)):
            files = {
                lab: sorted(
                    p for p in (id_dir / lab).glob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                )
                for lab in ("normal", "abnormal")
            }
            n_test = len(files["abnormal"])
            test_normal = set(files["normal"][len(files["normal"]) - n_test :]) if n_test else set()
            info = {"type": type_dir.name, "id": id_dir.name}
            for path in files["normal"]:
                entries.append(
                    (_clip(root, path, False, "test" if path in test_normal else "train"), info)
                )
            entries += [(_clip(root, p, True, "test"), info) for p in files["abnormal"]]
    return _machine_set("mimii", root, entries, skip_bad)


def load_machines(kind: str, root: str | Path, **options) -> MachineSet:
    """Load a machine-sound dataset by layout: ``"dcase"`` (also the synthetic corpus) or
    ``"mimii"``; ``options`` go to :func:`load_dcase` / :func:`load_mimii`."""
    loaders = {"dcase": load_dcase, "mimii": load_mimii}
    if kind not in loaders:
        raise ValueError(f"unknown machine dataset layout {kind!r}; known: {', '.join(loaders)}")
    return loaders[kind](root, **options)


def machine_features(
    ms: MachineSet,
    cache_dir: str | Path,
    cfg: FrontendConfig = ANOMALY_FRONTEND,
    progress: bool = True,
    jobs: int = 1,
) -> FeatureSet:
    """int8 front-end features of every clip (cached like the tagging features)."""
    return features(ms.dataset, cache_dir, cfg, jobs=jobs, progress=progress)
