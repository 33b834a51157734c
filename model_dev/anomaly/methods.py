"""What each anomaly method is: its window layout, its score, whether it goes to the device, and
the distillation arms of the ID classifier.

Plain data without torch, so that ``aedfw`` builds its command line (method and arm choices)
without loading torch; the networks are in :mod:`model_dev.anomaly.detectors`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from model_dev.arch import clip_windows

#: Frames per window of the patch methods (ID classifier, predictors).
ID_WINDOW = 32


@dataclass(frozen=True)
class Layout:
    """How a clip becomes model windows.

    Parameters
    ----------
    kind : {"stack", "patch"}
        ``stack``: ``frames`` consecutive frames flattened (frame-major) into one vector, hop
        ``hop`` frames; ``patch``: ``[frames, n_mels]`` windows (short clips padded with
        silence), hop ``hop`` when scoring and ``train_hop`` when training.
    frames : int
        Frames per window.
    hop, train_hop : int
        Window hops in frames.
    """

    kind: str
    frames: int
    hop: int = 1
    train_hop: int = 1

    def windows(self, clip: np.ndarray, silence: float, train: bool = False) -> np.ndarray:
        """Windows of one clip ``[T, F]`` (float): ``[n, frames * F]`` or ``[n, frames, F]``."""
        hop = self.train_hop if train else self.hop
        if self.kind == "patch":
            return clip_windows(clip, self.frames, hop, pad_value=silence)
        if len(clip) < self.frames:
            fill = np.full((self.frames - len(clip), clip.shape[1]), silence, clip.dtype)
            clip = np.concatenate([clip, fill])
        view = np.lib.stride_tricks.sliding_window_view(clip, self.frames, axis=0)[::hop]
        return view.transpose(0, 2, 1).reshape(len(view), -1)


STACK5 = Layout("stack", 5, 1, 1)
PATCH32 = Layout("patch", ID_WINDOW, 8, 4)
FRAMES = Layout("stack", 1, 2, 2)  # scikit-learn: single frames (128-d), every other one


@dataclass(frozen=True)
class Method:
    """What a method is: its window layout, its score and whether it goes to the device."""

    name: str
    layout: Layout
    score: str
    deployable: bool
    uses_anomalies: bool = False
    lr: float = 1e-3  # default Adam learning rate


_RECON = "mean over windows of the mean squared reconstruction error"
_PRED = "mean over windows of the mean squared next-frame prediction error"
METHODS = {
    m.name: m
    for m in [
        Method("dense_ae", STACK5, _RECON + " (DCASE 2020 baseline, 640-128x4-8)", True),
        Method("dense_ae_small", STACK5, _RECON + " (hidden 64-64-8-64-64)", True),
        Method(
            "id_classifier", PATCH32, "mean over windows of -log p(own machine ID)", True, lr=5e-3
        ),
        Method("causal_conv", PATCH32, _PRED + " (CONV_2D-only causal predictor)", True),
        Method(
            "group_made", STACK5, "mean over windows of the Gaussian negative log-likelihood", True
        ),
        Method("vae", STACK5, _RECON + " of the posterior mean (standardised input)", False),
        Method("conv_vae", PATCH32, _RECON + " of the posterior mean (standardised input)", False),
        Method("transformer", PATCH32, _PRED + " (causal Transformer, standardised input)", False),
        Method("isolation_forest", FRAMES, "mean over windows of -score_samples", False),
        Method("ocsvm", FRAMES, "mean over windows of -decision_function (RBF)", False),
        Method("sgd_ocsvm", FRAMES, "mean over windows of -decision_function (Nystroem)", False),
        Method("supervised", PATCH32, "mean over windows of the anomaly logit", False, True, 5e-3),
    ]
}
SKLEARN_METHODS = ("isolation_forest", "ocsvm", "sgd_ocsvm")


def layout_dict(layout: Layout) -> dict:
    """JSON-able window layout (stored in checkpoints)."""
    return asdict(layout)


#: Distillation arms of the ID classifier: weights of the (kd, iusp) terms, each then balanced
#: by gradient size against the cross-entropy.
DISTILL_ARMS = {"kd": (1.0, 0.0), "iusp": (0.0, 1.0), "kd+iusp": (1.0, 1.0)}
