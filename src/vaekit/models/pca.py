"""Principal component analysis, with scikit-learn's conventions and probabilistic PCA.

``__init__`` stores settings only; ``fit`` returns ``self``; learned state ends in ``_``. Component
signs are deterministic: the entry of largest magnitude in each component is positive.

Maths. With centred data X_c (N, F) and sample covariance S = X_c^T X_c / N = U diag(l) U^T
(eigenvalues l_1 >= l_2 >= ...), the code is c = U_q^T (x - mu) and the reconstruction is
mu + U_q c. Probabilistic PCA (Tipping & Bishop 1999) has the maximum-likelihood solution
sigma^2 = mean(l_{q+1..F}) and W = U_q (diag(l_q) - sigma^2 I)^{1/2}, so that the model covariance
C = W W^T + sigma^2 I = U_q diag(l_q) U_q^T + sigma^2 (I - U_q U_q^T). Its log-density,

    log p(x) = -1/2 [ F log(2 pi) + sum_i log l_i + (F - q) log sigma^2
                      + sum_i c_i^2 / l_i + (||x - mu||^2 - ||c||^2) / sigma^2 ],

is computed exactly, in nats, by `score_samples`. ``explained_variance_`` uses N - 1 as
scikit-learn does; the likelihood uses the maximum-likelihood 1/N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributions import Distribution, Independent, Normal

from vaekit.config import setting
from vaekit.errors import VaekitError
from vaekit.models.base import LatentModel, require_squared_error
from vaekit.models.likelihoods import PointMass

SOLVERS = ("covariance_eigh", "svd")


class PCA(LatentModel):
    """PCA with `n_components` components; `whiten` scales codes to unit variance.

    Shape: fit(X) with X (N, F) or (N, *shape); transform -> (N, q); inverse_transform -> (N, *shape).

    On the model contract: q(z|x) is a point mass at the code, p(x|z) the probabilistic-PCA noise
    model N(mu + U_q z, sigma^2 I) (whose mean is `inverse_transform`), and `log_likelihood` the exact
    PPCA density. It has no prior over codes of its own, so it does not sample.
    """

    exact_likelihood = True
    fitted_in_closed_form = True
    likelihood = "gaussian"

    def __init__(self, n_components: int, whiten: bool = False, solver: str = "covariance_eigh"):
        if solver not in SOLVERS:
            raise ValueError(f"unknown PCA solver '{solver}'; allowed: {', '.join(SOLVERS)}")
        self.n_components, self.whiten, self.solver = n_components, whiten, solver

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, X: torch.Tensor) -> PCA:
        self.shape_ = tuple(X.shape[1:])
        X = X.reshape(len(X), -1)
        n, f = X.shape
        q = self.n_components
        if not 0 < q <= min(n, f):
            raise ValueError(f"n_components={q} must be in 1..min(n_samples, n_features) = {min(n, f)}")
        mean = X.mean(0, dtype=torch.float64)
        Xc = X - mean.to(X.dtype)  # (N, F)
        if self.solver == "svd":
            _, s, vh = torch.linalg.svd(Xc.double(), full_matrices=False)
            eig, vecs = s**2 / n, vh.T  # (min(N,F),), (F, min(N,F)), descending
        else:
            cov = (Xc.T @ Xc).double() / n  # (F, F); the O(N F^2) product runs in the data's dtype
            eig, vecs = torch.linalg.eigh(cov)
            eig, vecs = eig.flip(0).clamp_min(0.0), vecs.flip(1)  # descending
        comps = vecs[:, :q].T  # (q, F)
        signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))  # (q, 1)
        comps = comps * signs
        full = torch.zeros(f, dtype=torch.float64, device=X.device)
        full[: len(eig)] = eig
        self.mean_ = mean
        self.components_ = comps  # (q, F), orthonormal rows
        self.eigenvalues_ = full  # (F,) ML variances along every principal direction
        self.explained_variance_ = full[:q] * n / max(n - 1, 1)
        total = full.sum() * n / max(n - 1, 1)
        self.explained_variance_ratio_ = self.explained_variance_ / total
        self.noise_variance_ = full[q:].mean() if q < f else torch.zeros((), dtype=torch.float64)
        self.n_samples_ = n
        return self

    # -- the autoencoder interface ---------------------------------------------------------------
    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """(N, *shape) -> (N, q) codes c = U_q^T (x - mu) (divided by sqrt(l) when whitening)."""
        Xc = X.flatten(1) - self.mean_.to(X.dtype)  # (N, F); flatten keeps N symbolic for ONNX export
        c = Xc @ self.components_.T.to(X.dtype)
        if self.whiten:
            c = c / self.explained_variance_.sqrt().to(X.dtype)
        return c

    def inverse_transform(self, C: torch.Tensor) -> torch.Tensor:
        """(N, q) -> (N, *shape): mu + U_q c."""
        if self.whiten:
            C = C * self.explained_variance_.sqrt().to(C.dtype)
        X = C @ self.components_.to(C.dtype) + self.mean_.to(C.dtype)
        return X.reshape(-1, *self.shape_)

    # -- the model contract (models.base) --------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.shape_

    @property
    def latent_dim(self) -> int:
        return self.n_components

    @property
    def dtype(self) -> torch.dtype:
        """float32: the state is kept in float64 for the exact likelihood, but PCA computes in its
        input's dtype, and codes drawn for it (a fitted sampler's) decode to float32 images."""
        return torch.float32

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """(B, *shape) -> a point mass at the (B, q) code."""
        return PointMass(self.transform(x))

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.transform(x)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """(..., B, q) -> N(mu + U_q z, sigma^2 I) with batch shape (..., B), sigma^2 = noise_variance_."""
        mean = self.inverse_transform(z.reshape(-1, z.shape[-1])).view(*z.shape[:-1], *self.shape_)
        scale = self.noise_variance_.sqrt().to(mean.dtype).expand_as(mean)
        return Independent(Normal(mean, scale, validate_args=False), len(self.shape_), validate_args=False)

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.inverse_transform(self.transform(x))

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.score_samples(x)

    def eval(self) -> PCA:
        return self  # nothing behaves differently in evaluation; here so that every model has it

    def describe(self) -> dict[str, Any]:
        return {"model": "pca", "n_components": self.n_components, "whiten": self.whiten, "shape": list(self.shape_)}

    # -- probabilistic PCA ----------------------------------------------------------------------
    def score_samples(self, X: torch.Tensor) -> torch.Tensor:
        """Exact probabilistic-PCA log-likelihood of each row, in nats: (N, *shape) -> (N,)."""
        Xc = X.reshape(len(X), -1).double() - self.mean_
        f, q = Xc.shape[1], self.n_components
        lam = self.eigenvalues_[:q]
        s2 = self.noise_variance_
        if q < f and not s2 > 0:
            raise ValueError(
                "noise variance is zero (data lies in a q-dimensional subspace): log-likelihood is infinite"
            )
        c = Xc @ self.components_.T  # (N, q)
        quad = (c**2 / lam).sum(1)
        logdet = lam.log().sum()
        if q < f:
            quad = quad + ((Xc**2).sum(1) - (c**2).sum(1)) / s2
            logdet = logdet + (f - q) * s2.log()
        return -0.5 * (f * math.log(2 * math.pi) + logdet + quad)

    def score(self, X: torch.Tensor) -> float:
        """Mean log-likelihood per example, in nats."""
        return float(self.score_samples(X).mean())

    # -- plain-data state (for checkpoints) -----------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        if not hasattr(self, "mean_"):
            raise VaekitError("this PCA is not fitted: call fit(X) first")
        keys = (
            "mean_",
            "components_",
            "eigenvalues_",
            "explained_variance_",
            "explained_variance_ratio_",
            "noise_variance_",
        )
        return {k: getattr(self, k).contiguous() for k in keys}

    def load_state_dict(self, state: dict[str, torch.Tensor], shape: tuple[int, ...]) -> PCA:
        """The state `state_dict` wrote, for data of `shape`: exactly its six tensors, floating point,
        of the sizes n_components and prod(shape) give (ValueError naming the first that is not)."""
        f, q = math.prod(shape), self.n_components
        sizes = {
            "mean_": (f,),
            "components_": (q, f),
            "eigenvalues_": (f,),
            "explained_variance_": (q,),
            "explained_variance_ratio_": (q,),
            "noise_variance_": (),
        }
        if set(state) != set(sizes):
            wrong = sorted(set(state) ^ set(sizes))
            raise ValueError(
                f"a PCA holds the tensors {', '.join(sizes)}; this state {'lacks' if wrong[0] in sizes else 'adds'} "
                f"'{wrong[0]}'"
            )
        for k, size in sizes.items():
            if tuple(state[k].shape) != size or not state[k].is_floating_point():
                raise ValueError(
                    f"tensor '{k}' is {str(state[k].dtype).removeprefix('torch.')} {tuple(state[k].shape)}; "
                    f"a PCA of {q} components over {f} values holds floating point {size}"
                )
        for k in sizes:
            setattr(self, k, state[k])
        self.shape_ = tuple(shape)
        return self

    def to(self, device: torch.device | str) -> PCA:
        for k, v in self.state_dict().items():
            setattr(self, k, v.to(device))
        return self


@dataclass(frozen=True)
class PCASettings:
    """PCA's own ``[model]`` key."""

    whiten: bool = setting(False)  # pca: codes scaled to unit variance

    check = staticmethod(require_squared_error)


def build(cfg, shape: tuple[int, ...]) -> PCA:
    """An unfitted PCA from a ModelConfig (registered as model 'pca'); `fit` it on the training data."""
    return PCA(cfg.latent_dim, whiten=cfg.whiten)
