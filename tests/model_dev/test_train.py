"""Training, resume, checkpoints, distillation and evaluation on a tiny learnable corpus."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from aedfw.cli import build_parser, main
from model_dev import train as train_mod
from model_dev.arch import SILENCE_Q, STUDENTS, clip_windows, vgg
from model_dev.checkpoint import load_checkpoint, state_dict_sha256
from model_dev.evaluate import evaluate
from model_dev.features import FeatureSet
from model_dev.frontend import FrontendConfig
from model_dev.tagging_metrics import auprc, operating_thresholds
from model_dev.torch_net import clip_forward
from model_dev.train import train
from model_dev.train_config import TrainConfig

torch.set_num_threads(1)

CLASSES = ("a", "b", "c")
#: A small teacher (two conv blocks) so distillation tests stay fast.
TINY_TEACHER = vgg("tiny-teacher", [(8, 1), (16, 1)])
FAST = dict(batch_size=4, lr=1e-2, warmup_epochs=0.5, device="cpu")
EPOCHS = 8


def toy_features(n_blocks: int = 4, seed: int = 0) -> FeatureSet:
    """8 clips per block (every label pattern of 3 classes once); blocks 0-1 train, 2 validate,
    3 test. Class ``c`` is a loud band in mel bins ``12c+2 .. 12c+11`` for 50 frames; clips of
    60 (padded), 150 and 230 frames give 1 to 4 windows."""
    rng = np.random.default_rng(seed)
    n = 8 * n_blocks
    labels = np.array([[(i % 8) >> c & 1 for c in range(3)] for i in range(n)], dtype=np.uint8)
    clips = []
    for i in range(n):
        frames = (60, 150, 230)[i % 3]
        f = rng.integers(-110, -50, size=(frames, 40))
        for c in np.flatnonzero(labels[i]):
            t0 = rng.integers(0, frames - 50)
            f[t0 : t0 + 50, 12 * c + 2 : 12 * c + 12] += 70
        clips.append(f.astype(np.int8))
    splits = ["train", "train", "validate", "test"][:n_blocks]
    return FeatureSet(
        features=np.concatenate(clips),
        offsets=np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64),
        labels=labels,
        clip_ids=[f"clip{i}" for i in range(n)],
        splits=[s for s in splits for _ in range(8)],
        classes=CLASSES,
        config=FrontendConfig(),
        skipped=[],
        fingerprint="toy",
    )


@pytest.fixture(scope="module")
def fs() -> FeatureSet:
    return toy_features()


@pytest.fixture(scope="module")
def student_run(fs, tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    cfg = TrainConfig(arch="s5k", epochs=EPOCHS, patience=0, **FAST)
    return cfg, train(cfg, fs, out, progress=False)


@pytest.fixture(scope="module")
def teacher_ckpt(fs, tmp_path_factory):
    cfg = TrainConfig(arch="teacher", epochs=1, **FAST)
    return train(cfg, fs, tmp_path_factory.mktemp("teacher"), spec=TINY_TEACHER, progress=False)


def _rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------ config
def test_config_json_round_trip_and_field_errors():
    cfg = TrainConfig(
        arch="s20k",
        mixup_alpha=0.2,
        teacher="t.pt",
        kd=1,
        layer_pairs="0:1",
        teacher_targets="live",
    )
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    assert cfg.distill.layer_pairs == "0:1" and cfg.distill.iusp_scope == "clip"
    bad = [
        ({"arch": "s1k"}, "arch"),
        ({"epochs": 0}, "epochs"),
        ({"lr": "fast"}, "lr"),
        ({"amp": 1}, "amp"),
        ({"device": "tpu"}, "device"),
        ({"kd": 1.0}, "teacher"),
        ({"arch": "teacher", "teacher": "t.pt", "kd": 1.0}, "teacher"),
        ({"layer_pairs": [[0, 1]]}, "layer_pairs"),
        ({"layer_pairs": "0"}, "layer_pairs"),
        ({"iusp_scope": "batch"}, "iusp_scope"),
        ({"weighting": "loss"}, "weighting"),
        ({"teacher_targets": "disk"}, "teacher_targets"),
        ({"epochz": 3}, "epochz"),
    ]
    for fields, name in bad:
        with pytest.raises(ValueError, match=name):
            TrainConfig.from_dict(fields, "run.json")


# ---------------------------------------------------------------------------------- training
def test_training_learns_and_writes_complete_checkpoints(fs, student_run):
    cfg, best = student_run
    out = best.parent
    rows = _rows(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    losses = [float(r["loss"]) for r in rows]
    assert all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0]
    assert float(rows[-1]["val_micro"]) > 0.75 > float(rows[0]["val_micro"])  # chance: 0.5
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt",
        "config.json",
        "last.pt",
        "metrics.csv",
    ]  # the atomic writes leave no temporary files
    assert TrainConfig.from_json((out / "config.json").read_text()) == cfg

    model, meta = load_checkpoint(best, expect_kind="student")
    assert meta["kind"] == "student" and meta["arch"]["name"] == "s5k"
    assert model.spec == dataclasses.replace(STUDENTS["s5k"], n_classes=3)
    assert TrainConfig.from_dict(meta["train_config"]) == cfg
    assert meta["frontend_hash"] == fs.config.hash and meta["frontend"] == fs.config.to_dict()
    assert meta["classes"] == list(CLASSES) and meta["dataset"]["fingerprint"] == "toy"
    assert meta["teacher"] is None
    assert meta["state_dict_sha256"] == state_dict_sha256(model.state_dict())
    assert meta["best"]["epoch"] == max(
        range(1, EPOCHS + 1), key=lambda e: (float(rows[e - 1]["val_micro"]), -e)
    )
    assert len(meta["metrics"]) == meta["epoch"] == EPOCHS
    last = torch.load(out / "last.pt", weights_only=True)
    assert {"optimizer", "scheduler", "scaler", "bad_epochs"} <= set(last)


def test_resume_gives_identical_weights(fs, tmp_path, monkeypatch):
    spec = dataclasses.replace(STUDENTS["s5k"], dropout=0.3)  # dropout draws random numbers
    cfg = TrainConfig(arch="s5k", epochs=2, mixup_alpha=0.4, mixup_labels="max", **FAST)
    straight = train(cfg, fs, tmp_path / "straight", spec=spec, progress=False)

    real, calls = train_mod._run_epoch, []

    def crash_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "_run_epoch", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, fs, tmp_path / "resumed", spec=spec, progress=False)
    monkeypatch.setattr(train_mod, "_run_epoch", real)
    with pytest.raises(ValueError, match="resume"):
        train(cfg, fs, tmp_path / "resumed", spec=spec, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train(dataclasses.replace(cfg, epochs=3), fs, tmp_path / "resumed", resume=True, spec=spec)
    resumed = train(cfg, fs, tmp_path / "resumed", resume=True, spec=spec, progress=False)

    a = torch.load(straight.parent / "last.pt", weights_only=True)
    b = torch.load(resumed.parent / "last.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for sa, sb in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in a["metrics"]] == [
        {k: v for k, v in r.items() if k not in drop} for r in b["metrics"]
    ]


def test_checkpoint_errors_name_the_file(student_run, tmp_path):
    best = student_run[1]
    with pytest.raises(ValueError, match=rf"{best.name}.*student.*expected a teacher"):
        load_checkpoint(best, expect_kind="teacher")
    missing = tmp_path / "missing.pt"
    with pytest.raises(ValueError, match="missing.pt: no such checkpoint"):
        load_checkpoint(missing)
    data = best.read_bytes()
    for name, content in [("garbage.pt", b"not a checkpoint"), ("cut.pt", data[: len(data) // 2])]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name):
            load_checkpoint(tmp_path / name)
    ckpt = torch.load(best, weights_only=True)
    ckpt["model"]["head.bias"] += 1
    torch.save(ckpt, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match="tampered.pt: weights do not match"):
        load_checkpoint(tmp_path / "tampered.pt")


@pytest.mark.parametrize("term", ["kd", "sp", "iusp"])
def test_distillation_runs_each_term(fs, teacher_ckpt, student_run, tmp_path, term):
    cfg = TrainConfig(arch="s5k", epochs=1, teacher=str(teacher_ckpt), **{term: 1.0}, **FAST)
    best = train(cfg, fs, tmp_path, progress=False)
    row = _rows(tmp_path / "metrics.csv")[0]
    _, meta = load_checkpoint(best, expect_kind="student")
    weight = meta["distill"]["weights"][term]  # calibrated on gradient norms
    assert np.isfinite(float(row[term])) and float(row[term]) > 0 and weight > 0
    expected = float(row["bce"]) + weight * float(row[term])
    assert float(row["loss"]) == pytest.approx(expected, rel=1e-5)
    _, t_meta = load_checkpoint(teacher_ckpt, expect_kind="teacher")
    assert meta["teacher"]["state_dict_sha256"] == t_meta["state_dict_sha256"]
    assert meta["teacher"]["arch"] == "tiny-teacher"
    if term == "kd":  # a student checkpoint is no teacher
        bad = dataclasses.replace(cfg, teacher=str(student_run[1]))
        with pytest.raises(ValueError, match="expected a teacher"):
            train(bad, fs, tmp_path / "bad", progress=False)


# -------------------------------------------------------------------------------- evaluation
def _reference_scores(model, fs, split: str, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip scores computed independently: dequantise, cut windows, clip_forward, sigmoid."""
    idx = fs.indices(split)
    scale, zp = fs.config.input_scale, fs.config.input_zero_point
    silence = (SILENCE_Q - zp) * scale  # padding of short clips: the front end's silence
    scores = []
    with torch.no_grad():
        for i in idx:
            x = (fs.clip(i).astype(np.float32) - zp) * scale
            w = torch.from_numpy(clip_windows(x, model.spec.window_frames, hop, silence))
            scores.append(torch.sigmoid(clip_forward(model, w[None])[0][0]).double().numpy())
    return fs.labels[idx], np.stack(scores)


def test_evaluate_matches_reference_and_saves_thresholds(fs, student_run, tmp_path):
    cfg, best = student_run
    result = evaluate(best, fs, "test", tmp_path / "eval", target_precision=0.8, device="cpu")
    model, meta = load_checkpoint(best)
    labels, scores = _reference_scores(model, fs, "test", cfg.window_hop_frames)
    ref = auprc(labels, scores, CLASSES)
    assert result["metrics"].keys() == ref.keys()
    for k, v in ref.items():
        assert result["metrics"][k] == pytest.approx(v, abs=1e-6), k
    assert result["metrics"]["micro"] == pytest.approx(
        average_precision_score(labels.ravel(), scores.ravel()), abs=1e-6
    )
    val_labels, val_scores = _reference_scores(model, fs, "validate", cfg.window_hop_frames)
    expected = operating_thresholds(val_labels, val_scores, 0.8)
    np.testing.assert_allclose(result["thresholds"]["values"], expected, rtol=1e-6)
    saved = meta["thresholds"]
    assert saved["values"] == result["thresholds"]["values"] and saved["split"] == "validate"
    assert saved["method"] == "target_precision" and saved["target_precision"] == 0.8
    assert meta["state_dict_sha256"] == state_dict_sha256(model.state_dict())
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["metrics"]["micro"] == pytest.approx(result["metrics"]["micro"])
    assert (tmp_path / "eval" / "pr_test.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in best.parent.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("words", [["train", "teacher"], ["train", "student"], ["evaluate"]])
def test_cli_help(words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*words, "--help"])
    assert exit_info.value.code == 0
    assert "usage: aedfw" in capsys.readouterr().out


def test_cli_train_and_evaluate_on_tiny_synth(tmp_path, capsys):
    from model_dev.synth import synth

    data, cache, run = tmp_path / "c", tmp_path / "f", tmp_path / "run"
    synth(data, preset="tiny", jobs=1, progress=False)
    common = ["--data", str(data), "--cache", str(cache), "--jobs", "1"]
    args = ["train", "student", *common, "--out", str(run), "--epochs", "1", "--device", "cpu"]
    assert main(args) == 0
    assert main(["evaluate", str(run / "best.pt"), *common]) == 0
    out = capsys.readouterr().out
    assert "micro-AUPRC" in out and (run / "eval-test" / "evaluation.json").is_file()
    student = ["train", "student", *common, "--out", str(tmp_path / "run2")]
    assert main([*student, "--teacher", str(run / "best.pt")]) == 1
    assert "expected a teacher" in capsys.readouterr().err
    assert main([*student, "--teacher", str(run / "best.pt"), "--distill", "kd,kx"]) == 1
    assert "kx" in capsys.readouterr().err
    assert main([*student, "--distill", "sp"]) == 1
    assert "--teacher" in capsys.readouterr().err


def test_atomic_writes_follow_the_umask(tmp_path):
    import os

    from model_dev.fileio import atomic_dir, atomic_write_text

    def fill(folder):
        (folder / "a.npy").write_bytes(b"x")

    def fail(folder):
        fill(folder)
        raise RuntimeError("interrupted")

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.json", "{}\n")
        atomic_dir(tmp_path / "entry", fill)
        with pytest.raises(RuntimeError, match="interrupted"):
            atomic_dir(tmp_path / "other", fail)
        with pytest.raises(OSError):  # an existing entry is kept, not overwritten
            atomic_dir(tmp_path / "entry", lambda folder: (folder / "b.npy").write_bytes(b"y"))
    finally:
        os.umask(old)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "entry").stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in (tmp_path / "entry").iterdir()) == ["a.npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry", "report.json"]
