"""benchmarks/anomaly_device.py: the merge into anomaly.json, the float check against the
benchmark's seed-0 runs and the docs section (fast, from run rows of the shape a job returns),
and one whole job on the tiny corpus: train, quantize, package, validation over a pty and the
Cortex-M4 cost under QEMU, resumed from jobs.jsonl (slow)."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks import anomaly_device as ad
from model_dev.anomaly.corpus import GENERATOR_VERSION


def _row(method: str, mtype: str, auc: float, *, device_auc: float | None = None) -> dict:
    """A job's row as ``anomaly_device._job`` returns it (device = int8 unless given)."""
    int8 = {"auc": auc + 0.002, "pauc": 0.3}
    device = int8 if device_auc is None else {"auc": device_auc, "pauc": 0.3}
    return {
        "method": method,
        "machine_type": mtype,
        "seed": 0,
        "float": {"auc": auc, "pauc": 0.25},
        "int8": int8,
        "host_validate": int8,
        "device": device,
        "validation": {"passed": device_auc is None, "n_matched": 216, "n_requested": 216},
        "model": {"tflite_bytes": 318000, "tflm_arena_bytes": 22192},
    }


def _cost() -> dict:
    return {
        "flash_bytes": 330000, "flash_bytes_without_selftest": 320000, "ram_bytes": 43000,
        "library_flash_bytes": 300000,
        "activation_bytes": 512, "frontend_per_frame": 110000, "model_per_inference": 900000,
        "score_per_window": 13000, "hop_frames": 1, "per_second_at_hop": 31_960_000,
        "inferences_per_second": 31.25,
    }  # fmt: skip


def _benchmark(version: int = GENERATOR_VERSION) -> dict:
    runs = [
        {"method": m, "machine_type": t, "seed": s, "auc": 0.7 + s / 10, "pauc": 0.25}
        for m in ("dense_ae", "vae")
        for t in ("fan", "pump")
        for s in (0, 1)
    ]
    return {"date": "today", "corpus": {"size": "default", "generator_version": version},
            "runs": runs, "specs": {"x": 1}}  # fmt: skip


def _device(rows: list[dict], benchmark: dict) -> dict:
    meta = {"command": "c", "date": "d", "machine": "m",
            "corpus": {"size": "default", "seed": 0, "generator_version": GENERATOR_VERSION,
                       "test_clips_per_type": 216}}  # fmt: skip
    rows[0]["cortex_m4"] = _cost()
    return ad.summarise(rows, meta, benchmark)


def test_float_check_compares_seed_0_runs_of_the_same_corpus_version():
    rows = [_row("dense_ae", "fan", 0.7), _row("dense_ae", "pump", 0.7 + 1e-9)]
    check = ad.float_check(rows, _benchmark())
    assert check["status"].startswith("differs") and "1.00e-09" in check["status"]
    assert check["differences"]["dense_ae/fan"] == {"auc": 0.0, "pauc": 0.0}
    assert ad.float_check(rows[:1], _benchmark())["status"] == "equal"
    assert "not compared" in ad.float_check(rows, _benchmark(GENERATOR_VERSION - 1))["status"]
    assert ad.float_check([_row("group_made", "fan", 0.7)], _benchmark())["missing"] == [
        "group_made/fan"
    ]


def test_merge_adds_device_figures_to_the_seed_0_runs_only(tmp_path):
    bm = _benchmark()
    path = tmp_path / "anomaly.json"
    path.write_text(json.dumps(bm))
    dev = _device([_row("dense_ae", "fan", 0.7), _row("dense_ae", "pump", 0.7)], bm)
    assert dev["device_equals_int8"] and dev["all_validations_passed"]
    dev["float_vs_benchmark"] = {"status": "stale"}
    merged = ad.merge(dev, path)
    assert dev["float_vs_benchmark"]["status"] == "equal"  # recomputed against this file
    assert merged["specs"] == bm["specs"] and merged["date"] == "today"
    assert merged["device"]["runs_merged"] == 2
    assert merged["device"]["cortex_m4"]["dense_ae"]["per_second_at_hop"] == 31_960_000
    for run, old in zip(merged["runs"], bm["runs"], strict=True):
        added = set(run) - set(old)
        if run["method"] == "dense_ae" and run["seed"] == 0:
            assert added == {"int8_auc", "int8_pauc", "device_auc", "device_pauc"}
            assert run["device_auc"] == run["int8_auc"] == pytest.approx(0.702)
        else:
            assert not added
    path.write_text(json.dumps(_benchmark(GENERATOR_VERSION - 1)))
    with pytest.raises(SystemExit, match="not merged"):
        ad.merge(dev, path)


def test_report_shows_float_int8_device_costs_and_anchors(tmp_path):
    bad = _row("dense_ae", "pump", 0.8, device_auc=0.5)
    dev = _device([_row("dense_ae", "fan", 0.7), bad], _benchmark())
    assert not dev["device_equals_int8"] and not dev["all_validations_passed"]
    text = ad.report(dev)
    assert "| dense_ae | fan | 0.700 | 0.702 | 0.702 |" in text
    assert "| dense_ae | pump | 0.800 | 0.802 | 0.500 |" in text and "216/216 FAIL" in text
    assert "| dense_ae | **mean** | 0.750 | 0.752 | 0.601 |" in text
    assert "NOT every" in text and "NOT equal to" in text
    assert "| 900,000 | 13,000 | 1 | 31.96 M |" in text
    assert "Front end: 110,000-110,000 instructions per frame" in text and "3.44 M per" in text
    assert "277 KB" in text and "6.9 ms" in text and "MicroNet" in text
    assert "`vae` (host-only method)" in text
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nkept\n")
    from model_dev.fileio import write_marked_section

    write_marked_section(docs, ad.BEGIN, ad.END, text)
    write_marked_section(docs, ad.BEGIN, ad.END, text)
    assert docs.read_text().count("## Anomaly detection on the device") == 1
    assert "kept" in docs.read_text()


@pytest.mark.slow
@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("gcc", "make", "arm-none-eabi-gcc", "qemu-system-arm")),
    reason="needs gcc, make, arm-none-eabi-gcc and qemu-system-arm",
)
def test_quick_run_validates_on_the_device_and_resumes(tmp_path, capsys):
    args = ["--quick", "--methods", "dense_ae_small", "--types", "fan", "--work", str(tmp_path)]
    assert ad.main(args) == 0
    out = tmp_path / "quick" / "anomaly_device.json"
    r = json.loads(out.read_text())
    (row,) = r["runs"]
    assert row["validation"]["passed"] and row["validation"]["n_matched"] == 36
    assert row["device"] == row["int8"] == row["host_validate"] and r["device_equals_int8"]
    assert row["float"] == row["float_quantize_report"]
    c = r["cortex_m4"]["dense_ae_small"]
    assert c["score_validation_passed"] and c["hop_frames"] == 1
    assert c["flash_bytes"] > c["library_flash_bytes"] > c["tflite_bytes"] // 2
    assert 0 < c["score_per_window"] < c["model_per_inference"]
    per_s = 31.25 * (c["frontend_per_frame"] + c["model_per_inference"] + c["score_per_window"])
    assert abs(c["per_second_at_hop"] - per_s) <= 32  # the score per window is rounded
    capsys.readouterr()
    assert ad.main(args) == 0  # resumed: the job is read back from jobs.jsonl
    assert "1 of 1 jobs done; running 0" in capsys.readouterr().out


def test_float_check_reads_a_running_benchmarks_work_folder(tmp_path):
    (tmp_path / "corpus").mkdir()
    made = {"generator_version": GENERATOR_VERSION, "size": {"name": "default"}, "seed": 0}
    (tmp_path / "corpus" / "corpus.json").write_text(json.dumps(made))
    finished = [
        {"key": "method/dense_ae/fan/0", "result": _benchmark()["runs"][0]},
        {"key": "zero_shot/dense_ae/fan/0", "result": {"rows": [], "train_s": 1.0}},
    ]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(f) + "\n" for f in finished))
    bm = ad._benchmark(tmp_path)
    assert len(bm["runs"]) == 1 and bm["corpus"]["generator_version"] == GENERATOR_VERSION
    rows = [_row("dense_ae", "fan", 0.7), _row("dense_ae", "pump", 0.7)]
    check = ad.float_check(rows, bm)
    assert check["status"] == "equal" and check["missing"] == ["dense_ae/pump"]
    assert ad._check_words(check, 2).startswith("equal on the 1 of 2 runs it has, from the fin")
    assert check["benchmark_source"] == str(tmp_path / "jobs.jsonl")
