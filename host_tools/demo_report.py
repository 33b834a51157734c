"""``report.html`` of a demo run: one self-contained page gathering what the run wrote.

Sections (each an anchor): AUPRC table (micro, macro and per-class AP of every model), PR curves
(the test split, from each model's evaluation), Pareto plot (micro-AUPRC against int8 weight
bytes), quantisation and parity (float vs int8 scores, TFLM vs LiteRT), memory map (flash and
RAM of the Cortex-M4 image per part), validation (pass/fail, cycles, the link, host-vs-device
features and scores, latency). It is built from the run folder's files only (``report.json``,
the evaluations' ``pr_test.png``, the quantiser's report, ``fw/memory.json``, the validation
folder), so it can be rebuilt for any finished run with :func:`demo_html`.

:func:`anomaly_demo_html` is the page of ``aedfw demo --task anomaly``: AUC/pAUC per machine
type (float, int8, device), and per type the memory map and the validation section.
"""

from __future__ import annotations

import json
from pathlib import Path

from host_tools.validate_report import add_validation_section
from model_dev.html_report import HtmlReport, png_of, pyplot

#: The demo's models: report key, run sub-folder, label.
MODELS = (
    ("teacher", "teacher", "teacher"),
    ("student_none_float", "student-none", "student, no distillation"),
    ("student_float", "student", "student, IUSP"),
)


def demo_html(run: str | Path) -> Path:
    """Write ``run/report.html`` from a finished demo run folder; returns its path.

    Raises
    ------
    FileNotFoundError
        The run has no ``report.json`` (not finished); the message names it.
    """
    run = Path(run)
    r = json.loads((run / "report.json").read_text())
    cfg = r["config"]
    page = HtmlReport(f"aedfw demo: {cfg['student']} on the {r['corpus']['preset']} corpus")
    v = r["validation"]
    verdict = "PASS" if v["passed"] else "FAIL"
    page.text(
        f"Validation {verdict}: {v['n_matched']}/{v['n_requested']} test clips byte-identical "
        f"on the emulated {cfg['target']} device. Corpus seed {r['corpus']['seed']}, "
        f"{r['corpus']['clips']} clips, {len(r['corpus']['classes'])} classes; front end "
        f"{r['frontend']['hash'][:12]}.",
        "pass" if v["passed"] else "fail",
    )
    _auprc(page, r)
    page.section("pr-curves", "PR curves (test split)")
    for _, folder, label in MODELS:
        png = run / folder / "eval-test" / "pr_test.png"
        if png.is_file():
            page.figure(png, f"{label}: precision-recall per class")
    _pareto(page, run, r)
    _quantisation(page, run, r)
    _memory(page, r["memory"])
    add_validation_section(page, r["validation"], run / "validation")
    _timings(page, r)
    return page.write(run / "report.html")


def anomaly_demo_html(run: str | Path) -> Path:
    """Write ``run/report.html`` from a finished anomaly demo run folder; returns its path."""
    run = Path(run)
    r = json.loads((run / "report.json").read_text())
    cfg, types = r["config"], r["per_type"]
    page = HtmlReport(f"aedfw anomaly demo: {cfg['method']} on the {r['corpus']['size']} corpus")
    page.text(
        f"Validation {'PASS' if r['passed'] else 'FAIL'} on the emulated {cfg['target']} "
        f"device for machine type(s) {', '.join(types)}. Corpus seed {r['corpus']['seed']}, "
        f"{r['corpus']['clips']} clips; {cfg['epochs']} epochs per detector.",
        "pass" if r["passed"] else "fail",
    )
    page.section("auc", "AUC / pAUC per machine type (test split)")
    rows = []
    for mtype, t in types.items():
        dev = (t["validation"]["metrics"] or {}).get("device") or {}
        rows += [[mtype, k, t["float"][k], t["int8"][k], dev.get(k)] for k in ("auc", "pauc")]
    page.table(["machine type", "metric", "float", "int8 (host)", "device"], rows,
               anchor="auc-table")  # fmt: skip
    page.text(f"pAUC: {r['pauc_convention']}; means over machine IDs.")
    for mtype, t in types.items():
        _memory(page, t["memory"], f"memory-{mtype}", f" ({mtype})")
        add_validation_section(page, t["validation"], run / f"validation-{mtype}", f"-{mtype}")
    _timings(page, r)
    return page.write(run / "report.html")


def _timings(page: HtmlReport, r: dict) -> None:
    page.section("timings", "Timings")
    page.table(
        ["stage", "wall s", "CPU s"],
        [[k.removesuffix("_s"), r["timings"][k], r["cpu_s"][k]] for k in r["timings"]]
        + [["total", r["total_s"], r["total_cpu_s"]]],
    )


def _auprc(page: HtmlReport, r: dict) -> None:
    a, classes, student = r["auprc"], r["corpus"]["classes"], r["config"]["student"]
    rows = [
        ("trivial baseline (mean log-mel)", r["baseline_auprc"]),
        (f"teacher ({r['config']['teacher_arch']})", a["teacher"]),
        (f"{student} float, no distillation", a["student_none_float"]),
        (f"{student} float, IUSP (same seed)", a["student_float"]),
        (f"{student} int8 (TFLM, host)", a["student_int8"]),
        (f"{student} int8 on the device ({r['validation']['n_requested']} clips)", a["device"]),
        ("same clips, int8 on the host", a["device_host_reference"]),
    ]
    page.section("auprc", "AUPRC")
    page.table(
        ["model", "micro", "macro", *classes],
        [[n, (m or {}).get("micro"), (m or {}).get("macro")]
         + [(m or {}).get(f"ap/{c}") for c in classes] for n, m in rows],
        anchor="auprc-table",
    )  # fmt: skip


def _pareto(page: HtmlReport, run: Path, r: dict) -> None:
    from model_dev.arch import ArchSpec, spec_stats
    from model_dev.checkpoint import load_checkpoint

    points = []
    for key, folder, label in MODELS:
        _, meta = load_checkpoint(run / folder / "best.pt")
        size = spec_stats(ArchSpec.from_dict(meta["arch"]))["weight_bytes_int8"]
        points.append((label, size, r["auprc"][key]["micro"]))
    _, size, _ = points[-1]
    points.append(("student, IUSP, int8", size, r["auprc"]["student_int8"]["micro"]))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, x, y in points:
        ax.scatter([x], [y], s=40, label=f"{label} ({y:.3f})")
    ax.axhline(r["baseline_auprc"]["micro"], color="grey", ls=":", label="trivial baseline")
    ax.set(xscale="log", xlabel="int8 weight bytes", ylabel="test micro-AUPRC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    page.section("pareto", "Size against AUPRC")
    page.figure(png_of(fig), "micro-AUPRC against int8 weight bytes", anchor="pareto-plot")
    page.table(["model", "int8 weight bytes", "micro-AUPRC"], points)


def _quantisation(page: HtmlReport, run: Path, r: dict) -> None:
    q = r["quantize"]
    p = q["tflm_vs_litert"]
    page.section("quantisation", "Quantisation and parity")
    page.table(
        ["", "value"],
        [
            ["model (.tflite) bytes", q["model_bytes"]],
            ["TFLM arena bytes", q["arena_bytes"]],
            ["evaluated clips", q["evaluated_clips"]],
            ["float micro-AUPRC (same clips)", r["auprc"]["student_float_quant_split"]["micro"]],
            ["int8 micro-AUPRC (TFLM)", r["auprc"]["student_int8"]["micro"]],
            ["TFLM = LiteRT reference kernels", f"{p.get('exact_match_rate', float('nan')):.2%}"],
            ["largest TFLM vs LiteRT difference (LSB)", p.get("max_lsb_diff")],
            ["C front end = Python (clips)", r["c_frontend_parity"]["clips"]],
        ],
        anchor="parity-table",
    )
    png = run / f"{r['config']['student']}.scores.png"
    if png.is_file():
        page.figure(png, "float against int8 scores, per class")


def _memory(page: HtmlReport, m: dict, anchor: str = "memory", what: str = "") -> None:
    page.section(anchor, f"Memory map (Cortex-M4 image){what}")
    rows = [["flash", k, v] for k, v in m["flash"].items()]
    rows += [["RAM", k, v] for k, v in m["ram"].items()]
    page.table(["region", "part", "bytes"], rows, anchor=f"{anchor}-table")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    for ax, (name, parts) in zip(axes, (("flash", m["flash"]), ("RAM", m["ram"])), strict=True):
        items = [(k, v) for k, v in parts.items() if k != "total"]
        ax.barh([k for k, _ in items], [v for _, v in items])
        ax.set(title=f"{name}: {parts['total']} bytes", xlabel="bytes")
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    page.figure(png_of(fig), "flash and RAM per part", anchor=f"{anchor}-plot")
