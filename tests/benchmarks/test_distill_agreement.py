"""benchmarks/distill.py's agreement of each student with the teacher on the test clips: the
teacher's side, computed once and reused for every student of a size, gives the numbers a fresh
computation gives; kd is a divergence (>= 0); a finished student is measured once."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import distill
from model_dev.train import train
from model_dev.train_config import TrainConfig
from tests.model_dev.test_train import FAST, TINY_TEACHER, toy_features

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Toy features, a teacher and two students (undistilled, KD) in a sweep-like folder."""
    fs, root = toy_features(), tmp_path_factory.mktemp("agreement")
    teacher = train(
        TrainConfig(arch="teacher", epochs=1, **FAST), fs, root / "teacher",
        spec=TINY_TEACHER, progress=False,
    )  # fmt: skip
    for job, fields in {
        "s5k-none-s0": {},
        "s5k-kd-s0": {"teacher": str(teacher), "kd": 1.0},
    }.items():
        cfg = TrainConfig(arch="s5k", epochs=1, patience=0, **FAST, **fields)
        train(cfg, fs, root / "sweep" / "jobs" / job, progress=False)
    return fs, root, teacher


def test_agreement_reuses_the_teacher_side_exactly(trained, tmp_path, monkeypatch):
    fs, root, teacher = trained
    monkeypatch.setattr(distill, "RESULTS", tmp_path)
    path = tmp_path / "distill.json"
    path.write_text(json.dumps({"runs": [{"job": "s5k-none-s0"}, {"job": "s5k-kd-s0"}]}))

    assert distill.export_agreement(root / "sweep", fs, teacher) == 2
    both = json.loads(path.read_text())["agreement"]["jobs"]
    for terms in both.values():
        assert set(terms) == {"kd", "sp", "iusp"}
        assert terms["kd"] >= -1e-6 and terms["sp"] > 0 and terms["iusp"] > 0
    assert both["s5k-none-s0"] != both["s5k-kd-s0"]

    # the KD student alone computes the teacher's side itself: the same numbers
    doc = json.loads(path.read_text())
    del doc["agreement"]["jobs"]["s5k-kd-s0"]
    path.write_text(json.dumps(doc))
    assert distill.export_agreement(root / "sweep", fs, teacher) == 2
    assert json.loads(path.read_text())["agreement"]["jobs"] == both

    # a student with a result is not measured again
    doc["agreement"]["jobs"]["s5k-kd-s0"] = {"kd": 9.0, "sp": 9.0, "iusp": 9.0}
    path.write_text(json.dumps(doc))
    distill.export_agreement(root / "sweep", fs, teacher)
    assert json.loads(path.read_text())["agreement"]["jobs"]["s5k-kd-s0"]["kd"] == 9.0
