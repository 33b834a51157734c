"""Checkpoints (task, method, score, window, thresholds), resume, fine-tuning, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model_dev.anomaly.detectors import build_network
from model_dev.anomaly.evaluation import evaluate_anomaly
from model_dev.anomaly.methods import METHODS
from model_dev.anomaly.pipeline import load_anomaly_checkpoint, train_anomaly, type_data
from model_dev.anomaly.training import (
    Distilled,
    FitConfig,
    fit_network,
    seeded_network,
    window_batch,
)

CFG = FitConfig(epochs=2, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def trained(tiny_corpus: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "dense_ae_small.pt"
    return train_anomaly(
        tiny_corpus,
        out,
        "dense_ae_small",
        types=["fan", "valve"],
        cfg=CFG,
        cache_dir=tiny_corpus.parent / "cache",
        progress=False,
    )


def test_checkpoint_names_task_method_score_window_threshold(trained: Path) -> None:
    ckpt = load_anomaly_checkpoint(trained)
    assert ckpt["task"] == "anomaly" and ckpt["method"] == "dense_ae_small"
    assert "reconstruction error" in ckpt["score"] and ckpt["deployable"]
    assert ckpt["window"] == {"kind": "stack", "frames": 5, "hop": 1, "train_hop": 1}
    assert set(ckpt["detectors"]) == {"fan", "valve"} and len(ckpt["frontend_hash"]) == 64
    rec = ckpt["detectors"]["fan"]
    assert rec["ids"] == ["id_00", "id_02", "id_04"] and rec["spec"]["units"] == [64, 64, 8, 64, 64]
    assert rec["threshold"]["quantile"] == 0.9 and np.isfinite(rec["threshold"]["value"])
    assert len(rec["losses"]) == 2
    assert not trained.with_name(trained.name + ".state").exists()  # resume files cleaned up


def test_corrupt_or_foreign_checkpoint_is_named(trained: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(trained.read_bytes()[:1000])
    with pytest.raises(ValueError, match="bad.pt: not a readable checkpoint"):
        load_anomaly_checkpoint(bad)
    torch.save({"task": "tagging"}, tmp_path / "tag.pt")
    with pytest.raises(ValueError, match="tag.pt: not an anomaly checkpoint"):
        load_anomaly_checkpoint(tmp_path / "tag.pt")


def test_evaluate_writes_report_and_plots(trained: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    r = evaluate_anomaly(
        trained, tiny_corpus, tmp_path, cache_dir=tiny_corpus.parent / "cache", progress=False
    )
    assert set(r["per_type"]) == {"fan", "valve"} and set(r["per_id"]["fan"]) == {
        "id_00",
        "id_02",
        "id_04",
    }
    assert 0 <= r["mean"]["auc"] <= 1 and "not McClish" in r["pauc_convention"]
    assert set(r["per_severity"]["fan"]) <= {1, 2, 3} and r["per_fault"]["valve"]
    assert 0 <= r["decisions"]["fan"]["fpr"] <= 1
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["per_type"]["fan"]["auc"] == pytest.approx(r["per_type"]["fan"]["auc"])
    for png in ("roc.png", "histograms.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_resume_ends_with_the_same_weights(tiny_prepared, tmp_path: Path) -> None:
    data = type_data(*tiny_prepared, "pump")
    x, y, _ = window_batch(
        METHODS["dense_ae_small"].layout, data.train, data.train_ids, data.silence, True
    )

    def run(epochs: int, state: Path | None) -> torch.nn.Module:
        model = seeded_network(lambda: build_network("dense_ae_small", 3), 0, "cpu")
        cfg = FitConfig(epochs=epochs, batch_size=64, device="cpu")
        with torch.random.fork_rng(devices=[]):
            fit_network(model, x, y, cfg, progress=False, state_path=state)
        return model

    straight = run(3, None)
    state = tmp_path / "state.pt"
    run(1, state)  # interrupted after one epoch ...
    resumed = run(3, state)  # ... and resumed
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_zero_shot_and_fine_tune_across_ids(tiny_corpus: Path, tmp_path: Path) -> None:
    cache = tiny_corpus.parent / "cache"
    kw = {"types": ["pump"], "cache_dir": cache, "progress": False}
    src = train_anomaly(
        tiny_corpus, tmp_path / "src.pt", "dense_ae_small", ids=["id_00"], cfg=CFG, **kw
    )
    zero_shot = evaluate_anomaly(src, tiny_corpus, cache_dir=cache, progress=False)
    assert set(zero_shot["per_id"]["pump"]) == {"id_00", "id_02", "id_04"}  # applied to all IDs
    assert load_anomaly_checkpoint(src)["train_ids"] == ["id_00"]
    # fine-tuning starts from the source weights: with 0 epochs they come back unchanged
    frozen = FitConfig(epochs=0, device="cpu")
    ft = train_anomaly(
        tiny_corpus, tmp_path / "ft.pt", "dense_ae_small", init=src, cfg=frozen, **kw
    )
    a = load_anomaly_checkpoint(src)["detectors"]["pump"]["state"]
    b = load_anomaly_checkpoint(ft)["detectors"]["pump"]
    assert b["ids"] == ["id_00", "id_02", "id_04"]
    for k in a:
        torch.testing.assert_close(a[k], b["state"][k], rtol=0, atol=0)


def test_teacher_then_distilled_student(tiny_corpus: Path, trained: Path, tmp_path: Path) -> None:
    kw = {"types": ["valve"], "cache_dir": tiny_corpus.parent / "cache", "progress": False}
    cfg = FitConfig(epochs=1, batch_size=64, device="cpu", max_windows=256)
    teacher = train_anomaly(
        tiny_corpus, tmp_path / "t.pt", "id_classifier", size="teacher", cfg=cfg, **kw
    )
    student = train_anomaly(
        tiny_corpus, tmp_path / "s.pt", "id_classifier", teacher=teacher, distill="kd+iusp",
        cfg=cfg, **kw,
    )  # fmt: skip
    ckpt = load_anomaly_checkpoint(student)
    assert (ckpt["teacher"], ckpt["distill"], ckpt["size"]) == (str(teacher), "kd+iusp", "student")
    rec = ckpt["detectors"]["valve"]
    assert rec["distill"]["terms"] == {"kd": 1.0, "iusp": 1.0}
    assert set(rec["distill"]["weights"]) == {"kd", "iusp"}
    assert all(w > 0 for w in rec["distill"]["weights"].values())  # balanced by gradient size
    big = load_anomaly_checkpoint(teacher)["detectors"]["valve"]["state"]
    assert 5 * sum(v.numel() for v in rec["state"].values()) < sum(v.numel() for v in big.values())
    # a wrong teacher is named before any training, and nothing is written
    with pytest.raises(ValueError, match="dense_ae_small checkpoint, not an id_classifier"):
        train_anomaly(tiny_corpus, tmp_path / "x.pt", "id_classifier", teacher=trained, **kw)
    with pytest.raises(ValueError, match="t.pt: no pump detector"):
        kw["types"] = ["pump"]
        train_anomaly(tiny_corpus, tmp_path / "x.pt", "id_classifier", teacher=teacher, **kw)
    with pytest.raises(ValueError, match="size 'teacher': only id_classifier and supervised"):
        train_anomaly(tiny_corpus, tmp_path / "x.pt", "dense_ae", size="teacher", **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pt", "t.pt"]


def test_distilled_resume_keeps_the_balanced_weights(tiny_prepared, tmp_path: Path) -> None:
    # the kd/iusp weights are set at the first step; a resumed run must reuse them, not
    # re-balance on the half-trained student
    data = type_data(*tiny_prepared, "fan")
    x, y, _ = window_batch(
        METHODS["id_classifier"].layout, data.train, data.train_ids, data.silence, True
    )
    y = y % len(data.ids)  # real IDs only: no pseudo-instances needed here
    teacher = seeded_network(lambda: build_network("id_classifier", 3, "teacher"), 1, "cpu")

    def run(epochs: int, state: Path | None) -> Distilled:
        student = seeded_network(lambda: build_network("id_classifier", 3), 0, "cpu")
        trainee = Distilled(student, teacher, 1.0, 1.0)
        cfg = FitConfig(epochs=epochs, batch_size=32, device="cpu", max_windows=64)
        with torch.random.fork_rng(devices=[]):
            fit_network(trainee, x, y, cfg, progress=False, state_path=state)
        return trainee

    straight = run(3, None)
    state = tmp_path / "state.pt"
    run(1, state)
    resumed = run(3, state)
    assert resumed.weights == straight.weights
    for a, b in zip(
        straight.student.state_dict().values(), resumed.student.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
