"""Distilled training: gradient-balanced weights, the teacher cache, clip-level IUSP in the loop."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from model_dev.arch import STUDENTS, block_shapes
from model_dev.calibrate import mean_gradient_norms
from model_dev.checkpoint import load_checkpoint
from model_dev.distill import DistillConfig, clip_groups
from model_dev.teacher_cache import LiveTeacher, TeacherCache
from model_dev.train import train
from model_dev.train_config import TrainConfig
from model_dev.windows import split_windows
from tests.model_dev.test_train import FAST, TINY_TEACHER, toy_features

torch.set_num_threads(1)
NO_AUGMENT = dict(time_masks=0, freq_masks=0)


@pytest.fixture(scope="module")
def fs():
    return toy_features()


@pytest.fixture(scope="module")
def teacher(fs, tmp_path_factory):
    cfg = TrainConfig(arch="teacher", epochs=1, **FAST)
    return train(cfg, fs, tmp_path_factory.mktemp("teacher"), spec=TINY_TEACHER, progress=False)


def _student(teacher, **fields) -> TrainConfig:
    base = dict(arch="s5k", epochs=1, patience=0, teacher=str(teacher), **FAST)
    return TrainConfig(**{**base, **fields})


def _weights(path) -> dict:
    return {k: v.clone() for k, v in torch.load(path, weights_only=True)["model"].items()}


def test_calibration_lands_each_ratio_within_ten_percent(fs, teacher, tmp_path):
    """Weights calibrated on 32 batches give each weighted term the target share of the BCE's
    gradient norm, measured again on 32 other batches (another seed)."""
    targets = {"kd": 0.5, "sp": 2.0, "iusp": 1.0}
    cfg = _student(teacher, batch_size=8, calibration_batches=32, layer_pairs="last", **targets)
    best = train(cfg, fs, tmp_path / "run", progress=False)
    _, meta = load_checkpoint(best)
    d = meta["distill"]
    assert d["targets"] == targets and d["pairs"] == [[4, 1]]
    for term, target in targets.items():
        assert d["grad_norms"][term] * d["weights"][term] / d["grad_norms"]["bce"] == (
            pytest.approx(target, rel=1e-9)
        )
    # re-measure on the initial model with other batches
    from model_dev import train as train_mod

    captured = {}
    real = train_mod._distill_weights

    def spy(run):
        captured["norms"] = mean_gradient_norms(
            run.model, run.losses, len(run.data), 8, 32, seed=1234
        )
        return real(run)

    train_mod._distill_weights = spy
    try:
        train(cfg, fs, tmp_path / "again", progress=False)
    finally:
        train_mod._distill_weights = real
    norms = captured["norms"]
    for term, target in targets.items():
        ratio = d["weights"][term] * norms[term] / norms["bce"]
        assert ratio == pytest.approx(target, rel=0.10), term


def _targets(target) -> dict[str, torch.Tensor]:
    out = {"logits": target.logits} if target.logits is not None else {}
    out |= {f"feat{j}": f for j, f in target.feats.items()}
    for j, grams in target.grams.items():
        out |= {f"gram{j}.{g}": gram for g, gram in enumerate(grams)}
    return out


@pytest.mark.parametrize(
    "terms",
    [dict(kd=1.0), dict(sp=1.0), dict(iusp=1.0), dict(iusp=1.0, iusp_scope="window")],
    ids=["kd", "sp", "iusp-clip", "iusp-window"],
)
def test_cached_teacher_serves_what_the_live_teacher_computes(fs, teacher, tmp_path, terms):
    """Without augmentation, every training batch's cached targets (computed once, 32 clips
    at a time) equal the live teacher's on that batch. Equal to float rounding, not bit for
    bit: a matrix product's rounding can depend on its row count (BLAS blocking; 2.4e-7 on
    teacher logits on an AVX-512 Xeon), and AdamW amplifies such differences in training."""
    from model_dev import train as train_mod

    seen = []
    model = load_checkpoint(teacher, expect_kind="teacher")[0].eval()

    def spy(run, state, *args):
        live = LiveTeacher(model, run.cfg.distill, run.pairs, run.data.window_frames)
        data = run.data
        for idx in np.array_split(np.random.default_rng(0).permutation(len(data)), 5):
            x, mask, _ = data.batch(idx, run.device)
            counts = mask.sum(1).tolist()
            groups = clip_groups(
                data.n_frames[idx].tolist(), counts, data.window_frames, data.hop_frames
            )
            cached = _targets(run.teacher(idx, x[mask], mask, groups))
            fresh = _targets(live(idx, x[mask], mask, groups))
            assert cached.keys() == fresh.keys() and cached
            for name in cached:
                torch.testing.assert_close(cached[name], fresh[name], rtol=1e-5, atol=1e-6)
            seen.append(len(idx))

    real = train_mod._fit
    train_mod._fit = spy
    try:
        train(_student(teacher, **NO_AUGMENT, **terms), fs, tmp_path / "run", progress=False)
    finally:
        train_mod._fit = real
    assert sum(seen) == len(fs.indices(["train"]))


def test_teacher_cache_hit_miss_and_invalidation(fs, teacher, tmp_path):
    cache = tmp_path / "cache"
    cfg = _student(teacher, iusp=1.0, kd=1.0)

    def entries() -> set[str]:
        return {p.name for p in cache.glob("teacher-*")}

    train(cfg, fs, tmp_path / "a", progress=False, teacher_cache=cache)
    first = entries()
    assert len(first) == 1
    index = cache / next(iter(first)) / "index.json"
    stamp = index.stat().st_mtime_ns
    train(dataclasses.replace(cfg, seed=1), fs, tmp_path / "b", progress=False, teacher_cache=cache)
    assert entries() == first and index.stat().st_mtime_ns == stamp  # hit: reused untouched
    # a miss for each thing the outputs depend on: teacher, data, front end, window layout,
    # terms and layer pairs (built directly, with the same teacher model)
    model, meta = load_checkpoint(teacher)
    data = split_windows(fs, ("train",), model.spec, 50)
    key = json.loads(index.read_text())
    base = {k: key[k] for k in ("teacher_sha256", "fingerprint", "frontend_hash", "window")}
    base["clips"] = key["clips"]
    dcfg = DistillConfig(kd=1.0, iusp=1.0)
    pairs = dcfg.pairs_for(block_shapes(STUDENTS["s5k"]), block_shapes(model.spec))
    changes = [
        ({"teacher_sha256": "0" * 64}, dcfg, pairs),
        ({"fingerprint": "other data"}, dcfg, pairs),
        ({"frontend_hash": "f" * 64}, dcfg, pairs),
        ({"window": [100, 100]}, dcfg, pairs),
        ({}, DistillConfig(kd=1.0, sp=1.0), pairs),
        ({}, dcfg, ((4, 0),)),
    ]
    for change, d, p in changes:
        TeacherCache.load_or_build(cache, base | change, model, data, d, p, torch.device("cpu"),
                                   progress=False)  # fmt: skip
    assert len(entries()) == 1 + len(changes)
    TeacherCache.load_or_build(cache, base, model, data, dcfg, pairs, torch.device("cpu"))
    assert len(entries()) == 1 + len(changes) and index.stat().st_mtime_ns == stamp
    assert not list(cache.glob(".*"))  # nothing half-written left behind


def test_cached_teacher_refuses_mixup():
    with pytest.raises(ValueError, match="teacher_targets"):
        TrainConfig(arch="s5k", teacher="t.pt", kd=1.0, mixup_alpha=0.2)
    TrainConfig(arch="s5k", teacher="t.pt", kd=1.0, mixup_alpha=0.2, teacher_targets="live")


def test_resumed_distilled_run_is_identical(fs, teacher, tmp_path, monkeypatch):
    from model_dev import train as train_mod

    cfg = _student(teacher, epochs=3, iusp=1.0, kd=1.0)
    whole = _weights(train(cfg, fs, tmp_path / "whole", progress=False))
    real = train_mod._run_epoch

    def crash_in_epoch_3(run, epoch, progress):
        if epoch == 3:
            raise KeyboardInterrupt
        return real(run, epoch, progress)

    monkeypatch.setattr(train_mod, "_run_epoch", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, fs, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(train_mod, "_run_epoch", real)
    resumed = _weights(train(cfg, fs, tmp_path / "resumed", progress=False, resume=True))
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert np.isfinite(
        load_checkpoint(tmp_path / "resumed" / "last.pt")[1]["distill"]["weights"]["iusp"]
    )
