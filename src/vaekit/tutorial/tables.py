"""The tour's tables as typed data: its models, the image sets it scores and the generation table's
rows, named once here, so the run (`experiment`) and the page (`report`) cannot disagree on a name.

A name is also the row's label on the page and its key in ``results.json``; renaming one here renames
it everywhere, and a name that is not here fails as an attribute error, at import or in the fast
test of the page, not after minutes of training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# The tour's models, by the name each trains and reports under.
PCA = "PCA"
LINEAR_AE = "linear AE"
DEEP_AE = "deep AE"
VAE = "VAE"
CONDITIONAL_VAE = "conditional VAE"
VAE_2D = "VAE (2-D)"
DEEP_AE_2D = "deep AE (2-D)"


@dataclass(frozen=True)
class ImageSet:
    """A set of images the tour scores: `label` names its row (page and results.json); `sampled`:
    decoded from random codes (drawn in random_codes.png); `digit_score_name`: its key under
    results.json's "digit_scores", where it has one."""

    label: str
    sampled: bool = False
    digit_score_name: str | None = None


FLOOR = ImageSet("real test images (the floor)")
AE_PRIOR = ImageSet("AE on N(0, I)", sampled=True, digit_score_name="AE on N(0, I)")
AE_GAUSSIAN = ImageSet("AE + fitted Gaussian", sampled=True, digit_score_name="AE on fitted Gaussian")
AE_GMM = ImageSet("AE + fitted GMM (10)", sampled=True)
VAE_PRIOR = ImageSet("VAE on N(0, I)", sampled=True, digit_score_name="VAE on N(0, I)")
VAE_GMM = ImageSet("VAE + fitted GMM (10)", sampled=True)
AE_MIDPOINTS = ImageSet("AE, interpolation midpoints", digit_score_name="AE interpolation midpoints")
VAE_MIDPOINTS = ImageSet("VAE, interpolation midpoints", digit_score_name="VAE interpolation midpoints")
CVAE = ImageSet("conditional VAE, asked for each digit in turn")

IMAGE_SETS = (FLOOR, AE_PRIOR, AE_GAUSSIAN, AE_GMM, VAE_PRIOR, VAE_GMM, AE_MIDPOINTS, VAE_MIDPOINTS, CVAE)
REAL_DIGITS = "real test digits"  # the floor's key under "digit_scores"
DIGIT_SCORE_SETS = (AE_MIDPOINTS, VAE_MIDPOINTS, AE_PRIOR, AE_GAUSSIAN, VAE_PRIOR)  # in results.json's order


@dataclass(frozen=True)
class GenerationRow:
    """One image set's scores against the reference images (`vaekit.metrics.generation`), and its
    digit score: the feature network's mean top-class probability."""

    frechet_distance: float
    kid: float
    kid_std: float
    precision: float
    recall: float
    density: float
    coverage: float
    digit_score: float


# Which scores favour set a over set b: (field, words, lower is better).
COMPARED = (
    ("frechet_distance", "Fréchet distance", True),
    ("kid", "KID", True),
    ("precision", "precision", False),
    ("recall", "recall", False),
)


@dataclass(frozen=True)
class GenerationTable:
    """Every set's `GenerationRow`, by label (the tour's `IMAGE_SETS`, or any names a benchmark
    gives), with what they were measured against."""

    network: str
    n: int
    reference: str
    units: dict[str, str]
    kid_subsets: int
    kid_subset_size: int
    features: int
    sets: dict[str, GenerationRow]

    def row(self, image_set: ImageSet | str) -> GenerationRow:
        label = image_set.label if isinstance(image_set, ImageSet) else image_set
        if label not in self.sets:
            raise KeyError(f"the generation table has no row '{label}'; it has {', '.join(self.sets)}")
        return self.sets[label]

    def fd(self, image_set: ImageSet | str) -> float:
        return self.row(image_set).frechet_distance

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # the rows too, field by field

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GenerationTable:
        return cls(**{**d, "sets": {name: GenerationRow(**r) for name, r in d["sets"].items()}})
