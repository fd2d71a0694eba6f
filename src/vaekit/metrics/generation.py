"""Sample quality, measured as the field measures it: two sets of features compared.

`generation_metrics(real, fake)` takes features (N, D) and (M, D) of real and generated images
(from a fixed feature network, `vaekit.metrics.features`) and returns, each with its unit and the numbers
of samples:

- `frechet_distance`: ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)) between Gaussians fitted
  to the two sets (FID's formula in this feature space: FID proper is the same formula in
  Inception's space, so the network's id is reported beside it);
- `kid` and `kid_std`: the unbiased MMD^2 with the cubic polynomial kernel (Binkowski et al. 2018),
  mean and standard deviation over random subsets;
- `precision`, `recall` (Kynkäänniemi et al. 2019) and `density`, `coverage` (Naeem et al. 2020),
  from k-nearest-neighbour balls around each set's points.

The mathematics comes from torchmetrics (Fréchet distance, KID) and prdc (the four
nearest-neighbour scores), both optional: `pip install "vaekit[metrics]"`. vaekit adds only the
plumbing: features in, a seeded subset draw for KID, and units.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import torch
from torch import nn

from vaekit.errors import VaekitError


class _Given(nn.Module):
    """The 'feature network' that hands torchmetrics features already computed: (N, D) -> (N, D)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.num_features = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        name = {"sklearn": "scikit-learn"}.get(module.split(".")[0], module.split(".")[0])
        raise VaekitError(f"generation metrics need the '{name}' package: pip install \"vaekit[metrics]\"") from None


def require_metrics() -> None:
    """Refuse, in one line, when a package the generation metrics need is missing."""
    for module in ("torchmetrics.image.fid", "prdc", "sklearn.mixture"):
        _require(module)


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to real (N, D) and fake (M, D) features
    (unbiased covariances, float64)."""
    fid_mod = _require("torchmetrics.image.fid")
    fid = fid_mod.FrechetInceptionDistance(feature=_Given(real.shape[1]))
    fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    return float(fid.compute())


def kernel_distance(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: the unbiased MMD^2 with kernel (x.y / D + 1)^3, mean and standard deviation over
    `subsets` random subsets of `subset_size` points of each set (at most the smaller set's size),
    drawn with `seed`."""
    kid_mod = _require("torchmetrics.image.kid")
    size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():  # that it keeps the features: it is handed them, computed once
        warnings.simplefilter("ignore", UserWarning)
        kid = kid_mod.KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=subsets, subset_size=size)
    kid.update(real.double(), real=True)
    kid.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws the subsets from the global generator
        torch.manual_seed(seed)
        mean, std = kid.compute()
    return float(mean), float(std)


def nearest_neighbour_scores(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage with k-nearest-neighbour balls."""
    prdc = _require("prdc")
    # prdc prints the sample counts, and its call of scikit-learn's threaded pairwise distances makes
    # scikit-learn warn (from each thread) that joblib's `delayed` is not its own: both are noise here.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*sklearn.utils.parallel.delayed.*", category=UserWarning)
        out = prdc.compute_prdc(real.double().cpu().numpy(), fake.double().cpu().numpy(), nearest_k=k)
    return {name: float(v) for name, v in out.items()}


def generation_metrics(
    real: torch.Tensor,
    fake: torch.Tensor,
    k: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    network: str | None = None,
) -> dict[str, dict[str, Any]]:
    """All scores between real (N, D) and fake (M, D) features, as vaekit reports metrics:
    {name: {"value", "unit", "reduction"}}; `network` (the feature network's id) is recorded."""
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise VaekitError(
            f"features must be (N, D) and (M, D) with one D; got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if min(len(real), len(fake)) <= k + 1:
        raise VaekitError(
            f"generation metrics need more than k + 1 = {k + 1} real and generated samples; "
            f"got {len(real)} and {len(fake)}"
        )
    where = f"features of {network}" if network else "features"
    counts = f"{len(real)} real, {len(fake)} generated"
    kid, kid_std = kernel_distance(real, fake, kid_subsets, kid_subset_size, seed)
    out = {
        "frechet_distance": {
            "value": frechet_distance(real, fake),
            "unit": f"squared distance in {where}",
            "reduction": f"Gaussians fitted to {counts}",
        },
        "kid": {
            "value": kid,
            "unit": "MMD^2, cubic polynomial kernel",
            "reduction": f"mean over {kid_subsets} subsets of {min(kid_subset_size, len(real), len(fake))}",
        },
        "kid_std": {
            "value": kid_std,
            "unit": "MMD^2",
            "reduction": f"standard deviation over the {kid_subsets} subsets",
        },
    }
    for name, v in nearest_neighbour_scores(real, fake, k).items():
        out[name] = {
            "value": v,
            "unit": "fraction" if name != "density" else "mean ball count / k",
            "reduction": f"{k}-nearest-neighbour balls, {counts}",
        }
    return out


@torch.no_grad()
def image_features(net: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """`net.features` of data (N, *shape), in batches: (N, D) float64 on the CPU."""
    device = next(net.parameters()).device
    return torch.cat(
        [
            net.features(images[i : i + batch_size].to(device, torch.float32)).double().cpu()
            for i in range(0, len(images), batch_size)
        ]
    )


def evaluate_generation(
    model: Any,
    real: torch.Tensor,
    reference: torch.Tensor,
    n: int = 10000,
    seed: int = 0,
    features: str | None = None,
    y: torch.Tensor | None = None,
    sampler: Any = None,
    network: tuple[nn.Module, str, str] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """Sample quality of `model`'s samples (from its prior, or from `sampler`, a fitted code density of
    `vaekit.models.samplers`) against `n` real test images (N, *shape),
    beside the floor: the same metrics between those test images and `n` other real images
    (`reference`, images the model did not train on where the caller has them). Returns
    {"model": metrics, "floor": metrics, "network": the SHA-256 of the feature network's weights,
    "network_name": what it is, "n": n}. `features` names the feature network
    (`vaekit.metrics.features.load_features`: default the shipped MNIST network, checked against its pin;
    "inception"; or a directory from `vaekit features train`); `network` is one already loaded
    (`load_features`' answer), used instead."""
    from vaekit.metrics.features import load_features
    from vaekit.models.samplers import draw_images

    n = min(n, len(real), len(reference))
    if n <= 6:
        raise VaekitError(
            f"generation metrics need at least 7 real images on each side; have {len(real)} and {len(reference)}"
        )
    net, name, digest = network or load_features(features)
    network = f"{name} sha256:{digest[:12]}"
    r = image_features(net, real[:n])  # first: a network that does not fit the data says so before any sampling
    g = torch.Generator(device=real.device).manual_seed(seed)
    with torch.no_grad():  # in chunks of 1,000; a conditional model is asked for the test images' labels
        fake = torch.cat(
            [
                draw_images(model, sampler, len(c), generator=g, y=None if y is None else y[c.to(y.device)])
                for c in torch.arange(n).split(1000)
            ]
        )
    return {
        "model": generation_metrics(r, image_features(net, fake), seed=seed, network=network, **kw),
        "floor": generation_metrics(r, image_features(net, reference[:n]), seed=seed, network=network, **kw),
        "network": digest,
        "network_name": name,
        "n": n,
    }
