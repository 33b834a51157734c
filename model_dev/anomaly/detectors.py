"""Anomaly detectors: one per (method, machine type), trained on normal clips only.

A detector cuts each clip's dequantised log-mel features ``[T, n_mels]`` into windows (the
method's :class:`~model_dev.anomaly.methods.Layout`), scores every window and averages the window
scores into the clip score, the aggregation every method here uses (as the DCASE 2020 baseline
does). :data:`~model_dev.anomaly.methods.METHODS` lists each method's window layout, score
definition and whether it is deployable.
"""

from __future__ import annotations

import pickle

import numpy as np
import torch

from model_dev.anomaly import nets, specs
from model_dev.anomaly.methods import ID_WINDOW

#: The pseudo-instance groups of the ID classifier, in class order after the real IDs:
#: ``("mel", f)`` warps the mel axis by ``f`` (another geometry), ``("time", f)`` plays the clip
#: ``f`` times faster (another speed). They keep a foreign sound from passing as a real
#: instance. Nearer ones (3 %, 5 %) were dropped with the corpus' version 2: they copy a real
#: unit of the same product model (units there are spread over +-10 % in speed).
PSEUDO = (
    ("mel", 1.08), ("mel", 1 / 1.08), ("time", 1.15),
)  # fmt: skip


def _warped(clip: np.ndarray, axis: str, factor: float) -> np.ndarray:
    """A clip ``[T, F]`` resampled by ``factor`` along mel (``f(mel) = clip(mel / factor)``,
    clamped at the edges) or along time (``factor`` > 1: faster, shorter)."""
    n = clip.shape[0 if axis == "time" else 1]
    if axis == "time":
        src = np.arange(0, n - 1, factor)
    else:
        src = np.clip(np.arange(n, dtype=np.float64) / factor, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi, w = np.minimum(lo + 1, n - 1), (src - lo).astype(np.float32)
    if axis == "time":
        return (clip[lo] * (1 - w[:, None]) + clip[hi] * w[:, None]).astype(np.float32)
    return (clip[:, lo] * (1 - w) + clip[:, hi] * w).astype(np.float32)


def pseudo_instances(
    clips: list[np.ndarray], ids: np.ndarray, n_ids: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Extra machine instances for the ID classifier, made from the real ones.

    For real ID ``k`` (of ``K``), class ``(g + 1) K + k`` is its clips transformed by
    :data:`PSEUDO` group ``g``: mel warps (pitch shift: another geometry) and time stretches
    (another speed: periods, strokes and click intervals), the pseudo-classes of the DCASE
    2020 winning ID classifier. (Mixing clips of two IDs was tried as a class: the power sum
    of two noise-dominated machines is close to either of them, so it took probability from
    the real IDs' normal clips; on the tiny corpus it cost loud-tone AUC.)
    """
    out_clips, out_ids = list(clips), [ids]
    for g, (axis, factor) in enumerate(PSEUDO):
        out_clips += [_warped(c, axis, factor) for c in clips]
        out_ids.append(ids + (g + 1) * n_ids)
    return out_clips, np.concatenate(out_ids)


def build_network(method: str, n_ids: int, size: str = "student") -> torch.nn.Module:
    """The torch network of a neural method (``n_ids`` real machine IDs of the type)."""
    builders = {
        "dense_ae": lambda: nets.DenseAE(specs.DENSE_AE_DCASE),
        "dense_ae_small": lambda: nets.DenseAE(specs.DENSE_AE_SMALL),
        "id_classifier": lambda: nets.IDClassifier(
            specs.id_classifier_spec((1 + len(PSEUDO)) * n_ids, size)
        ),
        "causal_conv": lambda: nets.CausalConvPredictor(specs.PREDICTOR),
        "group_made": lambda: nets.GroupMADE(specs.MADE),
        "vae": lambda: nets.VAE(specs.DENSE_AE_DCASE.n_in),
        "conv_vae": lambda: nets.ConvVAE(ID_WINDOW, 128),
        "transformer": lambda: nets.CausalTransformer(ID_WINDOW, 128),
        "supervised": lambda: nets.BinaryClassifier(
            specs.id_classifier_spec(1, size, mel_position=False)
        ),
    }
    if method not in builders:
        raise ValueError(f"{method!r} is not a neural method; neural: {', '.join(builders)}")
    return builders[method]()


def network_spec(model: torch.nn.Module) -> dict | None:
    """The deployable block spec of a network as a dict (None for host-only networks)."""
    spec = getattr(model, "spec", None)
    return spec.to_dict() if spec is not None else None


def build_sklearn(method: str, seed: int):
    """A scikit-learn pipeline (standardisation + estimator) for a classical method.

    ``ocsvm`` is the exact RBF one-class SVM (trained on at most 2000 windows);
    ``sgd_ocsvm`` is ``SGDOneClassSVM`` over a 300-component Nystroem RBF approximation.
    """
    from sklearn.ensemble import IsolationForest
    from sklearn.kernel_approximation import Nystroem
    from sklearn.linear_model import SGDOneClassSVM
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM

    estimators = {
        "isolation_forest": lambda: [IsolationForest(n_estimators=200, random_state=seed)],
        "ocsvm": lambda: [OneClassSVM(kernel="rbf", gamma="scale", nu=0.1)],
        "sgd_ocsvm": lambda: [
            Nystroem(gamma=1.0 / 128, n_components=300, random_state=seed),
            SGDOneClassSVM(nu=0.1, random_state=seed),
        ],
    }
    if method not in estimators:
        raise ValueError(f"{method!r} is not a scikit-learn method: {', '.join(estimators)}")
    return make_pipeline(StandardScaler(), *estimators[method]())


#: Training windows given to each scikit-learn method (the exact OC-SVM is O(n^2) in memory).
SKLEARN_MAX_WINDOWS = {"isolation_forest": 20000, "ocsvm": 2000, "sgd_ocsvm": 20000}


def sklearn_window_scores(pipe, x: np.ndarray) -> np.ndarray:
    """Anomaly scores (higher = more anomalous) of windows ``[n, d]`` from a fitted pipeline."""
    last = pipe.steps[-1][1]
    if hasattr(last, "score_samples") and type(last).__name__ == "IsolationForest":
        return -pipe.score_samples(x)
    return -pipe.decision_function(x)


def dumps_sklearn(pipe) -> bytes:
    """Serialise a fitted pipeline (pickle: load only checkpoints you made)."""
    return pickle.dumps(pipe)


def loads_sklearn(blob: bytes):
    """Inverse of :func:`dumps_sklearn`."""
    return pickle.loads(blob)  # noqa: S301 - our own checkpoint files
