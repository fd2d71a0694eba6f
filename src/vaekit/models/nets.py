"""Encoder and decoder bodies: MLP (plain, residual or gated layers), convolutional and ResNet.
No probability and no loss here.

An encoder maps ``(B, *shape) -> (B, out_dim)``, optionally with a condition ``c: (B, cond_dim)``
(a one-hot label) joined to its features; a decoder maps ``(B, D) -> (B, *shape)``, where
``shape`` is ``(C, H, W)`` for images or ``(F,)`` for vectors (a conditional model joins the label to
the code before the decoder). The convolutional nets work for any image size and channel count:
each stride-2 layer maps a side ``t`` to ``ceil(t / 2)`` and the decoder mirrors the exact sizes the
encoder saw with ``output_padding``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vaekit.errors import VaekitError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


BLOCKS = ("plain", "residual", "gated")


class Dense(nn.Module):
    """One hidden layer (B, a) -> (B, b).

    plain: act(W x); residual: x + act(W x) when a == b (plain otherwise); gated: (W x) * sigmoid(V x),
    the gated dense layer of the VampPrior paper.
    """

    def __init__(self, a: int, b: int, activation: str = "relu", block: str = "plain"):
        super().__init__()
        self.block = block
        self.linear = nn.Linear(a, b)
        self.gate = nn.Linear(a, b) if block == "gated" else None
        self.act = ACTIVATIONS[activation]()
        self.skip = block == "residual" and a == b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            return self.linear(x) * torch.sigmoid(self.gate(x))
        h = self.act(self.linear(x))
        return x + h if self.skip else h


def mlp(sizes: list[int], activation: str = "relu", block: str = "plain", dropout: float = 0.0) -> nn.Sequential:
    """Hidden layers of the given kind, then a final linear layer (no activation after it).

    Plain layers are stored as Linear and activation modules, the layout of earlier checkpoints.
    dropout > 0 zeroes each hidden unit with that probability in training (Srivastava et al. 2014);
    it has no weights, and eval() turns it off."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()] if block == "plain" else [Dense(a, b, activation, block)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """(B, *shape) [+ (B, cond_dim)] -> (B, out_dim) through hidden layers."""

    def __init__(
        self,
        shape: tuple[int, ...],
        hidden: list[int],
        out_dim: int,
        activation: str = "relu",
        block: str = "plain",
        cond_dim: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.net = mlp([math.prod(shape) + cond_dim, *hidden, out_dim], activation, block, dropout)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)  # (B, F)
        if c is not None:
            h = torch.cat([h, c], 1)  # (B, F + cond_dim)
        return self.net(h)


class MLPDecoder(nn.Module):
    """(B, D) -> (B, *shape): hidden layers in the given order (pass them reversed for a mirror)."""

    def __init__(
        self,
        latent_dim: int,
        hidden: list[int],
        shape: tuple[int, ...],
        activation: str = "relu",
        block: str = "plain",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.shape = tuple(shape)
        self.net = mlp([latent_dim, *hidden, math.prod(shape)], activation, block, dropout)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).unflatten(1, self.shape)  # (B, F) -> (B, *shape)


def _halvings(h: int, w: int, n: int) -> list[tuple[int, int]]:
    sizes = [(h, w)]
    for _ in range(n):
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


class ConvEncoder(nn.Module):
    """(B, C, H, W) [+ (B, cond_dim)] -> (B, out_dim): stride-2 3x3 convolutions, then a linear layer."""

    def __init__(
        self, shape: tuple[int, ...], channels: list[int], out_dim: int, activation: str = "relu", cond_dim: int = 0
    ):
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
        self.head = nn.Linear(c * hl * wl + cond_dim, out_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv(x).flatten(1)  # (B, C', H', W') -> (B, C'H'W')
        return self.head(h if c is None else torch.cat([h, c], 1))


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


class ResBlock(nn.Module):
    """x + conv(act(conv(act(x)))), 3x3 convolutions at constant width; the last starts at zero so
    every block begins as the identity (deep stacks train without normalisation layers)."""

    def __init__(self, channels: int, activation: str = "relu"):
        super().__init__()
        self.act = ACTIVATIONS[activation]()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x))))


class ResNetEncoder(nn.Module):
    """(B, C, H, W) [+ (B, cond_dim)] -> (B, out_dim).

    A 3x3 stem to channels[0]; then per stage s: `depth` residual blocks at width channels[s] and a
    stride-2 convolution to the next width (the last stage halves into channels[-1]); a linear head.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        channels: list[int],
        depth: int,
        out_dim: int,
        activation: str = "relu",
        cond_dim: int = 0,
    ):
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"ResNet encoder needs (C, H, W) input, got {shape}")
        c, h, w = shape
        layers: list[nn.Module] = [nn.Conv2d(c, channels[0], 3, padding=1)]
        for s, width in enumerate(channels):
            layers += [ResBlock(width, activation) for _ in range(depth)]
            layers += [
                ACTIVATIONS[activation](),
                nn.Conv2d(width, channels[min(s + 1, len(channels) - 1)], 3, stride=2, padding=1),
            ]
        self.body = nn.Sequential(*layers, ACTIVATIONS[activation]())
        hl, wl = _halvings(h, w, len(channels))[-1]
        self.head = nn.Linear(channels[-1] * hl * wl + cond_dim, out_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(x).flatten(1)  # (B, C_L, H_L, W_L) -> (B, C_L H_L W_L)
        return self.head(h if c is None else torch.cat([h, c], 1))


class ResNetDecoder(nn.Module):
    """(B, D) -> (B, C, H, W): the encoder mirrored, with stride-2 transposed convolutions landing on
    the exact sizes the encoder saw, and a 3x3 convolution to the C output channels."""

    def __init__(
        self, latent_dim: int, channels: list[int], depth: int, shape: tuple[int, ...], activation: str = "relu"
    ):
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"ResNet decoder needs (C, H, W) output, got {shape}")
        c_out, h, w = shape
        sizes = _halvings(h, w, len(channels))
        chans = list(reversed(channels))
        self.start = (chans[0], *sizes[-1])
        self.head = nn.Linear(latent_dim, math.prod(self.start))
        layers: list[nn.Module] = []
        for i, width in enumerate(chans):
            (hi, wi), (ht, wt) = sizes[-1 - i], sizes[-2 - i]
            layers += [
                ACTIVATIONS[activation](),
                nn.ConvTranspose2d(
                    chans[max(i - 1, 0)],
                    width,
                    3,
                    stride=2,
                    padding=1,
                    output_padding=(ht - (2 * hi - 1), wt - (2 * wi - 1)),
                ),
            ]
            layers += [ResBlock(width, activation) for _ in range(depth)]
        layers += [ACTIVATIONS[activation](), nn.Conv2d(chans[-1], c_out, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.head(z).unflatten(1, self.start))  # (B, D) -> (B, C_L, H_L, W_L) -> (B, C, H, W)


class GridEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_channels, H_L, W_L): stride-2 3x3 convolutions, `depth` residual blocks,
    a 1x1 convolution. The code keeps a spatial grid (a VQ-VAE quantises each of its H_L W_L vectors)."""

    def __init__(
        self, shape: tuple[int, ...], channels: list[int], depth: int, out_channels: int, activation: str = "relu"
    ):
        super().__init__()
        c = shape[0]
        layers: list[nn.Module] = []
        for i, cout in enumerate(channels):
            layers += ([ACTIVATIONS[activation]()] if i else []) + [nn.Conv2d(c, cout, 3, stride=2, padding=1)]
            c = cout
        layers += [ResBlock(c, activation) for _ in range(depth)] + [
            ACTIVATIONS[activation](),
            nn.Conv2d(c, out_channels, 1),
        ]
        self.body = nn.Sequential(*layers)
        self.grid = _halvings(shape[1], shape[2], len(channels))[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class GridDecoder(nn.Module):
    """(B, in_channels, H_L, W_L) -> (B, *param_shape): a 1x1 convolution, residual blocks, then
    stride-2 transposed convolutions back to H x W."""

    def __init__(
        self, in_channels: int, channels: list[int], depth: int, shape: tuple[int, ...], activation: str = "relu"
    ):
        super().__init__()
        c_out, h, w = shape
        sizes = _halvings(h, w, len(channels))
        chans = list(reversed(channels))
        layers: list[nn.Module] = [nn.Conv2d(in_channels, chans[0], 1)] + [
            ResBlock(chans[0], activation) for _ in range(depth)
        ]
        for i in range(len(chans)):
            (hi, wi), (ht, wt) = sizes[-1 - i], sizes[-2 - i]
            cout = chans[i + 1] if i + 1 < len(chans) else c_out
            layers += [
                ACTIVATIONS[activation](),
                nn.ConvTranspose2d(
                    chans[i], cout, 3, stride=2, padding=1, output_padding=(ht - (2 * hi - 1), wt - (2 * wi - 1))
                ),
            ]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


# -- builders, registered in `registry.NETS` -------------------------------------------------------
# Each: (cfg: ModelConfig, shape, out_dim, cond_dim, param_shape) -> (encoder, decoder), where the
# encoder maps (B, *shape) [+ (B, cond_dim)] -> (B, out_dim) and the decoder (B, D + cond_dim) ->
# (B, *param_shape), D = cfg.latent_dim. The encoder is built first (the order fixes the initial weights).


def _image_only(cfg, shape: tuple[int, ...]) -> None:
    if len(shape) != 3:
        raise VaekitError(
            f"model.arch = '{cfg.arch}' needs image data (C, H, W); this data has shape {shape}; use 'mlp'"
        )


def build_mlp(cfg, shape: tuple[int, ...], out_dim: int, cond_dim: int, param_shape: tuple[int, ...]):
    enc = MLPEncoder(shape, cfg.hidden, out_dim, cfg.activation, cfg.block, cond_dim=cond_dim, dropout=cfg.dropout)
    dec = MLPDecoder(
        cfg.latent_dim + cond_dim, list(reversed(cfg.hidden)), param_shape, cfg.activation, cfg.block, cfg.dropout
    )
    return enc, dec


def build_conv(cfg, shape: tuple[int, ...], out_dim: int, cond_dim: int, param_shape: tuple[int, ...]):
    _image_only(cfg, shape)
    enc = ConvEncoder(shape, cfg.channels, out_dim, cfg.activation, cond_dim=cond_dim)
    return enc, ConvDecoder(cfg.latent_dim + cond_dim, cfg.channels, param_shape, cfg.activation)


def build_resnet(cfg, shape: tuple[int, ...], out_dim: int, cond_dim: int, param_shape: tuple[int, ...]):
    _image_only(cfg, shape)
    enc = ResNetEncoder(shape, cfg.channels, cfg.depth, out_dim, cfg.activation, cond_dim=cond_dim)
    return enc, ResNetDecoder(cfg.latent_dim + cond_dim, cfg.channels, cfg.depth, param_shape, cfg.activation)
