"""Torch networks of the anomaly detectors, each with a training objective and a window score.

Every module here has ``objective(x, y) -> (loss, window_scores)``: ``x`` a batch of windows,
``y`` the per-window machine-ID (or label) index, ``loss`` the scalar to minimise and
``window_scores`` ``[B]`` the anomaly score of each window (higher = more anomalous).

Deployable (built only from the device's op set, specs in :mod:`model_dev.anomaly.specs`):

* :class:`DenseAE` on 5 stacked frames (FULLY_CONNECTED with folded BatchNorm + ReLU);
* :class:`IDClassifier` around a :class:`~model_dev.torch_net.TorchNet` DS-CNN;
* :class:`CausalConvPredictor`: a ``(k, n_mels)`` valid conv (causal in time), 1x1 convs.

Host-only: :class:`GroupMADE`, :class:`VAE`, :class:`ConvVAE`, :class:`CausalTransformer`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model_dev.anomaly.specs import DenseAESpec, MADESpec, PredictorSpec
from model_dev.arch import ArchSpec
from model_dev.torch_net import build_torch


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample ``[B]``."""
    return (a - b).pow(2).flatten(1).mean(dim=1)


def _dense_bn_relu(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU())


class DenseAE(nn.Module):
    """Dense autoencoder (DCASE 2020 baseline style): Linear+BN+ReLU layers, linear output.
    Score: mean squared reconstruction error of the window."""

    def __init__(self, spec: DenseAESpec) -> None:
        super().__init__()
        self.spec = spec
        sizes = [spec.n_in, *spec.units]
        self.body = nn.Sequential(
            *[_dense_bn_relu(a, b) for a, b in zip(sizes, sizes[1:], strict=False)]
        )
        self.out = nn.Linear(sizes[-1], spec.n_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.out(self.body(x))

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        err = _mse(self(x), x)
        return err.mean(), err.detach()


class IDClassifier(nn.Module):
    """Machine-ID classifier; ``y`` the ID class. Score: ``-log p(own ID)`` (softmax)."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        self.net = build_torch(spec)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:  # noqa: D102
        return self.net(x)

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        logits, _ = self.net(x)
        nll = F.cross_entropy(logits, y, reduction="none")
        return nll.mean(), nll.detach()


class BinaryClassifier(IDClassifier):
    """Supervised normal/abnormal classifier (one logit). Score: the logit; ``y`` the label."""

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        logit = self.net(x)[0][:, 0]
        return F.binary_cross_entropy_with_logits(logit, y.float()), logit.detach()


class CausalConvPredictor(nn.Module):
    """Next-frame predictor from CONV_2D only: output ``j`` sees frames ``j .. j+k-1`` and
    predicts frame ``j + k``. Score: mean squared prediction error over the window."""

    def __init__(self, spec: PredictorSpec) -> None:
        super().__init__()
        self.spec = spec
        c = spec.channels
        self.first = nn.Sequential(
            nn.Conv2d(1, c[0], (spec.context, spec.n_mels), bias=False),
            nn.BatchNorm2d(c[0]),
            nn.ReLU(),
        )
        self.hidden = nn.Sequential(
            *[
                nn.Sequential(nn.Conv2d(a, b, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU())
                for a, b in zip(c, c[1:], strict=False)
            ]
        )
        self.out = nn.Conv2d(c[-1], spec.n_mels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, F]`` -> predictions ``[B, T - context + 1, F]``."""
        h = self.out(self.hidden(self.first(x.unsqueeze(1))))  # [B, F, T', 1]
        return h[..., 0].transpose(1, 2)

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        k = self.spec.context
        err = _mse(self(x)[:, :-1], x[:, k:])
        return err.mean(), err.detach()


class _MaskedLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int, mask: np.ndarray) -> None:
        super().__init__(n_in, n_out)
        self.register_buffer("mask", torch.from_numpy(mask.astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.linear(x, self.weight * self.mask, self.bias)


class GroupMADE(nn.Module):
    """Group MADE: autoregressive Gaussian density over groups of the stacked log-mel vector
    (frame-major, groups of ``group`` consecutive bands), each group predicted from the
    preceding groups only (masked weights). Score: negative log-likelihood of the window."""

    def __init__(self, spec: MADESpec) -> None:
        super().__init__()
        self.spec = spec
        n_groups = spec.n_in // spec.group
        deg_in = np.arange(spec.n_in) // spec.group + 1  # group 1 .. G of each input
        degs = [deg_in] + [np.arange(h) % max(n_groups - 1, 1) + 1 for h in spec.hidden]
        layers = []
        for a, b in zip(degs, degs[1:], strict=False):
            layers += [_MaskedLinear(len(a), len(b), b[:, None] >= a[None]), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        mask_out = np.tile(deg_in[:, None] > degs[-1][None], (2, 1))
        self.head = _MaskedLinear(len(degs[-1]), 2 * spec.n_in, mask_out)  # means, log-scales
        self.register_buffer("shift", torch.zeros(spec.n_in))
        self.register_buffer("scale", torch.ones(spec.n_in))

    def set_normaliser(self, x: torch.Tensor) -> None:
        """Standardise inputs with training statistics (host-only model)."""
        self.shift.copy_(x.mean(0))
        self.scale.copy_(x.std(0).clamp_min(1e-3))

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        z = (x - self.shift) / self.scale
        mu, log_s = self.head(self.body(z)).chunk(2, dim=1)
        log_s = log_s.clamp(-5, 5)
        nll = (0.5 * ((z - mu) * torch.exp(-log_s)).pow(2) + log_s).sum(1) / self.spec.n_in
        return nll.mean(), nll.detach() + 0.5 * math.log(2 * math.pi)


class VAE(nn.Module):
    """VAE, two-layer encoder and decoder on the flattened window. Score: reconstruction MSE
    of the posterior mean."""

    def __init__(self, n_in: int, hidden: tuple[int, int] = (256, 128), latent: int = 16) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Linear(n_in, hidden[0]), nn.ReLU(), nn.Linear(*hidden), nn.ReLU()
        )
        self.stats = nn.Linear(hidden[1], 2 * latent)
        self.dec = nn.Sequential(
            nn.Linear(latent, hidden[1]),
            nn.ReLU(),
            nn.Linear(hidden[1], hidden[0]),
            nn.ReLU(),
            nn.Linear(hidden[0], n_in),
        )
        self.register_buffer("shift", torch.zeros(n_in))
        self.register_buffer("scale", torch.ones(n_in))
        self.beta = 0.1

    def set_normaliser(self, x: torch.Tensor) -> None:  # noqa: D102
        self.shift.copy_(x.flatten(1).mean(0))
        self.scale.copy_(x.flatten(1).std(0).clamp_min(1e-3))

    def encode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        mu, logvar = self.stats(self.enc(z)).chunk(2, dim=1)
        return mu, logvar.clamp(-8, 8)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.dec(latent)

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        z = ((x.flatten(1) - self.shift) / self.scale).reshape(x.shape)
        mu, logvar = self.encode(z)
        sample = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        recon = self.decode(sample).reshape(x.shape)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1) / z[0].numel()
        err = _mse(recon, z)
        return (err + self.beta * kl).mean(), err.detach()


class ConvVAE(VAE):
    """Convolutional VAE on log-mel patches ``[T, F]`` (time treated as an image axis)."""

    def __init__(self, frames: int, n_mels: int, latent: int = 16, width: int = 16) -> None:
        super().__init__(frames * n_mels, latent=latent)
        self.shape = (2 * width, frames // 8, n_mels // 8)
        n_flat = math.prod(self.shape)
        self.enc = nn.Sequential(
            nn.Unflatten(1, (1, frames, n_mels)),
            nn.Conv2d(1, width, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 4, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.stats = nn.Linear(n_flat, 2 * latent)
        self.dec = nn.Sequential(
            nn.Linear(latent, n_flat),
            nn.ReLU(),
            nn.Unflatten(1, self.shape),
            nn.ConvTranspose2d(2 * width, 2 * width, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1),
            nn.Flatten(),
        )

    def encode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        return super().encode(z.flatten(1))


class CausalTransformer(nn.Module):
    """Small causal Transformer predicting each next frame from the preceding ones.
    Score: mean squared prediction error over the window."""

    def __init__(
        self, frames: int, n_mels: int, d: int = 64, heads: int = 4, depth: int = 2
    ) -> None:
        super().__init__()
        self.inp = nn.Linear(n_mels, d)
        self.pos = nn.Parameter(torch.zeros(1, frames, d))
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True)
        self.body = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.out = nn.Linear(d, n_mels)
        self.register_buffer("shift", torch.zeros(n_mels))
        self.register_buffer("scale", torch.ones(n_mels))

    def set_normaliser(self, x: torch.Tensor) -> None:  # noqa: D102
        self.shift.copy_(x.flatten(0, 1).mean(0))
        self.scale.copy_(x.flatten(0, 1).std(0).clamp_min(1e-3))

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        z = (x - self.shift) / self.scale
        t = z.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=z.device)
        h = self.body(self.inp(z) + self.pos[:, :t], mask=mask, is_causal=True)
        err = _mse(self.out(h)[:, :-1], z[:, 1:])
        return err.mean(), err.detach()
