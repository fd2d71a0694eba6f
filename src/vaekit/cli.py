"""The `vaekit` command: a thin shell over the Python API, with no ML logic of its own.

Every bad input ends with one line on stderr naming the problem and exit code 2; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path

from vaekit.errors import VaekitError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        raise VaekitError(f"{message} (see '{self.prog} --help')")


def _seed(text: str) -> int:
    """--seed: a whole number, checked as every seed is (`config.check_seed`)."""
    from vaekit.config import check_seed

    try:
        return check_seed(int(text), "seed")
    except (ValueError, VaekitError) as e:
        raise argparse.ArgumentTypeError(
            str(e) if isinstance(e, VaekitError) else f"invalid seed {text[:40]!r}: expected a whole number"
        ) from None


def _device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="where to compute (default: auto)")


def build_parser() -> argparse.ArgumentParser:
    from vaekit import __version__

    parser = _Parser(prog="vaekit", description="Variational autoencoders and the models they grew out of.")
    parser.add_argument("--version", action="version", version=f"vaekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    _add_train(sub)
    _add_evaluate(sub)
    _add_pictures(sub)
    _add_export_explore(sub)
    _add_tables(sub)
    _add_data_features_tour(sub)
    return parser


def _add_train(sub) -> None:
    """The `train` command."""
    p = sub.add_parser(
        "train",
        help="train a model from a TOML config",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="several processes or machines: put torchrun in front, e.g.\n"
        "  torchrun --standalone --nproc_per_node=4 -m vaekit train CONFIG --out RUN\n"
        "(train.batch_size stays the global batch; see the README's Scaling section)",
    )
    p.add_argument("config", nargs="?", help="TOML (or JSON) config file; defaults apply where omitted")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last checkpoint")
    p.add_argument(
        "--on-nan",
        choices=["stop", "rollback"],
        help="on a non-finite loss: stop with a diagnosis (default) "
        "or restore the last good checkpoint, halve the learning rate and go on (train.max_rollbacks times)",
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        help="train the nets in mixed precision "
        "(losses and log-densities stay fp32; fp16 adds loss scaling); default fp32",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model for training")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--no-pictures",
        action="store_true",
        help="write no PNGs (curves, latent map, reconstructions, samples): for sweeps and scripts; "
        "'vaekit reconstruct', 'sample' and 'explore' draw them later",
    )
    _device_arg(p)


def _add_evaluate(sub) -> None:
    """The `evaluate` command."""
    p = sub.add_parser(
        "evaluate",
        help="metrics of a trained run on its test set",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="sharded over processes, with exactly the metrics of one:\n"
        "  torchrun --standalone --nproc_per_node=4 -m vaekit evaluate RUN",
    )
    p.add_argument("run", help="run directory (or a model directory with --data)")
    p.add_argument("--k", type=int, default=1000, help="importance samples for log p(x) (default 1000, at most 5000)")
    p.add_argument("--data", help="dataset name or path (default: the run's)")
    p.add_argument("--split", choices=["test", "val"], default="test")
    p.add_argument("--limit", type=int, help="evaluate only the first N examples")
    p.add_argument(
        "--batch-size",
        type=int,
        default=500,
        help="examples per batch (default 500); each batch has its own noise stream, so K-sample figures move with it "
        "(within their noise), never with the number of processes",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--generation",
        action="store_true",
        help="sample quality instead: Fréchet distance, KID, precision, "
        "recall, density and coverage of samples from the prior against test images, beside the floor "
        "(test images against as many validation or training images), in the shipped MNIST feature network's space",
    )
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="with --generation: images on each side (default 10000); with --synthesis: synthetic rows "
        "(default: as many as held out)",
    )
    p.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="with --generation: seed of the samples and KID's subsets; with --disentanglement: of the factor samples",
    )
    p.add_argument(
        "--sampler",
        default="prior",
        help="with --generation: prior, gaussian, gmm:K or two-stage (see vaekit sample --help)",
    )
    p.add_argument(
        "--features",
        help="with --generation: the feature network: a directory from 'vaekit features train', "
        "or 'inception' (needs torch-fidelity and its weights already on this machine); default: the shipped MNIST "
        "network",
    )
    p.add_argument(
        "--disentanglement",
        action="store_true",
        help="disentanglement instead, on data with known factors "
        "(data.name = 'shapes'): MIG, DCI, the FactorVAE score and SAP of the point codes, with "
        "disentanglement_lib's sample counts; --seed seeds the factor samples",
    )
    p.add_argument(
        "--synthesis",
        action="store_true",
        help="table runs: the synthetic table's quality (SDMetrics' column shapes and pair trends), detection, "
        "privacy distances and, with --target, machine-learning efficacy, each beside the floor of real held-out rows",
    )
    p.add_argument("--target", help="with --synthesis: the column whose prediction measures efficacy")
    p.add_argument(
        "--fraction",
        type=float,
        default=1.0,
        help="with --disentanglement: this fraction of every sample count (quick looks; default 1)",
    )
    _device_arg(p)


def _add_pictures(sub) -> None:
    """The commands that draw a run's pictures: sample, reconstruct, interpolate, traverse."""
    for name, helptext in (
        ("sample", "decode codes drawn from the prior"),
        ("reconstruct", "inputs and their reconstructions"),
        ("interpolate", "decode codes between two inputs"),
        ("traverse", "one row per latent dimension, swept around a test example's code"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("run", help="run directory")
        p.add_argument("--out", required=True, help="output file (.png; .npy or .csv for vectors)")
        p.add_argument("--seed", type=_seed, default=0)
        p.add_argument("--data", help="dataset name or path (default: the run's)")
        _device_arg(p)
        if name == "sample":
            p.add_argument("--n", type=int, default=64)
            p.add_argument(
                "--label", type=int, help="conditional models: the class to generate (default: every class in turn)"
            )
            p.add_argument(
                "--where",
                action="append",
                metavar="COLUMN=VALUE",
                help="table runs: fix a column's value (repeatable); the rows come by importance resampling",
            )
            p.add_argument(
                "--sampler",
                default="prior",
                help="where the codes come from: prior (the model's own), gaussian, "
                "gmm:K (a full-covariance Gaussian or K-component mixture fitted to the training codes) or "
                "two-stage (a second VAE trained on them); fitted ones are saved in RUN/samplers/ and reused: "
                "any autoencoder can generate",
            )
        if name == "reconstruct":
            p.add_argument("--n", type=int, default=16)
        if name == "traverse":
            p.add_argument(
                "--image", type=int, default=0, help="index of the test example whose code is swept (default 0)"
            )
            p.add_argument(
                "--dims",
                help="comma-separated latent dimensions, in row order (default: the active ones, "
                "most KL first, at most 10)",
            )
            p.add_argument("--steps", type=int, default=11, help="codes per row (default 11)")
            p.add_argument(
                "--span",
                type=float,
                default=3.0,
                help="sweep from -span to +span standard deviations of p(z_d) "
                "(of the codes, for a model without a prior; default 3)",
            )
        if name == "interpolate":
            p.add_argument("--a", type=int, default=0, help="index of the first test example")
            p.add_argument("--b", type=int, default=1, help="index of the second test example")
            p.add_argument("--steps", type=int, default=10)
            p.add_argument("--mode", choices=["linear", "slerp"], default="linear")


def _add_tables(sub) -> None:
    """The `impute` and `score` commands of table runs."""
    p = sub.add_parser("impute", help="table runs: fill a table's missing cells")
    p.add_argument("run", help="table run directory")
    p.add_argument("data", help="the table (CSV/TSV) with missing cells")
    p.add_argument("--out", required=True, help="the filled table (.csv or .tsv)")
    p.add_argument(
        "--multiple",
        type=int,
        default=0,
        metavar="M",
        help="M imputations drawn by sampling-importance-resampling, stacked with an 'imputation' column "
        "(default 0: one, by the importance-weighted mean or most probable label)",
    )
    p.add_argument("--k", type=int, default=1000, help="importance samples per row (default 1000)")
    p.add_argument("--seed", type=_seed, default=0)
    p = sub.add_parser("score", help="table runs: each row's log-likelihood, for anomalies")
    p.add_argument("run", help="table run directory")
    p.add_argument("data", help="the table (CSV/TSV) to score")
    p.add_argument(
        "--out", required=True, help="scores (.csv): log p(x) in nats, its standard error, each column's share"
    )
    p.add_argument("--k", type=int, default=1000, help="importance samples per row (default 1000)")
    p.add_argument("--seed", type=_seed, default=0)


def _add_export_explore(sub) -> None:
    """The `export` and `explore` commands: the model outside PyTorch."""
    p = sub.add_parser("export", help="write the model's decoder and encoder as ONNX files")
    p.add_argument("run", help="run directory (or a model directory)")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--part", choices=["decoder", "encoder", "both"], default="both")
    p.add_argument("--out", help="folder to write decoder.onnx / encoder.onnx into (default: RUN/onnx)")
    p = sub.add_parser(
        "explore", help="write an offline page in which the model's decoder and encoder run in the browser"
    )
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="folder to write index.html into (default: RUN/explorer)")
    p.add_argument(
        "--sampler",
        default="auto",
        help="what the page's sample button draws from: prior, gaussian, gmm:K or "
        "two-stage (see vaekit sample --help); default: the prior, or a Gaussian fitted to the codes of a model "
        "without one",
    )
    p.add_argument("--points", type=int, default=5000, help="test examples on the map (default 5000)")
    p.add_argument("--data", help="dataset name or path (default: the run's)")
    _device_arg(p)


def _fetchable() -> list[str]:
    """The registered datasets that `vaekit data fetch` downloads (the registry names them without importing them)."""
    from vaekit.registry import DATASETS

    return [n for n in DATASETS.names() if DATASETS.defaults(n).get("fetch")]


def _add_data_features_tour(sub) -> None:
    """The `data`, `features` and `tour` commands."""
    p = sub.add_parser("data", help="fetch or describe datasets")
    dsub = p.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    q = dsub.add_parser("fetch", help="download and cache a dataset")
    q.add_argument("name", choices=_fetchable())
    q.add_argument(
        "--data-dir",
        help="folder with files you already have (IDX files, mnist.npz, torchvision's or Keras' layout, "
        "cifar-10-python.tar.gz)",
    )
    q = dsub.add_parser("info", help="shape, count, value range and labels; a table's column kinds")
    q.add_argument("name", help="dataset name or path")
    q.add_argument("--separator", help="tables: the column separator (default: a tab for .tsv, else a comma)")

    p = sub.add_parser("features", help="feature networks for the generation metrics")
    fsub = p.add_subparsers(dest="features_command", required=True, parser_class=_Parser)
    q = fsub.add_parser("train", help="train a classifier on labelled data; its penultimate layer is the feature space")
    q.add_argument("data", help="dataset name or path, with labels")
    q.add_argument("--out", required=True, help="directory to write (config.json + model.safetensors)")
    q.add_argument("--epochs", type=int, default=5)
    q.add_argument("--width", type=int, default=128, help="number of features (default 128)")
    q.add_argument(
        "--lr", type=float, default=1e-3, help="base learning rate of Adam with a one-cycle schedule (default 0.001)"
    )
    q.add_argument("--seed", type=_seed, default=0)
    q.add_argument("--data-dir", help="folder with dataset files you already have")
    _device_arg(q)

    p = sub.add_parser("tour", help="the tutorial's story on MNIST: PCA, linear AE, deep AE, VAE")
    p.add_argument("--out", default="tour", help="output folder (default: tour)")
    p.add_argument("--quick", action="store_true", help="small and fast (under a minute)")
    p.add_argument(
        "--features",
        help="feature network for the scores: a directory from 'vaekit features train' "
        "(default: the shipped MNIST network)",
    )
    p.add_argument("--data-dir", help="folder with MNIST files you already have")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _device_arg(p)


def _positive(name: str, value: int, high: int | None = None) -> None:
    if value <= 0 or (high is not None and value > high):
        allowed = f"1..{high}" if high else "> 0"
        raise VaekitError(f"--{name} {value}: must be {allowed}")


def _run_data(args, cfg, device, model=None):
    """The run's data, or --data (`runs.run_data`)."""
    from vaekit.runs import run_data

    return run_data(args.run, cfg, device, model, args.data)


def _device(args) -> str:
    from vaekit.training.devices import resolve_device

    return str(resolve_device(args.device or "auto"))


def cmd_train(args) -> int:
    from vaekit.runs import train
    from vaekit.tables.commands import is_table_run, table_config, train_table

    if args.resume and is_table_run(args.resume):
        raise VaekitError(f"'{args.resume}' is a table run: it trains in one go and cannot be resumed; train it again")
    section = None if args.resume else table_config(args.config, args.set)
    if section is not None:
        if args.on_nan or args.precision or args.compile or args.device not in (None, "auto", "cpu"):
            raise VaekitError("a [table] run trains on the CPU in fp32; --on-nan, --precision, --compile do not apply")
        if not args.out:
            raise VaekitError("train needs --out RUN (the run directory to create)")
        return train_table(section, args.out, args.quiet)
    overrides = list(args.set)
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.quiet:
        overrides.append("train.progress=false")
    if args.on_nan:
        overrides.append(f"train.on_nan={args.on_nan}")
    if args.precision:
        overrides.append(f"train.precision={args.precision}")
    if args.compile:
        overrides.append("train.compile=true")
    if args.resume:
        if args.config or args.out:
            raise VaekitError("--resume RUN continues an existing run: give no config file or --out")
        out = train(run_dir=args.resume, overrides=overrides, resume=True, pictures=not args.no_pictures)
    else:
        if not args.out:
            raise VaekitError("train needs --out RUN (the run directory to create)")
        out = train(args.config, run_dir=args.out, overrides=overrides, pictures=not args.no_pictures)
    from vaekit.metrics.evaluation import summary_line

    if out["eval"] is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    print(f"run: {out['run_dir']}")
    print("test: " + summary_line(out["eval"]))
    return 0


def cmd_evaluate(args) -> int:
    from vaekit.runs import evaluate_run
    from vaekit.tables.commands import evaluate_table, is_table_run
    from vaekit.training import distributed

    _positive("k", args.k, 5000)
    if is_table_run(args.run):
        return evaluate_table(args)
    if args.synthesis or args.target:
        raise VaekitError(f"--synthesis and --target measure a table run's synthetic rows; '{args.run}' is not one")
    if args.generation and args.disentanglement:
        raise VaekitError("--generation and --disentanglement are two evaluations; ask for one at a time")
    if args.generation:
        return _evaluate_generation(args)
    if args.disentanglement:
        return _evaluate_disentanglement(args)
    if args.limit is not None:
        _positive("limit", args.limit)
    _positive("batch-size", args.batch_size)
    ctx, device, started = distributed.setup(args.device or "auto")  # under torchrun: sharded over the ranks
    try:
        res = evaluate_run(
            args.run,
            data=args.data,
            split=args.split,
            limit=args.limit,
            k=args.k,
            batch_size=args.batch_size,
            device=device,
            progress=sys.stderr.isatty(),
            ctx=ctx,
        )
    finally:
        distributed.teardown(started)
    if not ctx.is_main:
        return 0
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for name, m in res.items():
            v = m["value"]
            if isinstance(v, str):
                print(f"note: {v}")
                continue
            v = f"{v:.4f}" if isinstance(v, float) else (" ".join(f"{a:.3f}" for a in v) if isinstance(v, list) else v)
            print(f"{name:22s} {v}  [{m['unit']}; {m['reduction']}]")
    return 0


def _check_finite(x, what: str) -> None:
    """Refuse to write model outputs holding NaN or Inf (weights too large for float32 produce them)."""
    import torch

    if not torch.isfinite(x).all():
        raise VaekitError(f"the model's {what} hold NaN or Inf (its weights overflow float32 here); nothing written")


def _log(message: str) -> None:
    print(f"vaekit: {message}", file=sys.stderr)


def _evaluate_generation(args) -> int:
    """`vaekit evaluate RUN --generation`: the model's samples and the floor, one table."""
    from vaekit.runs import evaluate_run_generation

    args.n = 10000 if args.n is None else args.n
    _positive("n", args.n, 50000)
    res = evaluate_run_generation(
        args.run,
        n=args.n,
        seed=args.seed,
        sampler=args.sampler,
        features=args.features,
        data=args.data,
        device=_device(args),
        log=_log,
    )
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(
        f"feature network: {res['network_name']} sha256:{res['network']}; {res['n']} images on each side; sampler "
        f"{args.sampler}"
    )
    print(f"{'':18s} {'samples':>10s} {'floor':>10s}")
    for name in res["model"]:
        print(
            f"{name:18s} {res['model'][name]['value']:10.4f} {res['floor'][name]['value']:10.4f}  "
            f"[{res['model'][name]['unit']}]"
        )
    return 0


def _evaluate_disentanglement(args) -> int:
    """`vaekit evaluate RUN --disentanglement`: MIG, DCI, FactorVAE score and SAP on the run's factors."""
    from vaekit.runs import evaluate_run_disentanglement

    res = evaluate_run_disentanglement(
        args.run, fraction=args.fraction, seed=args.seed, data=args.data, device=_device(args)
    )
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    for name in (
        "mig",
        "dci_disentanglement",
        "dci_completeness",
        "dci_informativeness_test",
        "factor_vae_eval",
        "sap",
    ):
        print(f"{name:26s} {res[name]:.4f}")
    print(f"{'factor_vae_active_dims':26s} {res['factor_vae_active_dims']}")
    print(
        f"MIG per factor: {' '.join(f'{v:.3f}' for v in res['mig_per_factor'])}"
        + ("" if args.fraction == 1 else f"  (sample counts x {args.fraction:g})")
    )
    return 0


def _output_path(out: str, images: bool) -> Path:
    """--out checked before anything is computed: its folder exists, its suffix fits the outputs."""
    p = Path(out)
    if p.parent and not p.parent.exists():
        raise VaekitError(f"output folder '{p.parent}' does not exist")
    if images and p.suffix != ".png":
        raise VaekitError(f"--out '{out}': images are written as .png")
    if not images and p.suffix not in (".npy", ".csv"):
        raise VaekitError(f"--out '{out}': vectors are written as .npy or .csv")
    return p


def _write_images_or_vectors(x, out: str) -> None:
    import numpy as np

    from vaekit.explorer import pictures as viz

    _check_finite(x, "outputs")
    p = _output_path(out, images=x.dim() == 4)
    if x.dim() == 4:
        viz.image_grid(x, p, nrow=min(len(x), 10) if len(x) <= 10 else 8)
    else:
        from vaekit.training.checkpoints import atomic_file

        arr = x.detach().cpu().numpy()
        with atomic_file(p) as tmp:  # whole or not at all, and never through a link
            if p.suffix == ".npy":
                np.save(tmp, arr)
            else:
                np.savetxt(tmp, arr, delimiter=",", fmt="%.6g")
    print(f"wrote {p}")


def cmd_sample(args) -> int:
    import torch

    from vaekit.models.samplers import draw_images
    from vaekit.runs import load_run
    from vaekit.tables.commands import is_table_run, sample_table

    if is_table_run(args.run):
        return sample_table(args)
    if args.where:
        raise VaekitError(f"--where fixes columns of a table; '{args.run}' is not a table run")
    _positive("n", args.n, 10000)
    device = _device(args)
    model, cfg = load_run(args.run, device)
    sampler = _sampler(args, model, cfg, device)
    labels = None
    if model.conditional:
        n_cls = model.num_classes
        if args.label is not None and not 0 <= args.label < n_cls:
            raise VaekitError(f"--label {args.label}: this model knows labels 0..{n_cls - 1}")
        labels = (
            torch.full((args.n,), args.label, device=device)
            if args.label is not None
            else torch.arange(args.n, device=device) % n_cls
        )
    elif args.label is not None:
        raise VaekitError(
            f"--label: '{args.run}' holds a model that is not conditional (train with model.conditional = true)"
        )
    g = torch.Generator(device=device).manual_seed(args.seed)
    _write_images_or_vectors(draw_images(model, sampler, args.n, generator=g, y=labels), args.out)
    return 0


def _sampler(args, model, cfg, device):
    """The --sampler of `sample` and `explore` (`runs.run_sampler`)."""
    from vaekit.runs import run_sampler

    return run_sampler(args.run, model, cfg, args.sampler, device, args.data, _log)


def cmd_traverse(args) -> int:
    from vaekit.explorer import pictures as viz
    from vaekit.explorer.traversal import traversal
    from vaekit.runs import load_run

    device = _device(args)
    model, cfg = load_run(args.run, device)
    _output_path(args.out, images=len(model.shape) == 3)  # before the data is read and the codes swept
    data = _run_data(args, cfg, device, model)
    dims = None
    if args.dims is not None:
        try:
            dims = [int(d) for d in args.dims.split(",")]
        except ValueError:
            raise VaekitError(f"--dims '{args.dims}': give comma-separated integers, e.g. 0,3,5") from None
    t = traversal(
        model, data.x_test, args.image, dims, args.steps, args.span, y=data.y_test if model.conditional else None
    )
    _check_finite(t.images, "outputs")
    if t.images.dim() != 5:  # vectors: one row of the file per code, row-major over (dimension, step)
        _write_images_or_vectors(t.images.flatten(0, 1), args.out)
        return 0
    labels = [
        f"z{d}" + (f" KL {float(k):.2f}" if t.kl is not None else f" var {float(a):.2g}")
        for d, k, a in zip(t.dims, t.kl if t.kl is not None else t.activity, t.activity)
    ]
    viz.labelled_rows(dict(zip(labels, t.images.clamp(0, 1))), args.out)
    print(
        f"wrote {args.out}: dimensions {', '.join(map(str, t.dims))}, {args.steps} codes each from "
        f"-{args.span:g} to +{args.span:g} standard deviations around test example {args.image}"
    )
    return 0


def cmd_export(args) -> int:
    from vaekit.explorer.onnx_export import PARTS, export_onnx
    from vaekit.runs import load_run

    model, _ = load_run(args.run, "cpu")
    written = export_onnx(model, args.out or Path(args.run) / "onnx", PARTS if args.part == "both" else (args.part,))
    for path in written.values():
        print(f"wrote {path}")
    return 0


def cmd_explore(args) -> int:
    from vaekit.explorer.page import check_out, explore
    from vaekit.runs import load_run

    _positive("points", args.points, 100000)
    device = _device(args)
    model, cfg = load_run(args.run, device)
    out = check_out(args.out or Path(args.run) / "explorer")  # before a sampler is fitted or data read
    if args.sampler == "auto":
        args.sampler = "prior" if model.can_sample else "gaussian"
    sampler = _sampler(args, model, cfg, device)  # refuses a bad spec before the data is read
    data = _run_data(args, cfg, device, model)
    page = explore(
        model, data.x_test, out, y=data.y_test, sampler=sampler, sampler_name=args.sampler, points=args.points
    )
    print(f"wrote {page} ({page.stat().st_size / 1e6:.1f} MB): open it in a browser; it needs no server and no network")
    return 0


def cmd_reconstruct(args) -> int:
    import torch

    from vaekit.explorer import pictures as viz
    from vaekit.runs import load_run

    _positive("n", args.n, 1000)
    device = _device(args)
    model, cfg = load_run(args.run, device)
    _output_path(args.out, images=len(model.shape) == 3)  # before the data is read
    data = _run_data(args, cfg, device, model)
    x = data.x_test[: args.n]
    recon = model.reconstruct(x, data.y_test[: args.n] if model.conditional else None)
    if x.dim() == 4:
        _check_finite(recon, "reconstructions")
        viz.reconstruction_grid(x, {"reconstruction": recon}, args.out)
        print(f"wrote {args.out}")
    else:
        _write_images_or_vectors(torch.cat([x, recon]), args.out)
    return 0


def cmd_interpolate(args) -> int:
    from vaekit.explorer.traversal import interpolation, refuse_index_grid
    from vaekit.runs import load_run, run_data

    _positive("steps", args.steps, 100)
    device = _device(args)
    model, cfg = load_run(args.run, device)
    refuse_index_grid(model, f"'{args.run}'")  # before the data is read
    data = run_data(args.run, cfg, device, model, args.data)
    images = interpolation(model, data.x_test, args.a, args.b, args.steps, args.mode, data.y_test, f"'{args.run}'")
    _write_images_or_vectors(images, args.out)
    return 0


def cmd_data(args) -> int:
    from vaekit.config import DataConfig

    if args.data_command == "fetch":
        from vaekit.registry import DATASETS

        print(DATASETS.get(args.name).fetch(args.data_dir))
        return 0
    from vaekit.data.prepared import describe
    from vaekit.tables.commands import describe_table, is_mixed_table

    if is_mixed_table(args.name) or (args.separator and Path(args.name).is_file()):
        print("\n".join(describe_table(args.name, args.separator)))
        return 0
    info = describe(DataConfig(name=args.name))
    for k, v in info.items():
        print(f"{k:12s} {v}")
    return 0


def cmd_features(args) -> int:
    from vaekit.metrics.features import train_features

    _positive("epochs", args.epochs, 10000)
    _positive("width", args.width, 4096)
    if not 0 < args.lr <= 1:
        raise VaekitError(f"--lr {args.lr}: must be in (0, 1]")
    res = train_features(
        args.data,
        args.out,
        epochs=args.epochs,
        width=args.width,
        seed=args.seed,
        lr=args.lr,
        device=_device(args),
        data_dir=args.data_dir,
    )
    acc = "n/a (no test split)" if res["test_accuracy"] is None else f"{res['test_accuracy']:.4f}"
    print(
        f"feature network written to {args.out}: {res['train_size']} training examples, {args.epochs} epochs in "
        f"{res['seconds']:.0f} s, test accuracy {acc}, sha256:{res['sha256']}"
    )
    print(f"use it: vaekit evaluate RUN --generation --features {args.out}")
    return 0


def cmd_tour(args) -> int:
    from vaekit.tutorial.experiment import tour

    res = tour(
        out=args.out,
        quick=args.quick,
        device=args.device or "auto",
        data_dir=args.data_dir,
        progress=not args.quiet,
        features=args.features,
    )
    print(f"tour written to {Path(args.out) / 'index.html'} in {res['seconds']:.0f} s")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "sample": cmd_sample,
    "reconstruct": cmd_reconstruct,
    "interpolate": cmd_interpolate,
    "traverse": cmd_traverse,
    "export": cmd_export,
    "explore": cmd_explore,
    "data": cmd_data,
    "features": cmd_features,
    "tour": cmd_tour,
    "impute": lambda args: _tables().impute_table(args),
    "score": lambda args: _tables().score_table(args),
}


def _tables():
    from vaekit.tables import commands

    return commands


def _warnings_after(command, args, debug: bool) -> int:
    """Run a command holding back the warnings that libraries raise (PIL, numpy, torch): shown
    after it succeeds, dropped when it refuses its input, so a refusal is exactly one line
    (--debug shows them as they come)."""
    import warnings

    if debug:
        return command(args)
    with warnings.catch_warnings(record=True) as caught:
        code = command(args)
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return code


def main(argv: list[str] | None = None) -> int:
    from vaekit.errors import TrainingInterrupted
    from vaekit.training import runlog

    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    runlog.BARS_ON_A_TERMINAL_ONLY = (
        True  # a command's bars on a terminal only: in a log they would sit beside its error
    )
    restore = _terminate_like_interrupt()
    try:
        args = build_parser().parse_args([a for a in argv if a != "--debug"])  # --debug goes anywhere
        return _warnings_after(COMMANDS[args.command], args, debug)
    except TrainingInterrupted as e:
        print(f"vaekit: {e}", file=sys.stderr)
        return e.exit_code
    except VaekitError as e:
        if debug:
            raise
        print(f"vaekit: error: {e}", file=sys.stderr)
        return 2
    except (PermissionError, IsADirectoryError, NotADirectoryError, FileNotFoundError) as e:
        if debug:
            raise
        print(f"vaekit: error: {e.strerror or e}: '{e.filename}'", file=sys.stderr)
        return 2
    except OSError as e:
        if debug:
            raise
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG, errno.ENAMETOOLONG):
            where = f" writing '{e.filename}'" if e.filename else ""
            hint = (
                "; earlier checkpoints are intact: free space, then 'vaekit train --resume RUN'"
                if "train" in argv
                else ""
            )
            print(f"vaekit: error: {e.strerror or e}{where}{hint}", file=sys.stderr)
            return 2
        raise
    except MemoryError:  # an allocation that no size check foresaw (the data's, after it was read)
        if debug:
            raise
        print(
            f"vaekit: error: out of memory in 'vaekit {' '.join(argv[:1])}': the data or the model is larger than "
            "this process may hold; use a smaller data.limit, batch or model",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("vaekit: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("vaekit: terminated", file=sys.stderr)
        return 143
    finally:
        restore()


class _Terminated(BaseException):
    """SIGTERM outside training (which handles it itself): unwind, so that `finally` blocks remove
    temporary files, then exit 143."""


def _terminate_like_interrupt():
    """Route SIGTERM to `_Terminated` while the command runs; return the function that undoes it."""
    import signal
    import threading

    def handler(signum, frame):
        raise _Terminated

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return lambda: None
    signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)
