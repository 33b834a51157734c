"""A sweep's report: per-job rows, per-arm summaries (mean ± standard error, paired differences
to ``none``), RI with a bootstrap interval, Markdown tables and the Pareto plot. It reads only the
finished jobs' ``result.json`` files, so it also works on a partial sweep."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model_dev.arch import ArchSpec, spec_stats
from model_dev.fileio import atomic_write_text, write_csv
from model_dev.html_report import HtmlReport
from model_dev.sweep_config import RESULT, SweepConfig


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from None


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sample SD with ddof 1 over sqrt(n); NaN below two values)."""
    arr = np.asarray(values, dtype=np.float64)
    if not len(arr):
        return math.nan, math.nan
    se = float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else math.nan
    return float(arr.mean()), se


def relative_improvement(none: float, sp: float, iusp: float) -> float:
    """``(iusp - sp) / (sp - none)``; NaN when ``sp - none <= 0`` or an input is NaN."""
    if any(math.isnan(v) for v in (none, sp, iusp)) or sp - none <= 0:
        return math.nan
    return (iusp - sp) / (sp - none)


def paired(rows: list[dict], student: str, arm: str, base: str = "none") -> dict[int, float]:
    """Seed -> micro-AUPRC of ``arm`` minus ``base`` for the seeds run in both."""
    by = {
        m: {
            int(r["seed"]): float(r["micro"])
            for r in rows
            if (r["student"], r["method"]) == (student, m)
        }
        for m in (arm, base)
    }
    return {s: by[arm][s] - by[base][s] for s in sorted(by[arm].keys() & by[base].keys())}


def ri_interval(
    d_sp: dict[int, float], d_iusp: dict[int, float], n_boot: int = 4000, level: float = 0.9
) -> dict:
    """RI of paired differences to ``none`` with a percentile-bootstrap interval over seeds.

    Parameters
    ----------
    d_sp, d_iusp : dict of int to float
        Seed -> ``sp - none`` and ``iusp - none`` (micro-AUPRC).
    n_boot : int
        Bootstrap resamples of the seeds (fixed RNG seed: the report is reproducible).
    level : float
        Coverage of the interval.

    Returns
    -------
    dict
        ``ri`` (NaN when undefined), ``lo``, ``hi``, ``n_seeds`` and ``status``: ``"ok"``, or
        why RI is undefined: too few paired seeds, or ``sp - none`` not above its noise (mean
        not more than two standard errors above 0).
    """
    seeds = sorted(d_sp.keys() & d_iusp.keys())
    out = {"ri": math.nan, "lo": math.nan, "hi": math.nan, "n_seeds": len(seeds)}
    if len(seeds) < 2:
        return out | {"status": "fewer than 2 paired seeds"}
    a = np.array([d_sp[s] for s in seeds])
    b = np.array([d_iusp[s] for s in seeds])
    mean, se = mean_se(a)
    if not mean > 2 * se:
        return out | {"status": f"sp - none = {mean:+.4f} ± {se:.4f} (SE) is not above noise"}
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
    den, num = a[pick].mean(1), b[pick].mean(1) - a[pick].mean(1)
    boot = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    tail = (1 - level) / 2
    lo, hi = np.nanquantile(boot, [tail, 1 - tail]) if np.isfinite(boot).any() else (np.nan,) * 2
    ri = (b.mean() - a.mean()) / a.mean()
    return out | {"ri": float(ri), "lo": float(lo), "hi": float(hi), "status": "ok"}


def micro_ap(truth: np.ndarray, scores: np.ndarray) -> float:
    """Micro average precision of multi-hot ``truth`` and ``scores`` (both ``[clips,
    classes]``), equal to scikit-learn's ``average_precision_score`` on the flattened arrays
    (tied scores form one threshold), in a few vectorised steps: the bootstrap calls it
    thousands of times."""
    y, s = np.asarray(truth).ravel() > 0, np.asarray(scores).ravel()
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last entry of each distinct score
    tp = np.cumsum(y)[ends]
    if not len(tp) or tp[-1] == 0:
        return math.nan
    precision, recall = tp / (ends + 1), tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def paired_bootstrap(
    truth: np.ndarray,
    arm: dict[int, np.ndarray],
    base: dict[int, np.ndarray],
    n_boot: int = 1000,
    level: float = 0.9,
) -> dict:
    """Micro-AUPRC of ``arm`` minus ``base`` over paired seeds, with a bootstrap interval that
    resamples both the seeds and the evaluation clips (the same clips for both arms and every
    seed): a seed standard error alone ignores that the test set is a sample too.

    Parameters
    ----------
    truth : np.ndarray
        Multi-hot labels ``[clips, classes]``.
    arm, base : dict of int to np.ndarray
        Seed -> clip scores ``[clips, classes]``.

    Returns
    -------
    dict
        ``diff`` (mean paired difference on all clips), ``lo``, ``hi`` (percentile interval),
        ``p_above`` (share of resamples above 0), ``n_seeds``.
    """
    seeds = sorted(arm.keys() & base.keys())
    if not seeds:
        return {"diff": math.nan, "lo": math.nan, "hi": math.nan, "p_above": math.nan, "n_seeds": 0}
    truth = np.asarray(truth)
    diff = float(np.mean([micro_ap(truth, arm[s]) - micro_ap(truth, base[s]) for s in seeds]))
    rng = np.random.default_rng(0)
    boot = np.empty(n_boot)
    for b in range(n_boot):
        clips = rng.integers(0, len(truth), len(truth))
        picked = rng.integers(0, len(seeds), len(seeds))
        t = truth[clips]
        d = {i: micro_ap(t, arm[seeds[i]][clips]) - micro_ap(t, base[seeds[i]][clips])
             for i in set(picked.tolist())}  # fmt: skip
        boot[b] = np.mean([d[i] for i in picked])
    tail = (1 - level) / 2
    lo, hi = np.quantile(boot, [tail, 1 - tail])
    return {
        "diff": diff,
        "lo": float(lo),
        "hi": float(hi),
        "p_above": float((boot > 0).mean()),
        "n_seeds": len(seeds),
    }


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def plus_minus(mean: float, se: float, signed: bool = False) -> str:
    """``mean ± se`` to 4 decimals (``signed``: with a sign; one value: "(1 seed)")."""
    if math.isnan(mean):
        return "—"
    text = f"{mean:+.4f}" if signed else f"{mean:.4f}"
    return f"{text} ± {_fmt(se)}" if not math.isnan(se) else f"{text} (1 seed)"


def _pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (fewer or equal bytes and higher AUPRC)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _plot(rows: list[dict], teacher: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"none": "o", "kd": "s", "sp": "^", "iusp": "D", "kd+sp": "v", "kd+iusp": "P"}
    pts = [r for r in rows if not math.isnan(r["micro_mean"])]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, m in enumerate(markers):
        sel = [r for r in pts if r["method"] == m]
        if sel:
            ax.errorbar(  # arms side by side around their size (log axis: a factor apart)
                [r["weight_bytes_int8"] * 1.06 ** (k - 2.5) for r in sel],
                [r["micro_mean"] for r in sel],
                yerr=[0 if math.isnan(r["micro_se"]) else r["micro_se"] for r in sel],
                fmt=markers[m],
                capsize=3,
                label=m,
            )
    front = [pts[i] for i in _pareto([(r["weight_bytes_int8"], r["micro_mean"]) for r in pts])]
    if front:
        ax.plot(
            [r["weight_bytes_int8"] for r in front],
            [r["micro_mean"] for r in front],
            "k--",
            lw=1,
            drawstyle="steps-post",
            label="Pareto front",
        )
    ax.axhline(teacher["micro"], color="grey", ls=":", label=f"teacher ({teacher['micro']:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("int8 weight bytes")
    ax.set_ylabel(f"micro-AUPRC ({teacher['split']}, mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _job_rows(out: Path, config: SweepConfig, teacher: str) -> tuple[list[dict], list[str]]:
    """One row per finished job (metrics and the student's size), and the missing job names."""
    job_rows, missing = [], []
    stats: dict[str, dict] = {}
    for name, _ in config.jobs(teacher):
        path = out / "jobs" / name / RESULT
        if not path.is_file():
            missing.append(name)
            continue
        r = read_json(path)
        key = json.dumps(r["arch"], sort_keys=True)
        if key not in stats:
            stats[key] = spec_stats(ArchSpec.from_dict(r["arch"], str(path)))
        st = stats[key]
        job_rows.append(
            {
                "job": name,
                "student": r["student"],
                "method": r["method"],
                "seed": r["seed"],
                "micro": r["micro"],
                "macro": r["macro"],
                "val_micro": r["val_micro"],
                "best_epoch": r["best_epoch"],
                "epochs_run": r["epochs_run"],
                "epochs": r["train_config"]["epochs"],
                "seconds_per_epoch": r["seconds_per_epoch"],
                "params": st["params"],
                "macs": st["macs"],
                "weight_bytes_int8": st["weight_bytes_int8"],
                "activation_bytes_int8": st["activation_bytes_int8"],
            }
        )
    return job_rows, missing


def _summary(job_rows: list[dict], config: SweepConfig) -> tuple[list[dict], dict]:
    """Per student x arm: means ± SE, paired differences to none; per student: RI."""
    summary, ri = [], {}
    for s in config.students:
        for m in config.methods:
            sel = [r for r in job_rows if r["student"] == s and r["method"] == m]
            micro, micro_se = mean_se([r["micro"] for r in sel])
            macro, macro_se = mean_se([r["macro"] for r in sel])
            diff, diff_se = mean_se(list(paired(job_rows, s, m).values()))
            epochs = [r["best_epoch"] for r in sel]
            size = {k: sel[0][k] if sel else "" for k in ("params", "macs")}
            size |= {
                k: sel[0][k] if sel else "" for k in ("weight_bytes_int8", "activation_bytes_int8")
            }
            summary.append(
                {"student": s, "method": m, "n_seeds": len(sel), "micro_mean": micro}
                | {"micro_se": micro_se, "macro_mean": macro, "macro_se": macro_se}
                | {"diff_none_mean": diff, "diff_none_se": diff_se}
                | {
                    "best_epoch_min": min(epochs, default=""),
                    "best_epoch_max": max(epochs, default=""),
                }
                | {"epochs": max((r["epochs"] for r in sel), default="")}
                | size
            )
        ri[s] = ri_interval(paired(job_rows, s, "sp"), paired(job_rows, s, "iusp"))
        for row in summary[-len(config.methods) :]:
            row |= {f"ri_{k}": ri[s][k] for k in ("ri", "lo", "hi")}
    return summary, ri


def write_report(out_dir: str | Path) -> dict:
    """(Re)write a sweep's tables and plot from its finished jobs.

    Parameters
    ----------
    out_dir : str or Path
        A :func:`sweep` folder (needs ``sweep_config.json`` and ``teacher.json``; jobs without
        ``result.json`` are left out and counted as missing).

    Returns
    -------
    dict
        ``jobs`` (rows of ``sweep.csv``), ``summary`` (rows of ``summary.csv``), ``ri``
        (student -> :func:`ri_interval`), ``teacher`` (its evaluation), ``missing`` (job names
        without results) and ``files``.
    """
    out = Path(out_dir)
    saved = read_json(out / "sweep_config.json")
    config = SweepConfig.from_dict(saved["config"], str(out / "sweep_config.json"))
    teacher = read_json(out / "teacher.json")
    job_rows, missing = _job_rows(out, config, saved["teacher"])
    summary, ri = _summary(job_rows, config)
    files = {
        "jobs": out / "sweep.csv",
        "summary": out / "summary.csv",
        "markdown": out / "sweep.md",
    }
    if job_rows:
        write_csv(files["jobs"], job_rows)
    write_csv(files["summary"], summary)
    md = markdown_tables(summary, ri, teacher, config)
    atomic_write_text(files["markdown"], md)
    if job_rows:
        files["pareto"] = out / "pareto.png"
        _plot([r for r in summary if r["n_seeds"]], teacher, files["pareto"])
    files["html"] = _html(summary, ri, teacher, config, files.get("pareto")).write(
        out / "report.html"
    )
    return {
        "jobs": job_rows,
        "summary": summary,
        "ri": ri,
        "teacher": teacher,
        "missing": missing,
        "files": {k: str(v) for k, v in files.items()},
    }


def _html(
    summary: list[dict], ri: dict, teacher: dict, config: SweepConfig, pareto: Path | None
) -> HtmlReport:
    """``report.html``: the tables of :func:`markdown_tables` and the Pareto plot, one page."""
    page = HtmlReport(
        f"aedfw sweep: {', '.join(config.students)} against {teacher['arch']['name']}"
    )
    page.text(
        f"Teacher {teacher['arch']['name']}: micro-AUPRC {teacher['micro']:.4f}, macro "
        f"{teacher['macro']:.4f} on the {teacher['split']} split. AUPRC: mean ± standard error "
        "over seeds; Δ: paired difference to none (same seeds)."
    )
    page.section("auprc", "AUPRC per student and arm")
    header = ["student", "arm", "seeds", "micro-AUPRC", "macro-AUPRC", "Δ micro vs none"]
    header += ["params", "MACs", "int8 weight bytes", "activation bytes"]
    page.table(
        header,
        [
            [r["student"], r["method"], r["n_seeds"], plus_minus(r["micro_mean"], r["micro_se"]),
             plus_minus(r["macro_mean"], r["macro_se"]),
             "—" if r["method"] == "none"
             else plus_minus(r["diff_none_mean"], r["diff_none_se"], signed=True),
             r["params"], r["macs"], r["weight_bytes_int8"], r["activation_bytes_int8"]]
            for r in summary
        ],
        anchor="auprc-table",
    )  # fmt: skip
    page.section("ri", "Relative improvement of IUSP over SP")
    rows = []
    for s in config.students:
        r = ri[s]
        ok = r["status"] == "ok"
        interval = f"[{100 * r['lo']:.1f}%, {100 * r['hi']:.1f}%]" if ok else "—"
        rows.append([s, f"{100 * r['ri']:.1f}%" if ok else f"undefined: {r['status']}", interval,
                     r["n_seeds"]])  # fmt: skip
    page.table(["student", "RI = (iusp − sp) / (sp − none)", "90% interval", "seeds"], rows)
    if pareto is not None:
        page.section("pareto", "Pareto plot")
        page.figure(pareto, "micro-AUPRC against int8 weight bytes", anchor="pareto-plot")
    return page


def markdown_tables(summary: list[dict], ri: dict, teacher: dict, config: SweepConfig) -> str:
    """The Markdown tables of :func:`write_report` (full table, then paired gains and RI)."""
    lines = [
        f"Teacher ({teacher['arch']['name']}): micro-AUPRC {teacher['micro']:.4f}, macro "
        f"{teacher['macro']:.4f} on `{teacher['split']}`.",
        "",
        "| student | arm | seeds | micro-AUPRC | macro-AUPRC | Δ micro vs none (paired) "
        "| best epoch | params | MACs | int8 weight bytes | activation bytes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        diff = plus_minus(r["diff_none_mean"], r["diff_none_se"], signed=True)
        lo, hi = r["best_epoch_min"], r["best_epoch_max"]
        span = f"{lo}" if lo == hi else f"{lo}–{hi}"
        best = "" if lo == "" else f"{span} of {r['epochs']}"
        lines.append(
            f"| {r['student']} | {r['method']} | {r['n_seeds']} "
            f"| {plus_minus(r['micro_mean'], r['micro_se'])} "
            f"| {plus_minus(r['macro_mean'], r['macro_se'])} "
            f"| {'—' if r['method'] == 'none' else diff} | {best} "
            f"| {r['params']} | {r['macs']} | {r['weight_bytes_int8']} "
            f"| {r['activation_bytes_int8']} |"
        )
    lines += [
        "",
        "| student | RI = (iusp − sp) / (sp − none) | 90% bootstrap interval | paired seeds |",
        "|---|---|---|---|",
    ]
    for s in config.students:
        r = ri[s]
        if r["status"] == "ok":
            cells = f"{100 * r['ri']:.1f}% | [{100 * r['lo']:.1f}%, {100 * r['hi']:.1f}%]"
        else:
            cells = f"undefined: {r['status']} | —"
        lines.append(f"| {s} | {cells} | {r['n_seeds']} |")
    lines.append("")
    lines.append(
        "AUPRC: mean ± standard error over seeds of the "
        f"`{teacher['split']}`-split AUPRC of each job's best-validation checkpoint; Δ: mean ± "
        "standard error of the per-seed difference to `none` (same seeds); best epoch: the "
        "range over seeds of the epoch whose validation micro-AUPRC was best, of the configured "
        "epochs."
    )
    return "\n".join(lines) + "\n"
