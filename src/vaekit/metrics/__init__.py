"""Metrics: every figure with its unit and its reduction.

- `evaluation`: `evaluate`, the likelihood figures (ELBO, IWAE, importance-sampled log p(x), bits/dim, KL, MI);
- `generation`: sample quality as two sets of features compared (Fréchet distance, KID, precision/recall);
- `features`: the feature networks those metrics measure in (shipped MNIST net, your own, Inception);
- `digit_score`: the outlier-exposed MNIST classifier behind the tour's digit score;
- `disentanglement`: MIG, DCI, the FactorVAE score and SAP against known factors.
"""
