"""``aedfw evaluate``: AUPRC, PR curves and thresholds (:func:`model_dev.evaluate.evaluate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands
from aedfw.options import add_dataset_options, add_device_option, dataset_spec

EXAMPLES = (
    "aedfw evaluate runs/s5k/best.pt --data data/small",
    "aedfw evaluate runs/s5k/best.pt --data clips.csv --split test --target-precision 0.9",
    "aedfw evaluate runs/fan-ae.pt --data data/machines",
)


def register(commands: Commands) -> None:
    p = commands.add(
        "evaluate",
        "AUPRC, PR curves and thresholds of a tagging checkpoint; AUC/pAUC of an anomaly one",
        run,
        examples=EXAMPLES,
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint (best.pt, or an anomaly .pt)")
    add_dataset_options(p)
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--out", type=Path, help="report folder (default CKPT_DIR/eval-SPLIT)")
    p.add_argument(
        "--target-precision",
        type=float,
        help="thresholds at this precision (default: at maximum F1)",
    )
    add_device_option(p, default="auto")


def run(args: argparse.Namespace) -> None:
    from model_dev.anomaly.pipeline import is_anomaly_checkpoint

    if is_anomaly_checkpoint(args.checkpoint):
        return run_anomaly(args)
    from model_dev.evaluate import evaluate

    out = args.out or args.checkpoint.parent / f"eval-{args.split}"
    data = dataset_spec(args)
    r = evaluate(args.checkpoint, data, args.split, out, args.target_precision, device=args.device)
    m = r["metrics"]
    print(
        f"{r['arch']} on {r['split']} ({r['n_clips']} clips): micro-AUPRC {m['micro']:.4f}, "
        f"macro {m['macro']:.4f} (chance {m['chance']:.4f})"
    )
    for c, t in r["at_thresholds"].items():
        print(
            f"  {c:22s} AP {m[f'ap/{c}']:.4f}  threshold {t['threshold']:.4f}  "
            f"P {t['precision']:.3f} R {t['recall']:.3f} F1 {t['f1']:.3f}"
        )
    print(f"thresholds ({r['thresholds']['method']}) saved in {args.checkpoint}; report in {out}")


def run_anomaly(args: argparse.Namespace) -> None:
    """An anomaly checkpoint: AUC/pAUC per type and ID on the dataset layout it was trained on
    (:func:`model_dev.anomaly.evaluation.evaluate_anomaly`)."""
    from model_dev.anomaly.evaluation import evaluate_anomaly
    from model_dev.anomaly.pipeline import load_anomaly_checkpoint

    kind = load_anomaly_checkpoint(args.checkpoint)["dataset"]["kind"]
    out = args.out or args.checkpoint.parent / f"eval-{args.checkpoint.stem}"
    r = evaluate_anomaly(
        args.checkpoint, args.data, out, kind=kind, cache_dir=args.cache, device=args.device
    )
    print(f"{r['method']} ({r['score']}); pAUC: {r['pauc_convention']}")
    for mtype, v in r["per_type"].items():
        print(f"  {mtype:12s} AUC {v['auc']:.4f}  pAUC {v['pauc']:.4f}")
    print(
        f"  mean         AUC {r['mean']['auc']:.4f}  pAUC {r['mean']['pauc']:.4f}; report in {out}"
    )
