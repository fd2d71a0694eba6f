"""Pictures as pure functions: tensors in, PNG files out.

Images are ``(N, C, H, W)`` with values in [0, 1] (clamped); C is 1 (grey), 3 (RGB) or 4 (RGBA), and
any other channel count is drawn as its mean in grey. Grids are drawn with
Pillow; plots (scatter, curves) with matplotlib's Agg backend, imported only when used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vaekit.training.checkpoints import atomic_file


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) float -> (N, H, W, C) uint8. Grey, RGB and RGBA are drawn as they are; any other
    channel count (2, or a multispectral 5 or 28) has no picture format, so its mean over channels
    is drawn in grey."""
    x = images.detach().float().clamp(0, 1).cpu()
    if x.dim() == 3:
        x = x[:, None]
    if x.shape[1] not in (1, 3, 4):
        x = x.mean(1, keepdim=True)
    return (x.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def grid_array(rows: Sequence[torch.Tensor], pad: int = 2) -> np.ndarray:
    """Tile rows of images (each (n_i, C, H, W)) into one (rows*H', cols*W', C) uint8 array."""
    arrays = [_to_uint8(r) for r in rows]
    h, w, c = arrays[0].shape[1:]
    cols = max(len(a) for a in arrays)
    out = np.full((len(arrays) * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, a in enumerate(arrays):
        for j, im in enumerate(a):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = im
    return out


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()


def save_png(
    array: np.ndarray,
    path: str | Path,
    scale: int = 2,
    labels: Sequence[str] | None = None,
    row_height: float | None = None,
) -> Path:
    """Write an (H, W, C) uint8 array as PNG, upscaled by `scale`, with optional row labels on the left."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    if labels:
        rh = row_height or img.height / len(labels)
        font = _font(max(11, min(18, int(rh * 0.3))))
        measure = ImageDraw.Draw(img)
        margin = 12 + int(max(measure.textlength(s, font=font) for s in labels))
        white = 255 if img.mode == "L" else (255, 255, 255)
        canvas = Image.new(img.mode, (img.width + margin, img.height), white)
        canvas.paste(img, (margin, 0))
        draw = ImageDraw.Draw(canvas)
        for i, s in enumerate(labels):
            draw.text((6, int(i * rh + rh / 2)), s, fill=0 if img.mode == "L" else (0, 0, 0), font=font, anchor="lm")
        img = canvas
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        img.save(tmp)
    return Path(path)


def image_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, scale: int = 2) -> Path:
    """N images in rows of `nrow`."""
    rows = list(images.split(nrow))
    return save_png(grid_array(rows), path, scale)


def reconstruction_grid(x: torch.Tensor, recons: dict[str, torch.Tensor], path: str | Path, scale: int = 2) -> Path:
    """First row the inputs, then one row per model's reconstruction, labelled."""
    rows = [x, *recons.values()]
    arr = grid_array(rows)
    return save_png(arr, path, scale, labels=["input", *recons], row_height=arr.shape[0] * scale / len(rows))


def labelled_rows(rows: dict[str, torch.Tensor], path: str | Path, scale: int = 2) -> Path:
    arr = grid_array(list(rows.values()))
    return save_png(arr, path, scale, labels=list(rows), row_height=arr.shape[0] * scale / len(rows))


def interpolate_codes(za: torch.Tensor, zb: torch.Tensor, steps: int, mode: str = "linear") -> torch.Tensor:
    """Codes from za to zb (both (D,)) in `steps` points: (steps, D). 'slerp' follows the great circle."""
    t = torch.linspace(0, 1, steps, device=za.device, dtype=za.dtype)[:, None]  # (S, 1)
    if mode == "linear":
        return (1 - t) * za + t * zb
    if mode != "slerp":
        raise ValueError(f"unknown interpolation mode '{mode}'; allowed: linear, slerp")
    cos = torch.dot(za, zb) / (za.norm() * zb.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-6:
        return (1 - t) * za + t * zb
    return (torch.sin((1 - t) * omega) * za + torch.sin(t * omega) * zb) / torch.sin(omega)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def latent_maps(maps: dict[str, tuple[torch.Tensor, torch.Tensor | None]], path: str | Path) -> Path:
    """One scatter per model of 2-D codes (N, 2), coloured by label (N,) when given."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 4), squeeze=False)
    for ax, (name, (z, y)) in zip(axes[0], maps.items()):
        z = z.detach().cpu().numpy()
        colour = {} if y is None else {"c": y.cpu().numpy(), "cmap": "tab10", "vmin": -0.5, "vmax": 9.5}
        sc = ax.scatter(z[:, 0], z[:, 1], s=2, alpha=0.6, **colour)
        ax.set_title(name)
        ax.set_xticks([]), ax.set_yticks([])
    if any(y is not None for _, y in maps.values()):
        fig.colorbar(sc, ax=axes[0].tolist(), ticks=range(10), label="label")
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def manifold_grid(decode, path: str | Path, n: int = 15, scale: int = 2, device: str | torch.device = "cpu") -> Path:
    """For a 2-D latent space: decode an n x n grid of codes at Gaussian quantiles (the VAE paper's figure)."""
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.5 / n, 1 - 0.5 / n, n)).to(device)
    zz = torch.stack(torch.meshgrid(q, q.flip(0), indexing="xy"), -1).reshape(-1, 2)  # (n*n, 2)
    with torch.no_grad():
        images = decode(zz)
    return image_grid(images, path, nrow=n, scale=scale)


def training_curves(
    histories: dict[str, list[dict]], path: str | Path, keys: Sequence[str] = ("train_loss", "val_loss")
) -> Path:
    """Loss per epoch, one panel per named run (their objectives differ in scale and constants);
    training solid, validation dashed."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(histories), figsize=(4.2 * len(histories), 3.4), squeeze=False)
    for ax, (name, hist) in zip(axes[0], histories.items()):
        epochs = [r["epoch"] for r in hist]
        for key, style in zip(keys, ("-", "--")):
            if hist and key in hist[0]:
                ax.plot(epochs, [r[key] for r in hist], style, marker=".", label=key)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("loss (nats per example)")
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
