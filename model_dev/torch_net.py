"""The torch side of :mod:`model_dev.arch`: the network of an ``ArchSpec`` and its forward pass
over a batch of clips' windows, clip logits being the maximum over windows (as on the device).

Kept apart from the spec so that the tools that only read specs or cut windows (validation,
reports, the command line) do not load torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model_dev.arch import ArchSpec, Layer, layers


class ConvBNReLU(nn.Module):
    """One :class:`~model_dev.arch.Layer` in torch: explicit TF-same ``F.pad``, conv (no bias),
    BN, ReLU."""

    def __init__(self, ly: Layer) -> None:
        super().__init__()
        groups = ly.cin if ly.op == "depthwise" else 1
        self.pad = (ly.pad[2], ly.pad[3], ly.pad[0], ly.pad[1])  # F.pad: last dim (mel) first
        self.conv = nn.Conv2d(ly.cin, ly.cout, ly.kernel, ly.stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(ly.cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.relu(self.bn(self.conv(F.pad(x, self.pad))))


class TorchNet(nn.Module):
    """Torch model of an :class:`~model_dev.arch.ArchSpec` (see :func:`build_torch`).

    Parameters ``layers.{i}.conv.weight`` and ``layers.{i}.bn.*`` follow
    :func:`~model_dev.arch.layers` order; the dense layer is ``head``.
    """

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        lys = layers(spec)
        self.layers = nn.ModuleList(ConvBNReLU(ly) for ly in lys)
        self.block_of = [ly.block for ly in lys]
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(lys[-1].cout, spec.n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Window features ``[B, T, F]`` (dequantised) -> ``(logits [B, K], block features)``.

        ``feats[i]`` is block ``i``'s output ``[B, C, T', F']``.
        """
        x = x.unsqueeze(1)
        feats: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 == len(self.layers) or self.block_of[i + 1] != self.block_of[i]:
                feats.append(x)
        return self.head(self.dropout(x.mean(dim=(2, 3)))), feats


def build_torch(spec: ArchSpec) -> TorchNet:
    """Build the torch model of ``spec``.

    Parameters
    ----------
    spec : ArchSpec
        The architecture.

    Returns
    -------
    TorchNet
        ``forward(x [B, T, F])`` returns ``(logits [B, n_classes], feats)``; any T and F work
        (the head pools globally), though statistics and export assume the spec's window.
    """
    return TorchNet(spec)


def aggregate(window_logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Clip logits = max over windows (sigmoid of it = max of window probabilities).

    Parameters
    ----------
    window_logits : torch.Tensor
        ``[B, n_windows, C]``.
    mask : torch.Tensor, optional
        Bool ``[B, n_windows]``, False for padding windows of shorter clips in a batch.

    Returns
    -------
    torch.Tensor
        Clip logits ``[B, C]``.
    """
    if mask is not None:
        window_logits = window_logits.masked_fill(~mask[..., None], float("-inf"))
    return window_logits.amax(dim=1)


def clip_forward(
    model: nn.Module, windows: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Run a model over every window of a batch of clips and aggregate.

    Parameters
    ----------
    model : nn.Module
        A :func:`build_torch` model.
    windows : torch.Tensor
        ``[B, n_windows, T, F]`` dequantised features.
    mask : torch.Tensor, optional
        See :func:`aggregate`.

    Returns
    -------
    clip_logits : torch.Tensor
        ``[B, C]``.
    window_logits : torch.Tensor
        ``[B, n_windows, C]``.
    feats : list of torch.Tensor
        Block features of all ``B * n_windows`` windows, clip-major.
    """
    b, w = windows.shape[:2]
    logits, feats = model(windows.flatten(0, 1))
    window_logits = logits.unflatten(0, (b, w))
    return aggregate(window_logits, mask), window_logits, feats
