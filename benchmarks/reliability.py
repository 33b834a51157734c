"""Reliability probes (issue 12): bad input and faults, every outcome counted.

1. **Bad input** through the ``aedfw`` command line, each in a subprocess of its own so that a
   crash (a signal, a traceback, an unexpected exit status) is counted instead of ending the run:
   hand-edited model metadata, front-end and training configs, damaged model files, hostile
   labels, a missing port, Ctrl-C. A refusal must exit 1 naming the file and field; a partial
   artifact is any output folder (or hidden temporary next to it) left by a refused command.
   Library-level probes (skipped files and the cache key, short clips and rare labels, stale
   checkpoint temporaries) run in this process.
2. **Link faults**: the native device on a pseudo-terminal behind ``host_tools.link.FaultyLink``
   dropping, duplicating or corrupting bytes in both directions at several per-byte rates, 200
   short clips per setting through ``Device.classify``; every answer is correct (equal to the
   host reference), reported (the client raised) or wrong (accepted and different).
3. **Device and host faults**: the device power-cycled mid-run (validate resumes after a new
   HELLO), the device killed mid-run (the report names port and clip; ``--resume`` finishes it),
   the validating host SIGKILLed mid-run and resumed.

Writes ``benchmarks/results/reliability.json``; ``--docs`` writes the tables of
``docs/reliability.md`` from it.

Usage: ``.venv/bin/python benchmarks/reliability.py [--clips 200] [--docs | --docs-only]``
(about 8 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# run as a script, this file's folder comes first on sys.path and would shadow pyserial's
# `serial` package with benchmarks/serial.py
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

import numpy as np  # noqa: E402
import serial  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from firmware_gen.build import build_firmware  # noqa: E402
from firmware_gen.package import firmware  # noqa: E402
from host_tools.emulate import EmulatedDevice  # noqa: E402
from host_tools.validate import validate  # noqa: E402
from model_dev.fileio import write_json, write_marked_section  # noqa: E402
from quantize.metadata import read_metadata, write_metadata  # noqa: E402
from tests.faults.link_probe import classify_through_faults, references  # noqa: E402
from tests.faults.test_bad_input import interrupt_features  # noqa: E402
from tests.faults.test_link_faults import _KillAt  # noqa: E402
from tests.host_tools.conftest import make_tiny_model, write_short_clips  # noqa: E402
from tests.host_tools.test_validate import _PowerCycleAt  # noqa: E402

RESULTS = ROOT / "benchmarks/results/reliability.json"
DOCS = ROOT / "docs/reliability.md"
BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"
RATES = (0.001, 0.005, 0.01)
HOSTILE = ('*/ int injected(void) { return 1; } /* "\\ \n#error ??/', "caf\u00e9 \x01 // */")


def cli(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """``aedfw ARGS`` in a subprocess."""
    cmd = [sys.executable, "-m", "aedfw.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _left_behind(path: Path | None) -> bool:
    """Whether ``path`` or a hidden temporary of it exists (a refused command's leftovers)."""
    if path is None:
        return False
    return path.exists() or any(path.parent.glob(f".{path.name}.*"))


def refusal(row: str, probe: str, args: list, needles: list[str], artifact: Path | None) -> dict:
    """Run a command that must be refused: exit 1, every needle in its error, nothing left."""
    p = cli(args)
    error = next((ln for ln in p.stderr.splitlines() if ln.startswith("aedfw:")), "")
    if p.returncode not in (0, 1) or "Traceback" in p.stderr:
        outcome = "crash"
    elif p.returncode == 0:
        outcome = "accepted"
    else:
        outcome = "refused" if all(n in error for n in needles) else "refused, unclear message"
    return {
        "row": row,
        "probe": probe,
        "outcome": outcome,
        "wrong_accepted": outcome == "accepted",
        "crash": outcome == "crash",
        "partial": _left_behind(artifact),
        "message": error[:300],
    }


def _edited(model: Path, work: Path, name: str, **fields) -> Path:
    path = work / f"{name}.tflite"
    path.write_bytes(model.read_bytes())
    write_metadata(path, dataclasses.replace(read_metadata(model), **fields))
    return path


def bad_input_probes(model: Path, data: Path, work: Path) -> list[dict]:
    """Every bad-input probe through the command line (see the module docstring)."""
    meta = read_metadata(model)
    out = work / "out"
    rows = []

    def firmware_refused(row: str, probe: str, path: Path, needles: list[str]) -> None:
        args = ["firmware", path, "--out", out / path.stem]
        rows.append(refusal(row, probe, args, [str(path), *needles], out / path.stem))

    fe44 = work / "fe44.yaml"
    fe44.write_text("sample_rate: 44100\n")
    args = ["features", "--data", data, "--dataset", "manifest", "--frontend", fe44]
    rows.append(
        refusal(
            "1",
            "front end sample_rate 44100",
            [*args, "--cache", out / "c1"],
            [str(fe44), "sample_rate=44100"],
            out / "c1",
        )
    )
    firmware_refused(
        "2",
        "metadata arena_bytes 10",
        _edited(model, work, "arena", arena_bytes=10),
        ["arena_bytes 10"],
    )
    three = {"labels": ("a", "b", "c"), "thresholds": (0.5,) * 3, "thresholds_q": (0,) * 3}
    firmware_refused(
        "3",
        "3 labels for 2 outputs",
        _edited(model, work, "labels", **three),
        ["labels: 3 labels for 2 model outputs"],
    )
    firmware_refused(
        "3",
        "window_frames not the model's",
        _edited(model, work, "window", window_frames=meta.window_frames - 1),
        ["window_frames"],
    )
    fe = dataclasses.replace(meta.frontend, n_mels=meta.frontend.n_mels + 2)
    firmware_refused(
        "3",
        "frontend.n_mels not the model's",
        _edited(model, work, "mels", frontend=fe, frontend_hash=fe.hash),
        ["frontend.n_mels"],
    )
    fe = dataclasses.replace(meta.frontend, log_offset=meta.frontend.log_offset - 8)
    zp = _edited(model, work, "zero_point", frontend=fe, frontend_hash=fe.hash)
    both = [f"/{meta.input_zero_point} differ from the front end's", f"/{fe.input_zero_point}"]
    firmware_refused("4", "front-end zero point 8 above the model input's (firmware)", zp, both)
    args = ["validate", "--port", "loop://", "--model", zp, "--data", data, "--out", out / "v4"]
    rows.append(
        refusal(
            "4", "front-end zero point 8 above the model input's (validate)", args, both, out / "v4"
        )
    )
    firmware_refused(
        "11",
        "metadata aggregation 'mean'",
        _edited(model, work, "mean", aggregation="mean"),
        ["aggregation 'mean'"],
    )
    for probe, content in (
        ("truncated .tflite", model.read_bytes()[: model.stat().st_size // 2]),
        ("random bytes as .tflite", np.random.default_rng(0).bytes(4096)),
    ):
        path = work / f"{probe.split()[0]}.tflite"
        path.write_bytes(content)
        firmware_refused("-", probe, path, [])
    for where, extra in (("flag", ["--seed", "-3"]), ("file", ["--config", work / "seed.json"])):
        (work / "seed.json").write_text('{"seed": -3}')
        args = ["train", "teacher", "--data", data, "--dataset", "manifest", "--out", out / "r10"]
        source = "command line" if where == "flag" else str(work / "seed.json")
        rows.append(
            refusal(
                "10",
                f"seed -3 ({where})",
                [*args, "--cache", out / "c10", *extra],
                [source, "TrainConfig.seed=-3"],
                out / "c10",
            )
        )
    rows.append(
        refusal(
            "-",
            "validate on a port that does not exist",
            [
                "validate",
                "--port",
                work / "no-such-tty",
                "--model",
                model,
                "--data",
                data,
                "--out",
                out / "vport",
            ],
            ["no-such-tty"],
            out / "vport",
        )
    )
    rows.append(hostile_labels(model, work))
    return rows


def hostile_labels(model: Path, work: Path) -> dict:
    """Row 5: labels that would inject C reach the package escaped and compile to their bytes."""
    path = _edited(model, work, "hostile", labels=HOSTILE)
    fw = work / "hostile-fw"
    p = cli(["firmware", path, "--out", fw])
    probe = fw / "probe.c"
    probe.write_text(
        '#include <stdio.h>\n#include "aed_config.h"\n'
        "static const char *const l[AED_N_CLASSES] = AED_LABELS;\n"
        'int main(void) { for (int i = 0; i < AED_N_CLASSES; ++i) printf("%s|", l[i]); }\n'
    )
    cc = ["gcc", "-std=c99", "-Wall", "-Werror", "-pedantic", f"-I{fw}/aed/include"]
    built = subprocess.run([*cc, probe, "-o", work / "probe"], capture_output=True)
    printed = (
        subprocess.run([work / "probe"], capture_output=True).stdout
        if not built.returncode
        else b""
    )
    exact = printed == ("|".join(HOSTILE) + "|").encode()
    return {
        "row": "5",
        "probe": "labels with */, a newline, quotes, backslash, ??/ and UTF-8",
        "outcome": "escaped: compiled, same bytes" if exact else "NOT escaped",
        "wrong_accepted": p.returncode == 0 and not exact,
        "crash": p.returncode not in (0, 1) or "Traceback" in p.stderr,
        "partial": False,
        "message": "",
    }


def library_probes(data: Path, work: Path) -> list[dict]:
    """Rows 7, 9, 13, 14 through the Python API (see the module docstring)."""
    from model_dev.audio import AudioError, write_wav
    from model_dev.checkpoint import load_checkpoint
    from model_dev.datasets import load_dataset
    from model_dev.features import features
    from model_dev.train import train
    from model_dev.train_config import TrainConfig
    from tests.model_dev.test_train import FAST, toy_features

    rows = []

    def row(number, probe, ok, outcome, **extra):
        rows.append(
            {
                "row": number,
                "probe": probe,
                "outcome": outcome if ok else "NOT " + outcome,
                "wrong_accepted": not ok,
                "crash": False,
                "partial": False,
                "message": "",
                **extra,
            }
        )

    folder = work / "lib"
    folder.mkdir()
    lines = ["path,labels,split"]
    for i, (n, label) in enumerate(
        [
            (4000, "dog"),
            (4000, "dog"),
            (4000, "music"),
            (4000, "music"),
            (4000, "music"),
            (4000, "dog"),
            (160, "dog"),
            (4000, "dgo"),
        ]
    ):
        write_wav(
            folder / f"a{i}.wav",
            (np.random.default_rng(i).standard_normal(n) * 300).astype(np.int16),
        )
        lines.append(f"a{i}.wav,{label},train")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset("manifest", folder / "manifest.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features(ds, work / "lib-cache", jobs=1, progress=False)
    said = "\n".join(str(w.message) for w in caught)
    row("9", "a 0.01 s clip", "silence: a6.wav" in said, "warned, file named")
    row(
        "14",
        "a label typo ('dgo')",
        "label 'dgo' has only 1 clip(s) (a7.wav)" in said,
        "warned, label and file named",
    )
    (folder / "a3.wav").unlink()  # unreadable once listed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        features(ds, work / "lib-cache2", jobs=1, skip_bad=True, progress=False)
    try:
        features(ds, work / "lib-cache2", jobs=1, progress=False)
        refused = False
    except AudioError as exc:
        refused = "a3.wav" in str(exc)
    row("7", "features --skip-bad, then a run without it", refused, "refused, file named")
    run = work / "lib-run"
    run.mkdir()
    (run / ".last.pt.k1ll3d.tmp").write_bytes(b"\0" * 4096)
    fs = dataclasses.replace(toy_features(), skipped=[("gone.wav", "file not found")])
    best = train(TrainConfig(arch="s5k", epochs=1, **FAST), fs, run, progress=False)
    row("13", "checkpoint temporary of a killed run", not list(run.glob(".*")), "removed")
    row(
        "7",
        "checkpoint records the skipped files",
        load_checkpoint(best)[1]["dataset"].get("skipped") == [["gone.wav", "file not found"]],
        "recorded",
    )
    return rows


def ctrl_c_probe(work: Path) -> dict:
    """Row 12: SIGINT to the process group of ``aedfw features`` with its workers running."""
    folder = work / "ctrlc"
    folder.mkdir()
    code, err, cache = interrupt_features(folder)
    lines = [ln for ln in err.splitlines() if ln.startswith("aedfw:")]
    one_line = code == 130 and "Traceback" not in err and len(lines) == 1
    return {
        "row": "12",
        "probe": "Ctrl-C during features (2 workers)",
        "outcome": "one line" if one_line else "NOT one line",
        "wrong_accepted": False,
        "crash": "Traceback" in err,
        "partial": bool(cache.exists() and list(cache.iterdir())),
        "message": lines[0] if lines else "",
    }


def link_probes(url: str, clips, n: int) -> list[dict]:
    audios, refs, labels = clips
    rows = []
    settings = [{kind: rate} for kind in ("drop", "duplicate", "corrupt") for rate in RATES]
    settings.append({"drop": 0.003, "duplicate": 0.003, "corrupt": 0.003})
    for seed, rates in enumerate(settings):
        t0 = time.perf_counter()
        r = classify_through_faults(url, audios[:n], refs[:n], labels, seed=seed, **rates)
        rows.append({"rates": rates, **r, "seconds": round(time.perf_counter() - t0, 1)})
        print(
            f"link {rates}: {r['correct']} correct, {r['reported']} reported, "
            f"{r['wrong']} wrong of {r['clips']}",
            flush=True,
        )
    return rows


def device_probes(tiny_fw: Path, model: Path, data: Path, work: Path) -> list[dict]:
    """Device reset and device death mid-run, host killed mid-run; validate over 200 clips."""
    rows = []
    exe = build_firmware(tiny_fw, "host")
    with EmulatedDevice(tiny_fw, "host", exe=exe) as emu:
        port = _PowerCycleAt(serial.serial_for_url(emu.url, timeout=0.01), emu, at=300)
        r = validate(port, model, data, out=work / "reset", progress=False)
        rows.append(
            {
                "probe": "device power-cycled mid-run (on_reset=resume)",
                "faults": 1,
                "clips": r["n_requested"],
                "correct": r["n_matched"],
                "outcome": f"{len(r['resets'])} reset detected, run resumed",
                "ok": r["passed"] and len(r["resets"]) == 1,
            }
        )
    with EmulatedDevice(tiny_fw, "host", exe=exe) as emu:
        port = _KillAt(serial.serial_for_url(emu.url, timeout=0.01), emu, at=300)
        r = validate(port, model, data, out=work / "dead", progress=False, timeout=0.3)
        named = r["stopped"] and emu.url in r["stopped"] and "clip clip" in r["stopped"]
    with EmulatedDevice(tiny_fw, "host", exe=exe) as emu:
        r2 = validate(emu.url, model, data, out=work / "dead", progress=False, resume=True)
        rows.append(
            {
                "probe": "device killed mid-run, then --resume",
                "faults": 1,
                "clips": r2["n_requested"],
                "correct": r2["n_matched"],
                "outcome": f"stopped at clip {r['n_validated']} naming port and clip; "
                f"resumed {r2['n_resumed']} clips",
                "ok": bool(named) and r2["passed"],
            }
        )
        out = work / "killed"
        cmd = [
            sys.executable,
            "-m",
            "aedfw.cli",
            "validate",
            "--port",
            emu.url,
            "--model",
            str(model),
            "--data",
            str(data),
            "--out",
            str(out),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        while not (out / "progress.json").exists() and proc.poll() is None:
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        r3 = validate(emu.url, model, data, out=out, progress=False, resume=True)
        rows.append(
            {
                "probe": "host SIGKILLed mid-run, then --resume",
                "faults": 1,
                "clips": r3["n_requested"],
                "correct": r3["n_matched"],
                "outcome": f"resumed {r3['n_resumed']} clips, no temporary left",
                "ok": r3["passed"] and not list(out.glob(".*")),
            }
        )
    return rows


def memory_probe() -> dict:
    """Row 8: training-window bytes of 500 clips of 10 s and one of 10 minutes, as stored now
    (clip after clip) and as the padded layout stored them (every clip as long as the longest)."""
    from model_dev.features import FeatureSet
    from model_dev.frontend import FrontendConfig
    from model_dev.windows import ClipWindows

    frames = [1000] * 500 + [60000]  # 10 ms frames
    fs = FeatureSet(
        features=np.zeros((sum(frames), 40), np.int8),
        offsets=np.concatenate([[0], np.cumsum(frames)]).astype(np.int64),
        labels=np.zeros((len(frames), 1), np.uint8),
        clip_ids=[f"c{i}" for i in range(len(frames))],
        splits=["train"] * len(frames),
        classes=("a",),
        config=FrontendConfig(),
        skipped=[],
    )
    data = ClipWindows.from_features(fs, np.arange(len(frames)), 100, 50)
    padded = data.mask.numel() * data.windows[0].numel()
    return {
        "probe": "500 clips of 10 s and one of 10 min, 100-frame windows, hop 50",
        "stored_bytes": int(data.windows.numel()),
        "padded_bytes": int(padded),
    }


def run(n_clips: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="aedfw-reliability-") as tmp:
        work = Path(tmp)
        model = make_tiny_model(work / "tiny.tflite")
        fw = firmware(model, work / "fw")
        data = write_short_clips(work / "clips", n_clips, 1200)
        short = write_short_clips(work / "short", n_clips, 320)
        bad = bad_input_probes(model, data, work) + library_probes(data, work)
        bad.append(ctrl_c_probe(work))
        for r in bad:
            print(f"row {r['row']}: {r['probe']}: {r['outcome']}", flush=True)
        clips = references(model, short, n_clips)
        with EmulatedDevice(fw, "host") as emu:
            link = link_probes(emu.url, clips, n_clips)
        device = device_probes(fw, model, data, work)
    memory = memory_probe()
    faults = sum(sum(r["injected"].values()) for r in link) + sum(r["faults"] for r in device)
    totals = {
        "inputs_tried": len(bad),
        "faulty_clips": sum(r["clips"] for r in link) + sum(r["clips"] for r in device),
        "faults_injected": faults,
        "wrong_results_accepted": sum(r["wrong_accepted"] for r in bad)
        + sum(r["wrong"] for r in link),
        "crashes": sum(r["crash"] for r in bad),
        "partial_artifacts": sum(r["partial"] for r in bad),
        "probes_not_as_promised": sum(
            r["outcome"].startswith(("NOT", "crash", "accepted")) or "unclear" in r["outcome"]
            for r in bad
        )
        + sum(not r["ok"] for r in device),
    }
    return {
        "totals": totals,
        "bad_input": bad,
        "link": link,
        "device": device,
        "memory": memory,
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
    }


def _rates(rates: dict) -> str:
    return ", ".join(f"{k} {v:.1%}" for k, v in rates.items())


def section(r: dict) -> str:
    """The Markdown tables of docs/reliability.md from the JSON."""
    t = r["totals"]
    lines = [
        f"Measured {r['date']} on {r['machine']} by `{r['command']}`",
        "(figures from `benchmarks/results/reliability.json`).",
        "",
        "| inputs tried | clips under faults | faults injected | wrong results accepted | "
        "crashes | partial artifacts | probes not as promised |",
        "|---|---|---|---|---|---|---|",
        f"| {t['inputs_tried']} | {t['faulty_clips']} | {t['faults_injected']} | "
        f"{t['wrong_results_accepted']} | {t['crashes']} | {t['partial_artifacts']} | "
        f"{t['probes_not_as_promised']} |",
        "",
        "### Bad input",
        "",
        "| row | probe | outcome | message |",
        "|---|---|---|---|",
    ]
    for b in r["bad_input"]:
        message = re.sub(r"\S*aedfw-reliability-[^/\s]+/", "", b["message"])  # the work folder
        message = message.removeprefix("aedfw: error: ").replace("|", "\\|")
        lines.append(f"| {b['row']} | {b['probe']} | {b['outcome']} | {message[:240]} |")
    lines += [
        "",
        "### Link faults (per byte, both directions; native device on a pseudo-terminal)",
        "",
        "| faults | clips | correct | reported | wrong | bytes hit | retransmissions | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k in r["link"]:
        lines.append(
            f"| {_rates(k['rates'])} | {k['clips']} | {k['correct']} | {k['reported']} | "
            f"{k['wrong']} | {sum(k['injected'].values())} | {k['retransmissions']} | "
            f"{k['seconds']} |"
        )
    lines += [
        "",
        "### Device and host faults (validate, 200 clips)",
        "",
        "| fault | clips | matched | outcome |",
        "|---|---|---|---|",
    ]
    for d in r["device"]:
        lines.append(f"| {d['probe']} | {d['clips']} | {d['correct']} | {d['outcome']} |")
    m = r["memory"]
    lines += [
        "",
        f"### Training windows (row 8): {m['probe']}",
        "",
        f"{m['stored_bytes'] / 2**20:.0f} MiB stored clip after clip, instead of "
        f"{m['padded_bytes'] / 2**20:.0f} MiB padded to the longest clip "
        f"({m['padded_bytes'] / m['stored_bytes']:.0f}x); a batch is padded to its own longest "
        "clip only, with the same bytes as before.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=200, help="clips per link-fault setting")
    parser.add_argument("--docs", action="store_true", help="write docs/reliability.md's tables")
    parser.add_argument(
        "--docs-only", action="store_true", help="only rewrite the tables from the JSON"
    )
    args = parser.parse_args()
    if args.docs_only:
        result = json.loads(RESULTS.read_text())
    else:
        result = run(args.clips)
        write_json(RESULTS, result)
    print(json.dumps(result["totals"], indent=1))
    if args.docs or args.docs_only:
        write_marked_section(DOCS, BEGIN, END, section(result))
    return 0 if not result["totals"]["probes_not_as_promised"] else 1


if __name__ == "__main__":
    sys.exit(main())
