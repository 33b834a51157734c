"""A validation split carved from ``train``, for datasets that ship train and test only.

Training selects its best epoch and operating thresholds on ``validate``; most real datasets
ship only ``train`` and ``test``. :func:`carve_validation` moves a fraction of the training clips
to ``validate``:

- **grouped**: clips of one source recording (a manifest's ``source`` column) move together, so
  mixes or cuts of one recording never straddle train and validate; without sources every clip
  is its own group;
- **stratified by label**: each group is filed under its rarest label (the one with the fewest
  training clips; unlabelled groups under ``""``) and every stratum gives up its share of groups
  (largest remainder, so the total is ``round(fraction * groups)``, at least one);
- **deterministic**: within a stratum groups are taken in the order of the sha256 of their name,
  so the split depends only on the clip ids, sources and labels, not on the listing order.

Datasets that have a ``validate`` split, or no ``train`` split (fold datasets such as ESC-50),
are returned unchanged.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from dataclasses import replace

from model_dev.datasets import ClipRef, Dataset

#: The fraction of training groups moved to ``validate`` when none is given.
DEFAULT_VAL_FRACTION = 0.1


def needs_validation(dataset: Dataset) -> bool:
    """True when ``dataset`` has a ``train`` split and no ``validate`` split."""
    return "train" in dataset.splits and "validate" not in dataset.splits


def carve_validation(dataset: Dataset, fraction: float | None = None) -> Dataset:
    """Move a grouped, label-stratified share of ``train`` to ``validate`` (module docstring).

    Parameters
    ----------
    dataset : Dataset
        A loaded dataset.
    fraction : float, optional
        Share of the training groups to move, in (0, 1); default :data:`DEFAULT_VAL_FRACTION`.

    Returns
    -------
    Dataset
        ``dataset`` itself when it needs no carving, else a copy whose moved clips have split
        ``validate`` and whose ``validation`` records the fraction, grouping and counts.

    Raises
    ------
    ValueError
        ``fraction`` outside (0, 1), or fewer than two training groups to divide.
    """
    fraction = DEFAULT_VAL_FRACTION if fraction is None else fraction
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction {fraction}: must be between 0 and 1 (exclusive)")
    if not needs_validation(dataset):
        return dataset
    train = [clip for clip in dataset.clips if clip.split == "train"]
    groups: dict[str, list[ClipRef]] = defaultdict(list)
    for clip in train:
        groups[clip.source or clip.clip_id].append(clip)
    if len(groups) < 2:
        raise ValueError(
            f"{dataset.root}: cannot carve a validation split from {len(groups)} training "
            "source(s); add clips or give the dataset a 'validate' split"
        )
    chosen = _choose(groups, fraction)
    clips = [
        replace(c, split="validate") if c.split == "train" and (c.source or c.clip_id) in chosen
        else c
        for c in dataset.clips
    ]  # fmt: skip
    info = {
        "carved_from": "train",
        "fraction": fraction,
        "grouped_by": "source" if any(c.source for c in train) else "clip",
        "stratified_by": "rarest label",
        "train_groups": len(groups) - len(chosen),
        "validate_groups": len(chosen),
        "validate_clips": sum(len(groups[g]) for g in chosen),
    }
    return replace(dataset, clips=clips, skipped=list(dataset.skipped), validation=info)


def _choose(groups: dict[str, list[ClipRef]], fraction: float) -> set[str]:
    """The groups moved to ``validate``: each stratum's share, largest remainders first."""
    count = Counter(label for members in groups.values() for c in members for label in c.labels)
    strata: dict[str, list[str]] = defaultdict(list)
    for name, members in groups.items():
        labels = {label for c in members for label in c.labels}
        strata[min(labels, key=lambda x: (count[x], x)) if labels else ""].append(name)
    total = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    share = {s: fraction * len(names) for s, names in strata.items()}
    take = {s: math.floor(v) for s, v in share.items()}
    for s in sorted(strata, key=lambda s: (take[s] - share[s], s))[: total - sum(take.values())]:
        take[s] += 1
    chosen: set[str] = set()
    for s, names in strata.items():
        ordered = sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
        chosen.update(ordered[: take[s]])
    return chosen
