"""Test log-likelihood on dynamically binarised MNIST, against the published numbers.

Rows (configs under configs/):
  a  VAE, architecture of Burda et al. (2016)     configs/iwae_paper_vae.toml      published -86.76
  b  IWAE K=50, same architecture                 configs/iwae_paper_iwae50.toml   published -84.78
  c  vaekit's best single-model recipe            configs/mnist_best.toml          target <= -85.0 in 60 min
  d  deep autoencoder 784-1000-500-250-30         configs/mnist_ae_3.toml          published SE 3.00, target <= 3.00
  e  hierarchical VAE, 2 stochastic layers         configs/mnist_hvae.toml          target <= -82.90 in 60 min
  f  VAE with an IAF posterior                     configs/mnist_iaf.toml
  g  VQ-VAE with a transformer prior (its bound)   configs/mnist_vqvae.toml
  h  VampPrior VAE with an IAF posterior           configs/mnist_vamp_iaf.toml      target <= -82.90 in 60 min

Training binarisation is resampled every batch; the test set is binarised once with the data seed.
Each row trains for at most --minutes of wall time (train.max_minutes), then the whole 10,000-image
test set is scored: importance-sampled log p(x) with K = --k (default 5000) and its standard error
(rows a-c), or the squared error per image (row d). The curve printed is the validation bound per
epoch against training time (-ELBO, or -IWAE_K for row b: upper bounds on the NLL).

    python bench/nll_mnist.py a --minutes 60 [--k 5000] [--out runs/bench_a] [--threads 2]

Training and scoring can be split, e.g. to train two rows side by side with one thread each and
then score each with both cores:

    python bench/nll_mnist.py a --threads 1 --k 0 --out runs/bench_a     # train only
    python bench/nll_mnist.py a --eval-only --out runs/bench_a           # score the trained run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import vaekit
from vaekit.data.prepared import prepare
from vaekit.metrics.evaluation import evaluate
from vaekit.runs import load_run

ROOT = Path(__file__).resolve().parent.parent
ROWS = {
    "a": ("iwae_paper_vae.toml", "VAE, IWAE-paper architecture", -86.76),
    "b": ("iwae_paper_iwae50.toml", "IWAE K=50, same architecture", -84.78),
    "c": ("mnist_best.toml", "vaekit best recipe", None),
    "d": ("mnist_ae_3.toml", "deep AE, 30-number code (squared error)", 3.00),
    "e": ("mnist_hvae.toml", "hierarchical VAE, 2 stochastic layers (top-down)", -82.90),
    "f": ("mnist_iaf.toml", "VAE with an IAF posterior", None),
    "g": ("mnist_vqvae.toml", "VQ-VAE with a transformer prior (bound)", None),
    "h": ("mnist_vamp_iaf.toml", "VampPrior VAE with an IAF posterior", None),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("row", choices=sorted(ROWS))
    ap.add_argument("--minutes", type=float, default=60.0, help="training wall-time budget")
    ap.add_argument("--k", type=int, default=5000, help="importance samples per test image")
    ap.add_argument("--test-limit", type=int, help="score only the first N test images (quick checks)")
    ap.add_argument("--out", help="run directory (default runs/bench_<row>)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-only", action="store_true", help="score the run already trained in --out")
    ap.add_argument("--set", action="append", default=[], help="extra section.key=value overrides")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config, title, published = ROWS[args.row]
    out = Path(args.out or f"runs/bench_{args.row}")
    overrides = [f"train.max_minutes={args.minutes}", "train.progress=false", *args.set]
    if args.eval_only:
        model, cfg = load_run(out)
        hist = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        train_s = None
    else:
        t0 = time.perf_counter()
        run = vaekit.train(ROOT / "configs" / config, run_dir=out, overrides=overrides, pictures=False)
        train_s = time.perf_counter() - t0
        cfg, model, hist = run["config"], run["model"], run["history"]
    data = prepare(cfg.data)
    x = data.x_test[: args.test_limit] if args.test_limit else data.x_test
    t1 = time.perf_counter()
    k = args.k if args.row != "d" else 0
    res = evaluate(model, x, k=k, y=data.y_test[: len(x)] if getattr(model, "conditional", False) else None)
    eval_s = time.perf_counter() - t1
    # the validation curve: a bound on the NLL for the VAEs, the cross-entropy the AE is trained on for row d
    if args.row == "d":
        bound, sign, what = "val_loss", 1, "validation cross-entropy (nats)"
    else:
        bound, sign, what = (
            ("val_iwae" if cfg.train.objective == "iwae" else "val_elbo"),
            -1,
            "validation bound on the NLL (nats)",
        )
    print(f"row {args.row}: {title}  ({config})")
    setup = (
        f" ({train_s / 60:.1f} min with setup and checkpoints, {torch.get_num_threads()} threads)" if train_s else ""
    )
    print(f"  trained {len(hist)} epochs in {hist[-1]['seconds'] / 60:.1f} min of training{setup}")
    print(f"  curve (minutes, epoch, {what}):")
    marks = sorted({max(1, round(len(hist) * f)) for f in (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)})
    for e in marks:
        r = hist[e - 1]
        if bound in r:
            print(f"    {r['seconds'] / 60:6.1f} min  epoch {r['epoch']:5d}  {sign * r[bound]:.2f}")
    summary = {
        "row": args.row,
        "config": config,
        "epochs": len(hist),
        "train_minutes": hist[-1]["seconds"] / 60,
        "eval_seconds": eval_s,
        "eval_threads": torch.get_num_threads(),
        "n_test": len(x),
        "published": published,
        "curve": [(r["seconds"] / 60, r["epoch"], sign * r[bound]) for r in hist if bound in r],
        "run_config": cfg.to_dict(),
    }  # every setting, overrides included
    if args.row == "d":
        se = res["squared_error"]["value"]
        print(f"  test squared error per image: {se:.3f}  (published {published:.2f}; target <= 3.00)")
        summary["squared_error"] = se
    elif model.discrete_code:  # a VQ-VAE: its bound log p(x|z_q) + log p(z_q), which sampling cannot tighten
        bound, usage, ppl = res["elbo"]["value"], res["codebook_usage"]["value"], res["codebook_perplexity"]["value"]
        print(
            f"  test bound log p(x) >= {bound:.2f} nats = {res['bits_per_dim']['value']:.4f} bits/dim "
            f"(reconstruction {-res['reconstruction_nll']['value']:.2f}, log p(z_q) {-res['kl']['value']:.2f}; "
            f"codebook: {usage} of {cfg.model.codebook_size} used, perplexity {ppl:.1f}; {eval_s / 60:.1f} min to "
            f"score)"
        )
        summary.update(
            elbo=bound,
            bits_per_dim=res["bits_per_dim"]["value"],
            reconstruction_nll=res["reconstruction_nll"]["value"],
            kl=res["kl"]["value"],
            codebook_usage=usage,
            codebook_perplexity=ppl,
        )
    elif k == 0:
        print(f"  test ELBO {res['elbo']['value']:.2f} nats (no importance sampling: --k 0)")
        summary.update(elbo=res["elbo"]["value"])
    else:
        lp, se = res["log_px"]["value"], res["log_px_stderr"]["value"]
        pub = (
            f"published {published:.2f}"
            if published is not None and args.row != "c"
            else "target <= -85.00"
            if args.row == "c"
            else "no published figure in this setting"
        )
        print(
            f"  test log p(x) = {lp:.2f} +- {se:.2f} nats (K={k}, {len(x)} images, {eval_s / 60:.1f} min to score; "
            f"{pub})"
        )
        extra = "".join(
            f", {name} {res[name]['value']:.2f}" for name in ("kl_z1", "kl_z2", "mutual_information") if name in res
        )
        print(
            f"  ELBO {res['elbo']['value']:.2f}, KL {res['kl']['value']:.2f}, active units "
            f"{res['active_units']['value']}{extra} nats"
        )
        summary.update(
            log_px=lp,
            stderr=se,
            elbo=res["elbo"]["value"],
            active_units=res["active_units"]["value"],
            bits_per_dim=res["bits_per_dim"]["value"],
            **{n: res[n]["value"] for n in ("kl_z1", "kl_z2") if n in res},
        )
    if summary["curve"]:
        final = (
            (summary["train_minutes"], -summary["log_px"])
            if "log_px" in summary
            else (summary["train_minutes"], -summary["elbo"])
            if model.discrete_code
            else None
        )
        plot_curve(
            summary["curve"],
            what,
            published if args.row != "d" else None,
            final,
            f"row {args.row}: {title}",
            out / "curve.png",
        )
    (out / ("bench.json" if k or args.row == "d" else "bench_train.json")).write_text(
        json.dumps(summary, indent=2) + "\n"
    )


def plot_curve(curve: list, what: str, published: float | None, final: tuple | None, title: str, path: Path) -> None:
    """The validation curve (minutes, epoch, value) against minutes of training, with the published NLL
    and the final importance-sampled test NLL (minutes, nats) when there are ones."""
    from vaekit.explorer.pictures import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot([c[0] for c in curve], [c[2] for c in curve], marker=".", ms=3, label=what)
    if published is not None:
        ax.axhline(-published, color="k", ls="--", lw=1, label=f"published test NLL {-published:.2f}")
    if final is not None:
        ax.plot([final[0]], [final[1]], "r*", ms=9, label=f"test NLL, importance-sampled: {final[1]:.2f}")
    lo = min(
        [c[2] for c in curve]
        + [-published if published is not None else float("inf")]
        + [final[1] if final is not None else float("inf")]
    )
    ax.set_ylim(lo - 2, lo + 20)
    ax.set_xlabel("minutes of training")
    ax.set_ylabel(what)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
