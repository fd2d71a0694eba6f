"""The tour's HTML page: one self-contained file that opens offline, with its PNGs beside it."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

PAPER_PCA_30 = 13.87  # Hinton & Salakhutdinov, Science 2006: PCA with 30 components, MNIST test


def _table(rows: list[list[str]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def write_report(res: dict[str, Any], out: Path) -> Path:
    se = res["squared_error_30"]
    test = res["test"]
    vae = test["VAE"]
    angles = res["linear_ae_principal_angles_deg"]
    se_rows = [[n, f"{v:.2f}", f"{PAPER_PCA_30:.2f}" if n == "PCA" else ""] for n, v in se.items()]
    score_rows = [[html.escape(n), f"{v:.3f}"] for n, v in res["digit_scores"].items()]
    se2_rows = [[n, f"{v:.2f}"] for n, v in res["squared_error_2"].items()]
    vae_rows = [[k, f"{vae[k]['value']:.2f}", html.escape(vae[k]['unit'] + '; ' + vae[k]['reduction'])]
                for k in ("elbo", "reconstruction_nll", "kl", "log_px", "log_px_stderr", "active_units") if k in vae]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vaekit tour</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; line-height: 1.45; color: #222; }}
table {{ border-collapse: collapse; margin: 0.6em 0 1.2em; }} td, th {{ border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; }}
th {{ background: #f3f3f3; }} img {{ max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }}
.note {{ color: #555; font-size: 0.92em; }}
</style></head><body>
<h1>vaekit tour: from PCA to the VAE, on MNIST</h1>
<p class="note">{res['train_size']} training and {res['test_size']} test images, code size 30,
device {html.escape(res['device'])}, {res['seconds']:.0f} s in all. Numbers are measured on the test set by this run; results.json holds them all.</p>

<h2>1-3. PCA, the naive linear autoencoder, the deep autoencoder</h2>
<p>PCA finds W by eigendecomposition (fitted in {res['pca_fit_seconds']:.2f} s). The linear autoencoder learns c = Wx and x&#770; = W<sup>T</sup>c by
gradient descent and lands on PCA's subspace: its subspace captures {res['linear_ae_variance_captured']:.2%} of the training variance that
PCA's captures, and the principal angles between the two 30-dimensional subspaces have median {angles['median']:.2f}&deg;
(mean {angles['mean']:.2f}&deg;, largest {angles['max']:.2f}&deg;: the last directions are barely determined, since the 30th and 31st
eigenvalues nearly tie). The deep autoencoder and the VAE use neural networks instead.</p>
<p>Test squared error per image (sum over 784 pixels in [0, 1], mean over test images):</p>
{_table(se_rows, ["model (code size 30)", "squared error", "published"])}
<p><img src="reconstructions.png" alt="reconstructions"></p>
<p><img src="curves.png" alt="training curves"></p>

<h2>4. Why an autoencoder cannot generate: the moon experiment</h2>
<p>Decode the code halfway (and every step) between two test digits of different classes. Rows alternate AE and VAE for the same pair.</p>
<p><img src="moon.png" alt="interpolations"></p>
<h3>Generation from random codes</h3>
<p>The AE decoder on codes from N(0, I) and from a Gaussian fitted to its training codes, against the VAE decoder on N(0, I).</p>
<p><img src="random_codes.png" alt="random codes"></p>

<h3>"Looks like a digit", measured</h3>
<p>A small classifier (test accuracy {res['classifier']['test_accuracy']:.2%}, trained with outlier exposure so that noise scores near 0.1)
scores a set of images by its mean top-class probability: 1.0 means a confident digit.</p>
{_table(score_rows, ["images", "mean top-class probability"])}

<h2>Asking for a digit: the conditional VAE</h2>
<p>Encoder and decoder both see the label. Asked for each digit in turn ({res['conditional']['samples']} samples), the classifier reads the
asked-for digit in <b>{res['conditional']['classifier_accuracy_on_samples']:.2%}</b> of them (mean top-class probability
{res['conditional']['digit_score']:.3f}). Row k below asks for digit k.</p>
<p><img src="conditional.png" alt="conditional samples"></p>

<h2>Latent maps with two-number codes</h2>
<p><img src="latent_maps.png" alt="latent maps"></p>
<p>The 2-D VAE's decoder over a grid of codes at Gaussian quantiles:</p>
<p><img src="vae_manifold.png" alt="VAE manifold"></p>
{_table(se2_rows, ["model (code size 2)", "test squared error per image"])}

<h2>The VAE's likelihood figures</h2>
{_table(vae_rows, ["metric", "value", "unit; reduction"])}
<p class="note">The VAE here uses a Bernoulli likelihood on grey values in [0, 1] (the tutorial's cross-entropy loss). On non-binary data that is
not a normalised density, so its log p(x) is a training objective, not a likelihood comparable across models.</p>
</body></html>
"""
    from .checkpoint import write_text_durable

    path = out / "index.html"
    write_text_durable(path, page)
    return path
