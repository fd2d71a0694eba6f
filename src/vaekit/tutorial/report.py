"""The tour's HTML page: one self-contained file that opens offline, with its PNGs beside it."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from vaekit.tutorial.tables import (
    AE_GAUSSIAN,
    AE_GMM,
    AE_MIDPOINTS,
    AE_PRIOR,
    COMPARED,
    FLOOR,
    PCA,
    VAE,
    VAE_GMM,
    VAE_MIDPOINTS,
    VAE_PRIOR,
    GenerationTable,
)

PAPER_PCA_30 = 13.87  # Hinton & Salakhutdinov, Science 2006: PCA with 30 components, MNIST test


def _table(rows: list[list[str]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def write_report(res: dict[str, Any], out: Path) -> Path:
    se = res["squared_error_30"]
    test = res["test"]
    vae = test[VAE]
    angles = res["linear_ae_principal_angles_deg"]
    se_rows = [[n, f"{v:.2f}", f"{PAPER_PCA_30:.2f}" if n == PCA else ""] for n, v in se.items()]
    score_rows = [[html.escape(n), f"{v:.3f}"] for n, v in res["digit_scores"].items()]
    fn = res["feature_network"]
    se2_rows = [[n, f"{v:.2f}"] for n, v in res["squared_error_2"].items()]
    vae_rows = [
        [k, f"{vae[k]['value']:.2f}", html.escape(vae[k]["unit"] + "; " + vae[k]["reduction"])]
        for k in ("elbo", "reconstruction_nll", "kl", "log_px", "log_px_stderr", "active_units")
        if k in vae
    ]
    steps = ", ".join(f"{html.escape(k)} {v:.0f} s" for k, v in res["seconds_by_step"].items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vaekit tour</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; line-height: 1.45; \
color: #222; }}
table {{ border-collapse: collapse; margin: 0.6em 0 1.2em; }} td, th {{ border: 1px solid #ccc; padding: 0.25em 0.7em; \
text-align: left; }}
th {{ background: #f3f3f3; }} img {{ max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }}
.note {{ color: #555; font-size: 0.92em; }}
</style></head><body>
<h1>vaekit tour: from PCA to the VAE, on MNIST</h1>
<p class="note">{res["train_size"]} training and {res["test_size"]} test images, code size 30,
device {html.escape(res["device"])}, {res["seconds"]:.0f} s in all ({steps}). Numbers are measured on the test set by \
this run; results.json holds them all.</p>

<h2>1-3. PCA, the naive linear autoencoder, the deep autoencoder</h2>
<p>PCA finds W by eigendecomposition (fitted in {res["pca_fit_seconds"]:.2f} s). The linear autoencoder learns c = Wx \
and x&#770; = W<sup>T</sup>c by
gradient descent and lands on PCA's subspace: its subspace captures {res["linear_ae_variance_captured"]:.2%} of the \
training variance that
PCA's captures, and the principal angles between the two 30-dimensional subspaces have median \
{angles["median"]:.2f}&deg;
(mean {angles["mean"]:.2f}&deg;, largest {angles["max"]:.2f}&deg;: the last directions are barely determined, since \
the 30th and 31st
eigenvalues nearly tie). The deep autoencoder and the VAE use neural networks instead.</p>
<p>Test squared error per image (sum over 784 pixels in [0, 1], mean over test images):</p>
{_table(se_rows, ["model (code size 30)", "squared error", "published"])}
<p><img src="reconstructions.png" alt="reconstructions"></p>
<p><img src="curves.png" alt="training curves"></p>

<h2>4. Why an autoencoder cannot generate: the moon experiment</h2>
<p>Decode the code halfway (and every step) between two test digits of different classes. Rows alternate AE and VAE \
for the same pair.</p>
<p><img src="moon.png" alt="interpolations"></p>
<h3>Generation from random codes</h3>
<p>The AE decoder on codes from N(0, I), from a Gaussian and from a 10-component mixture fitted to its training codes, \
against the VAE decoder on N(0, I) and on a mixture fitted to its codes (16 of each).</p>
<p><img src="random_codes.png" alt="random codes"></p>

<h3>"Looks like a digit", measured</h3>
<p>vaekit's shipped MNIST feature network ({html.escape(fn["name"])}, SHA-256 {fn["sha256"][:12]}..., test accuracy \
{fn["test_accuracy"]:.2%},
trained with outlier exposure so that noise scores near 0.1) scores a set of images by its mean top-class probability: \
1.0 means a confident digit.</p>
{_table(score_rows, ["images", "mean top-class probability"])}

{generation_section(res)}

<h2>Asking for a digit: the conditional VAE</h2>
<p>Encoder and decoder both see the label. Asked for each digit in turn ({res["conditional"]["samples"]} samples), the \
feature network reads the
asked-for digit in <b>{res["conditional"]["classifier_accuracy_on_samples"]:.2%}</b> of them (mean top-class probability
{res["conditional"]["digit_score"]:.3f}). Row k below asks for digit k.</p>
<p><img src="conditional.png" alt="conditional samples"></p>

<h2>Latent maps with two-number codes</h2>
<p><img src="latent_maps.png" alt="latent maps"></p>
<h3>Explore them: one cursor, both decoders</h3>
<p>The 2-D AE and the 2-D VAE run in this page (no server, no network): point at either map and both decoders answer;
drag a slider, pick two digits to slide between, draw one, or sample. <a href="explorer.html">Open it full size</a>.</p>
<div style="width: 96vw; position: relative; left: 50%; transform: translateX(-50%);">
<iframe src="explorer.html" title="AE and VAE explorer" style="width: 100%; height: 1000px; border: 1px solid \
#ddd;"></iframe></div>
<p>The 2-D VAE's decoder over a grid of codes at Gaussian quantiles:</p>
<p><img src="vae_manifold.png" alt="VAE manifold"></p>
{_table(se2_rows, ["model (code size 2)", "test squared error per image"])}

<h2>The VAE's likelihood figures</h2>
{_table(vae_rows, ["metric", "value", "unit; reduction"])}
<p class="note">The VAE here uses a Bernoulli likelihood on grey values in [0, 1] (the tutorial's cross-entropy loss). \
On non-binary data that is
not a normalised density, so its log p(x) is a training objective, not a likelihood comparable across models.</p>
</body></html>
"""
    from vaekit.training.checkpoints import write_text_durable

    path = out / "index.html"
    write_text_durable(path, page)
    return path


def _words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(better: list[str], worse: list[str], a: str, b: str) -> str:
    """'a beats b on ...' from the metrics on which it does and does not."""
    if not better:
        return f"{a} does not beat {b} on any of them"
    if not worse:
        return f"{a} beats {b} on all of them"
    return f"{a} beats {b} on {_words(better)} but not on {_words(worse)}"


def _compare(table: GenerationTable, a: Any, b: Any) -> tuple[list[str], list[str]]:
    """Which of FD, KID (lower is better), precision and recall (higher) favour set a over set b."""
    better, worse = [], []
    for key, label, lower in COMPARED:
        va, vb = getattr(table.row(a), key), getattr(table.row(b), key)
        (better if (va < vb if lower else va > vb) else worse).append(label)
    return better, worse


def generation_section(res: dict[str, Any]) -> str:
    """The generation table and what it says, in words chosen by the numbers themselves."""
    gen = GenerationTable.from_json(res["generation"])
    rows = [
        [
            html.escape(n),
            f"{v.frechet_distance:.2f}",
            f"{v.kid:.3g} &plusmn; {v.kid_std:.2g}",
            f"{v.precision:.3f}",
            f"{v.recall:.3f}",
            f"{v.density:.3f}",
            f"{v.coverage:.3f}",
            f"{v.digit_score:.3f}",
        ]
        for n, v in gen.sets.items()
    ]
    fd = gen.fd
    ae_gmm = _compare(gen, AE_GMM, VAE_PRIOR)
    mids = _compare(gen, VAE_MIDPOINTS, AE_MIDPOINTS)
    ratio = fd(AE_GMM) / fd(VAE_PRIOR)
    ahead = f", and ahead on {_words(ae_gmm[0])}" if ae_gmm[0] and ratio >= 1 else ""
    rival = (
        "So the plain autoencoder, given a density fitted to its codes after training, generates better than the VAE "
        "does "
        "from its prior here, as Ghosh et al. (2020) found."
        if ratio < 1
        else f"So the plain autoencoder, given a density fitted to its codes after training, rivals the VAE as a "
        f"generator: within "
        f"{100 * (ratio - 1):.0f}% of its Fréchet distance{ahead}. Ghosh et al. (2020) found that such ex-post density "
        "estimation can match or beat a VAE's prior."
        if ratio < 1.25
        else "Here the VAE's own prior stays clearly ahead of the ex-post mixture."
    )
    rival += (
        " What the VAE gives beyond its samples: a prior that is part of the model (nothing to fit afterwards), a "
        "bound "
        "on the likelihood, and codes between digits that decode to digits (the midpoints above)."
    )
    closer = fd(VAE_PRIOR) / fd(AE_PRIOR)
    vae_words = "much closer" if closer < 0.5 else "closer" if closer < 1 else "no closer"
    posterior = (
        ": the VAE's codes do not follow N(0, I) exactly either, and a density fitted to them samples better"
        if fd(VAE_GMM) < fd(VAE_PRIOR)
        else ""
    )
    floor = fd(FLOOR)
    closest = min((n for n in gen.sets if n != FLOOR.label), key=fd)
    floor_words = (
        f"No set of generated images reaches the floor ({floor:.1f}); the closest is {html.escape(closest)}."
        if fd(closest) > floor
        else f"{html.escape(closest)} reaches the floor ({fd(closest):.1f} against {floor:.1f})."
    )
    return f"""<h2>Generation, measured as the field measures it</h2>
<p>Each set of {gen.n} images is compared with {html.escape(gen.reference)} in the {gen.features}-dimensional \
feature space of
{html.escape(gen.network)}: the Fréchet distance between Gaussians fitted to the two sets of features (FID's \
formula, in this
network's space rather than Inception's), KID (the unbiased squared MMD with a cubic kernel, &plusmn; its standard \
deviation over {gen.kid_subsets} subsets of {gen.kid_subset_size:,};
printed raw, in this network's unnormalised ReLU features: papers print KID &times; 10<sup>3</sup> on Inception's \
features, so values such as
these compare only with each other, not with published ones),
precision and recall (Kynkäänniemi et al. 2019: how many samples lie near real images, how many real images lie near \
samples), density and coverage
(Naeem et al. 2020). The first row is the floor: other real test images. A score means something only beside it.</p>
{_table(rows, ["images", "Fréchet distance", "KID", "precision", "recall", "density", "coverage", "digit score"])}
<p>The tutorial's claim, in these numbers: the AE's decoder on N(0, I) is far from real digits (Fréchet distance
{fd(AE_PRIOR):.1f}, against {floor:.1f} for real images), the VAE's is {vae_words} \
({fd(VAE_PRIOR):.1f}).
Halfway between two test digits of different classes, {_sentence(*mids, "the VAE", "the AE")}
(Fréchet distance {fd(VAE_MIDPOINTS):.1f} against {fd(AE_MIDPOINTS):.1f}).</p>
<p>The honest end of the story: fit a Gaussian to the AE's training codes and its decoder generates
{"better" if fd(AE_GAUSSIAN) < fd(AE_PRIOR) else "no better"} than on N(0, I)
({fd(AE_GAUSSIAN):.1f}); fit a 10-component mixture and \
{_sentence(*ae_gmm, "the AE", "the VAE on its own prior")}
(Fréchet distance {fd(AE_GMM):.1f} against {fd(VAE_PRIOR):.1f}). {rival} The same mixture \
fitted to the VAE's
codes gives {fd(VAE_GMM):.1f}{posterior}. {floor_words}</p>
"""
