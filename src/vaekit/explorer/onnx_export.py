"""ONNX export of a model's decoder and encoder, for runtimes without PyTorch (onnxruntime, the browser).

- decoder.onnx: input ``z`` (B, D) float32 (and ``y`` (B,) int64 for a conditional model), output
  ``x_mean`` (B, *shape): the mean of p(x|z), what `model.decode(z).mean` gives.
- encoder.onnx: input ``x`` (B, *shape) (and ``y``), output ``z_mean`` (B, D), the mean of q(z|x),
  and for a VAE also ``z_logvar`` (B, D), its log-variance.

The batch size is dynamic. The export uses PyTorch's own exporter (``torch.onnx.export`` with
``dynamo=True``, which needs onnxscript); onnx and onnxruntime check the files. All three are the
optional extra ``pip install "vaekit[onnx]"``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vaekit.errors import VaekitError

PARTS = ("decoder", "encoder")


class DecoderMean(nn.Module):
    """z (B, D) [, y (B,)] -> the mean of p(x|z): (B, *shape)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.decode(z, y).mean


class EncoderStats(nn.Module):
    """x (B, *shape) [, y (B,)] -> the mean of q(z|x) (B, D), and for a VAE its log-variance (B, D)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        mean = self.model.embed(x, y)
        if not self.model.diagonal_posterior:  # an autoencoder's code, or a flow's or a hierarchy's point code
            return mean
        return mean, self.model.encoder_log_variance(x, y)


def _require() -> None:
    import importlib

    if tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) < (2, 6):
        raise VaekitError(
            f"ONNX export needs torch >= 2.6 (its torch.export-based exporter); this is torch {torch.__version__}"
        )

    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            importlib.import_module(name)
        except ImportError:
            raise VaekitError(f"ONNX export needs the '{name}' package: pip install \"vaekit[onnx]\"") from None


def _example(model: Any, part: str) -> tuple[tuple[torch.Tensor, ...], list[str], list[str]]:
    """Example inputs (batch 2), input names and output names of `part`."""
    ref = torch.empty(0, device=model.device, dtype=model.dtype)
    first = torch.zeros(2, model.latent_dim) if part == "decoder" else torch.rand(2, *model.shape)
    args: tuple[torch.Tensor, ...] = (first.to(ref.device, ref.dtype),)
    names = ["z" if part == "decoder" else "x"]
    if model.conditional:
        args += (torch.zeros(2, dtype=torch.long, device=ref.device),)
        names.append("y")
    if part == "decoder":
        outputs = ["x_mean"]
    else:
        outputs = (
            ["z_mean", "z_logvar"] if model.diagonal_posterior else ["z_point"] if model.variational else ["z_mean"]
        )  # a flow's or a hierarchy's point code
    return args, names, outputs


def export_onnx(model: Any, out: str | Path, parts: tuple[str, ...] = PARTS) -> dict[str, Path]:
    """Write `out`/decoder.onnx and/or `out`/encoder.onnx (a model in eval mode, on the CPU);
    returns {part: path}. Each file is checked by onnx and written whole or not at all."""
    _require()
    from vaekit.training.checkpoints import atomic_file, check_out_folder

    out = check_out_folder(out)
    model = model.to("cpu").eval()  # PCA too: its maps are constants of the graph
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for part in parts:
        args, names, outputs = _example(model, part)
        module = DecoderMean(model) if part == "decoder" else EncoderStats(model)
        batch = torch.export.Dim("batch", min=1, max=1 << 20)
        with atomic_file(out / f"{part}.onnx") as tmp, _quiet():
            program = torch.onnx.export(
                module,
                args,
                input_names=names,
                output_names=outputs,
                dynamic_shapes=tuple({0: batch} for _ in args),
                dynamo=True,
                optimize=True,
            )
            program.save(str(tmp))
            import onnx

            onnx.checker.check_model(str(tmp))
            graph = onnx.load(str(tmp)).graph
            if any(not i.type.tensor_type.shape.dim[0].dim_param for i in graph.input):
                raise VaekitError(f"the {part} of this model exported only with a fixed batch size; please report it")
        written[part] = out / f"{part}.onnx"
    return written


@contextlib.contextmanager
def _quiet():
    """The exporter logs and warns at length about what it skips (torchvision ops, deprecations)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def run_onnx(path: str | Path, *inputs: torch.Tensor) -> list[torch.Tensor]:
    """Run an exported file with onnxruntime on the CPU: its outputs as tensors."""
    _require()
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: t.detach().cpu().numpy() for i, t in zip(session.get_inputs(), inputs)}
    return [torch.from_numpy(o) for o in session.run(None, feeds)]
