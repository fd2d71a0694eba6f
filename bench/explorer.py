"""The explorer page in headless chromium: time to the first decoded image, and milliseconds per
decode and per encode, for the tour's MLP VAE (784-1000-500-250-30, and its 2-D model) and the conv
VAE of configs/mnist_conv_vae.toml, each trained for --epochs on MNIST (the timings do not depend
on how well trained the weights are, only a little on how many activations are zero).

    python bench/explorer.py [--epochs 1] [--loads 10] [--decodes 100] [--out bench/results/explorer.json]

Per model: the page's size; the time from navigation start to the first decoded image on screen
(performance.now() at its first paint, median of --loads fresh page loads); one decode and one
encode in the page (median and 90th percentile of --decodes calls on random codes / test images,
after 10 untimed ones); PyTorch's own decode of one code in this process, for scale. Targets
(issue 17): first image within 1 s; an MLP decode within 16 ms (one frame at 60 Hz).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vaekit.config import DataConfig, TrainConfig, load_config
from vaekit.data.prepared import prepare
from vaekit.explorer.page import explore
from vaekit.models import build_model
from vaekit.training.loop import fit
from vaekit.tutorial.experiment import SETTINGS, _jobs

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent


def models(epochs: int) -> dict[str, tuple]:
    """name -> (model config, data config) of the three models measured."""
    jobs = {j.name: j for j in _jobs(SETTINGS["full"])}
    conv = load_config(ROOT / "configs" / "mnist_conv_vae.toml")
    grey = DataConfig(name="mnist", val_size=0)
    return {
        "tour VAE (MLP, D = 30)": (jobs["VAE"].model, grey),
        "tour VAE (MLP, D = 2)": (jobs["VAE (2-D)"].model, grey),
        "conv VAE (configs/mnist_conv_vae.toml, D = 16)": (conv.model, dataclasses.replace(conv.data, val_size=0)),
    }


def train(model_cfg, data_cfg, epochs: int):
    torch.manual_seed(0)
    data = prepare(data_cfg)
    model = build_model(model_cfg, data.shape)
    tcfg = TrainConfig(epochs=epochs, batch_size=128, lr=1e-3, progress=False, eval_k=0)
    return fit(model, data, tcfg).model.eval(), data


def in_browser(browser, page: Path, loads: int, decodes: int, x: torch.Tensor) -> dict:
    firsts = []
    for _ in range(loads):
        tab = browser.new_page()
        tab.goto(page.resolve().as_uri())
        tab.wait_for_function("window.vaekit && window.vaekit.firstImageMs !== null")
        firsts.append(tab.evaluate("window.vaekit.firstImageMs"))
        tab.close()
    tab = browser.new_page()
    tab.goto(page.resolve().as_uri())
    tab.wait_for_function("window.vaekit && window.vaekit.firstImageMs !== null")
    timed = tab.evaluate(
        """([n, xs]) => {
        const p = window.vaekit.panels[0], D = p.D, dec = [], enc = [];
        const z = () => Array.from({length: D}, () => 2 * Math.random() - 1);
        for (let i = 0; i < 10; i++) { p.decode(z()); p.encode(xs[i % xs.length]); }
        for (let i = 0; i < n; i++) {
            const c = z(), t0 = performance.now(); p.decode(c); dec.push(performance.now() - t0);
            const x = xs[i % xs.length], t1 = performance.now(); p.encode(x); enc.push(performance.now() - t1);
        }
        return {dec, enc};
    }""",
        [decodes, x[:20].flatten(1).tolist()],
    )
    tab.close()
    q = lambda v, f: statistics.quantiles(v, n=10)[f] if len(v) > 1 else v[0]
    return {
        "first_image_ms": statistics.median(firsts),
        "first_image_ms_all": firsts,
        "decode_ms": statistics.median(timed["dec"]),
        "decode_ms_p90": q(timed["dec"], 8),
        "encode_ms": statistics.median(timed["enc"]),
        "encode_ms_p90": q(timed["enc"], 8),
    }


@torch.no_grad()
def torch_decode_ms(model, n: int = 100) -> float:
    z = torch.randn(n, model.latent_dim)
    for i in range(10):
        _ = model.decode(z[i : i + 1]).mean
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        _ = model.decode(z[i : i + 1]).mean
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--loads", type=int, default=10)
    ap.add_argument("--decodes", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "explorer.json"))
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    results = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "browser": None,
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        results["browser"] = f"chromium {browser.version} (headless)"
        for i, (name, (mcfg, dcfg)) in enumerate(models(args.epochs).items()):
            t0 = time.perf_counter()
            model, data = train(mcfg, dcfg, args.epochs)
            page = explore(model, data.x_test, Path(tmp) / str(i), y=data.y_test)
            row = {
                "page_mb": page.stat().st_size / 1e6,
                "train_seconds": time.perf_counter() - t0,
                **in_browser(browser, page, args.loads, args.decodes, data.x_test),
                "torch_decode_ms": torch_decode_ms(model),
            }
            results["models"][name] = row
            print(
                f"{name}: page {row['page_mb']:.1f} MB; first image {row['first_image_ms']:.0f} ms "
                f"(median of {args.loads} loads); decode {row['decode_ms']:.2f} ms (p90 {row['decode_ms_p90']:.2f}), "
                f"encode {row['encode_ms']:.2f} ms (p90 {row['encode_ms_p90']:.2f}), median of {args.decodes}; "
                f"PyTorch decode of one code {row['torch_decode_ms']:.2f} ms",
                flush=True,
            )
        browser.close()
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
