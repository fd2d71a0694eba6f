"""Where to compute: the one place that turns a device name into a `torch.device`."""

from __future__ import annotations

import torch

from vaekit.errors import VaekitError


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; "cuda" without CUDA is refused in one line."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VaekitError("device 'cuda' requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)
