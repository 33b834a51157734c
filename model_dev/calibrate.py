"""Gradient-balanced distillation weights.

A loss weight chosen by the size of the loss says little about how hard a term pulls on the
student: at initialisation ``3000 * SP`` (Tung & Mori's weight) moves the student's parameters
about 50 times harder than the BCE does. Here each term's weight is set so that its gradient norm
on the student's parameters is a chosen multiple (the *target ratio*) of the BCE's:

``weight[t] = target[t] * mean_b ||grad BCE_b|| / mean_b ||grad term_b||``

measured over the first ``n_batches`` batches of a seeded order of the training clips, on the
freshly initialised student (with the augmentation it will train with). The model's state
(BatchNorm statistics included) is restored afterwards, so calibration leaves the run unchanged.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

#: ``losses(clip_indices, rng)`` -> unweighted loss terms with graphs (``bce`` among them).
LossFn = Callable[[np.ndarray, np.random.Generator], dict[str, torch.Tensor]]


def gradient_norms(model: nn.Module, terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """L2 norm of each term's gradient over all trainable parameters of ``model``."""
    params = [p for p in model.parameters() if p.requires_grad]
    norms = {}
    for name, value in terms.items():
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        norms[name] = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads if g is not None))
    return norms


def mean_gradient_norms(
    model: nn.Module, losses: LossFn, n_clips: int, batch_size: int, n_batches: int, seed: int
) -> dict[str, float]:
    """Mean gradient norm of each term over ``n_batches`` batches (model state restored).

    Parameters
    ----------
    model : nn.Module
        The student (put in training mode while measuring).
    losses : callable
        ``losses(clip_indices, rng)``: the unweighted terms of a batch.
    n_clips, batch_size, n_batches : int
        Training clips, clips per batch, batches to average over (wrapping around if the
        split has fewer).
    seed : int
        Seeds the clip order and augmentation.
    """
    state = copy.deepcopy(model.state_dict())
    rng = np.random.default_rng([seed, 0])  # training epochs use (seed, 1..)
    order = np.resize(rng.permutation(n_clips), n_batches * batch_size)
    sums: dict[str, float] = {}
    model.train()
    for b in range(n_batches):
        terms = losses(order[b * batch_size : (b + 1) * batch_size], rng)
        for name, norm in gradient_norms(model, terms).items():
            sums[name] = sums.get(name, 0.0) + norm / n_batches
    model.load_state_dict(state)
    return sums


def balanced_weights(norms: dict[str, float], targets: dict[str, float]) -> dict[str, float]:
    """Weights that give each term ``targets[t]`` times the BCE's gradient norm.

    Raises
    ------
    ValueError
        If a term has no gradient on the student (nothing to balance).
    """
    weights = {}
    for name, target in targets.items():
        if not norms.get(name, 0.0) > 0:
            raise ValueError(f"distillation term {name!r} has no gradient on the student")
        weights[name] = target * norms["bce"] / norms[name]
    return weights
