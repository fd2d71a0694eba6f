"""Disentanglement metrics of a representation on data with known generative factors: MIG, DCI,
the FactorVAE score and SAP, with the protocol of disentanglement_lib's `unsupervised_study_v1`
(Locatello et al. 2019): its sample counts, its 20-bin histogram discretisation, its regressors
(scikit-learn's GradientBoostingClassifier for DCI, LinearSVC(C=0.01, balanced) for SAP).

- MIG (Chen et al. 2018): for each factor k, the gap between the two largest mutual informations
  I(z_j; v_k) over the code's dimensions, divided by the entropy H(v_k); averaged over factors.
  Codes are discretised into 20 equal-width bins per dimension.
- DCI (Eastwood & Williams 2018): a gradient-boosted classifier per factor gives the importance R_jk
  of dimension j for factor k. Disentanglement: sum_j rho_j (1 - H_K(P_j.)), P_jk = R_jk / sum_k R_jk,
  rho_j = sum_k R_jk / sum R; completeness: the same over factors with base-D entropies;
  informativeness: the classifiers' mean accuracy (train and test).
- FactorVAE score (Kim & Mnih 2018): fix one factor at a random value, draw a batch of 64 examples,
  and vote for the dimension of least variance (each divided by its variance over the data;
  dimensions with a standard deviation below 0.05 are left out). A majority-vote classifier from
  dimension to factor is fitted on 10,000 votes and scored on 5,000 more.
- SAP (Kumar et al. 2018): a one-dimensional linear classifier per (dimension, factor) pair; for
  each factor, the gap between the two best test accuracies; averaged over factors.

A `GroundTruth` (`shapes.ShapesGrid`, or `shapes.FactorArrays` for images held with their factor
codes) numbers its examples and draws them: uniformly (`draw`), or sharing one factor's value
(`draw_fixed`, for the FactorVAE score); `codes(rows)` are their factor codes and `images(rows)`
their images. The representation is the model's point code (`embed`: q's mean).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from vaekit.errors import VaekitError

if TYPE_CHECKING:
    from vaekit.models.base import LatentModel

Represent = Callable[[np.ndarray], np.ndarray]  # example numbers (N,) -> point codes (N, D)


class GroundTruth(Protocol):
    sizes: tuple[int, ...]  # values of each factor

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray: ...  # (n,) example numbers, uniformly

    def draw_fixed(
        self, factor: int, n: int, rng: np.random.Generator
    ) -> np.ndarray: ...  # (n,) sharing one value of `factor`

    def codes(self, rows: np.ndarray) -> np.ndarray: ...  # (n, F) factor codes, each in 0..size-1

    def images(self, rows: np.ndarray) -> torch.Tensor: ...  # (n, *shape)


@dataclass(frozen=True)
class Samples:
    """The sample counts of each metric (disentanglement_lib's unsupervised_study_v1 by default)."""

    mig_train: int = 10000
    bins: int = 20
    dci_train: int = 10000
    dci_test: int = 5000
    factor_vae_variance: int = 10000
    factor_vae_train: int = 10000
    factor_vae_eval: int = 5000
    factor_vae_batch: int = 64
    prune_std: float = 0.05
    sap_train: int = 10000
    sap_test: int = 5000

    def scaled(self, fraction: float) -> Samples:
        """These counts times `fraction` (at least 10 each), for quick looks; the histogram's bins, the
        FactorVAE score's batch and the pruning threshold stay."""
        keep = ("bins", "factor_vae_batch", "prune_std")
        return dataclasses.replace(
            self,
            **{
                f.name: max(10, round(getattr(self, f.name) * fraction))
                for f in dataclasses.fields(self)
                if f.name not in keep
            },
        )


def histogram_discretize(z: np.ndarray, bins: int = 20) -> np.ndarray:
    """Each column of z (N, D) into `bins` equal-width bins over its own range: (N, D) ints."""
    return np.stack([np.digitize(z[:, j], np.histogram(z[:, j], bins)[1][:-1]) for j in range(z.shape[1])], 1)


def discrete_mutual_information(z_discrete: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """I(z_j; v_k) in nats of discrete codes (N, D) and factors (N, F): (D, F)."""
    from sklearn.metrics import mutual_info_score

    return np.array(
        [
            [mutual_info_score(factors[:, k], z_discrete[:, j]) for k in range(factors.shape[1])]
            for j in range(z_discrete.shape[1])
        ]
    )


mutual_information = discrete_mutual_information  # the name of the previous release


def mig(z: np.ndarray, factors: np.ndarray, bins: int = 20) -> dict[str, Any]:
    """MIG of codes z (N, D) against factor codes (N, F): the score and each factor's gap."""
    from sklearn.metrics import mutual_info_score

    m = discrete_mutual_information(histogram_discretize(z, bins), factors)  # (D, F)
    entropy = np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])
    top = np.sort(m, axis=0)[::-1]
    gaps = (top[0] - (top[1] if len(top) > 1 else 0.0)) / entropy
    return {"mig": float(gaps.mean()), "mig_per_factor": gaps.tolist()}


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """Entropy in base `base` of the distributions along `axis` of non-negative weights p (normalised here)."""
    p = p / p.sum(axis=axis, keepdims=True)
    return -(p * np.log(p)).sum(axis=axis) / np.log(base)


def dci_scores(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of an importance matrix R (D, F) >= 0."""
    d, f = importance.shape
    r = importance + 1e-11  # as disentanglement_lib: no 0 log 0
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    per_code = 1 - _entropy(r, f, axis=1) if f > 1 else np.ones(d)
    per_factor = 1 - _entropy(r, d, axis=0) if d > 1 else np.ones(f)
    return (
        float((per_code * weights.sum(1) / weights.sum()).sum()),
        float((per_factor * weights.sum(0) / weights.sum()).sum()),
    )


def dci(
    z_train: np.ndarray, f_train: np.ndarray, z_test: np.ndarray, f_test: np.ndarray, seed: int = 0
) -> dict[str, Any]:
    """DCI from gradient-boosted classifiers (scikit-learn's defaults) of each factor on the codes."""
    from sklearn.ensemble import GradientBoostingClassifier

    importance = np.zeros((z_train.shape[1], f_train.shape[1]))
    acc_train, acc_test = [], []
    for k in range(f_train.shape[1]):
        clf = GradientBoostingClassifier(random_state=seed).fit(z_train, f_train[:, k])
        importance[:, k] = np.abs(clf.feature_importances_)
        acc_train.append(np.mean(clf.predict(z_train) == f_train[:, k]))
        acc_test.append(np.mean(clf.predict(z_test) == f_test[:, k]))
    dis, comp = dci_scores(importance)
    return {
        "dci_disentanglement": dis,
        "dci_completeness": comp,
        "dci_informativeness_train": float(np.mean(acc_train)),
        "dci_informativeness_test": float(np.mean(acc_test)),
        "dci_importance": importance.tolist(),
    }


def sap(z_train: np.ndarray, f_train: np.ndarray, z_test: np.ndarray, f_test: np.ndarray) -> dict[str, Any]:
    """SAP of discrete factors: test accuracies of LinearSVC(C=0.01, balanced) on each single dimension."""
    from sklearn.svm import LinearSVC

    score = np.zeros((z_train.shape[1], f_train.shape[1]))
    for j in range(z_train.shape[1]):
        for k in range(f_train.shape[1]):
            if len(np.unique(f_train[:, k])) < 2:
                continue  # a factor with one value in the sample: no classifier to fit, score 0
            clf = LinearSVC(C=0.01, class_weight="balanced").fit(z_train[:, j : j + 1], f_train[:, k])
            score[j, k] = np.mean(clf.predict(z_test[:, j : j + 1]) == f_test[:, k])
    top = np.sort(score, axis=0)
    gap = top[-1] - (top[-2] if len(top) > 1 else 0.0)
    return {"sap": float(gap.mean()), "sap_matrix": score.tolist()}


def factor_vae_votes(
    represent: Represent,
    truth: GroundTruth,
    n: int,
    batch: int,
    variances: np.ndarray,
    active: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """(F', D) votes, F' the factors of more than one value: for each of n batches sharing the value
    of one random such factor, the active dimension of least variance relative to its global variance."""
    varying = [k for k, v in enumerate(truth.sizes) if v > 1]
    votes = np.zeros((len(varying), len(variances)), dtype=np.int64)
    act = np.flatnonzero(active)
    for _ in range(n):
        i = rng.integers(len(varying))
        local = np.var(represent(truth.draw_fixed(varying[i], batch, rng)), axis=0, ddof=1)
        votes[i, act[np.argmin(local[act] / variances[act])]] += 1
    return votes


def factor_vae_score(
    represent: Represent, truth: GroundTruth, rng: np.random.Generator, s: Samples = Samples()
) -> dict[str, Any]:
    """The FactorVAE score: accuracy of the majority-vote classifier (train and eval)."""
    variances = np.var(represent(truth.draw(s.factor_vae_variance, rng)), axis=0, ddof=1)
    active = np.sqrt(variances) >= s.prune_std
    if not active.any():
        return {"factor_vae_train": 0.0, "factor_vae_eval": 0.0, "factor_vae_active_dims": 0}
    train = factor_vae_votes(represent, truth, s.factor_vae_train, s.factor_vae_batch, variances, active, rng)
    classifier = np.argmax(train, axis=0)  # each dimension's factor
    cols = np.arange(train.shape[1])
    evals = factor_vae_votes(represent, truth, s.factor_vae_eval, s.factor_vae_batch, variances, active, rng)
    return {
        "factor_vae_train": float(train[classifier, cols].sum() / train.sum()),
        "factor_vae_eval": float(evals[classifier, cols].sum() / evals.sum()),
        "factor_vae_active_dims": int(active.sum()),
    }


def all_metrics(represent: Represent, truth: GroundTruth, seed: int = 0, s: Samples = Samples()) -> dict[str, Any]:
    """MIG, DCI, the FactorVAE score and SAP of a representation of the examples of `truth`, each on
    fresh draws made with `seed`. Factors of one value carry nothing to recover and are left out of
    every score."""
    try:
        import sklearn  # noqa: F401 -- DCI's and SAP's classifiers, the mutual information
    except ImportError:
        raise VaekitError(
            "the disentanglement metrics need the 'scikit-learn' package: pip install \"vaekit[metrics]\""
        ) from None
    rng = np.random.default_rng(seed)
    varying = [k for k, v in enumerate(truth.sizes) if v > 1]
    if not varying:
        raise VaekitError(
            f"no factor of the data takes more than one value (sizes {list(truth.sizes)}): nothing to disentangle"
        )

    def draw(n):
        rows = truth.draw(n, rng)
        return represent(rows), truth.codes(rows)[:, varying]

    out: dict[str, Any] = {}
    out.update(mig(*draw(s.mig_train), bins=s.bins))
    out.update(dci(*draw(s.dci_train), *draw(s.dci_test), seed=seed))
    out.update(factor_vae_score(represent, truth, rng, s))
    out.update(sap(*draw(s.sap_train), *draw(s.sap_test)))
    return out


def model_representation(model: LatentModel, truth: GroundTruth, batch_size: int = 256) -> Represent:
    """Example numbers -> the model's point codes (embed: q's mean) of their images, (N, D) float64.
    A conditional model is given each image's label as it was trained: the first factor's code."""
    device, dtype = model.device, model.dtype

    @torch.no_grad()
    def represent(rows: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(rows), batch_size):
            batch = rows[s : s + batch_size]
            x = truth.images(batch).to(device, dtype)
            y = torch.from_numpy(truth.codes(batch)[:, 0]).to(device) if model.conditional else None
            out.append(model.embed(x, y).flatten(1).double().cpu())
        return torch.cat(out).numpy()

    return represent


def evaluate_disentanglement(
    model: LatentModel, truth: GroundTruth, seed: int = 0, s: Samples = Samples()
) -> dict[str, Any]:
    """`all_metrics` of a trained model's point codes on a ground truth (e.g. `data.ground_truth`)."""
    model.eval()
    return all_metrics(model_representation(model, truth), truth, seed, s)
