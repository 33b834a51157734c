"""Dataset loaders: every layout, label aggregation, splits, fingerprints and bad input."""

from __future__ import annotations

import csv
import json
import os
from math import ceil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model_dev.audio import AudioError
from model_dev.datasets import SONYC_CLASSES, Dataset, load_dataset

SR = 16000

# --------------------------------------------------------------------------- fixture helpers


def write_audio(
    path: Path,
    seconds: float = 0.1,
    rate: int = SR,
    channels: int = 1,
    subtype: str = "PCM_16",
    amp: float = 0.5,
) -> Path:
    """A tone; in multichannel files only channel 0 carries it (so a down-mix halves it)."""
    t = np.arange(round(seconds * rate)) / rate
    tone = amp * np.sin(2 * np.pi * 440.0 * t)
    data = np.zeros((len(t), channels))
    data[:, 0] = tone
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data if channels > 1 else tone, rate, subtype=subtype)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def edit_csv(path: Path, drop: str | None = None, cell: tuple[int, str, str] | None = None):
    """Drop a column, or set ``cell = (data row index, column, value)``."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    header = [c for c in rows[0] if c != drop]
    if cell:
        rows[cell[0]][cell[1]] = cell[2]
    write_csv(path, header, [[row[c] for c in header] for row in rows])


def make_synth(tmp: Path) -> Path:
    root = tmp / "synth"
    for k in range(3):
        write_audio(root / "audio" / f"clip_{k:05d}.wav")
    rows = [
        ["audio/clip_00000.wav", "train", "engine;dog"],
        ["audio/clip_00001.wav", "validate", ""],
        ["audio/clip_00002.wav", "test", "music"],
    ]
    write_csv(root / "clips.csv", ["filename", "split", "labels"], rows)
    (root / "corpus.json").write_text(json.dumps({"classes": list(SONYC_CLASSES), "seed": 0}))
    return root


SONYC_HEADER = [
    "split",
    "sensor_id",
    "audio_filename",
    "annotator_id",
    "1-1_small-sounding-engine_presence",
    *[f"{k}_{c}_presence" for k, c in enumerate(SONYC_CLASSES, start=1)],
    "1-1_small-sounding-engine_proximity",
]


def sonyc_row(split: str, name: str, annotator: int, *present: str, default: int = 0):
    """One annotation row: the classes in ``present`` are 1, the rest ``default``."""
    votes = [1 if c in present else default for c in SONYC_CLASSES]
    return [split, 7, name, annotator, votes[0], *votes, "near" if votes[0] == 1 else -1]


def make_sonyc(tmp: Path) -> Path:
    root = tmp / "sonyc"
    rows = [
        # crowd only: engine 2/3 -> present, dog 1/3 -> absent
        sonyc_row("train", "00_000001.wav", 11, "engine", "dog"),
        sonyc_row("train", "00_000001.wav", 12, "engine"),
        sonyc_row("train", "00_000001.wav", 13),
        # crowd says music; verified (0) says dog; a team member (-5) labelled one group only
        sonyc_row("validate", "00_000002.wav", 21, "music"),
        sonyc_row("validate", "00_000002.wav", 22, "music"),
        sonyc_row("validate", "00_000002.wav", 0, "dog"),
        sonyc_row("validate", "00_000002.wav", -5, "dog", default=-1),
        # two crowd annotators split on human-voice: 0.5 -> present at the default threshold
        sonyc_row("test", "00_000003.wav", 31, "human-voice"),
        sonyc_row("test", "00_000003.wav", 32),
    ]
    write_csv(root / "annotations.csv", SONYC_HEADER, rows)
    write_audio(root / "audio" / "00_000001.wav", rate=44100)  # SONYC audio is 44.1 kHz
    write_audio(root / "audio" / "00_000002.wav", rate=44100)
    write_audio(root / "audio-eval" / "00_000003.wav", rate=44100)  # other known location
    return root


def make_esc50(tmp: Path) -> Path:
    root = tmp / "ESC-50-master"
    rows = [
        ["1-100-A-0.wav", 1, 0, "dog", "True", 100, "A"],
        ["1-200-A-10.wav", 1, 10, "rain", "True", 200, "A"],
        ["2-300-A-1.wav", 2, 1, "rooster", "False", 300, "A"],
    ]
    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    write_csv(root / "meta" / "esc50.csv", header, rows)
    for row in rows:  # stereo 44.1 kHz
        write_audio(root / "audio" / row[0], seconds=0.25, rate=44100, channels=2)
    return root


def make_urbansound8k(tmp: Path) -> Path:
    root = tmp / "UrbanSound8K"
    header = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
    rows = [
        ["100032-3-0-0.wav", 100032, 0.0, 0.3, 1, 5, 3, "dog_bark"],
        ["100263-2-0-117.wav", 100263, 58.5, 62.5, 1, 1, 2, "children_playing"],
        ["101415-3-0-2.wav", 101415, 1.0, 5.0, 2, 1, 3, "dog_bark"],
    ]
    write_csv(root / "metadata" / "UrbanSound8K.csv", header, rows)
    write_audio(root / "audio" / "fold5" / rows[0][0])
    write_audio(root / "audio" / "fold1" / rows[1][0], seconds=0.5, rate=22050, subtype="PCM_24")
    write_audio(root / "audio" / "fold1" / rows[2][0], seconds=0.5, rate=8000, subtype="FLOAT")
    return root


def make_manifest(tmp: Path) -> Path:
    folder = tmp / "mine"
    write_audio(folder / "a.wav")
    write_audio(folder / "sub" / "b.flac")
    outside = write_audio(tmp / "elsewhere" / "c.wav")
    rows = [
        ["a.wav", "car;bird", "train"],
        ["sub/b.flac", "car", "validate"],
        [outside, "", "test"],
    ]
    return write_csv(folder / "manifest.csv", ["path", "labels", "split"], rows)


def make_folders(tmp: Path) -> Path:
    root = tmp / "byclass"
    write_audio(root / "siren" / "c.ogg", subtype="VORBIS")
    write_audio(root / "dog" / "b.flac")
    write_audio(root / "dog" / "a.wav")
    (root / "dog" / "notes.txt").write_text("not audio, ignored")
    return root


MAKERS = {
    "synth": make_synth,
    "sonyc-ust": make_sonyc,
    "esc50": make_esc50,
    "urbansound8k": make_urbansound8k,
    "manifest": make_manifest,
    "folders": make_folders,
}
META_CSV = {
    "synth": "clips.csv",
    "sonyc-ust": "annotations.csv",
    "esc50": "meta/esc50.csv",
    "urbansound8k": "metadata/UrbanSound8K.csv",
    "manifest": "",  # the root is the CSV itself
}


def build(kind: str, tmp: Path, **options) -> tuple[Path, Dataset]:
    root = MAKERS[kind](tmp)
    return root, load_dataset(kind, root, **options)


def summary(ds: Dataset) -> list[tuple[str, tuple[str, ...], str]]:
    return [(c.clip_id, c.labels, c.split) for c in ds.clips]


def corrupt(path: Path, how: str) -> None:
    if how == "missing":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "zero_frames":
        sf.write(str(path), np.zeros(0, dtype=np.int16), SR, subtype="PCM_16", format="WAV")
    elif how == "garbage":
        path.write_bytes(b"this is not a RIFF file " * 40)
    elif how == "truncated_header":
        path.write_bytes(path.read_bytes()[:30])
    elif how == "truncated_data":
        path.write_bytes(path.read_bytes()[:500])


# --------------------------------------------------------------------------- every layout


@pytest.mark.parametrize("kind", MAKERS)
def test_every_clip_loads_as_int16_mono_16k(tmp_path, kind):
    _, ds = build(kind, tmp_path)
    assert len(ds) == 3 and ds.name == kind
    for i, clip in enumerate(ds.clips):
        info = sf.info(str(clip.path))
        audio = ds.load(i)
        assert audio.dtype == np.int16 and audio.ndim == 1
        assert len(audio) == ceil(info.frames * SR / info.samplerate)


@pytest.mark.parametrize("kind", MAKERS)
def test_label_matrix_and_subset(tmp_path, kind):
    _, ds = build(kind, tmp_path)
    matrix = ds.label_matrix()
    assert matrix.dtype == np.uint8 and matrix.shape == (len(ds), len(ds.classes))
    for row, clip in zip(matrix, ds.clips, strict=True):
        assert [ds.classes[k] for k in np.flatnonzero(row)] == list(clip.labels)
    parts = [ds.subset(split) for split in ds.splits]
    assert sum(len(p) for p in parts) == len(ds)
    assert all({c.split for c in p.clips} == {s} for p, s in zip(parts, ds.splits, strict=True))
    assert len(ds.subset(ds.splits)) == len(ds)
    with pytest.raises(ValueError, match="no clips in split"):
        ds.subset("nonexistent")


@pytest.mark.parametrize("kind", MAKERS)
def test_fingerprint_stable_and_changes_with_files(tmp_path, kind):
    root, ds = build(kind, tmp_path)
    first = ds.fingerprint()
    assert load_dataset(kind, root).fingerprint() == first
    path = ds.clips[-1].path
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = ds.fingerprint()
    assert touched != first
    sf.write(str(path), np.zeros(800), SR, format=sf.info(str(path)).format)  # new content
    assert ds.fingerprint() not in (first, touched)


BAD = ["missing", "empty", "zero_frames", "garbage", "truncated_header", "truncated_data"]
# A folder layout lists only what exists: its "missing" case is a dangling link (test_folders).
BAD_CASES = [(k, how) for k in MAKERS for how in BAD if (k, how) != ("folders", "missing")]


@pytest.mark.parametrize(("kind", "how"), BAD_CASES)
def test_bad_file_raises_naming_it_or_is_skipped(tmp_path, kind, how):
    root, ds = build(kind, tmp_path)
    victim = next(c for c in ds.clips if c.path.suffix == ".wav")
    corrupt(victim.path, how)
    with pytest.raises(AudioError) as err:
        load_dataset(kind, root)
    assert victim.path.name in str(err.value) and err.value.path == victim.path
    if kind in META_CSV:  # so is the metadata row that lists it (the first data row)
        assert f"{Path(META_CSV[kind] or 'manifest.csv').name}, row 2" in str(err.value)
    kept = load_dataset(kind, root, skip_bad=True)
    assert [p for p, _ in kept.skipped] == [victim.path]
    assert victim.clip_id not in {c.clip_id for c in kept.clips} and len(kept) == len(ds) - 1
    for i in range(len(kept)):
        assert kept.load(i).dtype == np.int16


METADATA_ERRORS = [
    ("synth", {"drop": "split"}, ["clips.csv", "row 1", "split"]),
    ("synth", {"cell": (0, "labels", "engine;cat")}, ["clips.csv", "row 2", "labels", "cat"]),
    ("synth", {"cell": (2, "split", "training")}, ["clips.csv", "row 4", "split", "training"]),
    ("sonyc-ust", {"drop": "8_dog_presence"}, ["annotations.csv", "row 1", "8_dog_presence"]),
    (
        "sonyc-ust",
        {"cell": (4, "6_music_presence", "2")},
        ["annotations.csv", "row 6", "6_music_presence"],
    ),
    ("sonyc-ust", {"cell": (1, "split", "validate")}, ["annotations.csv", "row 3", "split"]),
    ("esc50", {"drop": "fold"}, ["esc50.csv", "row 1", "fold"]),
    ("esc50", {"cell": (1, "fold", "one")}, ["esc50.csv", "row 3", "fold", "one"]),
    ("esc50", {"cell": (2, "target", "0")}, ["esc50.csv", "row 4", "share id 0"]),
    ("urbansound8k", {"drop": "classID"}, ["UrbanSound8K.csv", "row 1", "classID"]),
    ("urbansound8k", {"cell": (2, "classID", "7")}, ["UrbanSound8K.csv", "row 4", "dog_bark"]),
    ("manifest", {"drop": "labels"}, ["manifest.csv", "row 1", "labels"]),
    ("manifest", {"cell": (0, "split", "holdout")}, ["manifest.csv", "row 2", "holdout"]),
    ("manifest", {"cell": (1, "path", "a.wav")}, ["manifest.csv", "row 3", "duplicate"]),
]


@pytest.mark.parametrize(("kind", "edit", "expected"), METADATA_ERRORS)
def test_bad_metadata_names_file_row_and_column(tmp_path, kind, edit, expected):
    root = MAKERS[kind](tmp_path)
    edit_csv(root / META_CSV[kind], **edit)
    for skip_bad in (False, True):  # skip_bad is for audio files; bad metadata always raises
        with pytest.raises(ValueError) as err:
            load_dataset(kind, root, skip_bad=skip_bad)
        assert not isinstance(err.value, AudioError)
        assert all(s in str(err.value) for s in expected), str(err.value)


@pytest.mark.parametrize("kind", META_CSV)
def test_missing_metadata_file(tmp_path, kind):
    root = MAKERS[kind](tmp_path)
    (root / META_CSV[kind]).unlink()
    with pytest.raises(ValueError, match=Path(META_CSV[kind] or "manifest.csv").name):
        load_dataset(kind, root)


# --------------------------------------------------------------------------- per layout


def test_synth(tmp_path):
    root, ds = build("synth", tmp_path)
    assert ds.classes == SONYC_CLASSES and ds.root == root
    assert summary(ds) == [
        ("audio/clip_00000.wav", ("engine", "dog"), "train"),
        ("audio/clip_00001.wav", (), "validate"),
        ("audio/clip_00002.wav", ("music",), "test"),
    ]
    assert ds.label_matrix().sum(axis=0).tolist() == [1, 0, 0, 0, 0, 1, 0, 1]


def test_synth_classes_from_corpus_json_or_default(tmp_path):
    root = make_synth(tmp_path)
    (root / "corpus.json").write_text(json.dumps({"classes": ["music", "dog", "engine"]}))
    ds = load_dataset("synth", root)
    assert ds.classes == ("music", "dog", "engine")
    assert ds.label_matrix().tolist() == [[0, 1, 1], [0, 0, 0], [1, 0, 0]]
    (root / "corpus.json").unlink()
    assert load_dataset("synth", root).classes == SONYC_CLASSES


def test_synth_filenames_relative_to_audio_folder(tmp_path):
    """model_dev.synth writes ``clip_00000.wav`` (relative to root/audio)."""
    root = make_synth(tmp_path)
    edit_csv(root / "clips.csv", cell=(0, "filename", "clip_00000.wav"))
    assert load_dataset("synth", root).clips[0].clip_id == "audio/clip_00000.wav"
    (root / "audio" / "clip_00000.wav").unlink()
    with pytest.raises(AudioError, match=r"audio/clip_00000.wav: file not found.*row 2"):
        load_dataset("synth", root)


def test_fingerprint_changes_on_relabel(tmp_path):
    root, ds = build("synth", tmp_path)
    edit_csv(root / "clips.csv", cell=(1, "labels", "dog"))
    relabelled = load_dataset("synth", root)
    assert relabelled.clips[1].labels == ("dog",)
    assert relabelled.fingerprint() != ds.fingerprint()
    edit_csv(root / "clips.csv", cell=(1, "labels", ""))
    edit_csv(root / "clips.csv", cell=(1, "split", "train"))
    assert load_dataset("synth", root).fingerprint() != ds.fingerprint()


def test_sonyc_aggregates_annotators_and_prefers_verified(tmp_path):
    root, ds = build("sonyc-ust", tmp_path)
    assert ds.classes == SONYC_CLASSES
    assert summary(ds) == [
        ("audio/00_000001.wav", ("engine",), "train"),
        ("audio/00_000002.wav", ("dog",), "validate"),
        ("audio-eval/00_000003.wav", ("human-voice",), "test"),
    ]
    strict = load_dataset("sonyc-ust", root, min_agreement=0.6)
    assert [c.labels for c in strict.clips] == [("engine",), ("dog",), ()]
    crowd = load_dataset("sonyc-ust", root, prefer_verified=False)
    assert crowd.clips[1].labels == ("music",)
    with pytest.raises(ValueError, match="min_agreement"):
        load_dataset("sonyc-ust", root, min_agreement=0)


def test_sonyc_dcase2019_layout(tmp_path):
    root = make_sonyc(tmp_path)
    for clip in load_dataset("sonyc-ust", root).clips:  # v1 kept audio in train/, validate/
        target = root / clip.split / clip.path.name
        target.parent.mkdir(exist_ok=True)
        clip.path.rename(target)
    ds = load_dataset("sonyc-ust", root)
    assert [c.clip_id for c in ds.clips] == [
        "train/00_000001.wav",
        "validate/00_000002.wav",
        "test/00_000003.wav",
    ]


def test_esc50(tmp_path):
    root, ds = build("esc50", tmp_path)
    assert ds.classes == ("dog", "rooster", "rain")  # ordered by target
    assert summary(ds) == [
        ("audio/1-100-A-0.wav", ("dog",), "fold1"),
        ("audio/1-200-A-10.wav", ("rain",), "fold1"),
        ("audio/2-300-A-1.wav", ("rooster",), "fold2"),
    ]
    esc10 = load_dataset("esc50", root, esc10_only=True)
    assert esc10.classes == ("dog", "rain") and len(esc10) == 2


def test_urbansound8k(tmp_path):
    _, ds = build("urbansound8k", tmp_path)
    assert ds.classes == ("children_playing", "dog_bark")  # ordered by classID
    assert summary(ds) == [
        ("audio/fold5/100032-3-0-0.wav", ("dog_bark",), "fold5"),
        ("audio/fold1/100263-2-0-117.wav", ("children_playing",), "fold1"),
        ("audio/fold1/101415-3-0-2.wav", ("dog_bark",), "fold1"),
    ]
    assert ds.subset(["fold1"]).label_matrix().tolist() == [[1, 0], [0, 1]]


def test_resampling_and_downmix(tmp_path):
    """Stereo 44.1 kHz, 24-bit 22.05 kHz and float 8 kHz all become 16 kHz mono int16."""
    cases = [  # (file, seconds, rate, channels, subtype, expected peak)
        ("st.wav", 0.25, 44100, 2, "PCM_16", 0.25),  # tone in the left channel only: halved
        ("p24.wav", 0.5, 22050, 1, "PCM_24", 0.5),
        ("f8k.wav", 0.5, 8000, 1, "FLOAT", 0.5),
    ]
    folder = tmp_path / "fmt"
    for name, seconds, rate, channels, subtype, _ in cases:
        write_audio(folder / name, seconds, rate, channels, subtype)
    rows = [[name, "tone"] for name, *_ in cases]
    ds = load_dataset("manifest", write_csv(folder / "m.csv", ["path", "labels"], rows))
    for i, (_, seconds, _, _, _, peak) in enumerate(cases):
        audio = ds.load(i)
        assert audio.dtype == np.int16 and audio.shape == (round(seconds * SR),)
        rms = np.sqrt(np.mean((audio[200:-200] / 32768.0) ** 2))
        assert rms == pytest.approx(peak / np.sqrt(2), rel=0.02)


def test_manifest(tmp_path):
    csv_path, ds = build("manifest", tmp_path)
    assert ds.classes == ("bird", "car") and ds.root == csv_path.parent
    outside = tmp_path / "elsewhere" / "c.wav"
    assert summary(ds) == [
        ("a.wav", ("bird", "car"), "train"),
        ("sub/b.flac", ("car",), "validate"),
        (outside.as_posix(), (), "test"),
    ]
    assert load_dataset("manifest", csv_path.parent).fingerprint() == ds.fingerprint()
    fixed = load_dataset("manifest", csv_path, classes=["car", "bird", "cow"])
    assert fixed.classes == ("car", "bird", "cow")
    assert fixed.label_matrix().tolist() == [[1, 1, 0], [1, 0, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match=r"manifest.csv, row 2, column 'labels'.*bird"):
        load_dataset("manifest", csv_path, classes=["car"])


def test_manifest_without_split_column_is_train(tmp_path):
    folder = tmp_path / "m"
    write_audio(folder / "x.wav")
    csv_path = write_csv(folder / "list.csv", ["labels", "path"], [["a;b", "x.wav"]])
    ds = load_dataset("manifest", csv_path)
    assert summary(ds) == [("x.wav", ("a", "b"), "train")]


def test_folders(tmp_path):
    root, ds = build("folders", tmp_path)
    assert ds.classes == ("dog", "siren")
    assert summary(ds) == [  # sorted; notes.txt ignored
        ("dog/a.wav", ("dog",), "train"),
        ("dog/b.flac", ("dog",), "train"),
        ("siren/c.ogg", ("siren",), "train"),
    ]
    fixed = load_dataset("folders", root, classes=["siren", "dog", "cat"])
    assert fixed.label_matrix().tolist() == [[0, 1, 0], [0, 1, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match="siren"):
        load_dataset("folders", root, classes=["dog"])
    (root / "dog" / "gone.wav").symlink_to(root / "dog" / "deleted.wav")
    with pytest.raises(AudioError, match="gone.wav: file not found"):
        load_dataset("folders", root)
    assert load_dataset("folders", root, skip_bad=True).skipped[0][0].name == "gone.wav"


def test_folders_with_split_subfolders(tmp_path):
    root = tmp_path / "split"
    write_audio(root / "train" / "dog" / "a.wav")
    write_audio(root / "train" / "siren" / "b.wav")
    write_audio(root / "test" / "dog" / "c.wav")
    ds = load_dataset("folders", root)
    assert ds.classes == ("dog", "siren")
    assert summary(ds) == [
        ("test/dog/c.wav", ("dog",), "test"),
        ("train/dog/a.wav", ("dog",), "train"),
        ("train/siren/b.wav", ("siren",), "train"),
    ]
    write_audio(root / "cat" / "d.wav")
    with pytest.raises(ValueError, match="cat"):
        load_dataset("folders", root)


# --------------------------------------------------------------------------- errors


def nan_wav(path: Path) -> None:
    data = np.full(1600, 0.1, dtype=np.float32)
    data[100] = np.nan
    sf.write(str(path), data, SR, subtype="FLOAT")


def corrupt_flac(path: Path) -> None:
    write_audio(path, seconds=1.0, amp=0.9)
    data = bytearray(path.read_bytes())
    for i in range(200, len(data), 7):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("name", "make_bad"), [("nan.wav", nan_wav), ("bad.flac", corrupt_flac)])
def test_load_of_file_corrupt_inside_its_data(tmp_path, name, make_bad):
    root = tmp_path / "f"
    write_audio(root / "dog" / "good.wav")
    make_bad(bad := root / "dog" / name)
    ds = load_dataset("folders", root)  # the header is fine
    index = [c.path for c in ds.clips].index(bad)
    with pytest.raises(AudioError, match=bad.name):
        ds.load(index)


def test_unknown_kind_and_option(tmp_path):
    with pytest.raises(ValueError, match="known kinds: synth, sonyc-ust, esc50"):
        load_dataset("audioset", tmp_path)
    with pytest.raises(TypeError, match="esc10_only"):
        load_dataset("folders", tmp_path, esc10_only=True)
    with pytest.raises(ValueError, match="not found"):
        load_dataset("folders", tmp_path / "nope")
