"""A model's decoder and encoder as a small program of plain operations, for the explorer's
JavaScript (`assets/explorer/explorer.js`) to run in the browser.

A program is JSON: ``{"ops": [...], "out": n}``; each op works on one example held as a flat float
vector (``(C, H, W)`` images in C-major order, as torch lays them out). The ops:

- ``linear`` ``{w: [offset, size], b, in, out}``: y = W x + b with W (out, in) row-major;
- ``act`` ``{fn}``: relu, tanh, elu (alpha 1), gelu (the exact, erf form) or sigmoid, elementwise;
- ``gated`` ``{w, b, gw, gb, in, out}``: (W x + b) * sigmoid(G x + g) (the VampPrior's gated layer);
- ``residual`` ``{ops}``: x + ops(x);
- ``conv`` / ``deconv`` ``{w, b, cin, cout, k, stride, pad, in: [C, H, W], out: [C, H, W]}``:
  ``nn.Conv2d`` and ``nn.ConvTranspose2d`` (weights (cout, cin, k, k) and (cin, cout, k, k));
- ``label``: append the one-hot label (the conditioning of a conditional model);
- ``mean`` ``{likelihood, params}``: the mean of p(x|z) from the decoder's parameters.

Weights are float32, gathered in one `Blob` that the page carries once; ``[offset, size]`` count
floats. Translation walks vaekit's own nets (MLP plain, residual and gated; conv; ResNet; the tied
linear autoencoder; PCA) through `TRANSLATORS`, keyed by module class. A network of another kind
gets one line saying so and pointing at `vaekit export --format onnx`.
"""

from __future__ import annotations

import base64
import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from vaekit.errors import VaekitError
from vaekit.models import nets
from vaekit.models.autoencoder import Autoencoder, TiedLinear, _Flatten
from vaekit.models.likelihoods import MIN_LOG_SCALE
from vaekit.models.pca import PCA

ACTS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.ELU: "elu", nn.GELU: "gelu", nn.Sigmoid: "sigmoid"}


class Blob:
    """float32 arrays laid end to end; `add` returns the [offset, size] an op refers to."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, t: torch.Tensor | np.ndarray) -> list[int]:
        a = np.ascontiguousarray(
            t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else t, dtype="<f4"
        ).reshape(-1)
        self.parts.append(a)
        self.size += a.size
        return [self.size - a.size, int(a.size)]

    def base64(self) -> str:
        return base64.b64encode(np.concatenate(self.parts).tobytes() if self.parts else b"").decode("ascii")


class Tracer:
    """Shapes every submodule saw in one forward pass (translation needs the conv sizes)."""

    def __init__(self, net: nn.Module, *args: torch.Tensor) -> None:
        self.shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        hooks = [m.register_forward_hook(self._hook) for m in net.modules()]
        try:
            with torch.no_grad():
                net(*args)
        finally:
            for h in hooks:
                h.remove()

    def _hook(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        if isinstance(output, torch.Tensor) and inputs and isinstance(inputs[0], torch.Tensor):
            self.shapes[id(module)] = (tuple(inputs[0].shape[1:]), tuple(output.shape[1:]))


def _unsupported(m: nn.Module) -> VaekitError:
    return VaekitError(
        f"the explorer runs vaekit's own MLP, conv and ResNet nets in the browser; this model has a "
        f"{type(m).__name__}, which it cannot translate (use 'vaekit export --format onnx' for other runtimes)"
    )


def translate(m: nn.Module, blob: Blob, tr: Tracer) -> list[dict]:
    """The ops computing module m on one example."""
    for cls in type(m).__mro__:
        if cls in TRANSLATORS:
            return TRANSLATORS[cls](m, blob, tr)
    raise _unsupported(m)


def _linear(m: nn.Linear, blob: Blob, tr: Tracer) -> list[dict]:
    b = m.bias if m.bias is not None else torch.zeros(m.out_features)
    return [{"op": "linear", "w": blob.add(m.weight), "b": blob.add(b), "in": m.in_features, "out": m.out_features}]


def _conv(m: nn.Conv2d | nn.ConvTranspose2d, blob: Blob, tr: Tracer) -> list[dict]:
    deconv = isinstance(m, nn.ConvTranspose2d)
    k, s, p, d = m.kernel_size, m.stride, m.padding, m.dilation
    if isinstance(p, str) or len(set(k)) != 1 or len(set(s)) != 1 or len(set(p)) != 1 or d != (1, 1) or m.groups != 1:
        raise _unsupported(m)
    shape_in, shape_out = tr.shapes[id(m)]
    b = m.bias if m.bias is not None else torch.zeros(m.out_channels)
    return [
        {
            "op": "deconv" if deconv else "conv",
            "w": blob.add(m.weight),
            "b": blob.add(b),
            "cin": m.in_channels,
            "cout": m.out_channels,
            "k": k[0],
            "stride": s[0],
            "pad": p[0],
            "in": list(shape_in),
            "out": list(shape_out),
        }
    ]


def _act(m: nn.Module, blob: Blob, tr: Tracer) -> list[dict]:
    if isinstance(m, nn.ELU) and m.alpha != 1.0 or isinstance(m, nn.GELU) and m.approximate != "none":
        raise _unsupported(m)
    return [{"op": "act", "fn": ACTS[type(m)]}]


def _sequence(children: Any, blob: Blob, tr: Tracer) -> list[dict]:
    return [op for child in children for op in translate(child, blob, tr)]


def _dense(m: nets.Dense, blob: Blob, tr: Tracer) -> list[dict]:
    if m.gate is not None:
        (lin,), (gate,) = _linear(m.linear, blob, tr), _linear(m.gate, blob, tr)
        return [{**lin, "op": "gated", "gw": gate["w"], "gb": gate["b"]}]
    body = _linear(m.linear, blob, tr) + _act(m.act, blob, tr)
    return [{"op": "residual", "ops": body}] if m.skip else body


def _resblock(m: nets.ResBlock, blob: Blob, tr: Tracer) -> list[dict]:
    act = _act(m.act, blob, tr)
    return [{"op": "residual", "ops": act + _conv(m.conv1, blob, tr) + act + _conv(m.conv2, blob, tr)}]


def _tied(m: TiedLinear, blob: Blob, tr: Tracer) -> list[dict]:
    w = m.encoder[0].weight  # (D, F): the decoder is its transpose
    return [{"op": "linear", "w": blob.add(w.t()), "b": blob.add(m.bias), "in": w.shape[0], "out": w.shape[1]}]


TRANSLATORS: dict[type, Callable[[Any, Blob, Tracer], list[dict]]] = {
    nn.Linear: _linear,
    nn.Conv2d: _conv,
    nn.ConvTranspose2d: _conv,
    **{cls: _act for cls in ACTS},
    nn.Dropout: lambda m, blob, tr: [],  # no weights, off in evaluation
    nn.Sequential: lambda m, blob, tr: _sequence(m, blob, tr),
    nets.Dense: _dense,
    nets.ResBlock: _resblock,
    TiedLinear: _tied,
    nets.MLPDecoder: lambda m, blob, tr: translate(m.net, blob, tr),
    nets.ConvDecoder: lambda m, blob, tr: _linear(m.head, blob, tr) + translate(m.deconv, blob, tr),
    nets.ResNetDecoder: lambda m, blob, tr: _linear(m.head, blob, tr) + translate(m.body, blob, tr),
}


def _encoder_ops(enc: nn.Module, conditional: bool, blob: Blob, tr: Tracer) -> list[dict]:
    """An encoder's ops: the label joins the flattened input (MLP) or the features before the head (conv, ResNet)."""
    if isinstance(enc, nets.MLPEncoder):
        return ([{"op": "label"}] if conditional else []) + translate(enc.net, blob, tr)
    if isinstance(enc, (nets.ConvEncoder, nets.ResNetEncoder)):
        body = enc.conv if isinstance(enc, nets.ConvEncoder) else enc.body
        return translate(body, blob, tr) + ([{"op": "label"}] if conditional else []) + _linear(enc.head, blob, tr)
    if isinstance(enc, _Flatten) and not conditional:  # the linear autoencoder's W
        return _linear(enc.linear, blob, tr)
    raise _unsupported(enc)


def _mean_op(model: Any) -> dict:
    """The mean of p(x|z) from the decoder's P parameter blocks of prod(shape) each."""
    obs = model.observation
    return {
        "op": "mean",
        "likelihood": obs.name,
        "params": obs.params_per_dim,
        "components": obs.components,
        "min_log_scale": MIN_LOG_SCALE,
    }


def cpu_copy(model: Any) -> Any:
    """A float32 copy on the CPU in evaluation mode; the caller's model is left as it was."""
    return copy.deepcopy(model).cpu().float().eval() if isinstance(model, nn.Module) else model


def programs(model: Any, blob: Blob) -> tuple[dict, dict]:
    """(decoder, encoder) programs of a vaekit model, weights added to `blob`.

    decoder: z (D,) [+ label] -> the mean of p(x|z), prod(shape) values; encoder: x (prod(shape),)
    [+ label] -> the mean of q(z|x) (D,), followed for a VAE by its log-variance (D,)."""
    d, n_cls = model.latent_dim, model.num_classes
    if isinstance(model, PCA):
        comps, mean = model.components_, model.mean_  # (q, F), (F,)
        scale = model.explained_variance_.sqrt() if model.whiten else torch.ones(d, dtype=comps.dtype)
        f = comps.shape[1]
        dec = [{"op": "linear", "w": blob.add(comps.T * scale), "b": blob.add(mean), "in": d, "out": f}]
        enc = [
            {
                "op": "linear",
                "w": blob.add(comps / scale[:, None]),
                "b": blob.add(-(comps @ mean) / scale),
                "in": f,
                "out": d,
            }
        ]
        return (
            {"ops": dec + [{"op": "mean", "likelihood": "gaussian", "params": 1}], "out": f},
            {"ops": enc, "out": d, "logvar": False},
        )
    if model.discrete_code:
        raise VaekitError(
            f"the explorer moves through a continuous code; a {type(model).__name__}'s is a grid of codebook "
            "indices: use `vaekit sample` and `vaekit reconstruct` for it"
        )
    if model.variational and not model.diagonal_posterior:  # the page draws q(z|x) as N(mean, diag(exp(logvar)))
        raise VaekitError(
            f"the explorer runs models whose q(z|x) is a diagonal Gaussian; this {type(model).__name__}'s is "
            f"{'a flow' if isinstance(model, Autoencoder) else 'a top-down hierarchy'}: "
            "use `vaekit traverse` or `vaekit export` for it"
        )
    if not isinstance(model, Autoencoder):
        raise VaekitError(f"the explorer runs vaekit's own models; this is a {type(model).__name__}")
    model = cpu_copy(model)
    x = torch.rand(2, *model.shape)
    c = torch.nn.functional.one_hot(torch.tensor([0, 1]) % max(n_cls, 1), max(n_cls, 1)).float()
    dec_tr = Tracer(model.decoder, torch.zeros(2, d + n_cls))
    enc_tr = Tracer(model.encoder, x, c) if n_cls else Tracer(model.encoder, x)
    dec = ([{"op": "label"}] if n_cls else []) + translate(model.decoder, blob, dec_tr) + [_mean_op(model)]
    enc = _encoder_ops(model.encoder, bool(n_cls), blob, enc_tr)
    return ({"ops": dec, "out": math.prod(model.shape)}, {"ops": enc, "out": d, "logvar": model.variational})
