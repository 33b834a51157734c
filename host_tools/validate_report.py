"""The validation report: ``report.md`` and its plots, from the report dict of
:func:`host_tools.validate.validate`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from model_dev.html_report import HtmlReport, png_of, pyplot


def plot_latency(path: Path, latency: list[float], window_cycles: list[int]) -> None:
    """Per-clip latency and per-window model cycles (``latency.png``)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].hist(np.asarray(latency) * 1e3, bins=30)
    axes[0].set(xlabel="clip latency over the link (ms)", ylabel="clips", title="CLASSIFY")
    axes[1].hist(window_cycles, bins=30, color="tab:orange")
    axes[1].set(xlabel="device cycle counter per window", ylabel="windows", title="model")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def plot_mismatch(path: Path, pair, report: dict) -> None:
    """Host vs device features of the first mismatching clip (``mismatch.png``)."""
    clip_id, host, device, diff = pair
    plot_features(path, clip_id, host, device, diff["message"])


def plot_features(path: Path, clip_id: str, host, device, note: str) -> None:
    """One clip's features: host, device and their difference side by side."""
    plt = pyplot()
    n = min(len(host), len(device))
    delta = device[:n].astype(np.int16) - host[:n].astype(np.int16)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), sharey=True)
    for ax, img, title in zip(
        axes,
        (host.T, device.T, delta.T),
        ("host (Python front end)", "device", "device - host"),
        strict=True,
    ):
        im = ax.imshow(img, aspect="auto", origin="lower", interpolation="nearest")
        ax.set(title=title, xlabel="frame")
        fig.colorbar(im, ax=ax)
    axes[0].set_ylabel("mel band")
    fig.suptitle(f"{clip_id}: {note}", fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def add_validation_section(page: HtmlReport, v: dict, folder: Path, suffix: str = "") -> None:
    """The validation part of a report.html: verdict, cycles, link, device-vs-host scores
    (from ``folder/progress.json``), and the PNGs of ``folder``; ``suffix`` tells the anchors
    of several such sections on one page apart (and titles them)."""
    what = f" ({suffix.lstrip('-')})" if suffix else ""
    page.section(f"validation{suffix}", f"Validation on the device{what}")
    page.text(
        f"{'PASS' if v['passed'] else 'FAIL'}: {v['n_matched']}/{v['n_requested']} clips "
        "byte-identical (features, window scores, clip scores, decisions).",
        "pass" if v["passed"] else "fail",
    )
    cyc, link = v["cycles"], v["link"]
    page.table(
        ["", "value"],
        [
            ["front-end cycles per clip (median)", cyc["frontend"]["median"]],
            ["model cycles per clip (median)", cyc["model"]["median"]],
            ["model cycles per window (median)", cyc["model_per_window"]["median"]],
            ["clips per second over the link", v["clips_per_s"]],
            ["link efficiency (payload / wire bytes)", link["efficiency"]],
            ["retransmissions", link["retransmissions"]],
        ],
        anchor=f"validation-table{suffix}",
    )
    if v.get("task") == "anomaly" and v["metrics"]:
        h, d = v["metrics"]["host"], v["metrics"]["device"]
        page.table(
            ["clip mean of the integer scores", "host", "device"],
            [["AUC", h["auc"], d["auc"]], ["pAUC (FPR <= 0.1)", h["pauc"], d["pauc"]]],
            anchor=f"auc-table{suffix}",
        )
    progress = folder / "progress.json"
    if progress.is_file():
        clips = json.loads(progress.read_text())["clips"]
        page.figure(
            _scores_plot(clips, v.get("task")), "clip scores, device against host",
            anchor=f"scores-plot{suffix}",
        )  # fmt: skip
    for name, caption in (
        ("host_vs_device.png", "features of the first clip: host, device, device - host"),
        ("mismatch.png", "the first mismatching clip"),
        ("latency.png", "latency per clip and model cycles per window"),
    ):
        if (folder / name).is_file():
            anchor = name.removesuffix(".png").replace("_", "-") + suffix
            page.figure(folder / name, caption, anchor=anchor)


def _scores_plot(clips: list[dict], task: str | None = None) -> bytes:
    if task == "anomaly":  # (sum, windows) per clip: compare the exact pairs, plot the means
        pairs = [(tuple(c["host_scores"]), tuple(c["device_scores"])) for c in clips]
        same = sum(h == d for h, d in pairs)
        host = np.array([h[0] / max(h[1], 1) for h, _ in pairs])
        dev = np.array([d[0] / max(d[1], 1) for _, d in pairs])
        span, unit = [0, max(host.max(initial=0), dev.max(initial=0))], "clip mean score"
    else:
        host = np.array([c["host_scores"] for c in clips], np.int16).ravel()
        dev = np.array([c["device_scores"] for c in clips], np.int16).ravel()
        same, span, unit = int((host == dev).sum()), [-128, 127], "int8 score"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(span, span, color="grey", lw=0.8)
    ax.scatter(host, dev, s=12)
    ax.set(xlabel=f"host {unit}", ylabel=f"device {unit}",
           title=f"{same}/{len(host)} clip scores equal")  # fmt: skip
    ax.grid(alpha=0.3)
    return png_of(fig)


def html(r: dict, out: Path) -> HtmlReport:
    """``report.html`` of a validation run: the section of :func:`add_validation_section`
    and the mismatches, on one self-contained page."""
    verdict = "PASS" if r["passed"] else "FAIL"
    page = HtmlReport(f"aedfw validation: {verdict}")
    d = r["device"] or {}
    page.text(
        f"Model {r['model']['path']} ({r['model']['arch']}, hash "
        f"{r['model']['model_hash'][:16]}); device firmware {d.get('firmware_version')}; "
        f"dataset {r['dataset']['root']} ({r['dataset']['kind']})."
    )
    add_validation_section(page, r, out)
    if r["mismatches"]:
        page.section("mismatches", "Mismatches")
        page.table(
            ["clip", "what", "message"],
            [[m["clip"], m["what"], m["message"]] for m in r["mismatches"]],
            anchor="mismatch-table",
        )
    return page


def markdown(r: dict) -> str:
    """``report.md`` from the report dict."""
    verdict = "PASS" if r["passed"] else "FAIL"
    d = r["device"] or {}
    lines = [
        f"# aedfw validation: {verdict}",
        "",
        f"Model `{r['model']['path']}` ({r['model']['arch']}, hash "
        f"`{r['model']['model_hash'][:16]}`); device firmware {d.get('firmware_version')}, "
        f"front end `{str(d.get('frontend_hash'))[:16]}`.",
        f"Dataset `{r['dataset']['root']}` ({r['dataset']['kind']}): "
        f"{r['n_validated']}/{r['n_requested']} clips validated, {r['n_matched']} matched "
        "byte for byte (features, window scores, clip scores, decisions).",
        "",
    ]
    if r["stopped"]:
        lines += [f"**Stopped:** {r['stopped']}", ""]
    if r["resets"]:
        lines += [f"Device resets detected: {len(r['resets'])}"]
        lines += [f"- before clip `{x['clip']}`: {x['message']}" for x in r["resets"]]
        lines += [""]
    if r["mismatches"]:
        lines += [f"Mismatches ({r['n_mismatched']}; first {len(r['mismatches'])} listed):", ""]
        lines += [f"- `{m['clip']}`: {m['message']}" for m in r["mismatches"]]
        lines += ["", "![first mismatch](mismatch.png)", ""]
    if r["metrics"] and r.get("task") == "anomaly":
        h, dv = r["metrics"]["host"], r["metrics"]["device"]
        lines += [
            f"| {d.get('machine_type')} ({d.get('method')}), clip mean of the integer scores "
            "| host | device |",
            "|---|---|---|",
            f"| AUC | {_f(h['auc'])} | {_f(dv['auc'])} |",
            f"| pAUC (FPR <= 0.1, {h.get('pauc_convention', 'challenge convention')}) "
            f"| {_f(h['pauc'])} | {_f(dv['pauc'])} |",
            "",
        ]
    elif r["metrics"]:
        h, dv = r["metrics"]["host"], r["metrics"]["device"]
        lines += [
            f"| {r['metrics']['name']} (int8 clip scores) | host | device |",
            "|---|---|---|",
            f"| micro | {_f(h['micro'])} | {_f(dv['micro'])} |",
            f"| macro | {_f(h['macro'])} | {_f(dv['macro'])} |",
            "",
        ]
    lines += ["| device cycle counter | median | mean | max |", "|---|---|---|---|"]
    for k, v in r["cycles"].items():
        if v:
            lines.append(f"| {k} per clip | {v['median']:.0f} | {v['mean']:.0f} | {v['max']:.0f} |")
    lines[-1] = lines[-1].replace("model_per_window per clip", "model per window")
    link = r["link"]
    lat = r["latency_s"] or {}
    lines += [
        "",
        f"Throughput: {_f(r['clips_per_s'], 2)} clips/s; latency median "
        f"{_f(lat.get('median', float('nan')) * 1e3, 1)} ms. Link: {link['requests']} requests, "
        f"{link['retransmissions']} retransmissions, efficiency (payload / wire bytes) "
        f"{_f(link['efficiency'])}.",
        "",
        "![latency](latency.png)",
        "",
    ]
    return "\n".join(lines)


def _f(v, digits: int = 4) -> str:
    return (
        "n/a"
        if v is None or (isinstance(v, float) and not math.isfinite(v))
        else (f"{v:.{digits}f}")
    )
