"""Train, store and evaluate anomaly detectors: one detector per machine type, in one checkpoint.

A checkpoint (``torch.save`` of a dict, written atomically) names the task (``"anomaly"``), the
method, the score definition, the window layout, the front-end config and hash, the training
settings and, per machine type, the machine IDs, the weights (or the pickled scikit-learn
pipeline), the deployable block spec and the decision threshold fitted on held-out normal clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from model_dev.anomaly import detectors as det
from model_dev.anomaly.data import ANOMALY_FRONTEND, MachineSet, load_machines, machine_features
from model_dev.anomaly.methods import (
    DISTILL_ARMS,
    METHODS,
    SKLEARN_METHODS,
    Layout,
    layout_dict,
)
from model_dev.anomaly.metrics import fit_threshold
from model_dev.anomaly.training import (
    Distilled,
    FitConfig,
    fit_network,
    fit_sklearn,
    network_clip_scores,
    seeded_network,
    sklearn_clip_scores,
    window_batch,
)
from model_dev.checkpoint import state_dict_sha256
from model_dev.config_io import json_finite
from model_dev.features import FeatureSet
from model_dev.fileio import atomic_write
from model_dev.frontend import FrontendConfig

CHECKPOINT_FORMAT = 1
TASK = "anomaly"


@dataclass
class TypeData:
    """One machine type's clips as dequantised features ``[T, n_mels]``, split for training.

    ``train``/``val``: normal training clips (``val`` held out per ID for the threshold);
    ``test``: the test split with labels, fault kinds and severities. ``*_ids`` are indices
    into ``ids``.
    """

    machine_type: str
    ids: tuple[str, ...]
    silence: float
    train: list[np.ndarray]
    train_ids: np.ndarray
    val: list[np.ndarray]
    val_ids: np.ndarray
    test: list[np.ndarray]
    test_ids: np.ndarray
    test_labels: np.ndarray
    test_faults: list[str] = field(default_factory=list)
    test_severities: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    test_clip_ids: list[str] = field(default_factory=list)


def type_data(
    ms: MachineSet,
    fs: FeatureSet,
    machine_type: str,
    val_fraction: float = 0.1,
    split_seed: int = 0,
) -> TypeData:
    """Split one machine type of a dataset (held-out normals: ``val_fraction`` of each ID's
    training clips, chosen by ``split_seed``, the same for every method and seed)."""
    cfg = fs.config
    silence = float((-128 - cfg.input_zero_point) * cfg.input_scale)
    row = {cid: i for i, cid in enumerate(fs.clip_ids)}
    picks = [
        (k, row[c.clip_id])
        for k, c in enumerate(ms.dataset.clips)
        if ms.machine_types[k] == machine_type and c.clip_id in row
    ]
    if not picks:
        raise ValueError(f"no clips of machine type {machine_type!r}; types: {ms.types}")
    ids = tuple(sorted({ms.machine_ids[k] for k, _ in picks if ms.splits[k] == "train"}))
    index = {m: i for i, m in enumerate(ids)}

    def feats(j: int) -> np.ndarray:
        return ((fs.clip(j).astype(np.float32) - cfg.input_zero_point) * cfg.input_scale).astype(
            np.float32
        )

    rng = np.random.default_rng(split_seed)
    train, val, test = [], [], []
    for mid in ids:
        mine = [(k, j) for k, j in picks if ms.machine_ids[k] == mid and ms.splits[k] == "train"]
        held = set(rng.choice(len(mine), max(2, round(val_fraction * len(mine))), replace=False))
        for n, kj in enumerate(mine):
            (val if n in held else train).append(kj)
    test = [(k, j) for k, j in picks if ms.splits[k] == "test"]
    unknown = sorted({ms.machine_ids[k] for k, _ in test} - set(ids))
    if unknown:
        raise ValueError(f"{machine_type}: test clips of IDs {unknown} have no training clips")
    return TypeData(
        machine_type,
        ids,
        silence,
        [feats(j) for _, j in train],
        np.array([index[ms.machine_ids[k]] for k, _ in train], dtype=np.int64),
        [feats(j) for _, j in val],
        np.array([index[ms.machine_ids[k]] for k, _ in val], dtype=np.int64),
        [feats(j) for _, j in test],
        np.array([index[ms.machine_ids[k]] for k, _ in test], dtype=np.int64),
        np.array([ms.labels[k] for k, _ in test], dtype=np.int64),
        [ms.faults[k] for k, _ in test],
        np.array([ms.severities[k] for k, _ in test], dtype=np.int64),
        [ms.dataset.clips[k].clip_id for k, _ in test],
    )


def only_ids(data: TypeData, keep: list[str]) -> TypeData:
    """The same data restricted to training on some machine IDs (test clips keep every ID)."""
    idx = [data.ids.index(m) for m in keep]
    pick = np.isin(data.train_ids, idx)
    vpick = np.isin(data.val_ids, idx)
    return TypeData(
        **{
            **data.__dict__,
            "train": [c for c, p in zip(data.train, pick, strict=True) if p],
            "train_ids": data.train_ids[pick],
            "val": [c for c, p in zip(data.val, vpick, strict=True) if p],
            "val_ids": data.val_ids[vpick],
        }
    )


def supervised_half(data: TypeData, seed: int = 0) -> np.ndarray:
    """Bool mask over the test clips: the half (per ID and label) used as labelled training data
    by the supervised method; its AUC is measured on the other half only."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(data.test), dtype=bool)
    for i in range(len(data.ids)):
        for lab in (0, 1):
            where = np.flatnonzero((data.test_ids == i) & (data.test_labels == lab))
            mask[rng.permutation(where)[: len(where) // 2]] = True
    return mask


def _training_set(method: str, data: TypeData) -> tuple[list[np.ndarray], np.ndarray]:
    if method == "id_classifier":
        return det.pseudo_instances(data.train, data.train_ids, len(data.ids))
    if method == "supervised":
        half = supervised_half(data)
        clips = data.train + [c for c, h in zip(data.test, half, strict=True) if h]
        labels = np.r_[np.zeros(len(data.train), np.int64), data.test_labels[half]]
        return clips, labels
    return data.train, data.train_ids


def _load_matching(model: torch.nn.Module, state: dict) -> None:
    """Initialise from ``state`` wherever names and shapes match (fine-tuning across IDs: an
    ID classifier's head may have another number of classes)."""
    own = model.state_dict()
    model.load_state_dict(
        {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False
    )


def train_detector(
    method: str,
    data: TypeData,
    cfg: FitConfig,
    *,
    init: dict | None = None,
    teacher: dict | None = None,
    distill: tuple[float, float] = (0.0, 0.0),
    size: str = "student",
    progress: bool = True,
    state_path: Path | None = None,
) -> dict:
    """Train one method on one machine type's normal clips; fit its threshold on ``data.val``.

    Parameters
    ----------
    method : str
        A key of :data:`~model_dev.anomaly.methods.METHODS`.
    data : TypeData
        From :func:`type_data`.
    cfg : FitConfig
        Training settings.
    init : dict, optional
        A trained record of the same method to start from (fine-tuning, ``--init``).
    teacher : dict, optional
        A trained ``id_classifier`` record: distil it into this one (``distill`` = weights of
        kd and iusp, each balanced by gradient size).
    size : {"student", "medium", "teacher"}
        ID-classifier / supervised network size.
    progress : bool
        Progress bars.
    state_path : Path, optional
        Per-epoch resume file.

    Returns
    -------
    dict
        The detector record stored in checkpoints (see the module docstring).
    """
    meta = METHODS[method]
    cfg = cfg if cfg.lr else replace(cfg, lr=meta.lr)
    record = {"method": method, "machine_type": data.machine_type, "ids": list(data.ids)}
    record |= {"layout": layout_dict(meta.layout), "score": meta.score, "size": size}
    clips, ys = _training_set(method, data)
    if method in SKLEARN_METHODS:
        pipe = fit_sklearn(method, clips, data.silence, cfg.seed)
        record |= {"sklearn": det.dumps_sklearn(pipe), "spec": None, "losses": []}
    else:
        model = seeded_network(lambda: det.build_network(method, len(data.ids), size), cfg.seed)
        if init is not None:
            _load_matching(model, init["state"])
        x, y, _ = window_batch(meta.layout, clips, ys, data.silence, train=True)
        if hasattr(model, "set_normaliser"):
            model.set_normaliser(torch.from_numpy(x))
        trainee = model
        if teacher is not None:
            trainee = Distilled(model, load_network(teacher), *distill)
        with torch.random.fork_rng(devices=[]):
            losses = fit_network(
                trainee,
                x,
                y,
                cfg,
                progress=progress,
                state_path=state_path,
                desc=f"{method} {data.machine_type}",
            )
        if teacher is not None:
            record["distill"] = {"terms": dict(zip(("kd", "iusp"), distill, strict=True))}
            record["distill"]["weights"] = trainee.weights
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        record |= {"state": state, "state_dict_sha256": state_dict_sha256(state)}
        record |= {"spec": det.network_spec(model), "losses": losses}
    val_scores = score_record(record, data.val, data.val_ids, data.silence, cfg.device)
    record["threshold"] = json_finite(fit_threshold(val_scores))
    return record


def _teachers(
    path: str | Path, method: str, distill: str, frontend_hash: str, datas: dict[str, TypeData]
) -> dict:
    """The per-type records of a distillation teacher checkpoint, checked against the student
    and its data (before any training: a wrong teacher costs nothing)."""
    if method != "id_classifier":
        raise ValueError(f"--teacher: only id_classifier is distilled, not {method!r}")
    if distill not in DISTILL_ARMS:
        raise ValueError(f"distill {distill!r}: choose from {', '.join(DISTILL_ARMS)}")
    ckpt = load_anomaly_checkpoint(path)
    if ckpt["method"] != "id_classifier":
        raise ValueError(f"{path}: a {ckpt['method']} checkpoint, not an id_classifier teacher")
    if ckpt["frontend_hash"] != frontend_hash:
        raise ValueError(f"{path}: trained on another front end than this data's features")
    records = ckpt["detectors"]
    for mtype, data in datas.items():
        if records.get(mtype, {}).get("ids") != list(data.ids):
            raise ValueError(
                f"{path}: no {mtype} detector for machine IDs {list(data.ids)} "
                f"(it has {sorted(records)}; train the teacher on the same data)"
            )
    return records


def load_network(record: dict) -> torch.nn.Module:
    """Rebuild a record's torch network with its weights (eval mode, CPU)."""
    model = det.build_network(record["method"], len(record["ids"]), record.get("size", "student"))
    model.load_state_dict(record["state"])
    return model.eval()


def score_record(
    record: dict, clips: list[np.ndarray], ids: np.ndarray, silence: float, device: str = "auto"
) -> np.ndarray:
    """Clip scores of a trained detector record (higher = more anomalous)."""
    method = record["method"]
    if method in SKLEARN_METHODS:
        return sklearn_clip_scores(det.loads_sklearn(record["sklearn"]), method, clips, silence)
    layout = Layout(**record["layout"])
    return network_clip_scores(load_network(record), layout, clips, ids, silence, device)


def save_checkpoint(path: Path, records: dict[str, dict], meta: dict) -> None:
    """Write an anomaly checkpoint atomically: ``meta`` plus one record per machine type."""
    method = next(iter(records.values()))["method"]
    ckpt = {"format": CHECKPOINT_FORMAT, "task": TASK, "method": method, **meta}
    ckpt |= {
        "score": METHODS[method].score,
        "window": layout_dict(METHODS[method].layout),
    }
    ckpt |= {"deployable": METHODS[method].deployable, "detectors": records}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(path), lambda tmp: torch.save(ckpt, tmp))


def load_anomaly_checkpoint(path: str | Path) -> dict:
    """Read an anomaly checkpoint; ValueError naming the file if it is not one or is corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("task") != TASK or "detectors" not in ckpt:
        raise ValueError(f"{path}: not an anomaly checkpoint (task {TASK!r} expected)")
    for mtype, rec in ckpt["detectors"].items():
        if "state" in rec and state_dict_sha256(rec["state"]) != rec["state_dict_sha256"]:
            raise ValueError(f"{path}: {mtype} weights do not match their sha256 (corrupt file)")
    return ckpt


def is_anomaly_checkpoint(path: str | Path) -> bool:
    """True if ``path`` is a readable anomaly checkpoint (the task ``evaluate`` dispatches on)."""
    try:
        load_anomaly_checkpoint(path)
    except ValueError:
        return False
    return True


def prepare(
    kind: str,
    root: str | Path,
    cache_dir: str | Path,
    cfg: FrontendConfig = ANOMALY_FRONTEND,
    progress: bool = True,
) -> tuple[MachineSet, FeatureSet]:
    """Load a machine dataset and its (cached) features."""
    ms = load_machines(kind, root)
    return ms, machine_features(ms, cache_dir, cfg, progress=progress)


def train_anomaly(
    root: str | Path,
    out: str | Path,
    method: str,
    *,
    kind: str = "dcase",
    types: list[str] | None = None,
    ids: list[str] | None = None,
    cfg: FitConfig | None = None,
    init: str | Path | None = None,
    size: str = "student",
    teacher: str | Path | None = None,
    distill: str = "kd",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Train ``method`` per machine type and write one checkpoint (``aedfw train anomaly``).

    Parameters
    ----------
    root : str or Path
        Dataset folder (DCASE layout, the synthetic corpus, or MIMII with ``kind="mimii"``).
    out : str or Path
        Checkpoint file to write; ``<out>.state/`` holds per-type resume files meanwhile.
    method : str
        A key of :data:`~model_dev.anomaly.methods.METHODS`.
    kind : {"dcase", "mimii"}
        Dataset layout.
    types : list of str, optional
        Machine types to train (default: all).
    ids : list of str, optional
        Train on these machine IDs only (zero-shot source); test clips keep every ID.
    cfg : FitConfig, optional
        Training settings (seed, epochs, device, ...); default ``FitConfig()``.
    init : str or Path, optional
        Checkpoint of the same method to fine-tune from (per type).
    size : {"student", "medium", "teacher"}
        ID-classifier network size (``"teacher"``: the distillation teacher).
    teacher : str or Path, optional
        An ``id_classifier`` checkpoint (same machine types, IDs and front end) to distil
        into this ``id_classifier`` per type.
    distill : str
        A key of :data:`~model_dev.anomaly.methods.DISTILL_ARMS` (with ``teacher``).
    cache_dir : str or Path, optional
        Feature cache (default ``<root>/.features``).
    progress : bool
        Progress bars.

    Returns
    -------
    Path
        ``out``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown anomaly method {method!r}; methods: {', '.join(METHODS)}")
    if size != "student" and method not in ("id_classifier", "supervised"):
        raise ValueError(f"size {size!r}: only id_classifier and supervised come in sizes")
    out = Path(out)
    cfg = cfg or FitConfig()
    ms, fs = prepare(kind, root, cache_dir or Path(root) / ".features", progress=progress)
    start = load_anomaly_checkpoint(init)["detectors"] if init else {}
    datas = {t: type_data(ms, fs, t) for t in types or ms.types}
    datas = {t: only_ids(d, ids) for t, d in datas.items()} if ids else datas
    teachers = _teachers(teacher, method, distill, fs.config.hash, datas) if teacher else {}
    state_dir = out.with_name(out.name + ".state")
    state_dir.mkdir(parents=True, exist_ok=True)
    records = {}
    for mtype, data in datas.items():
        records[mtype] = train_detector(
            method,
            data,
            cfg,
            init=start.get(mtype),
            teacher=teachers.get(mtype),
            distill=DISTILL_ARMS[distill] if teacher else (0.0, 0.0),
            size=size,
            progress=progress,
            state_path=state_dir / f"{mtype}.pt",
        )
    meta = {"frontend": fs.config.to_dict(), "frontend_hash": fs.config.hash}
    meta |= {"fit_config": cfg.to_dict(), "dataset": {"kind": kind, "root": str(root)}}
    meta |= {"init": str(init) if init else None, "train_ids": ids, "size": size}
    meta |= {"teacher": str(teacher), "distill": distill} if teacher else {}
    save_checkpoint(out, records, meta)
    for f in state_dir.glob("*.pt"):
        f.unlink()
    state_dir.rmdir()
    return out
