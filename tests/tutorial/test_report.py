"""The tour's page from typed results, in milliseconds: every row the run names is a row the page
reads, and the words follow the numbers (no training: the numbers are made up here)."""

import dataclasses
import re

import pytest

from vaekit.tutorial import tables
from vaekit.tutorial.report import write_report
from vaekit.tutorial.tables import GenerationRow, GenerationTable


def table(fd: dict[tables.ImageSet, float]) -> GenerationTable:
    """A generation table with a row per image set; Fréchet distances from `fd` (else 50), other
    scores fixed, so that only the distances decide the words."""
    rows = {
        s.label: GenerationRow(
            frechet_distance=fd.get(s, 50.0),
            kid=0.01 * fd.get(s, 50.0),
            kid_std=0.001,
            precision=0.5,
            recall=0.5,
            density=0.9,
            coverage=0.8,
            digit_score=0.9 if s is not tables.AE_PRIOR else 0.4,
        )
        for s in tables.IMAGE_SETS
    }
    return GenerationTable("net sha256:0", 200, "200 test images", {}, 20, 200, 64, rows)


def results(gen: GenerationTable) -> dict:
    metric = lambda v: {"value": v, "unit": "nats", "reduction": "mean over test images"}
    return {
        "train_size": 2000,
        "test_size": 400,
        "device": "cpu",
        "seconds": 12.0,
        "seconds_by_step": {"data": 1.0, "train": 10.0},
        "pca_fit_seconds": 0.1,
        "linear_ae_variance_captured": 0.99,
        "linear_ae_principal_angles_deg": {"max": 9.0, "mean": 2.0, "median": 1.0},
        "squared_error_30": {tables.PCA: 13.9, tables.LINEAR_AE: 14.0, tables.DEEP_AE: 6.7, tables.VAE: 9.1},
        "squared_error_2": {tables.PCA: 40.0, tables.DEEP_AE: 33.0, tables.VAE: 35.0},
        "test": {tables.VAE: {"elbo": metric(-100.0), "kl": metric(25.0), "log_px": metric(-95.0)}},
        "feature_network": {"name": "features 'x'", "sha256": "ab" * 32, "test_accuracy": 0.99},
        "digit_scores": {tables.REAL_DIGITS: 0.99, **{s.digit_score_name: 0.9 for s in tables.DIGIT_SCORE_SETS}},
        "conditional": {"classifier_accuracy_on_samples": 0.9, "samples": 200, "digit_score": 0.95},
        "generation": gen.to_json(),
    }


def page_text(tmp_path, gen: GenerationTable) -> str:
    page = write_report(results(gen), tmp_path).read_text()
    return re.sub(r"\s+", " ", page)


def test_every_image_set_is_a_row_and_the_json_round_trips(tmp_path):
    gen = table({tables.FLOOR: 3.0, tables.AE_PRIOR: 150.0, tables.VAE_PRIOR: 60.0})
    assert GenerationTable.from_json(gen.to_json()) == gen
    assert list(gen.to_json()["sets"][tables.FLOOR.label]) == [f.name for f in dataclasses.fields(GenerationRow)]
    page = page_text(tmp_path, gen)
    for s in tables.IMAGE_SETS:
        assert f"<td>{s.label}</td>" in page.replace("&#x27;", "'"), s.label
    assert "(Fréchet distance 150.0, against 3.0 for real images), the VAE's is much closer (60.0)" in page
    assert "No set of generated images reaches the floor (3.0)" in page
    assert len({s.label for s in tables.IMAGE_SETS}) == len(tables.IMAGE_SETS)  # one row per name


@pytest.mark.parametrize(
    ("ae_gmm", "words"),
    [
        (40.0, "generates better than the VAE does from its prior here"),
        (66.0, "rivals the VAE as a generator: within 10% of its Fréchet distance"),
        (90.0, "Here the VAE's own prior stays clearly ahead of the ex-post mixture."),
    ],
)
def test_the_words_follow_the_numbers(tmp_path, ae_gmm, words):
    gen = table({tables.FLOOR: 3.0, tables.VAE_PRIOR: 60.0, tables.AE_GMM: ae_gmm, tables.VAE_GMM: 55.0})
    page = page_text(tmp_path, gen)
    assert words in page
    assert "a density fitted to them samples better" in page  # the VAE's mixture (55) beats its prior (60)


def test_a_missing_row_is_named(tmp_path):
    gen = table({})
    short = dataclasses.replace(gen, sets={k: v for k, v in gen.sets.items() if k != tables.VAE_GMM.label})
    with pytest.raises(KeyError, match="no row 'VAE \\+ fitted GMM \\(10\\)'"):
        write_report(results(short), tmp_path)


def test_old_names_keep_their_meaning():
    import vaekit.tutorial
    from vaekit.tutorial import experiment

    assert vaekit.tutorial.FLOOR == tables.FLOOR.label and vaekit.tutorial.CVAE == tables.CVAE.label
    assert experiment.DIGIT_SCORE_NAMES["AE on fitted Gaussian"] == tables.AE_GAUSSIAN.label
