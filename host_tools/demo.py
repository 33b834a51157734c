"""``aedfw demo``: the whole chain on the built-in corpus, end to end, in minutes.

synth corpus -> int8 features (cached) -> C front end checked byte for byte against the Python
reference -> teacher -> IUSP-distilled student -> full-int8 .tflite (quantize) -> C package built
for the device -> emulated device (Cortex-M4 under QEMU by default) -> validation over the serial
link -> ``report.md`` / ``report.json`` (AUPRC of teacher, student float, int8 and device; sizes;
cycles; parity; the time of every stage).

Sizes are chosen so that the run takes under 10 minutes on a laptop-class machine with 2 idle
CPU cores and still shows what each stage costs in accuracy: the ``small`` corpus (800 clips of
3 s: 560 train, 119 validate, 121 test), a small VGG teacher (:data:`DEMO_TEACHER`) and the
``s5k`` student trained twice on the same seed, undistilled and with IUSP, 30 epochs each on one
torch thread (:class:`DemoConfig`). On seed 0 the test micro-AUPRC is 0.48 for the trivial
baseline, 0.71 for the teacher, 0.641 for the undistilled student, 0.654 for the IUSP student
and 0.652 for its int8 model. Validation runs the whole test split on the Cortex-M4 under QEMU
(its link over semihosting: well under a second per 3-s clip, see ``host_tools.emulate``); the
whole run about 410 CPU seconds (413 measured on a loaded machine, 14 of them validating 121 clips).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from firmware_gen.host_build import build_frontend_cli, run_frontend_cli
from host_tools.demo_report import demo_html
from model_dev.arch import vgg
from model_dev.baseline import mean_feature_baseline
from model_dev.config_io import json_finite
from model_dev.datasets import load_dataset
from model_dev.features import FeatureSet, features
from model_dev.fileio import atomic_write_text
from model_dev.frontend import FrontendConfig
from model_dev.synth import ensure_corpus

#: The demo's teacher: the VGG family of model_dev.arch.TEACHER, 3 stages instead of 4, so that
#: it trains in about 2 CPU minutes (the full teacher is ``aedfw train``'s).
DEMO_TEACHER = vgg("demo-teacher", [(16, 1), (32, 2), (64, 2)], dropout=0.3)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run.

    Attributes
    ----------
    teacher_epochs, student_epochs : int
        Training epochs (no early stopping; the checkpoint of the best validation AUPRC is kept).
    batch_size : int
        Training clips per batch.
    torch_threads : int
        Torch intra-op threads while training and evaluating. 1 is robust: on a machine whose
        cores are busy, more threads than free cores can be several times slower; on an idle
        one, 2 saves a little.
    student : str
        Student architecture (a key of ``model_dev.arch.STUDENTS``).
    iusp : float
        Target ratio of the IUSP term's gradient norm to the BCE's (docs/distillation.md).
    parity_clips : int
        Test clips run through the C front end on the host.
    validate_clips : int, optional
        First test clips validated on the device (None: the whole test split).
    quantize_clips : int, optional
        Test clips of the float-vs-int8 evaluation (None: all).
    """

    teacher_epochs: int = 30
    student_epochs: int = 30
    batch_size: int = 32
    torch_threads: int = 1
    student: str = "s5k"
    iusp: float = 1.0
    parity_clips: int = 50
    validate_clips: int | None = None
    quantize_clips: int | None = None


def check_c_frontend(fs: FeatureSet, dataset, indices, build_dir: Path) -> dict:
    """Run the C front end on ``indices`` clips; the first differing byte, if any, is named."""
    exe = build_frontend_cli(fs.config, build_dir, sanitize=False)
    got = run_frontend_cli(exe, [dataset.load(i) for i in indices], fs.config)
    for i, c_features in zip(indices, got, strict=True):
        expected = fs.clip(i)
        if not np.array_equal(c_features, expected):
            frame, band = np.argwhere(c_features != expected)[0]
            raise RuntimeError(
                f"C front end differs from the Python reference on {fs.clip_ids[i]}, frame "
                f"{frame}, band {band}: C {c_features[frame, band]} vs {expected[frame, band]}"
            )
    return {"clips": len(indices), "frames": int(sum(len(g) for g in got)), "identical": True}


def demo(
    out: str | Path = "runs/demo",
    preset: str = "small",
    seed: int = 0,
    jobs: int = 2,
    *,
    target: str = "cortex-m4",
    config: DemoConfig | None = None,
    progress: bool = True,
) -> Path:
    """Run the chain into ``out`` and return the path of ``report.md``.

    Parameters
    ----------
    out : str or Path
        Run folder (corpus, cache, checkpoints, model, firmware, reports).
    preset : str
        Built-in corpus size (a key of ``model_dev.synth.PRESETS``).
    seed : int
        Corpus and training seed.
    jobs : int
        Worker processes for corpus synthesis and features.
    target : {"cortex-m4", "host"}
        Emulated device to validate: QEMU mps2-an386, or the native build on a pty.
    config : DemoConfig, optional
        Epochs and sizes (default :class:`DemoConfig`).
    progress : bool
        Progress bars.
    """
    cfg = config or DemoConfig()
    out = Path(out)
    clock = Clock(steps=10)
    clock.step(1, f"synthetic corpus ({preset}, seed {seed})")
    ensure_corpus(out / "corpus", preset, seed, jobs)
    dataset = load_dataset("synth", out / "corpus")
    clock.lap("corpus_s")
    clock.step(2, "front-end features")
    fe_cfg = FrontendConfig()
    fs = features(dataset, out / "cache", fe_cfg, jobs=jobs, progress=progress)
    clock.lap("features_s")
    clock.step(3, "C front end vs Python reference")
    parity = check_c_frontend(fs, dataset, fs.indices("test")[: cfg.parity_clips], out / "build")
    baseline = mean_feature_baseline(fs)
    clock.lap("c_frontend_s")
    models = _train_and_quantize(out, fs, cfg, seed, clock, progress)
    device = _firmware_and_validate(out, models["model"], cfg, target, seed, clock, progress)
    clock.step(10, "report")
    report = {
        "corpus": {"preset": preset, "seed": seed, "clips": len(fs), "classes": fs.classes},
        "frontend": {"hash": fe_cfg.hash, "config": fe_cfg.to_dict()},
        "config": asdict(cfg) | {"teacher_arch": DEMO_TEACHER.name, "target": target},
        "c_frontend_parity": parity,
        "baseline_auprc": baseline,
        **_results(models, device),
        "timings": clock.wall,
        "total_s": round(sum(clock.wall.values()), 2),
        "cpu_s": clock.cpu,  # this process and its finished children (pool workers, gcc, QEMU)
        "total_cpu_s": round(sum(clock.cpu.values()), 2),
    }
    atomic_write_text(out / "report.json", json.dumps(json_finite(report), indent=1) + "\n")
    atomic_write_text(out / "report.md", _markdown(report, out))
    demo_html(out)
    return out / "report.md"


class Clock:
    """Step lines on stdout, and wall and CPU seconds per lap."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._t0, self._c0 = time.perf_counter(), _cpu_s()

    def step(self, k: int, text: str) -> None:
        print(f"[{k}/{self.steps}] {text}", flush=True)

    def lap(self, name: str) -> None:
        self.wall[name] = round(time.perf_counter() - self._t0, 2)
        self.cpu[name] = round(_cpu_s() - self._c0, 2)
        self._t0, self._c0 = time.perf_counter(), _cpu_s()


def _train_and_quantize(out: Path, fs, cfg: DemoConfig, seed: int, clock, progress) -> dict:
    """Steps 4-7: teacher, undistilled and IUSP-distilled students (same seed), full-int8
    model of the IUSP student; their evaluations."""
    from model_dev.evaluate import evaluate
    from model_dev.train import train
    from model_dev.train_config import TrainConfig
    from quantize import quantize

    common = {"seed": seed, "device": "cpu", "patience": 0, "batch_size": cfg.batch_size}
    clock.step(4, f"teacher ({DEMO_TEACHER.name}, {cfg.teacher_epochs} epochs)")
    teacher_cfg = TrainConfig(arch="teacher", epochs=cfg.teacher_epochs, **common)
    with torch_threads(cfg.torch_threads):
        teacher = train(
            teacher_cfg, fs, out / "teacher", spec=DEMO_TEACHER, resume=True, progress=progress
        )
        teacher_eval = evaluate(teacher, fs, "test", teacher.parent / "eval-test", device="cpu")
    clock.lap("teacher_s")
    clock.step(5, f"student {cfg.student} without distillation ({cfg.student_epochs} epochs)")
    plain_cfg = TrainConfig(arch=cfg.student, epochs=cfg.student_epochs, **common)
    with torch_threads(cfg.torch_threads):
        plain = train(plain_cfg, fs, out / "student-none", resume=True, progress=progress)
        plain_eval = evaluate(plain, fs, "test", plain.parent / "eval-test", device="cpu")
    clock.lap("student_none_s")
    clock.step(6, f"student {cfg.student}, IUSP-distilled, same seed ({cfg.student_epochs} epochs)")
    student_cfg = dataclasses.replace(plain_cfg, teacher=str(teacher), iusp=cfg.iusp)
    with torch_threads(cfg.torch_threads):
        student = train(student_cfg, fs, out / "student", resume=True, progress=progress)
        # also stores thresholds; PR curves for report.html
        student_eval = evaluate(student, fs, "test", student.parent / "eval-test", device="cpu")
    clock.lap("student_s")
    clock.step(7, "full-int8 TFLite")
    model = out / f"{cfg.student}.tflite"
    quant = quantize(student, model, fs, split="test", limit=cfg.quantize_clips)
    clock.lap("quantize_s")
    models = {"teacher": teacher_eval, "student_none": plain_eval, "student": student_eval}
    return {"model": model, "quant": quant, **models}


def _firmware_and_validate(
    out: Path, model: Path, cfg: DemoConfig, target: str, seed: int, clock, progress
) -> dict:
    """Steps 8-9: the C package (golden clips cut from a synthetic clip), its Cortex-M4 build
    and memory report, then validation on the emulated device."""
    from firmware_gen.build import build_firmware
    from firmware_gen.package import firmware
    from host_tools.emulate import emulated_device
    from host_tools.validate import validate
    from model_dev.synth import synthesize_clip

    clock.step(8, "C package, built for cortex-m4")
    golden = synthesize_clip(0, seed, 4.0)[0]
    fw = firmware(model, out / "fw", golden_audio=golden)
    build_firmware(fw, "cortex-m4")
    memory = json.loads((fw / "memory.json").read_text())
    clock.lap("firmware_s")
    clock.step(9, f"emulated {target} device, validation over the serial link")
    with emulated_device(fw, target) as url:
        clock.lap("boot_s")
        val = validate(
            url,
            model,
            out / "corpus",
            dataset="synth",
            split="test",
            limit=cfg.validate_clips,
            out=out / "validation",
            progress=progress,
        )
    clock.lap("validate_s")
    return {"memory": memory, "validation": val}


def _results(models: dict, device: dict) -> dict:
    """The report's AUPRC, quantisation, memory and validation sections."""
    quant, val = models["quant"], device["validation"]
    keep = ("passed", "n_requested", "n_matched", "first_mismatch", "cycles", "clips_per_s")
    keep += ("link", "device_stats")
    return {
        "auprc": {
            "teacher": models["teacher"]["metrics"],
            "student_none_float": models["student_none"]["metrics"],
            "student_float": models["student"]["metrics"],
            "student_int8": quant["evaluation"]["int8_tflm"],
            "student_float_quant_split": quant["evaluation"]["float"],
            "device": (val["metrics"] or {}).get("device"),
            "device_host_reference": (val["metrics"] or {}).get("host"),
        },
        "quantize": {
            "model_bytes": quant["model"]["bytes"],
            "arena_bytes": quant["arena_bytes"],
            "tflm_vs_litert": quant["parity"],
            "evaluated_clips": quant["evaluation"]["n_clips"],
        },
        "memory": device["memory"],
        "validation": {k: val[k] for k in keep} | {"report": val["files"]["markdown"]},
    }


def _cpu_s() -> float:
    """CPU seconds of this process and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: What one demo's undistilled-vs-IUSP difference can say (report.md and the final line).
SEED_CAVEAT = (
    "One seed on a small test split is not evidence either way: the seed and the choice of "
    "test clips move the difference between two students by a few hundredths. The paired "
    "multi-seed comparison is `benchmarks/distill.py` (docs/benchmarks.md)."
)


def _markdown(r: dict, out: Path) -> str:
    a, v, m = r["auprc"], r["validation"], r["memory"]

    def f(x) -> str:
        return "n/a" if x is None or x != x else f"{x:.3f}"

    def row(name: str, metrics: dict | None) -> str:
        metrics = metrics or {}
        return f"| {name} | {f(metrics.get('micro'))} | {f(metrics.get('macro'))} |"

    cyc, n_dev, n_test = v["cycles"], v["n_requested"], r["quantize"]["evaluated_clips"]
    diff = a["student_float"]["micro"] - a["student_none_float"]["micro"]
    t = r["timings"]
    lines = [
        "# aedfw demo report",
        "",
        f"Corpus: built-in synthetic, preset `{r['corpus']['preset']}`, seed "
        f"{r['corpus']['seed']}, {r['corpus']['clips']} clips, {len(r['corpus']['classes'])} "
        f"classes. Front end `{r['frontend']['hash'][:12]}`.",
        f"Device: {r['config']['target']} (emulated), validation "
        f"**{'PASS' if v['passed'] else 'FAIL'}**: {v['n_matched']}/{v['n_requested']} test "
        "clips byte-identical to the host reference (features, window scores, clip scores, "
        f"decisions); details in `{Path(v['report']).relative_to(out)}`.",
        "",
        f"| AUPRC, test split ({n_test} clips unless stated) | micro | macro |",
        "|---|---|---|",
        row("trivial baseline (mean log-mel)", r["baseline_auprc"]),
        row(f"teacher ({r['config']['teacher_arch']})", a["teacher"]),
        row(f"student {r['config']['student']} float, no distillation", a["student_none_float"]),
        row(f"student {r['config']['student']} float, IUSP (same seed)", a["student_float"]),
        row("student int8 (TFLM, host)", a["student_int8"]),
        *(
            [row(f"student int8 on the device, all {n_dev} test clips", a["device"])]
            if n_dev == n_test
            else [
                row(f"student int8 on the device, first {n_dev} test clips", a["device"]),
                row(f"student int8 on the host, same {n_dev} clips", a["device_host_reference"]),
                "",
                f"The device validated {n_dev} of the {n_test} test clips (`--validate-clips` "
                "sets the number); its scores are byte-identical to the host's, hence the same "
                "AUPRC (on a part of the split it differs from the whole split's by chance).",
            ]
        ),
        "",
        f"The two float students differ by {diff:+.3f} in micro-AUPRC on one seed. {SEED_CAVEAT}",
        "",
        f"Sizes: model {r['quantize']['model_bytes']} B (.tflite), TFLM arena "
        f"{r['quantize']['arena_bytes']} B; Cortex-M4 image flash {m['flash']['total']} B "
        f"(front end + engine + weights + tables: {m['library']['weights_tables_code']} B), RAM "
        f"{m['ram']['total']} B (activations {m['library']['activations']} B).",
        f"Parity: C front end = Python on {r['c_frontend_parity']['clips']} clips "
        f"({r['c_frontend_parity']['frames']} frames); TFLM vs LiteRT reference kernels "
        f"{r['quantize']['tflm_vs_litert'].get('exact_match_rate', float('nan')):.2%} exact; "
        f"device = host on {v['n_matched']}/{v['n_requested']} clips.",
        f"Device cycle counter per clip (median): front end {cyc['frontend']['median']:.0f}, "
        f"model {cyc['model']['median']:.0f}, post {cyc['post']['median']:.0f}; model per "
        f"window {cyc['model_per_window']['median']:.0f}. Validation ran at "
        f"{v['clips_per_s']:.2f} clips/s, link efficiency {v['link']['efficiency']:.3f}.",
        "",
        "Timings, wall / CPU s (CPU: this process and its children, gcc, QEMU): "
        + ", ".join(f"{k.removesuffix('_s')} {t[k]} / {r['cpu_s'][k]}" for k in t)
        + f"; total {r['total_s']} / {r['total_cpu_s']}.",
    ]
    return "\n".join(lines) + "\n"
