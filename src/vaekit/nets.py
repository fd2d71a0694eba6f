"""Encoder and decoder bodies: MLP and convolutional. No probability and no loss here.

An encoder maps ``(B, *shape) -> (B, out_dim)``; a decoder maps ``(B, D) -> (B, *shape)``, where
``shape`` is ``(C, H, W)`` for images or ``(F,)`` for vectors. The convolutional pair works for any
image size and channel count: each stride-2 layer maps a side ``t`` to ``ceil(t / 2)`` and the
decoder mirrors the exact sizes the encoder saw with ``output_padding``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


def mlp(sizes: list[int], activation: str = "relu") -> nn.Sequential:
    """Linear layers with `activation` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """(B, *shape) -> (B, out_dim) through hidden layers."""

    def __init__(self, shape: tuple[int, ...], hidden: list[int], out_dim: int, activation: str = "relu"):
        super().__init__()
        self.net = mlp([math.prod(shape), *hidden, out_dim], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))  # (B, F) -> (B, out_dim)


class MLPDecoder(nn.Module):
    """(B, D) -> (B, *shape): hidden layers in the given order (pass them reversed for a mirror)."""

    def __init__(self, latent_dim: int, hidden: list[int], shape: tuple[int, ...], activation: str = "relu"):
        super().__init__()
        self.shape = tuple(shape)
        self.net = mlp([latent_dim, *hidden, math.prod(shape)], activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).unflatten(1, self.shape)  # (B, F) -> (B, *shape)


def _halvings(h: int, w: int, n: int) -> list[tuple[int, int]]:
    sizes = [(h, w)]
    for _ in range(n):
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_dim): stride-2 3x3 convolutions, then a linear layer."""

    def __init__(self, shape: tuple[int, ...], channels: list[int], out_dim: int, activation: str = "relu"):
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"convolutional encoder needs (C, H, W) input, got {shape}")
        c, h, w = shape
        layers: list[nn.Module] = []
        for cout in channels:
            layers += [nn.Conv2d(c, cout, 3, stride=2, padding=1), ACTIVATIONS[activation]()]
            c = cout
        self.conv = nn.Sequential(*layers)
        hl, wl = _halvings(h, w, len(channels))[-1]
        self.head = nn.Linear(c * hl * wl, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).flatten(1))  # (B, C', H', W') -> (B, C'H'W') -> (B, out_dim)


class ConvDecoder(nn.Module):
    """(B, D) -> (B, C, H, W): a linear layer, then stride-2 transposed convolutions back to H x W."""

    def __init__(self, latent_dim: int, channels: list[int], shape: tuple[int, ...], activation: str = "relu"):
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"convolutional decoder needs (C, H, W) output, got {shape}")
        c_out, h, w = shape
        sizes = _halvings(h, w, len(channels))  # [(H, W), ..., (H_L, W_L)]
        chans = list(reversed(channels))  # deepest first
        self.start = (chans[0], *sizes[-1])
        self.head = nn.Linear(latent_dim, math.prod(self.start))
        layers: list[nn.Module] = []
        for i in range(len(channels)):
            (hi, wi), (ht, wt) = sizes[-1 - i], sizes[-2 - i]
            cin, cout = chans[i], (chans[i + 1] if i + 1 < len(chans) else c_out)
            pad = (ht - (2 * hi - 1), wt - (2 * wi - 1))  # 0 or 1 per side: lands exactly on (ht, wt)
            layers.append(nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=pad))
            if i + 1 < len(chans):
                layers.append(ACTIVATIONS[activation]())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.head(z).unflatten(1, self.start))  # (B, D) -> (B, C', H', W') -> (B, C, H, W)
