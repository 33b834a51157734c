"""benchmarks/distill.py's goal table: each size's verdicts follow from its paired seeds and
RI, with the s5k goal stricter than the others."""

from __future__ import annotations

from benchmarks import distill
from model_dev.sweep_report import paired, ri_interval


def _report(micro: dict[tuple[str, str], list[float]]) -> dict:
    jobs = [
        {"student": size, "method": arm, "seed": seed, "micro": v}
        for (size, arm), values in micro.items()
        for seed, v in enumerate(values)
    ]
    sizes = dict.fromkeys(size for size, _ in micro)
    ri = {s: ri_interval(paired(jobs, s, "sp"), paired(jobs, s, "iusp")) for s in sizes}
    return {"jobs": jobs, "ri": ri}


def _row(lines: list[str], size: str) -> list[str]:
    (row,) = [line for line in lines if line.startswith(f"| {size} |")]
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_goal_table_verdicts():
    # RI = (iusp - sp) / (sp - none) = 0.5 at both sizes: met for s70k (>= 27 %), missed for s5k
    arms = {
        "none": [0.70, 0.71, 0.72],
        "sp": [0.72, 0.73, 0.74],
        "iusp": [0.73, 0.74, 0.75],
        "kd": [0.71, 0.72, 0.73],
        "kd+sp": [0.71, 0.72, 0.73],
        "kd+iusp": [0.70, 0.71, 0.74],  # below kd on average
    }
    micro = {(size, arm): v for size in ("s5k", "s70k") for arm, v in arms.items()}
    micro[("s70k", "kd+sp")] = micro[("s70k", "kd+sp")][:2]  # seed 2 lacks an arm
    lines = distill._goal_lines(_report(micro))
    s5k, s70k = _row(lines, "s5k"), _row(lines, "s70k")
    assert s5k[1] == "3" and s70k[1] == "2"
    assert s5k[5] == "**met**" and s5k[6] == "+0.0100 ± 0.0000 (3 of 3)"
    assert s5k[7].startswith("50 % [") and s5k[8] == "≥ 122 %: missed"
    assert s70k[8] == "≥ 27 %: **met**"
    assert s5k[9:] == ["0.7200", "0.7167", "missed"]


def test_goal_table_undefined_ri():
    arms = {a: [0.70, 0.71] for a in distill.ARMS} | {"sp": [0.69, 0.70]}  # sp below none
    lines = distill._goal_lines(_report({("s20k", a): v for a, v in arms.items()}))
    row = _row(lines, "s20k")
    assert row[5] == "missed" and row[7] == "undefined" and row[8] == "≥ 27 %: missed"
    assert "RI undefined at s20k: sp - none = -0.0100" in lines[-1]
