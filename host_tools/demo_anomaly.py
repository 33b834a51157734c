"""``aedfw demo --task anomaly``: machine-sound anomaly detection through the whole chain.

synthetic machine corpus (DCASE 2020 Task 2 layout) -> int8 features (cached) -> dense
autoencoder per machine type, trained on normal clips (``aedfw train anomaly``) -> full-int8
.tflite per type (``aedfw quantize``: float vs int8 AUC/pAUC) -> C package with the integer
anomaly score (``aedfw firmware``) built for the device -> emulated device (Cortex-M4 under QEMU
by default) -> validation over the serial link of every test clip of the type: features,
per-window u32 scores, the clip mean as (sum, windows) and the decision byte for byte, and the
device's AUC/pAUC next to the host's -> ``report.md`` / ``report.json`` / ``report.html``.

Sizes (:class:`AnomalyDemoConfig`): the ``default`` corpus (4 machine IDs per type, 60 normal
training clips per ID, 27 normal and 27 anomalous test clips per ID, 2 s each; all four types
are synthesised, about 30 CPU s), one machine type (``fan``), the DCASE baseline autoencoder
(``dense_ae``, 640-128x4-8-128x4-640) for 20 epochs on one torch thread. The costs measured are
in ``docs/anomaly.md`` and in the run's report (the time of every stage).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from host_tools.demo import Clock, torch_threads
from model_dev.config_io import json_finite
from model_dev.fileio import atomic_write_text


@dataclass(frozen=True)
class AnomalyDemoConfig:
    """Sizes of the anomaly demo run.

    Attributes
    ----------
    method : str
        Detector: one that goes to the device (``quantize.anomaly.QUANTIZABLE``: the dense
        autoencoders, the causal convolutional predictor, the machine-ID classifier).
    types : tuple of str
        Machine types to train, deploy and validate (one .tflite and one package each).
    epochs, batch_size : int
        Training of each type's detector.
    torch_threads : int
        Torch intra-op threads while training (1: robust on a busy machine).
    validate_clips : int, optional
        First test clips of each type validated on the device (None: all of them).
    """

    method: str = "dense_ae"
    types: tuple[str, ...] = ("fan",)
    epochs: int = 20
    batch_size: int = 128
    torch_threads: int = 1
    validate_clips: int | None = None


def demo_anomaly(
    out: str | Path = "runs/demo-anomaly",
    size: str = "default",
    seed: int = 0,
    *,
    target: str = "cortex-m4",
    config: AnomalyDemoConfig | None = None,
    progress: bool = True,
) -> Path:
    """Run the anomaly chain into ``out`` and return the path of ``report.md``.

    Parameters
    ----------
    out : str or Path
        Run folder (corpus, feature cache, checkpoint, models, firmware, validation, reports).
        A finished corpus or checkpoint found there is reused.
    size : {"tiny", "default"}
        Machine corpus preset (``model_dev.anomaly.corpus.SIZES``).
    seed : int
        Corpus and training seed.
    target : {"cortex-m4", "host"}
        Emulated device: QEMU mps2-an386, or the native build on a pty.
    config : AnomalyDemoConfig, optional
        Method, machine types, epochs (default :class:`AnomalyDemoConfig`).
    progress : bool
        Progress bars.
    """
    from model_dev.anomaly.corpus import MACHINE_TYPES, SIZES, generate
    from model_dev.anomaly.pipeline import prepare
    from quantize.anomaly import QUANTIZABLE

    cfg = config or AnomalyDemoConfig()
    if size not in SIZES:
        raise ValueError(f"unknown machine corpus size {size!r}; sizes: {', '.join(SIZES)}")
    unknown = sorted(set(cfg.types) - set(MACHINE_TYPES))
    if not cfg.types or unknown:
        raise ValueError(
            f"machine types must be some of {', '.join(MACHINE_TYPES)}, got {list(cfg.types)}"
        )
    if cfg.method not in QUANTIZABLE:
        raise ValueError(f"method must be one of {', '.join(QUANTIZABLE)}, got {cfg.method!r}")
    if target not in ("cortex-m4", "host"):
        raise ValueError(f"target must be 'cortex-m4' or 'host', got {target!r}")
    out = Path(out)
    corpus, cache = out / "corpus", out / "cache"
    clock = Clock(steps=6)
    clock.step(1, f"synthetic machine corpus ({size}, seed {seed})")
    if not (corpus / "corpus.json").is_file():
        generate(corpus, size, seed, progress=progress)
    clock.lap("corpus_s")
    clock.step(2, "front-end features")
    ms, _ = prepare("dcase", corpus, cache, progress=progress)
    clock.lap("features_s")
    checkpoint, models = _train_and_quantize(out, cfg, seed, clock, progress)
    per_type = {}
    for mtype in cfg.types:
        per_type[mtype] = _firmware_and_validate(
            out, models["per_type"][mtype], mtype, cfg, target, clock, progress
        )
    clock.step(6, "report")
    report = {
        "task": "anomaly",
        "corpus": {
            "size": size,
            "seed": seed,
            "clips": len(ms.dataset),
            "types": list(cfg.types),
            "preset": asdict(SIZES[size]),
        },
        "config": asdict(cfg) | {"target": target},
        "checkpoint": str(checkpoint),
        "pauc_convention": models["pauc_convention"],
        "per_type": per_type,
        "passed": all(t["validation"]["passed"] for t in per_type.values()),
        "timings": clock.wall,
        "total_s": round(sum(clock.wall.values()), 2),
        "cpu_s": clock.cpu,
        "total_cpu_s": round(sum(clock.cpu.values()), 2),
    }
    atomic_write_text(out / "report.json", json.dumps(json_finite(report), indent=1) + "\n")
    atomic_write_text(out / "report.md", _markdown(report, out))
    from host_tools.demo_report import anomaly_demo_html

    anomaly_demo_html(out)
    return out / "report.md"


def _train_and_quantize(out: Path, cfg: AnomalyDemoConfig, seed: int, clock, progress):
    """Steps 3-4: one detector per machine type (one checkpoint), one full-int8 .tflite per
    type with its float vs int8 AUC/pAUC on the test split."""
    from model_dev.anomaly.pipeline import train_anomaly
    from model_dev.anomaly.training import FitConfig
    from quantize.anomaly import quantize_anomaly

    checkpoint = out / f"{cfg.method}.pt"
    clock.step(3, f"{cfg.method} per machine type ({', '.join(cfg.types)}; {cfg.epochs} epochs)")
    if not checkpoint.is_file():
        fit = FitConfig(cfg.epochs, cfg.batch_size, seed=seed, device="cpu")
        with torch_threads(cfg.torch_threads):
            train_anomaly(out / "corpus", checkpoint, cfg.method, types=list(cfg.types),
                          cfg=fit, cache_dir=out / "cache", progress=progress)  # fmt: skip
    clock.lap("train_s")
    clock.step(4, "full-int8 TFLite per machine type")
    with torch_threads(cfg.torch_threads):
        report = quantize_anomaly(
            checkpoint, out / "models", out / "corpus", cache_dir=out / "cache", seed=seed,
            device="cpu", progress=progress,
        )  # fmt: skip
    clock.lap("quantize_s")
    return checkpoint, report


def _firmware_and_validate(
    out: Path, quant: dict, mtype: str, cfg, target: str, clock, progress
) -> dict:
    """Step 5 for one machine type: C package, Cortex-M4 build and memory report, validation on
    the emulated device."""
    from firmware_gen.build import build_firmware
    from firmware_gen.package import firmware
    from host_tools.emulate import emulated_device
    from host_tools.validate import validate
    from model_dev.stage_inputs import DatasetSpec

    model = Path(quant["model"]["path"])
    clock.step(5, f"{mtype}: C package for cortex-m4, emulated {target}, validation over serial")
    fw = firmware(model, out / f"fw-{mtype}")
    build_firmware(fw, "cortex-m4")
    memory = json.loads((fw / "memory.json").read_text())
    clock.lap(f"firmware_{mtype}_s")
    data = DatasetSpec(out / "corpus", kind="dcase", cache=out / "cache")
    t0 = time.perf_counter()
    with emulated_device(fw, target) as url:
        boot_s = time.perf_counter() - t0
        val = validate(url, model, data, dataset="dcase", split="test", limit=cfg.validate_clips,
                       out=out / f"validation-{mtype}", progress=progress)  # fmt: skip
    clock.lap(f"validate_{mtype}_s")
    keep = ("passed", "n_requested", "n_matched", "first_mismatch", "cycles", "clips_per_s")
    keep += ("link", "device_stats", "metrics", "task")
    return {
        "model": quant["model"],
        "float": quant["float"],
        "int8": quant["int8"],
        "threshold": quant["threshold"],
        "decisions": quant["decisions"],
        "parity_tflm_litert": quant["parity_tflm_litert"],
        "n_test_clips": quant["n_clips"],
        "memory": memory,
        "boot_s": round(boot_s, 2),
        "validation": {k: val[k] for k in keep} | {"report": val["files"]["markdown"]},
    }


def _markdown(r: dict, out: Path) -> str:
    def f(x) -> str:
        return "n/a" if x is None or x != x else f"{x:.3f}"

    c, cfg, t = r["corpus"], r["config"], r["timings"]
    lines = [
        "# aedfw anomaly demo report",
        "",
        f"Corpus: synthetic machine sounds, size `{c['size']}`, seed {c['seed']}, "
        f"{c['clips']} clips of {c['preset']['clip_seconds']} s (DCASE 2020 Task 2 layout). "
        f"Detector: `{cfg['method']}` per machine type, {cfg['epochs']} epochs, trained on "
        f"normal clips only. Device: {cfg['target']} (emulated). Overall validation "
        f"**{'PASS' if r['passed'] else 'FAIL'}**.",
        "",
        "| machine type | float AUC | int8 AUC | device AUC | float pAUC | int8 pAUC | "
        "device pAUC | validated clips | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mtype, p in r["per_type"].items():
        v = p["validation"]
        dev = (v["metrics"] or {}).get("device") or {}
        lines.append(
            f"| {mtype} | {f(p['float']['auc'])} | {f(p['int8']['auc'])} | {f(dev.get('auc'))} "
            f"| {f(p['float']['pauc'])} | {f(p['int8']['pauc'])} | {f(dev.get('pauc'))} | "
            f"{v['n_matched']}/{v['n_requested']} byte-identical | "
            f"{'PASS' if v['passed'] else 'FAIL'} |"
        )
    lines += [
        "",
        f"AUC and pAUC per machine type are means over machine IDs; pAUC: "
        f"{r['pauc_convention']}. int8 = the integer score of the .tflite on the host (TFLM); "
        "device = the same score computed by the device (front end, engine, score, clip mean) "
        "and sent over the serial link; validation compares features, every window score, the "
        "clip's (sum, windows) and the decision byte for byte.",
        "",
    ]
    for mtype, p in r["per_type"].items():
        v, m, cyc = p["validation"], p["memory"], p["validation"]["cycles"]
        lines += [
            f"## {mtype}",
            "",
            f"- model: {p['model']['bytes']} B (.tflite), TFLM arena "
            f"{p['model']['arena_bytes']} B; threshold {p['threshold']['q']} score units "
            f"(float MSE {p['threshold']['value']:.4g}); TFLM vs LiteRT reference kernels "
            f"{p['parity_tflm_litert']['window_scores_equal_rate']:.2%} window scores equal.",
            f"- Cortex-M4 image: flash {m['flash']['total']} B, RAM {m['ram']['total']} B.",
            f"- device cycle counter per clip (median): front end "
            f"{cyc['frontend']['median']:.0f}, model {cyc['model']['median']:.0f}, post "
            f"{cyc['post']['median']:.0f}; model per window "
            f"{cyc['model_per_window']['median']:.0f}. {v['clips_per_s']:.2f} clips/s over "
            f"the link (efficiency {v['link']['efficiency']:.3f}).",
            f"- details: `{Path(v['report']).relative_to(out)}`",
            "",
        ]
    lines.append(
        "Timings, wall / CPU s (CPU: this process and its children, gcc, QEMU): "
        + ", ".join(f"{k.removesuffix('_s')} {t[k]} / {r['cpu_s'][k]}" for k in t)
        + f"; total {r['total_s']} / {r['total_cpu_s']}."
    )
    return "\n".join(lines) + "\n"
