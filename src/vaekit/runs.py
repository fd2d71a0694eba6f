"""Runs: the high-level Python API behind `vaekit train` and `vaekit evaluate`.

A run directory holds ``config.json`` (the resolved config), ``metrics.jsonl``, ``checkpoints/``
(all that resume needs), ``model/`` (the best model, loadable with `vaekit.load`), ``eval.json`` and
pictures. Everything that can be checked is checked before the directory is created, and a run
that fails before its first checkpoint removes the directory it created.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from vaekit.config import RunConfig, apply_overrides, from_dict, load_config, read_file
from vaekit.data.prepared import Data, prepare
from vaekit.errors import VaekitError
from vaekit.training.checkpoints import load as load_model
from vaekit.training.checkpoints import save_pretrained


def resolve_config(config: RunConfig | dict | str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    if isinstance(config, RunConfig):
        return from_dict(apply_overrides(config.to_dict(), overrides or [])) if overrides else config
    if isinstance(config, dict):
        return from_dict(apply_overrides(config, overrides or []))
    return load_config(config, overrides)


def _check_writable(run_dir: Path) -> None:
    """Refuse early (before any data is read) an output directory that cannot be created: probe the
    nearest existing ancestor by creating and removing a temporary directory in it (permission
    bits alone do not tell, e.g. for root on a read-only filesystem)."""
    import tempfile

    probe = run_dir.resolve().parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise VaekitError(f"output directory '{run_dir}' cannot be created: '{probe}' is not a folder")
    try:
        tempfile.TemporaryDirectory(dir=probe, prefix=".vaekit-probe-").cleanup()
    except OSError as e:
        raise VaekitError(
            f"output directory '{run_dir}' cannot be created: '{probe}' is not writable ({e.strerror})"
        ) from None


def _recorded_paths(cfg: RunConfig) -> RunConfig:
    """The config as a run records it: data paths made absolute, so the run does not depend on the
    directory it was started from (and relative paths in a run's config can be read as untrusted)."""
    import dataclasses

    from vaekit.data.sources import dataset_name

    d = cfg.data
    name = d.name if dataset_name(d.name) is not None else str(Path(d.name).resolve())
    data_dir = str(Path(d.data_dir).resolve()) if d.data_dir is not None else None
    return dataclasses.replace(cfg, data=dataclasses.replace(d, name=name, data_dir=data_dir))


def read_run_config(run: Path, overrides: list[str] | None = None) -> RunConfig:
    """A run directory's config.json, with `overrides` applied.

    vaekit records data paths as absolute paths. A relative one was written by someone else, so it
    is read relative to the run directory and must stay inside it: a config that came with a run
    directory cannot point vaekit at '../../anything'."""
    from vaekit.data.sources import dataset_name

    raw = apply_overrides(read_file(run / "config.json"), overrides or [])
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    root = run.resolve()
    for key in ("name", "data_dir"):
        value = data.get(key)
        if (
            not isinstance(value, str)
            or (key == "name" and dataset_name(value) is not None)
            or Path(value).is_absolute()
        ):
            continue
        target = (root / value).resolve()
        if target != root and root not in target.parents:
            raise VaekitError(
                f"'{run / 'config.json'}': data.{key} = {value!r} points outside the run directory; "
                "pass the data yourself (--data) or fix the config"
            )
        data[key] = str(target)
    return from_dict(raw)


def train(
    config: RunConfig | dict | str | Path | None = None,
    run_dir: str | Path | None = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    data: Data | None = None,
    pictures: bool = True,
) -> dict[str, Any]:
    """Train (or fit) the model a config describes; return {"model", "history", "eval", "run_dir"}.

    With `resume`, the run's saved config is used (overrides still apply, e.g. more epochs).
    Launched by torchrun, every process calls this: they join one process group, train one model
    with DistributedDataParallel, and rank 0 alone writes the run directory ("eval" is None on the
    other ranks).
    """
    from vaekit.training import distributed
    from vaekit.training.lock import RunLock

    run = Path(run_dir) if run_dir is not None else None
    locks: list[RunLock] = []
    group: list[bool] = []  # whether this call started the process group
    try:
        if run is not None and run.is_dir() and distributed.from_env().is_main:
            RunLock(run).check_free()  # before anything else: a second process refuses, naming the first
            # (the lock itself is taken when the run starts writing: nothing is created in a refused directory)
        return _train(config, run, overrides, resume, data, pictures, locks, group)
    finally:
        for lock in locks:
            lock.release()
        distributed.teardown(bool(group and group[0]))


def _train(
    config, run: Path | None, overrides, resume: bool, data: Data | None, pictures: bool, locks: list, group: list
) -> dict[str, Any]:
    from vaekit.models import build_model, check_fits_in_memory
    from vaekit.training import distributed
    from vaekit.training.checkpoints import (
        CHECKPOINTS,
        checkpoint_dirs,
        clean_partial_writes,
        newest_intact,
        write_text_durable,
    )
    from vaekit.training.lock import LOCK_NAME, RunLock
    from vaekit.training.loop import fit

    main = distributed.from_env().is_main

    checked = False  # the data's record in the run directory was just verified (resume): not hashed again
    if resume:
        cfg, checked = _resume_config(run, overrides, check_data=data is None)
    else:
        cfg = resolve_config(config, overrides)
        if run is not None and main:
            if run.exists() and any(p.name != LOCK_NAME for p in run.iterdir()):
                _refuse_existing(run)
            _check_writable(run)
    ctx, device, started = distributed.setup(cfg.train.device)
    group.append(started)
    data_given = data
    data = data.to(device) if data is not None else prepare(cfg.data, device=device)
    cfg = with_labels(cfg, data)
    check_fits_in_memory(cfg.model, data.shape, cfg.train.batch_size, cfg.train.samples)  # before allocating any of it
    torch.manual_seed(cfg.train.seed)  # the initial weights are part of what the seed fixes
    model = build_model(cfg.model, data.shape)
    check_fit(model, cfg, data)
    if resume and not model.fitted_in_closed_form:
        if checkpoint_dirs(run):
            newest_intact(run, model)  # an override the saved weights cannot take is refused before anything is written
        else:  # killed before its first checkpoint: train it from the beginning, exactly as a fresh run would
            resume = False
            if main:
                clean_partial_writes(run)
                print(f"vaekit: '{run}' has no checkpoint yet: training it from the beginning", file=sys.stderr)
    if not resume:
        model.init_from_data(data.x_train)  # e.g. the VampPrior's pseudo-inputs start at training examples

    created = run is not None and main and not resume and not (run / "config.json").exists()
    if run is not None and main:
        run.mkdir(parents=True, exist_ok=True)
        if not locks:
            locks.append(RunLock(run).acquire())
    try:
        if run is not None and main:
            _record_config(run, cfg, data_given is None and not checked)
        if model.fitted_in_closed_form:  # drawn images (data with factors) are drawn all at once here
            model.fit(data.x_train if isinstance(data.x_train, torch.Tensor) else data.x_train[:])
            history: list[dict] = []
            if run is not None and main:
                save_pretrained(model, run / "model")
        else:
            result = fit(model, data, cfg.train, run, resume=resume)
            model, history = result.model, result.history
    except BaseException:
        # A run that never reached its first checkpoint holds nothing worth resuming: leave no trace.
        if created and not (run / CHECKPOINTS).exists() and not (run / "model").exists():
            shutil.rmtree(run, ignore_errors=True)
        raise

    from vaekit.metrics.evaluation import evaluate

    k = cfg.train.eval_k if model.variational else 0
    results = evaluate(
        model, data.x_test, k=k, progress=cfg.train.progress, y=data.y_test, dequantized=data.dequantized, ctx=ctx
    )  # sharded over the ranks, the same on each
    # The process group ends here, on every rank together (teardown waits for all of them: a rank
    # leaving while another still talks to it can abort the job); the files and pictures are rank 0's alone.
    distributed.teardown(started)
    group[:] = [False]
    if not ctx.is_main:
        return {"model": model, "history": history, "eval": None, "run_dir": run, "config": cfg}
    if run is not None:
        write_text_durable(run / "eval.json", json.dumps(results, indent=2) + "\n")
        if pictures:
            write_pictures(model, data, history, run)
    return {"model": model, "history": history, "eval": results, "run_dir": run, "config": cfg}


def _refuse_existing(run: Path) -> None:
    """Refuse to start a run in `run`, which holds files, saying what to do instead."""
    from vaekit.data.prepared import DATA_RECORD
    from vaekit.training.lock import LOCK_NAME

    if not (run / "config.json").is_file() and {p.name for p in run.iterdir()} <= {LOCK_NAME, DATA_RECORD}:
        raise VaekitError(
            f"run directory '{run}' holds only what a run killed as it started leaves ({DATA_RECORD}); "
            f"delete the folder to start again, or choose another --out"
        )
    what = "holds a run" if (run / "config.json").is_file() else "is not empty"
    raise VaekitError(
        f"run directory '{run}' already exists and {what}; continue it with "
        f"'vaekit train --resume {run}', or choose another --out"
    )


def _resume_config(run: Path | None, overrides: list[str] | None, check_data: bool) -> tuple[RunConfig, bool]:
    """The config to resume `run` with: its own, with `overrides` applied. Its own data path is read
    only if it is the data the run was trained on (`data.check_recorded`); a path the user names
    with an override is theirs to choose. Also returns whether the run's data record was checked
    (then RUN/data.json already holds the data's fingerprint)."""
    from vaekit.data.prepared import check_recorded

    if run is None or not (run / "config.json").is_file():
        raise VaekitError(f"cannot resume: '{run}' is not a run directory (no config.json)")
    cfg = read_run_config(run, overrides)
    named = "name" in apply_overrides({}, overrides or []).get("data", {})
    if check_data and not named:
        return cfg, check_recorded(run, cfg.data, "--set data.name=")
    return cfg, False


def _record_config(run: Path, cfg: RunConfig, own_data: bool) -> None:
    """Write RUN/config.json (data paths made absolute) and, for data read from a path, RUN/data.json,
    the fingerprint that lets the run be read again without pointing vaekit at other files."""
    from vaekit.data.prepared import DATA_RECORD, fingerprint
    from vaekit.training.checkpoints import write_text_durable

    recorded = _recorded_paths(cfg)
    record = fingerprint(recorded.data) if own_data else None
    if record is not None:  # first: a run with a config.json has its data record (a kill comes between)
        write_text_durable(run / DATA_RECORD, json.dumps(record, indent=2) + "\n")
    write_text_durable(run / "config.json", json.dumps(recorded.to_dict(), indent=2) + "\n")


def check_fit(model: Any, cfg: RunConfig, data: Data) -> None:
    """Refuse a model that cannot be fitted to this data: a likelihood outside the data's support
    (or, for a VAE whose numbers are read as likelihoods, one that is not a likelihood of it), or a
    closed-form fit of streamed data."""
    from vaekit.models.likelihoods import fit_problem

    if model.fitted_in_closed_form and data.streamed:
        from vaekit.data.prepared import RenderedData
        from vaekit.models import available_bytes

        need, have = 4 * len(data.x_train) * math.prod(data.shape), available_bytes()
        if not isinstance(data, RenderedData):
            raise VaekitError(
                f"model.name = '{cfg.model.name}' is fitted on all the data at once; set data.stream = false"
            )
        if have is not None and 4 * need > have:  # the images, their float64 moments and a margin
            raise VaekitError(
                f"model.name = '{cfg.model.name}' is fitted on all the data at once: the {len(data.x_train)} "
                f"drawn training images need {need / 2**30:.1f} GiB, {have / 2**30:.1f} GiB are available; "
                "set data.limit"
            )
    problem = fit_problem(model.likelihood, data.x_check, data.levels, data.dequantized)
    # Soft problems matter where numbers are read as likelihoods: the VAE's.
    if problem is not None and (not problem[1] or (model.variational and cfg.model.likelihood_check)):
        raise VaekitError(problem[0])


def with_labels(cfg: RunConfig, data: Data) -> RunConfig:
    """Fill in the label count of a conditional model from the data (refusing data without labels,
    or with more labels than configured). Returns the config to train with."""
    import dataclasses

    m = cfg.model
    if m.conditional:
        if data.y_test is None and data.y_train is not None:
            raise VaekitError(
                f"model.conditional = true needs labels for the test split too; data '{data.name}' has them for "
                f"training only"
            )
        if data.y_train is None:
            raise VaekitError(
                f"model.conditional = true needs labels; data '{data.name}' has none (image folders get them from "
                f"class sub-folders)"
            )
        n = int(data.y_train.max()) + 1
        if m.num_classes is not None and m.num_classes < n:
            raise VaekitError(
                f"config key 'model.num_classes': got {m.num_classes}, but the data has labels up to {n - 1}"
            )
        if m.num_classes is None:
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(m, num_classes=n))
        check_labels(data, cfg.model.num_classes, "config key 'model.num_classes'")
    return cfg


def check_labels(data: Data, num_classes: int, who: str) -> None:
    """Refuse data whose labels, in any split, are not class indices 0..num_classes - 1 of the model."""
    for split in ("train", "val", "test"):
        y = getattr(data, f"y_{split}")
        if y is not None and len(y) and not (0 <= int(y.min()) and int(y.max()) < num_classes):
            raise VaekitError(
                f"data '{data.name}' ({split}) has labels {int(y.min())} to {int(y.max())}, but {who} "
                f"knows labels 0..{num_classes - 1}"
            )


def check_data_fits(model: Any, data: Data, where: str) -> None:
    """Refuse data that the model in `where` cannot be run on: examples of another shape, or (for a
    conditional model) no labels, or labels it does not know."""
    if tuple(data.shape) != tuple(model.shape):
        raise VaekitError(f"data shape {tuple(data.shape)} does not match the model's input shape {tuple(model.shape)}")
    if model.conditional:
        if data.y_test is None:
            raise VaekitError(f"'{where}' holds a conditional model; data '{data.name}' has no labels")
        check_labels(data, model.num_classes, f"the conditional model in '{where}'")


def write_pictures(model: Any, data: Data, history: list[dict], run: Path) -> None:
    """curves.png; latent.png (codes of test examples, 2-D or projected by PCA, coloured by label; not
    for a VQ-VAE's index grids);
    for images: reconstructions.png, and samples.png and manifold.png (D = 2) for a VAE."""
    from vaekit.explorer import pictures as viz
    from vaekit.models import PCA

    if history:
        viz.training_curves({"train": history}, run / "curves.png")
    cond = model.conditional
    y = data.y_test if cond else None
    if not model.discrete_code:  # codebook indices have no geometry to map
        with torch.no_grad():
            z = torch.cat(
                [
                    model.embed(data.x_test[i : i + 1000], None if y is None else y[i : i + 1000])
                    for i in range(0, len(data.x_test), 1000)
                ]
            )  # (N, D)
        if z.shape[1] > 2:
            z = PCA(2).fit(z).transform(z)
        if z.shape[1] == 2:  # a 1-D code has no map
            viz.latent_maps(
                {"test codes" + (" (PCA projection)" if model.latent_dim > 2 else ""): (z, data.y_test)},
                run / "latent.png",
            )
    if data.kind != "image":
        return
    n = min(8, len(data.x_test))
    x = data.x_test[:n]
    viz.reconstruction_grid(
        x, {"model": model.reconstruct(x, None if y is None else y[:n])}, run / "reconstructions.png"
    )
    if model.can_sample:
        g = torch.Generator(device=data.x_test.device).manual_seed(0)
        if cond:  # one row per class
            per = 8
            labels = torch.arange(model.num_classes, device=data.x_test.device).repeat_interleave(per)
            viz.image_grid(model.sample(len(labels), generator=g, y=labels), run / "samples.png", nrow=per)
        else:
            viz.image_grid(model.sample(64, generator=g), run / "samples.png", nrow=8)
        if model.latent_dim == 2 and not cond:
            viz.manifold_grid(lambda zz: model.decode(zz).mean, run / "manifold.png", device=data.x_test.device)


def load_run(run: str | Path, device: str | torch.device = "cpu") -> tuple[Any, RunConfig | None]:
    """The model of a run directory (or a bare model directory) and the run's config if present."""
    from vaekit.tables.commands import is_table_run
    from vaekit.training.checkpoints import CHECKPOINTS

    p = Path(run)
    if not p.exists():
        raise VaekitError(f"run '{p}' does not exist")
    if is_table_run(p):
        raise VaekitError(
            f"'{p}' is a table run: it answers sample, impute, score and evaluate (--synthesis); "
            "this command works on image and vector runs"
        )
    model_dir = p / "model" if (p / "model" / "config.json").exists() or (p / ".model.old").is_dir() else p
    if model_dir == p and (p / "config.json").is_file() and (p / CHECKPOINTS).is_dir():  # a run, not a model directory
        raise VaekitError(
            f"run '{p}' has no model yet (no epoch has finished); continue it with 'vaekit train --resume {p}'"
        )
    cfg = read_run_config(p) if (p / "config.json").exists() and model_dir != p else None
    return load_model(model_dir, device=device), cfg


def run_data(
    run: str | Path, cfg: RunConfig | None, device: str | torch.device, model: Any = None, data: str | None = None
) -> Data:
    """The data of a run (or `data`, another dataset name or path), prepared as at training time; with
    `model`, refused unless its examples have the model's input shape (and labels where the model is
    conditional). A bare model directory (`cfg` None) needs `data`."""
    from vaekit.config import DataConfig
    from vaekit.data.prepared import check_recorded

    dcfg = cfg.data if cfg is not None else DataConfig()
    if data:
        dcfg = dataclasses.replace(dcfg, name=data)
    elif cfg is None:
        raise VaekitError(f"'{run}' is a model directory without a run config: pass --data")
    else:
        check_recorded(Path(run), dcfg, "--data ")  # a run may point only at the data it was trained on
    prepared = prepare(dcfg, device=device)
    if model is not None:
        check_data_fits(model, prepared, str(run))
    return prepared


def run_sampler(
    run: str | Path,
    model: Any,
    cfg: RunConfig | None,
    spec: str,
    device: str | torch.device,
    data: str | None = None,
    log: Any = None,
) -> Any:
    """The code density `spec` names (`vaekit.models.samplers`): None for the model's prior, else one
    loaded from RUN/samplers/ or fitted to the run's training data (and saved there; a bare model
    directory's is fitted, not saved)."""
    from vaekit.models.samplers import sampler_for

    return sampler_for(
        model,
        spec,
        lambda: run_data(run, cfg, device, model, data).x_train,
        Path(run) if cfg is not None else None,
        seed=0,
        log=log,
    )


def _not_numbers(res: dict[str, Any]) -> list[str]:
    """The metrics of `res` whose value is (or holds) NaN."""
    return [
        name
        for name, m in res.items()
        if any(v != v for v in (m["value"] if isinstance(m["value"], list) else [m["value"]]) if isinstance(v, float))
    ]


def evaluate_run(
    run: str | Path,
    *,
    data: str | None = None,
    split: str = "test",
    limit: int | None = None,
    k: int = 1000,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    progress: bool = False,
    ctx: Any = None,
) -> dict[str, Any]:
    """`vaekit evaluate RUN`: the metrics of a run's model (`vaekit.metrics.evaluation.evaluate`) on its
    test (or validation) split, or the first `limit` examples of it, with labels where the model is
    conditional; log p(x) with `k` importance samples where the model is variational. `ctx`: the
    distributed context (sharded over the ranks). A metric that is NaN is refused: the model's
    outputs are not numbers on this data."""
    from vaekit.metrics.evaluation import evaluate

    if split not in ("test", "val"):
        raise VaekitError(f"split '{split}': allowed: test, val")
    model, cfg = load_run(run, device)
    prepared = run_data(run, cfg, device, model, data)
    x, y = (prepared.x_test, prepared.y_test) if split == "test" else (prepared.x_val, prepared.y_val)
    y = y if model.conditional else None
    if limit:
        x, y = x[:limit], (y[:limit] if y is not None else None)
    res = evaluate(
        model,
        x,
        k=k if model.variational else 0,
        batch_size=batch_size,
        progress=progress,
        y=y,
        dequantized=prepared.dequantized,
        ctx=ctx,
    )
    nan = _not_numbers(res)
    if nan:  # never a number worth printing: the model's outputs overflowed (Inf, e.g. of a term, is printed)
        raise VaekitError(
            f"evaluating '{run}' gave NaN for {', '.join(nan)}: the model's outputs are not numbers "
            "on this data (weights too large for float32?)"
        )
    return res


def evaluate_run_generation(
    run: str | Path,
    *,
    n: int = 10000,
    seed: int = 0,
    sampler: str = "prior",
    features: str | None = None,
    data: str | None = None,
    device: str | torch.device = "cpu",
    log: Any = None,
) -> dict[str, Any]:
    """`vaekit evaluate RUN --generation`: `n` samples of the run's model (from its prior, or from the
    fitted code density `sampler` names) against `n` test images, beside the floor: the test images
    against as many validation images (the last training images where the validation split is too
    small), in the feature network's space (`features`; default the shipped MNIST network)."""
    from vaekit.config import check_seed
    from vaekit.metrics.features import check_features_fit
    from vaekit.metrics.generation import evaluate_generation
    from vaekit.models.samplers import parse_sampler

    check_seed(seed, "--seed")
    model, cfg = load_run(run, device)
    parse_sampler(sampler)
    network = check_features_fit(features, model.shape)  # before a sampler is fitted and saved for nothing
    density = run_sampler(run, model, cfg, sampler, device, data, log)
    prepared = run_data(run, cfg, device, model, data)
    enough = len(prepared.x_val) >= min(n, len(prepared.x_test))
    reference = prepared.x_val if enough else prepared.x_train[-n:]
    res = evaluate_generation(
        model,
        prepared.x_test,
        reference,
        n=n,
        seed=seed,
        features=features,
        y=prepared.y_test if model.conditional else None,
        sampler=density,
        network=network,
    )
    res["sampler"] = sampler
    return res


def evaluate_run_disentanglement(
    run: str | Path,
    *,
    fraction: float = 1.0,
    seed: int = 0,
    data: str | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """`vaekit evaluate RUN --disentanglement`: MIG, DCI, the FactorVAE score and SAP of the run's point
    codes on its data's known factors, with disentanglement_lib's sample counts times `fraction`."""
    from vaekit.config import check_seed
    from vaekit.metrics.disentanglement import Samples, evaluate_disentanglement

    if not 0 < fraction <= 1:
        raise VaekitError(f"--fraction {fraction}: must be in (0, 1]")
    check_seed(seed, "--seed")
    model, cfg = load_run(run, device)
    if model.discrete_code:
        raise VaekitError(
            f"'{run}' holds a VQ-VAE: its code is a grid of codebook indices, not coordinates to "
            "score for disentanglement"
        )
    prepared = run_data(run, cfg, device, model, data)
    if prepared.ground_truth is None:
        raise VaekitError(
            f"data '{prepared.name}' has no known generative factors; --disentanglement needs data.name = 'shapes'"
        )
    counts = Samples().scaled(fraction)
    res = evaluate_disentanglement(model, prepared.ground_truth, seed=seed, s=counts)
    res["samples"] = dataclasses.asdict(counts)
    return res
