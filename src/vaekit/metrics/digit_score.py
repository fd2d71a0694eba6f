"""A small MNIST classifier that turns "looks like a digit" into a number.

`digit_score(clf, images)` is the classifier's mean top-class probability over a set of images:
near 1 for clear digits, lower for blends and noise. The tour reports it for real test digits,
interpolation midpoints and decoded random codes.

A plain classifier is overconfident far from its data (an MLP gives uniform noise ~0.9 top-class
probability), which would make the score meaningless. So it is trained with outlier exposure
(Hendrycks et al., 2019): generic non-digits (each digit's pixels shuffled, and uniform noise of
random brightness) are pushed towards the uniform distribution over classes. Blends of digits are
deliberately not used as outliers, so the score is not tuned against interpolation midpoints.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vaekit.data.prepared import batches


def make_classifier(shape: tuple[int, ...], n_classes: int = 10, hidden: int = 512) -> nn.Module:
    """MLP (B, *shape) -> (B, n_classes) logits."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(shape), hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )


def outliers(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Non-digits shaped like x (B, *shape): half pixel-shuffled copies, half uniform noise."""
    b = len(x)
    flat = x.flatten(1)
    keys = torch.rand(flat.shape, generator=generator, device="cpu").to(x.device)
    shuffled = flat.gather(1, keys.argsort(1))  # each row's pixels in a random order
    bright = torch.rand(b, 1, generator=generator, device="cpu").to(x.device)
    noise = torch.rand(flat.shape, generator=generator, device="cpu").to(x.device) * bright
    pick = (torch.arange(b, device=x.device) % 2 == 0)[:, None]
    return torch.where(pick, shuffled, noise).view_as(x)


def train_classifier(
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int = 4,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    outlier_weight: float = 0.5,
    net: nn.Module | None = None,
) -> nn.Module:
    """Cross-entropy on x (N, *shape), y (N,), plus outlier exposure towards uniform predictions.
    Trains `net` ((B, *shape) -> (B, classes) logits) if given, else a new `make_classifier` MLP."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    clf = (net if net is not None else make_classifier(tuple(x.shape[1:]), int(y.max()) + 1)).to(x.device)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr * 2, total_steps=steps)
    for _ in range(epochs):
        clf.train()
        for idx in batches(len(x), batch_size, g, device=x.device):
            xb = x[idx]
            loss = nn.functional.cross_entropy(clf(xb), y[idx])
            if outlier_weight > 0:  # cross-entropy to the uniform distribution
                loss = loss - outlier_weight * clf(outliers(xb[: len(xb) // 2], g)).log_softmax(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return clf.eval()


@torch.no_grad()
def accuracy(clf: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    pred = torch.cat([clf(x[i]).argmax(1) for i in batches(len(x), 2000, shuffle=False, device=x.device)])
    return float((pred == y).float().mean())


@torch.no_grad()
def digit_score(clf: nn.Module, images: torch.Tensor) -> float:
    """Mean over images of the classifier's top-class probability (1.0 = confidently a digit)."""
    probs = torch.cat(
        [clf(images[i]).softmax(1).amax(1) for i in batches(len(images), 2000, shuffle=False, device=images.device)]
    )
    return float(probs.mean())
