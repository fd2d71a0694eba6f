"""Plain-data checkpoints: a JSON config plus safetensors weights. Nothing is pickled.

``save_pretrained(model, dir)`` writes ``config.json`` and ``model.safetensors``; ``load(dir)``
rebuilds the model from them without any training code. Training checkpoints add the optimiser
and scheduler state and the RNG states (``training.json`` + ``optimizer.safetensors``). Every
directory is written to a temporary sibling first and renamed into place, so a kill never leaves
a half-written checkpoint where a complete one is expected.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from .config import build_section
from .errors import VaekitError

FORMAT_VERSION = 1


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces `target` only if the block finishes."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        old = target.with_name(f".{target.name}.old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))


def _load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise VaekitError(f"cannot read weights '{path}': {e}") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise VaekitError(f"'{path}' is missing") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VaekitError(f"cannot read '{path}': {e}") from None


def unwrap(model: Any) -> Any:
    """The bare model under DDP or torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model


def save_pretrained(model: Any, directory: str | Path) -> Path:
    """Write `model` as config.json + model.safetensors into `directory` (atomically)."""
    from . import __version__
    from .models import PCA

    model = unwrap(model)
    if isinstance(model, PCA):
        meta = {"model": "pca", "n_components": model.n_components, "whiten": model.whiten, "shape": list(model.shape_)}
        state = model.state_dict()
    else:
        cfg = model.config
        meta = {"model": cfg.name if cfg else "custom", "config": dataclasses.asdict(cfg) if cfg else None,
                "shape": list(model.shape), "latent_dim": model.latent_dim,
                "likelihood": model.likelihood, "sigma": model.sigma, "variational": model.is_variational,
                "components": model.observation.components, "num_classes": model.num_classes,
                "prior": getattr(model, "prior_name", None),
                "prior_components": len(getattr(model.prior_module, "pseudo_inputs", getattr(model.prior_module, "logits", [])))
                if hasattr(model, "prior_module") else None}
        state = model.state_dict()
    meta.update(format="vaekit", format_version=FORMAT_VERSION, vaekit_version=__version__)
    with atomic_dir(directory) as tmp:
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        _save_tensors(state, tmp / "model.safetensors")
    return Path(directory)


def load(directory: str | Path, device: str | torch.device = "cpu",
         encoder: torch.nn.Module | None = None, decoder: torch.nn.Module | None = None) -> Any:
    """Rebuild a model saved by `save_pretrained`. Custom nets must be passed as encoder/decoder."""
    from .models import PCA, Autoencoder, VAE, build_model

    d = Path(directory)
    if not d.is_dir():
        raise VaekitError(f"model directory '{d}' does not exist")
    meta = _read_json(d / "config.json")
    if meta.get("format") != "vaekit":
        raise VaekitError(f"'{d / 'config.json'}' is not a vaekit model config")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise VaekitError(f"'{d}' uses checkpoint format {meta['format_version']}; this vaekit reads up to {FORMAT_VERSION}")
    state = _load_tensors(d / "model.safetensors", device)
    shape = tuple(meta["shape"])
    if meta["model"] == "pca":
        return PCA(meta["n_components"], whiten=meta["whiten"]).load_state_dict(state, shape)
    if meta["model"] == "custom":
        if encoder is None or decoder is None:
            raise VaekitError(f"'{d}' holds a model with custom nets: pass encoder= and decoder= to load()")
        extra = {"components": meta.get("components", 5), "num_classes": meta.get("num_classes", 0)}
        if meta["variational"]:
            model = VAE(encoder, decoder, shape, meta["latent_dim"], meta["likelihood"], meta["sigma"], **extra,
                        prior=meta.get("prior") or "standard_normal", prior_components=meta.get("prior_components") or None)
        else:
            model = Autoencoder(encoder, decoder, shape, meta["latent_dim"], meta["likelihood"], meta["sigma"], **extra)
    else:
        model = build_model(build_section("model", meta["config"]), shape)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise VaekitError(f"weights in '{d}' do not match its config: {' '.join(first[:2])}") from None
    return model.to(device).eval()


# -- training state -----------------------------------------------------------------------------

def _split_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors in nested plain data by {'__tensor__': key}, collecting them in `tensors`."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__keys__": [[k, _split_state(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_split_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _join_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__keys__" in obj:
        return {k: _join_state(v, tensors) for k, v in obj["__keys__"]}
    if isinstance(obj, list):
        return [_join_state(v, tensors) for v in obj]
    return obj


def save_training_state(directory: str | Path, model: Any, state: dict[str, Any]) -> None:
    """Write model weights and the trainer's state (nested data with tensors) atomically."""
    tensors: dict[str, torch.Tensor] = {}
    plain = _split_state(state, "s", tensors)
    with atomic_dir(directory) as tmp:
        _save_tensors(unwrap(model).state_dict(), tmp / "model.safetensors")
        _save_tensors(tensors, tmp / "state.safetensors")
        (tmp / "training.json").write_text(json.dumps({"format_version": FORMAT_VERSION, "state": plain}) + "\n")


def load_training_state(directory: str | Path, model: Any) -> dict[str, Any]:
    """Load weights into `model` and return the trainer's state saved beside them."""
    d = Path(directory)
    meta = _read_json(d / "training.json")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise VaekitError(f"checkpoint '{d}' has format {meta['format_version']}; this vaekit reads up to {FORMAT_VERSION}")
    ref = next(unwrap(model).parameters())
    unwrap(model).load_state_dict(_load_tensors(d / "model.safetensors", ref.device))
    return _join_state(meta["state"], _load_tensors(d / "state.safetensors"))
