"""benchmarks/distill.py's per-class table: each cell is the paired per-class AP difference
scikit-learn computes, over the seeds both arms have."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score

from benchmarks import distill


def test_class_table_matches_sklearn(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    truth = (rng.random((40, 3)) < 0.4).astype(int)
    arms = {("none", 0), ("none", 1), ("sp", 0), ("sp", 1), ("iusp", 0)}  # iusp: one seed
    jobs = sorted(f"s5k-{arm}-s{seed}" for arm, seed in arms)
    scores = rng.random((len(jobs), 40, 3)).astype(np.float32)
    monkeypatch.setattr(distill, "SCORES", tmp_path / "scores.npy")
    np.save(distill.SCORES, scores)
    doc = {
        "runs": [{"job": j, "size": "s5k", "arm": j.split("-")[1], "seed": j[-1]} for j in jobs],
        "scores": {
            "jobs": jobs,
            "truth": ["".join(map(str, row)) for row in truth],
            "classes": ["a", "b", "c"],
        },
    }
    lines = distill._class_lines(doc)
    a, b, c = truth.sum(0)
    assert f"Test clips per class: a {a}, b {b}, c {c}." in lines[0]

    def ap(job: str, c: int) -> float:
        return average_precision_score(truth[:, c], scores[jobs.index(job)][:, c])

    rows = {line.split(" | ")[1]: line.split(" | ")[2:] for line in lines if "| s5k |" in line}
    assert set(rows) == {"none (AP)", "sp − none"}  # iusp has one seed: no standard error
    none_ap = np.mean([ap("s5k-none-s0", 1), ap("s5k-none-s1", 1)])
    assert rows["none (AP)"][1] == f"{none_ap:.3f}"
    d = [ap(f"s5k-sp-s{k}", 2) - ap(f"s5k-none-s{k}", 2) for k in (0, 1)]
    assert rows["sp − none"][2] == f"{np.mean(d):+.3f} ± {abs(d[0] - d[1]) / 2:.3f} |"
