"""The synthetic machine corpus: deterministic by seed, the advertised types, IDs and faults."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from model_dev.anomaly.corpus import FAULTS, MACHINE_TYPES, SIZES, generate, synth_clip
from model_dev.anomaly.data import load_dcase
from model_dev.audio import read_audio


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tiny_corpus: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", "tiny", seed=0, progress=False)
    assert _digest(again) == _digest(tiny_corpus)


def test_other_seed_other_instances_and_audio() -> None:
    from model_dev.anomaly.corpus import _instances

    for kind in MACHINE_TYPES:
        a, b = (_instances(kind, np.random.default_rng([s, 0, 7919]), 3)[0] for s in (0, 1))
        assert a["res_f"].tolist() != b["res_f"].tolist()
        x, _ = synth_clip(kind, a, [0, 0, 0, 0, 0], 8000)
        y, _ = synth_clip(kind, a, [1, 0, 0, 0, 0], 8000)
        assert not np.array_equal(x, y)


@pytest.mark.parametrize("kind", MACHINE_TYPES)
def test_ids_are_units_of_one_product_model(kind: str) -> None:
    from model_dev.anomaly.corpus import RHYTHM, SPEED_SPREAD, _instances

    insts = _instances(kind, np.random.default_rng([0, 1, 7919]), 4)
    rhythm = np.sort([i[RHYTHM[kind]] for i in insts])
    # evenly spread over +-SPEED_SPREAD around the model's value (+- a small unit jitter)
    spread = np.linspace(-SPEED_SPREAD, SPEED_SPREAD, 4)
    np.testing.assert_allclose(rhythm / rhythm.mean() - 1, spread, atol=0.01)
    for key in ("res_f", "bearing_hz"):  # shared nominal values, unit tolerances of a few %
        values = np.array([i[key] for i in insts])
        assert np.all(np.abs(values / values.mean(axis=0) - 1) < 0.2)
    if kind in ("fan", "pump"):
        assert len({i["blades" if kind == "fan" else "vanes"] for i in insts}) == 1


def test_faults_change_the_machine_itself() -> None:
    from model_dev.anomaly.corpus import FAULT_SHIFT, SEVERITIES, _faulty

    inst = {"f_rot": 20.0, "stroke_s": 0.8, "whine": 500.0, "open": 0.4, "period_s": 0.3}
    for fault, shift in FAULT_SHIFT.items():
        last = dict.fromkeys(shift, 0.0)
        for sev in SEVERITIES:  # the change grows with severity, in the stated direction
            changed = _faulty(inst, fault, sev)
            for key, rel in shift.items():
                step = changed[key] / inst[key] - 1
                assert np.sign(step) == np.sign(rel) and abs(step) > abs(last[key])
                last[key] = step
            assert _faulty(inst, fault, 3)[key] == pytest.approx(inst[key] * (1 + rel))
    assert _faulty(inst, "no_such_fault", 3) == inst


def test_advertised_types_ids_faults_and_layout(tiny_corpus: Path) -> None:
    size = SIZES["tiny"]
    meta = json.loads((tiny_corpus / "corpus.json").read_text())
    assert meta["machine_types"] == list(MACHINE_TYPES) and len(MACHINE_TYPES) >= 4
    assert len(meta["machine_ids"]) == size.n_ids >= 3
    ms = load_dcase(tiny_corpus)
    assert ms.types == sorted(MACHINE_TYPES)
    with (tiny_corpus / "machines.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(ms.dataset) == 4 * size.n_ids * (size.n_train + 2 * size.n_test)
    for kind in MACHINE_TYPES:
        mine = [r for r in rows if r["machine_type"] == kind]
        assert {r["machine_id"] for r in mine} == set(meta["machine_ids"])
        faults = {r["fault"] for r in mine if r["label"] == "anomaly"}
        assert faults == set(FAULTS[kind]) and len(faults) >= 3
        assert {r["fault"] for r in mine if r["label"] == "normal"} == {""}
        assert {r["split"] for r in mine if r["label"] == "anomaly"} == {"test"}
        assert {float(r["snr_db"]) for r in mine} == {6.0, 0.0, -6.0}
    # DCASE file names, and the loader recovers the labels and severities
    for k, clip in enumerate(ms.dataset.clips):
        kind, split, name = clip.clip_id.split("/")
        label = "anomaly" if clip.labels else "normal"
        assert name.startswith(f"{label}_{ms.machine_ids[k]}_") and split == clip.split
        assert (ms.severities[k] > 0) == bool(clip.labels)
    audio = read_audio(ms.dataset.clips[0].path)
    assert len(audio) == round(size.clip_seconds * 16000)


@pytest.mark.parametrize("kind", MACHINE_TYPES)
def test_severity_grades_the_fault_and_clips_are_seeded(kind: str) -> None:
    from model_dev.anomaly.corpus import _instances

    inst = _instances(kind, np.random.default_rng(3), 3)[0]
    n = 16000
    normal, _ = synth_clip(kind, inst, [5, 1], n)
    again, _ = synth_clip(kind, inst, [5, 1], n)
    np.testing.assert_array_equal(normal, again)
    fault = FAULTS[kind][0]
    diffs = []
    for sev in (1, 2, 3):  # same seed: only the fault level differs
        faulty, _ = synth_clip(kind, inst, [5, 1], n, fault, sev)
        diffs.append(np.abs(faulty.astype(float) - normal).mean())
    assert 0 < diffs[0] < diffs[1] < diffs[2]


def test_bad_arguments_are_named(tmp_path: Path, tiny_corpus: Path) -> None:
    with pytest.raises(ValueError, match="unknown corpus size 'huge'"):
        generate(tmp_path / "x", "huge")
    with pytest.raises(ValueError, match="already exists"):
        generate(tiny_corpus, "tiny")
