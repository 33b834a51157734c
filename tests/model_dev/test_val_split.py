"""A validation split carved from train: grouped, stratified, deterministic; datasets that ship
train and test only train end to end (manifest and folders)."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from aedfw.cli import main
from model_dev.checkpoint import load_checkpoint
from model_dev.datasets import ClipRef, Dataset
from model_dev.val_split import carve_validation


def dataset(n_sources: int = 40, per_source: int = 3, order_seed: int | None = None) -> Dataset:
    """Clips mixed from ``n_sources`` recordings; class ``rare`` in every 8th source only."""
    clips = []
    for s in range(n_sources):
        labels = ("common",) if s % 8 else ("common", "rare")
        for k in range(per_source):
            split = "test" if s % 5 == 0 else "train"
            clips.append(ClipRef(f"s{s}_{k}.wav", Path(f"s{s}_{k}.wav"), labels, split, f"rec{s}"))
    if order_seed is not None:
        random.Random(order_seed).shuffle(clips)
    return Dataset("manifest", Path("."), ("common", "rare"), clips)


def by_id(ds: Dataset) -> dict[str, str]:
    return {c.clip_id: c.split for c in ds.clips}


def test_carved_split_is_grouped_stratified_and_deterministic():
    ds = carve_validation(dataset(), 0.25)
    splits = by_id(ds)
    assert Counter(splits.values()) == {"train": 72, "validate": 24, "test": 24}
    per_source = {}
    for c in ds.clips:  # every source's clips stay in one split
        per_source.setdefault(c.source, set()).add(c.split)
    assert all(len(v) == 1 for v in per_source.values())
    rare = Counter(c.split for c in ds.clips if "rare" in c.labels)  # 4 train sources have it
    assert rare["validate"] == 3 and rare["train"] == 9  # 1 of 4 sources, 3 clips each
    assert all(c.split == "test" for c in ds.clips if int(c.source[3:]) % 5 == 0)
    assert ds.validation == {
        "carved_from": "train",
        "fraction": 0.25,
        "grouped_by": "source",
        "stratified_by": "rarest label",
        "train_groups": 24,
        "validate_groups": 8,
        "validate_clips": 24,
    }
    assert by_id(carve_validation(dataset(order_seed=1), 0.25)) == splits  # order-independent
    assert by_id(carve_validation(dataset(), 0.1)) != splits


def test_carving_leaves_datasets_with_validate_or_without_train_alone():
    carved = carve_validation(dataset())
    assert carve_validation(carved) is carved and carved.validation["fraction"] == 0.1
    assert carved.validation["validate_groups"] == 3  # round(0.1 * 32)
    folds = Dataset("esc50", Path("."), ("a",), [ClipRef("x", Path("x"), ("a",), "fold1")])
    assert carve_validation(folds) is folds
    plain = dataset()
    plain.clips = [replace(c, source="") for c in plain.clips]
    no_sources = carve_validation(plain, 0.5)
    assert no_sources.validation["grouped_by"] == "clip"
    assert no_sources.validation["validate_groups"] == 48  # clips, not sources
    with pytest.raises(ValueError, match="between 0 and 1"):
        carve_validation(dataset(), 1.0)
    one = Dataset("folders", Path("d"), ("a",), [ClipRef("x", Path("x"), ("a",), "train")])
    with pytest.raises(ValueError, match="d: cannot carve a validation split from 1"):
        carve_validation(one)


# ------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from model_dev.synth import synth

    root = tmp_path_factory.mktemp("val_split") / "synth"
    return synth(root, preset="tiny", jobs=1, progress=False)


def synth_rows(corpus: Path) -> list[dict]:
    with open(corpus / "clips.csv", newline="") as f:
        return list(csv.DictReader(f))


def train_and_evaluate(tmp_path: Path, kind: str, data: Path, capsys, model="student") -> dict:
    run, cache = tmp_path / f"run-{kind}", tmp_path / f"cache-{kind}"
    common = ["--dataset", kind, "--data", str(data), "--cache", str(cache)]
    common += ["--jobs", "1"]
    args = ["train", model, *common, "--out", str(run), "--epochs", "1", "--device", "cpu"]
    assert main([*args, "--val-fraction", "0.2"]) == 0, capsys.readouterr().err
    assert main(["evaluate", str(run / "best.pt"), *common]) == 0, capsys.readouterr().err
    assert "micro-AUPRC" in capsys.readouterr().out
    (entry,) = cache.iterdir()  # evaluate saw the training's split (0.2, not the default)
    if model == "teacher":  # a student distilled from it sees the teacher's split too
        student = ["train", "student", *common, "--out", str(tmp_path / "student")]
        student += ["--epochs", "1", "--device", "cpu", "--teacher", str(run / "best.pt")]
        assert main(student) == 0, capsys.readouterr().err
        assert {p.name for p in cache.iterdir()} == {entry.name, "teacher"}  # + teacher outputs
    _, meta = load_checkpoint(run / "best.pt")
    recorded = json.loads((run / "dataset.json").read_text())
    assert recorded == meta["dataset"] and recorded["validation"]["fraction"] == 0.2
    assert recorded["val_clips"] == recorded["validation"]["validate_clips"] > 0
    return recorded


def test_manifest_with_train_and_test_only_trains_end_to_end(corpus, tmp_path, capsys):
    rows = synth_rows(corpus)
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "labels", "split", "source"])
        for k, r in enumerate(rows):  # the corpus's validate clips join train; pairs share a source
            split = "test" if r["split"] == "test" else "train"
            w.writerow([corpus / "audio" / r["filename"], r["labels"], split, f"rec{k // 2}"])
    recorded = train_and_evaluate(tmp_path, "manifest", manifest, capsys, model="teacher")
    assert recorded["validation"]["grouped_by"] == "source"
    assert recorded["validation"]["validate_clips"] % 2 == 0  # whole sources only


def test_folders_with_train_and_test_only_train_end_to_end(corpus, tmp_path, capsys):
    root = tmp_path / "folders"
    for r in synth_rows(corpus):
        if not r["labels"]:
            continue
        split = "test" if r["split"] == "test" else "train"
        folder = root / split / r["labels"].split(";")[0]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / r["filename"]).symlink_to(corpus / "audio" / r["filename"])
    recorded = train_and_evaluate(tmp_path, "folders", root, capsys)
    assert recorded["validation"]["grouped_by"] == "clip"
