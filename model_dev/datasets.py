"""Dataset loaders: every supported layout becomes one :class:`Dataset` of :class:`ClipRef`.

Kinds (see :func:`load_dataset`): ``synth`` (the built-in corpus of :mod:`model_dev.synth`),
``sonyc-ust``, ``esc50``, ``urbansound8k``, ``manifest`` (a ``path,labels[,split][,source]``
CSV) and ``folders`` (folder per class). Audio always comes out of :meth:`Dataset.load` as
16 kHz mono int16.

Nothing is dropped silently. Every referenced audio file is checked when the dataset is loaded
(header only, cheap): a bad one raises :class:`~model_dev.audio.AudioError` naming the file and
the metadata row that lists it, or, with ``skip_bad=True``, is left out and listed in
:attr:`Dataset.skipped` with the reason. Bad metadata raises ``ValueError`` naming the file, row
and column. Row numbers are as a spreadsheet shows them: the header is row 1.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model_dev.audio import AudioError, check_audio, read_audio

#: The 8 coarse classes of the SONYC-UST taxonomy, in the dataset's own order.
SONYC_CLASSES = (
    "engine",
    "machinery-impact",
    "non-machinery-impact",
    "powered-saw",
    "alert-signal",
    "music",
    "human-voice",
    "dog",
)
SPLITS = ("train", "validate", "test")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
_FOLD = re.compile(r"fold[1-9][0-9]*")


@dataclass(frozen=True)
class ClipRef:
    """One clip of a dataset.

    Attributes
    ----------
    clip_id : str
        Stable id: the path relative to the dataset root (POSIX separators), or the absolute path
        for a manifest entry outside its folder.
    path : Path
        The audio file.
    labels : tuple of str
        Classes present in the clip, in the dataset's class order (possibly empty).
    split : str
        ``"train"``, ``"validate"`` or ``"test"``; ``"fold1"`` .. ``"foldN"`` for fold datasets.
    source : str
        The recording the clip was cut or mixed from (a manifest's ``source`` column), "" if
        unknown; clips of one source stay in one split when a validation split is carved
        (:mod:`model_dev.val_split`).
    """

    clip_id: str
    path: Path
    labels: tuple[str, ...]
    split: str
    source: str = ""


@dataclass
class Dataset:
    """A labelled set of clips; audio is read on demand.

    Attributes
    ----------
    name : str
        The loader kind: ``"synth"``, ``"sonyc-ust"``, ``"esc50"``, ``"urbansound8k"``,
        ``"manifest"`` or ``"folders"``.
    root : Path
        The folder clip ids are relative to.
    classes : tuple of str
        Class names; column order of :meth:`label_matrix`.
    clips : list of ClipRef
        The usable clips.
    skipped : list of (Path, str)
        Files left out with the reason (only with ``skip_bad=True``).
    validation : dict or None
        How the ``validate`` split was carved from ``train``
        (:func:`model_dev.val_split.carve_validation`); None when the dataset ships its own.
    """

    name: str
    root: Path
    classes: tuple[str, ...]
    clips: list[ClipRef]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    validation: dict | None = None

    def __len__(self) -> int:
        return len(self.clips)

    def load(self, i: int) -> np.ndarray:
        """Return clip ``i`` as int16 mono 16 kHz samples.

        Raises
        ------
        AudioError
            If the file cannot be read (e.g. corrupt inside its data); the message names it.
        """
        return read_audio(self.clips[i].path)

    def label_matrix(self) -> np.ndarray:
        """Return the multi-hot labels, shape ``[n_clips, n_classes]``, dtype uint8."""
        column = {name: k for k, name in enumerate(self.classes)}
        matrix = np.zeros((len(self.clips), len(self.classes)), dtype=np.uint8)
        for row, clip in enumerate(self.clips):
            matrix[row, [column[name] for name in clip.labels]] = 1
        return matrix

    @property
    def splits(self) -> tuple[str, ...]:
        """The split names present, sorted."""
        return tuple(sorted({clip.split for clip in self.clips}))

    def subset(self, split: str | Sequence[str]) -> Dataset:
        """Return the clips of the given split(s) as a new Dataset (``skipped`` is kept).

        Raises
        ------
        ValueError
            If a requested split has no clips (likely a typo); the message lists the splits.
        """
        wanted = {split} if isinstance(split, str) else set(split)
        missing = sorted(wanted - set(self.splits))
        if missing:
            raise ValueError(f"{self.name}: no clips in split(s) {missing}; splits: {self.splits}")
        clips = [clip for clip in self.clips if clip.split in wanted]
        return replace(self, clips=clips, skipped=list(self.skipped))

    def fingerprint(self) -> str:
        """Return a sha256 hex digest that changes when any clip file, label or split changes.

        Covers the name, the classes and, per clip, its id, labels, split, file size and
        modification time (ns), or that the file is missing. Used as the feature-cache key.
        """
        digest = hashlib.sha256(json.dumps([self.name, list(self.classes)]).encode())
        for clip in self.clips:
            try:
                stat = clip.path.stat()
                state = [stat.st_size, stat.st_mtime_ns]
            except OSError:  # gone since listing: a state of its own; loading it will say why
                state = None
            item = [clip.clip_id, list(clip.labels), clip.split, state]
            digest.update(json.dumps(item).encode() + b"\n")
        return digest.hexdigest()


# --------------------------------------------------------------------------- shared helpers


@dataclass
class _Listing:
    """What a loader found, unchecked: clips, each with the metadata row listing it (or "")."""

    root: Path
    classes: tuple[str, ...]
    entries: list[tuple[ClipRef, str]]


def _bad(path: Path, row: int, column: str, message: str) -> ValueError:
    return ValueError(f"{path}, row {row}, column '{column}': {message}")


def _read_csv(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Read a CSV with a header into ``(row number, {column: stripped cell})`` pairs.

    Blank lines are ignored. Raises ValueError for a missing file, a missing required column,
    or a row whose field count differs from the header's.
    """
    if not path.is_file():
        raise ValueError(f"{path}: metadata file not found")
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [name.strip() for name in next(reader, [])]
            missing = [name for name in required if name not in header]
            if missing:
                raise ValueError(
                    f"{path}, row 1: missing required column(s) {', '.join(missing)}"
                    f" (header: {', '.join(header) or 'empty'})"
                )
            for number, cells in enumerate(reader, start=2):
                if not any(cell.strip() for cell in cells):
                    continue
                if len(cells) != len(header):
                    raise ValueError(
                        f"{path}, row {number}: {len(cells)} fields, the header has {len(header)}"
                    )
                rows.append((number, {k: v.strip() for k, v in zip(header, cells, strict=True)}))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from None
    return rows


def _cell(row: dict[str, str], column: str, path: Path, number: int) -> str:
    """A required non-empty cell."""
    if not row[column]:
        raise _bad(path, number, column, "empty")
    return row[column]


def _int(row: dict[str, str], column: str, path: Path, number: int) -> int:
    text = _cell(row, column, path, number)
    try:
        value = float(text)  # "3" and "3.0" (a pandas round trip) both count
        if value.is_integer():
            return int(value)
    except ValueError:
        pass
    raise _bad(path, number, column, f"expected an integer, got {text!r}")


def _split(value: str, path: Path, number: int, column: str, folds: bool = False) -> str:
    if value in SPLITS or (folds and _FOLD.fullmatch(value)):
        return value
    allowed = ", ".join(SPLITS) + (", fold1..foldN" if folds else "")
    raise _bad(path, number, column, f"unknown split {value!r} (expected {allowed})")


def _fold(row: dict[str, str], path: Path, number: int) -> str:
    fold = _int(row, "fold", path, number)
    if fold < 1:
        raise _bad(path, number, "fold", f"fold must be >= 1, got {fold}")
    return f"fold{fold}"


def _label_names(cell: str) -> set[str]:
    return {name.strip() for name in cell.split(";")} - {""}


def _labels(
    cell: str, classes: Sequence[str], path: Path, number: int, column: str
) -> tuple[str, ...]:
    """Parse a ``;``-separated label cell; labels come back in class order."""
    names = _label_names(cell)
    unknown = sorted(names - set(classes))
    if unknown:
        raise _bad(path, number, column, f"unknown label(s) {unknown}; classes: {list(classes)}")
    return tuple(name for name in classes if name in names)


def _class_list(value: object, source: str) -> tuple[str, ...]:
    """Validate a user-given class list (non-empty sequence of unique non-empty strings)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{source}: classes must be a list of names, got {value!r}")
    names = tuple(value)
    all_names = all(isinstance(name, str) and name for name in names)
    if not names or not all_names or len(set(names)) < len(names):
        raise ValueError(f"{source}: classes must be unique non-empty names, got {list(names)}")
    return names


def _indexed_class(
    index: dict[str, int], name: str, path: Path, number: int, column: str, id_: int
) -> None:
    """Record that class ``name`` has numeric id ``id_`` (in ``column``); ids must be 1:1."""
    if index.setdefault(name, id_) != id_:
        raise _bad(path, number, column, f"class {name!r} has id {id_} here, {index[name]} before")
    other = [n for n, k in index.items() if k == id_ and n != name]
    if other:
        raise _bad(path, number, column, f"classes {name!r} and {other[0]!r} share id {id_}")


def _first_existing(candidates: Sequence[Path]) -> Path:
    """The first candidate location that exists, else the first (reported as missing)."""
    return next((path for path in candidates if path.exists()), candidates[0])


def _clip(root: Path, path: Path, labels: tuple[str, ...], split: str) -> ClipRef:
    path = path if path.is_absolute() else root / path
    try:
        clip_id = path.relative_to(root).as_posix()
    except ValueError:
        clip_id = path.as_posix()
    return ClipRef(clip_id=clip_id, path=path, labels=labels, split=split)


# --------------------------------------------------------------------------- loaders


def _load_synth(root: Path) -> _Listing:
    """``root/clips.csv`` (filename,split,labels) + ``root/corpus.json`` (key "classes").

    ``filename`` is relative to ``root`` (``audio/clip_00000.wav``) or, as model_dev.synth
    writes it, to ``root/audio`` (``clip_00000.wav``).
    """
    classes = SONYC_CLASSES
    corpus = root / "corpus.json"
    if corpus.is_file():
        try:
            meta = json.loads(corpus.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{corpus}: invalid JSON ({exc})") from None
        if isinstance(meta, dict) and "classes" in meta:
            classes = _class_list(meta["classes"], f"{corpus}, key 'classes'")
    table = root / "clips.csv"
    entries = []
    for number, row in _read_csv(table, ("filename", "split", "labels")):
        split = _split(row["split"], table, number, "split")
        labels = _labels(row["labels"], classes, table, number, "labels")
        name = Path(_cell(row, "filename", table, number))
        places = [root / "audio" / name, root / name]
        path = _first_existing(places if len(name.parts) == 1 else places[::-1])
        entries.append((_clip(root, path, labels, split), f"{table}, row {number}"))
    return _Listing(root, classes, entries)


def _sonyc_audio(root: Path, split: str, filename: str) -> Path:
    """Where a SONYC-UST clip lives: ``audio/`` (v2), else the other known layouts."""
    return _first_existing(
        [
            root / "audio" / filename,  # v2.x: audio-*.tar.gz all extract to audio/
            root / "audio-dev" / filename,
            root / "audio-eval" / filename,
            root / "audio" / split / filename,
            root / split / filename,  # v1 (DCASE 2019): train/ and validate/
        ]
    )


def _load_sonyc(
    root: Path, *, min_agreement: float = 0.5, prefer_verified: bool = True
) -> _Listing:
    """SONYC-UST ``annotations.csv``, one row per (clip, annotator); coarse labels only.

    Annotator ids: 0 = the SONYC team's verified consensus, > 0 = crowd volunteer, < 0 = a
    single team member (who may have labelled one class group only; other classes are -1).
    A clip's labels come from its verified rows when it has any (and ``prefer_verified``),
    else from its crowd rows (else team rows): a class is present when the fraction of those
    rows marking it 1 (rows marking it -1, i.e. not annotated, are not counted) is at least
    ``min_agreement``.
    """
    if not 0.0 < min_agreement <= 1.0:
        raise ValueError(f"min_agreement must be in (0, 1], got {min_agreement}")
    table = root / "annotations.csv"
    columns = [f"{k}_{name}_presence" for k, name in enumerate(SONYC_CLASSES, start=1)]
    first: dict[str, tuple[int, str]] = {}  # clip -> (row, split) where it is first listed
    votes: dict[str, dict[int, list[list[int]]]] = {}  # clip -> 0/1/-1 (annotator kind) -> rows
    for number, row in _read_csv(table, ("split", "audio_filename", "annotator_id", *columns)):
        name = _cell(row, "audio_filename", table, number)
        split = _split(row["split"], table, number, "split")
        annotator = _int(row, "annotator_id", table, number)
        marks = [_int(row, column, table, number) for column in columns]
        for column, mark in zip(columns, marks, strict=True):
            if mark not in (-1, 0, 1):
                raise _bad(table, number, column, f"expected 1, 0 or -1, got {row[column]!r}")
        first_row, first_split = first.setdefault(name, (number, split))
        if split != first_split:
            raise _bad(table, number, "split", f"{name} is in {first_split!r} at row {first_row}")
        groups = votes.setdefault(name, {0: [], 1: [], -1: []})
        groups[(annotator > 0) - (annotator < 0)].append(marks)
    order = (0, 1, -1) if prefer_verified else (1, 0, -1)
    entries = []
    for name, (number, split) in first.items():
        marks = np.array(next(votes[name][group] for group in order if votes[name][group]))
        agreement = (marks == 1).sum(axis=0) / np.maximum((marks >= 0).sum(axis=0), 1)
        labels = tuple(
            c for c, a in zip(SONYC_CLASSES, agreement, strict=True) if a >= min_agreement
        )
        path = _sonyc_audio(root, split, name)
        entries.append((_clip(root, path, labels, split), f"{table}, row {number}"))
    return _Listing(root, SONYC_CLASSES, entries)


def _load_esc50(root: Path, *, esc10_only: bool = False) -> _Listing:
    """ESC-50: ``meta/esc50.csv`` + ``audio/``; one label (category) per clip, folds 1-5."""
    table = root / "meta" / "esc50.csv"
    index: dict[str, int] = {}
    found = []
    for number, row in _read_csv(table, ("filename", "fold", "target", "category", "esc10")):
        esc10 = row["esc10"].lower()
        if esc10 not in ("true", "false"):
            raise _bad(table, number, "esc10", f"expected True or False, got {row['esc10']!r}")
        if esc10_only and esc10 == "false":
            continue
        category = _cell(row, "category", table, number)
        _indexed_class(index, category, table, number, "target", _int(row, "target", table, number))
        path = root / "audio" / _cell(row, "filename", table, number)
        found.append((path, category, _fold(row, table, number), number))
    classes = tuple(sorted(index, key=index.__getitem__))
    entries = [(_clip(root, p, (c,), s), f"{table}, row {n}") for p, c, s, n in found]
    return _Listing(root, classes, entries)


def _load_urbansound8k(root: Path) -> _Listing:
    """UrbanSound8K: ``metadata/UrbanSound8K.csv`` + ``audio/foldN/``; one label per clip."""
    table = root / "metadata" / "UrbanSound8K.csv"
    index: dict[str, int] = {}
    found = []
    for number, row in _read_csv(table, ("slice_file_name", "fold", "classID", "class")):
        name = _cell(row, "class", table, number)
        _indexed_class(index, name, table, number, "classID", _int(row, "classID", table, number))
        fold = _fold(row, table, number)
        path = root / "audio" / fold / _cell(row, "slice_file_name", table, number)
        found.append((path, name, fold, number))
    classes = tuple(sorted(index, key=index.__getitem__))
    entries = [(_clip(root, p, (c,), s), f"{table}, row {n}") for p, c, s, n in found]
    return _Listing(root, classes, entries)


def _load_manifest(root: Path, *, classes: Sequence[str] | None = None) -> _Listing:
    """A CSV ``path,labels[,split][,source]`` (``root`` is the CSV, or a folder holding
    manifest.csv).

    Paths are relative to the CSV's folder or absolute; labels ``;``-separated (may be empty);
    split defaults to ``train`` when there is no split column; ``source`` names the recording
    a clip comes from (optional). Classes: the sorted union of
    the labels, or ``classes`` to fix the order (then any other label is an error).
    """
    table = root / "manifest.csv" if root.is_dir() else root
    rows = _read_csv(table, ("path", "labels"))
    if classes is None:
        classes = tuple(sorted(set().union(*(_label_names(row["labels"]) for _, row in rows))))
    else:
        classes = _class_list(classes, "option 'classes'")
    entries = []
    for number, row in rows:
        split = _split(row["split"], table, number, "split", True) if "split" in row else "train"
        labels = _labels(row["labels"], classes, table, number, "labels")
        clip = _clip(table.parent, Path(_cell(row, "path", table, number)), labels, split)
        clip = replace(clip, source=row.get("source", ""))
        entries.append((clip, f"{table}, row {number}"))
    return _Listing(table.parent, classes, entries)


def _load_folders(root: Path, *, classes: Sequence[str] | None = None) -> _Listing:
    """Folder per class, ``root/<class>/*.wav|flac|ogg``, or ``root/<split>/<class>/...``.

    Split folders are used when ``root`` holds any of train/validate/test (then every folder in
    root must be one of them); otherwise every clip is in ``train``. Files are taken in sorted
    order; files with other suffixes and hidden entries are ignored. Classes: the sorted folder
    names, or ``classes`` to fix the order (then any other folder is an error).
    """

    def folders(path: Path) -> list[Path]:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))

    if not root.is_dir():
        raise ValueError(f"{root}: not a directory")
    top = folders(root)
    groups = [("train", root)]
    if any(d.name in SPLITS for d in top):
        groups = [(d.name, d) for d in top if d.name in SPLITS]
        stray = [d.name for d in top if d.name not in SPLITS]
        if stray:
            raise ValueError(f"{root}: has split folders and also {stray}; move them into a split")
    found = [(split, d) for split, base in groups for d in folders(base)]
    names = sorted({d.name for _, d in found})
    if classes is None:
        classes = tuple(names)
    else:
        classes = _class_list(classes, "option 'classes'")
        unknown = [d for _, d in found if d.name not in classes]
        if unknown:
            raise ValueError(f"{unknown[0]}: folder is not one of the classes {list(classes)}")
    entries = []
    for split, folder in found:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith("."):
                entries.append((_clip(root, path, (folder.name,), split), ""))
    return _Listing(root, tuple(classes), entries)


_LOADERS: dict[str, Callable[..., _Listing]] = {
    "synth": _load_synth,
    "sonyc-ust": _load_sonyc,
    "esc50": _load_esc50,
    "urbansound8k": _load_urbansound8k,
    "manifest": _load_manifest,
    "folders": _load_folders,
}
#: The dataset layouts load_dataset understands.
DATASET_KINDS: tuple[str, ...] = tuple(_LOADERS)


def load_dataset(kind: str, root: str | Path, *, skip_bad: bool = False, **options) -> Dataset:
    """Load a dataset's clip list and labels, checking every referenced audio file.

    Parameters
    ----------
    kind : str
        ``"synth"``: ``root/clips.csv`` (filename,split,labels) and ``root/corpus.json``.
        ``"sonyc-ust"``: ``root/annotations.csv`` + ``root/audio/``; options ``min_agreement``
        (default 0.5) and ``prefer_verified`` (default True).
        ``"esc50"``: ``root/meta/esc50.csv`` + ``root/audio/``; option ``esc10_only``.
        ``"urbansound8k"``: ``root/metadata/UrbanSound8K.csv`` + ``root/audio/foldN/``.
        ``"manifest"``: ``root`` is a ``path,labels[,split]`` CSV; option ``classes``.
        ``"folders"``: ``root/[<split>/]<class>/*.wav|flac|ogg``; option ``classes``.
    root : str or Path
        The dataset folder (the CSV file for ``manifest``).
    skip_bad : bool
        Leave bad audio files out (listed in ``Dataset.skipped``) instead of raising.
        Bad metadata always raises.
    **options
        Loader options, listed above.

    Returns
    -------
    Dataset

    Raises
    ------
    AudioError
        A referenced audio file is missing, empty, truncated or has an unreadable header
        (unless ``skip_bad``); the message names the file and the metadata row listing it.
    ValueError
        Unknown ``kind``; bad metadata (missing file or column, unknown label or split,
        duplicate clip), naming the file, row and column.
    TypeError
        An option the loader does not take.
    """
    loader = _LOADERS.get(kind)
    if loader is None:
        raise ValueError(f"unknown dataset kind {kind!r}; known kinds: {', '.join(_LOADERS)}")
    root = Path(root).expanduser().absolute()
    try:
        inspect.signature(loader).bind(root, **options)
    except TypeError as exc:
        raise TypeError(f"dataset kind {kind!r}: {exc}") from None
    if not root.exists():
        raise ValueError(f"{root}: dataset root not found")
    listing = loader(root, **options)
    if not listing.classes:
        raise ValueError(f"{root}: no classes found for dataset kind {kind!r}")
    clips: list[ClipRef] = []
    skipped: list[tuple[Path, str]] = []
    seen: dict[str, str] = {}
    progress = tqdm(
        listing.entries,
        desc=f"checking {kind} audio",
        unit="file",
        leave=False,
        disable=len(listing.entries) < 2000,
    )
    for clip, where in progress:
        if clip.clip_id in seen:
            raise ValueError(
                f"{where}: duplicate clip {clip.clip_id!r} (also at {seen[clip.clip_id]})"
            )
        seen[clip.clip_id] = where
        try:
            check_audio(clip.path)
        except AudioError as exc:
            reason = f"{exc.reason} (listed at {where})" if where else exc.reason
            if not skip_bad:
                raise AudioError(clip.path, reason) from None
            skipped.append((clip.path, reason))
            continue
        clips.append(clip)
    return Dataset(kind, listing.root, listing.classes, clips, skipped)
