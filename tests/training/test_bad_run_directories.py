"""Run and model directories that were damaged, or left half-written by a kill or a full disk:
every model kind's config and weights, trainer counters, checkpoint files, saved samplers and the
litter of killed writers. Each is refused in one line, recovered, or cleaned up."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from refusals import assert_clean_failure, assert_one_line
from test_contract import MODELS as CONTRACT_MODELS
from vaekit.cli import main

pytestmark = pytest.mark.usefixtures("onnx_registry_once")  # they export, often


def test_full_disk_before_the_first_checkpoint(tmp_path, images_npz, capsys, monkeypatch):
    """ENOSPC from the filesystem while the run starts: one line, and the run directory is gone."""
    import vaekit.training.checkpoints as C

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "run" / "config.json"))

    monkeypatch.setattr(C, "write_text_durable", full)
    out = tmp_path / "run"
    code = main(["train", "--set", f"data.name={images_npz}", "--set", "train.epochs=1", "--out", str(out), "--quiet"])
    assert_clean_failure(code, capsys.readouterr().err, "No space left on device writing", out)


def test_full_disk_mid_run_keeps_the_last_checkpoint(tmp_path, images_npz, capsys, monkeypatch):
    import vaekit.training.checkpoints as C

    real, calls = C.save_tensors, {"n": 0}

    def fills_up(tensors, path):
        calls["n"] += 1
        if calls["n"] > 3:  # model/ and the first checkpoint fit; the disk is full after that
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(tensors, path)

    monkeypatch.setattr(C, "save_tensors", fills_up)
    out = tmp_path / "run"
    code = main(["train", "--set", f"data.name={images_npz}", "--set", "train.epochs=3", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len([ln for ln in err if ln.startswith("vaekit: error")]) == 1
    assert "No space left on device" in err[-1] and "--resume" in err[-1]
    assert [p.name for p in (out / "checkpoints").iterdir()] == [
        "step-000000003"
    ]  # epoch 1 (3 steps): intact, no temporary left
    monkeypatch.setattr(C, "save_tensors", real)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0


def _model_dir(tmp_path):
    import torch

    from vaekit.config import ModelConfig
    from vaekit.models import build_model
    from vaekit.training.checkpoints import save_pretrained

    torch.manual_seed(0)
    d = tmp_path / "model"
    save_pretrained(build_model(ModelConfig(name="vae", latent_dim=2, hidden=[16]), (1, 8, 8)), d)
    return d


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: {**m, "config": {**m["config"], "hidden": [17]}}, "do not match its config"),
        (lambda m: {**m, "config": {**m["config"], "latent_dim": 0}}, "config key 'model.latent_dim': got 0"),
        (lambda m: {**m, "config": {**m["config"], "data_dir": "/etc"}}, "unknown config key 'model.data_dir'"),
        (lambda m: {**m, "format_version": 7}, "uses model format 7; this vaekit reads up to 1"),
        (lambda m: {**m, "model": "os.system"}, "key 'model' is 'os.system'"),
        (lambda m: {**m, "shape": [1, -8, 8]}, "key 'shape' is [1, -8, 8]"),
        (lambda m: {**m, "loader": "pickle"}, "unknown key 'loader'"),
        (lambda m: [m], "is not a vaekit model config"),
    ],
)
def test_model_directory_that_does_not_hold_together(tmp_path, capsys, edit, fragment):
    d = _model_dir(tmp_path)
    meta = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(edit(meta)))
    out = tmp_path / "s.png"
    code = main(["sample", str(d), "--out", str(out)])
    assert_clean_failure(code, capsys.readouterr().err, fragment, out)


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-50]),
            "cannot read weights",
        ),
        (lambda d: (d / "model.safetensors").unlink(), "cannot read weights"),
        (lambda d: (d / "config.json").write_text("{not json"), "cannot read"),
        (lambda d: (d / "config.json").write_bytes(b"\xff\xfe\x00"), "cannot read"),
    ],
)
def test_damaged_model_directory(tmp_path, capsys, damage, fragment):
    d = _model_dir(tmp_path)
    damage(d)
    out = tmp_path / "s.png"
    code = main(["sample", str(d), "--out", str(out)])
    assert_clean_failure(code, capsys.readouterr().err, fragment, out)


def test_a_model_directory_asking_for_absurd_sizes_is_refused_before_allocating(trained, tmp_path, capsys):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(trained / "run" / "model", model)
    meta = json.loads((model / "config.json").read_text())
    meta["config"]["hidden"] = [2_000_000_000]  # 64 GB of weights for these 4 features
    (model / "config.json").write_text(json.dumps(meta))
    assert_one_line(
        main(["sample", str(model), "--out", str(tmp_path / "s.npy")]), capsys.readouterr().err, "GiB available"
    )


def test_non_finite_weights_are_refused(trained, tmp_path, capsys):
    import shutil

    import torch
    from safetensors.torch import load_file

    from vaekit.training.checkpoints import save_tensors

    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    w = load_file(str(run / "model" / "model.safetensors"))
    name = sorted(w)[0]
    w[name] = torch.full_like(w[name], float("nan"))
    save_tensors(w, run / "model" / "model.safetensors")  # a valid file (checksum and all) of NaN weights
    for argv in (["evaluate", str(run)], ["sample", str(run), "--out", str(tmp_path / "s.npy")]):
        assert_one_line(main(argv), capsys.readouterr().err, "holds NaN or Inf")
    assert not (tmp_path / "s.npy").exists()


# --- model directories: every key of config.json, the weights file, the trainer state ----------


def _model_meta():
    """The config.json of the `trained` fixture's model, as save_pretrained writes it."""
    from vaekit.config import build_section
    from vaekit.models import build_model

    cfg = build_section("model", {"hidden": [8], "latent_dim": 2, "likelihood": "gaussian"})
    return {**build_model(cfg, (4,)).describe(), "format": "vaekit", "format_version": 1}


def _meta_mutations():
    """(case, function editing the config.json data). Settings this model does not use (the linear
    AE's `tied`, PCA's `whiten`, the conv `channels` and `depth` of an MLP, the mixture prior's
    components, the class count of an unconditional model) and the informational version string
    are left out: changing them changes nothing (valid values of them load). Keys left out of the
    file load with their defaults (older files), so only keys without a default are dropped."""
    meta = _model_meta()
    unused = {
        "config.tied",
        "config.whiten",
        "config.channels",
        "config.depth",
        "config.prior_components",
        "config.num_classes",
        "config.latent_dims",
        "config.codebook_size",
        "config.codebook_dim",
        "config.commitment",
        "config.codebook_decay",
        "config.prior_width",
        "config.prior_layers",
        "config.flow_steps",
        "config.flow_hidden",
        "config.tc_gamma",
        "config.discriminator_hidden",
    }  # for this
    # MLP VAE with a standard normal prior and a diagonal posterior, not conditional: the hierarchy's, the
    # VQ-VAE's, the flows' and FactorVAE's settings
    cases = [(f"drop {k}", lambda m, k=k: m.pop(k)) for k in ("model", "config", "shape", "format", "format_version")]
    cases += [(f"drop config.{k}", lambda m, k=k: m["config"].pop(k)) for k in ("latent_dim", "hidden", "likelihood")]
    for key, value in [*meta.items(), *((f"config.{k}", v) for k, v in meta["config"].items())]:
        if key in unused or key in ("vaekit_version", "config"):
            continue
        for bad in ["x", -1, [], {}, None, 10**9, 1.5, True, [0]]:
            if json.dumps(bad) != json.dumps(value):

                def edit(m, key=key, bad=bad):
                    where, k = (m["config"], key[7:]) if key.startswith("config.") else (m, key)
                    where[k] = bad

                cases.append((f"{key}={bad!r}", edit))
    return cases


@pytest.mark.parametrize("case", _meta_mutations(), ids=lambda c: c[0])
def test_every_key_of_a_model_config_is_checked(case, trained, tmp_path, capsys):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(trained / "run" / "model", model)
    meta = json.loads((model / "config.json").read_text())
    case[1](meta)
    (model / "config.json").write_text(json.dumps(meta))
    assert_one_line(main(["sample", str(model), "--out", str(tmp_path / "s.npy")]), capsys.readouterr().err, str(model))
    assert not (tmp_path / "s.npy").exists()


def _weights_mutations():
    import torch

    def tensors(edit):
        def write(path, w):
            from vaekit.training.checkpoints import save_tensors

            save_tensors(edit(dict(w)), path)

        return write

    def raw(edit):
        return lambda path, w: path.write_bytes(edit(path.read_bytes()))

    first = lambda w: sorted(w)[0]
    cases = [(f"truncated to {n} bytes", raw(lambda b, n=n: b[:n]), "cannot read weights") for n in (0, 4, 8, 50, 600)]
    cases += [("one byte short", raw(lambda b: b[:-1]), "cannot read weights")]
    cases += [
        (f"byte {i} flipped", raw(lambda b, i=i: b[:i] + bytes([b[i] ^ 0x40]) + b[i + 1 :]), "weights")
        for i in (0, 3, 8, 20, 600)
    ]
    cases += [
        ("last byte flipped", raw(lambda b: b[:-1] + bytes([b[-1] ^ 0x01])), "SHA-256 does not match"),
        ("header length 2**62", raw(lambda b: struct.pack("<Q", 2**62) + b[8:]), "cannot read weights"),
        ("header not JSON", raw(lambda b: struct.pack("<Q", 10) + b"not json!!" + b[18:]), "cannot read weights"),
        ("a JSON file", raw(lambda b: b'{"a": 1}'), "cannot read weights"),
        ("no tensors", tensors(lambda w: {}), "Missing key(s)"),
        ("a tensor missing", tensors(lambda w: {k: v for k, v in w.items() if k != first(w)}), "Missing key(s)"),
        ("an extra tensor", tensors(lambda w: {**w, "evil": torch.zeros(3)}), "Unexpected key(s)"),
        ("a tensor of another shape", tensors(lambda w: {**w, first(w): torch.zeros(3, 3)}), "size mismatch"),
        ("integer weights", tensors(lambda w: {**w, first(w): w[first(w)].long()}), "expected floating point"),
        ("boolean weights", tensors(lambda w: {**w, first(w): w[first(w)] > 0}), "expected floating point"),
        (
            "Inf weights",
            tensors(lambda w: {**w, first(w): torch.full_like(w[first(w)], float("inf"))}),
            "holds NaN or Inf",
        ),
        (
            "weights that overflow",
            tensors(lambda w: {k: torch.full_like(v, 1e20) for k, v in w.items()}),
            "hold NaN or Inf",
        ),
        ("a folder", lambda path, w: (path.unlink(), path.mkdir()), "is not a regular file (a folder)"),
        ("missing", lambda path, w: path.unlink(), "No such file"),
        ("a FIFO", lambda path, w: (path.unlink(), os.mkfifo(path)), "is not a regular file"),
        ("a link to /dev/zero", lambda path, w: (path.unlink(), path.symlink_to("/dev/zero")), "is not a regular file"),
    ]
    return cases


@pytest.mark.parametrize("case", _weights_mutations(), ids=lambda c: c[0])
@pytest.mark.parametrize("verb", ["sample", "evaluate"])
def test_damaged_weights_are_refused_by_every_verb(case, verb, trained, tmp_path, capsys):
    import shutil

    from safetensors.torch import load_file

    name, damage, fragment = case
    model = tmp_path / "m"
    shutil.copytree(trained / "run" / "model", model)
    damage(model / "model.safetensors", load_file(str(trained / "run" / "model" / "model.safetensors")))
    out = tmp_path / "s.npy"
    argv = (
        ["sample", str(model), "--out", str(out)]
        if verb == "sample"
        else ["evaluate", str(model), "--data", str(trained / "x.npy"), "--k", "5"]
    )
    code = main(argv)
    text = capsys.readouterr().err
    if name == "weights that overflow" and verb == "evaluate":
        fragment = "gave NaN"
    assert_one_line(code, text, fragment)
    assert not out.exists()


def _trainer_mutations():
    """(case, edit of the trainer state's plain data): counters that are not counters, positions
    beyond the epoch, a learning-rate scale that would ascend, a negative clock."""
    cases = []
    for key in ("epoch", "batch", "step", "bad_epochs", "rollbacks", "overflows"):
        cases += [(f"{key}={v!r}", key, v) for v in ("x", None, -5, 2**70, 1.5, True)]
    cases += [(f"best_epoch={v!r}", "best_epoch", v) for v in ("x", -1, 2**70)]
    cases += [("batch beyond the epoch", "batch", 10**6), ("epoch beyond any schedule", "epoch", 10**7)]
    cases += [(f"lr_scale={v!r}", "lr_scale", v) for v in (-5, 0, 2.0, "x", None, float("nan"))]
    cases += [(f"seconds={v!r}", "seconds", v) for v in (-5, "x", float("inf"), float("nan"))]
    cases += [(f"best={v!r}", "best", v) for v in ("x", None, float("nan"))]
    return cases


def _copied_run(trained, tmp_path):
    """A copy of the trained fixture's run and its one checkpoint directory."""
    import shutil

    from vaekit.training.checkpoints import checkpoint_dirs

    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    (ck,) = checkpoint_dirs(run)
    return run, ck


@pytest.mark.parametrize("case, key, value", _trainer_mutations(), ids=lambda v: str(v)[:30])
def test_every_trainer_counter_is_checked(case, key, value, trained, tmp_path, capsys):
    run, ck = _copied_run(trained, tmp_path)
    meta = json.loads((ck / "training.json").read_text())
    trainer = dict(meta["state"]["__keys__"])["trainer"]
    for kv in trainer["__keys__"]:
        if kv[0] == key:
            kv[1] = value
    (ck / "training.json").write_text(json.dumps(meta))
    before = sorted(p.name for p in run.rglob("*"))
    assert_one_line(
        main(["train", "--resume", str(run), "--set", "train.epochs=2", "--quiet"]),
        capsys.readouterr().err,
        "no intact checkpoint",
    )
    assert sorted(p.name for p in run.rglob("*")) == before  # nothing written, nothing removed


CHECKPOINT_FILES = [
    ("training.json a FIFO", lambda ck: ((ck / "training.json").unlink(), os.mkfifo(ck / "training.json"))),
    ("state a FIFO", lambda ck: ((ck / "state.safetensors").unlink(), os.mkfifo(ck / "state.safetensors"))),
    ("state missing", lambda ck: (ck / "state.safetensors").unlink()),
    (
        "state truncated",
        lambda ck: (ck / "state.safetensors").write_bytes((ck / "state.safetensors").read_bytes()[:100]),
    ),
    (
        "training.json nested 100000 deep",
        lambda ck: (ck / "training.json").write_text('{"a":' * 100000 + "1" + "}" * 100000),
    ),
    ("training.json a list", lambda ck: (ck / "training.json").write_text("[]")),
    (
        "a tensor reference missing",
        lambda ck: (ck / "training.json").write_text(
            (ck / "training.json").read_text().replace("s.optimizer.state.0.step", "s.nothing")
        ),
    ),
    (
        "step disagreeing with the state",
        lambda ck: (ck / "training.json").write_text(
            json.dumps({**json.loads((ck / "training.json").read_text()), "step": 7})
        ),
    ),
    (
        "step not a number",
        lambda ck: (ck / "training.json").write_text(
            json.dumps({**json.loads((ck / "training.json").read_text()), "step": "x"})
        ),
    ),
    (
        "format missing",
        lambda ck: (ck / "training.json").write_text(
            json.dumps({k: v for k, v in json.loads((ck / "training.json").read_text()).items() if k != "format"})
        ),
    ),
]


@pytest.mark.parametrize("case", CHECKPOINT_FILES, ids=lambda c: c[0])
def test_damaged_checkpoint_files_are_refused_without_hanging(case, trained, tmp_path, capsys):
    run, ck = _copied_run(trained, tmp_path)
    case[1](ck)
    assert_one_line(
        main(["train", "--resume", str(run), "--set", "train.epochs=2", "--quiet"]),
        capsys.readouterr().err,
        "no intact checkpoint",
    )


KINDS = {
    k: v for k, v in CONTRACT_MODELS.items() if not k.startswith("custom")
}  # custom nets cannot be loaded by the CLI


# --- damaged model directories of every kind ----------------------------------------------


def _rewrite_weights(path: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))  # no digest: damage a forger could make without tripping the checksum


def _first_float(t: dict) -> str:
    return next(k for k, v in sorted(t.items()) if v.is_floating_point() and v.numel() > 1)


def _other_kind(meta: dict) -> dict:
    swap = {
        "pca": "vae",
        "vae": "ae",
        "ae": "vae",
        "linear_ae": "vae",
        "hvae": "vae",
        "vqvae": "vae",
        "factorvae": "vqvae",
    }
    meta = dict(meta)
    name = meta["model"]
    meta["model"] = swap[name]
    if "config" in meta:
        meta["config"] = {**meta["config"], "name": swap[name]}
    return meta


def _with(meta: dict, **changes) -> dict:
    meta = dict(meta)
    for k, v in changes.items():
        if "config" in meta and k in meta["config"]:
            meta["config"] = {**meta["config"], k: v}
        meta[k] = v
    return meta


MODEL_DAMAGE = {
    "weights truncated": lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:200]),
    "a tensor dropped": lambda d: _rewrite_weights(d / "model.safetensors", lambda t: t.pop(_first_float(t))),
    "a tensor doubled in size": lambda d: _rewrite_weights(
        d / "model.safetensors", lambda t: t.update({_first_float(t): torch.cat([t[_first_float(t)]] * 2)})
    ),
    "a tensor of NaN": lambda d: _rewrite_weights(
        d / "model.safetensors",
        lambda t: t.update({_first_float(t): torch.full_like(t[_first_float(t)], float("nan"))}),
    ),
    "an extra tensor": lambda d: _rewrite_weights(
        d / "model.safetensors", lambda t: t.update({"planted": torch.ones(3)})
    ),
    "a float tensor as int64": lambda d: _rewrite_weights(
        d / "model.safetensors", lambda t: t.update({_first_float(t): t[_first_float(t)].long()})
    ),
    "config.json of another kind": lambda d: (d / "config.json").write_text(
        json.dumps(_other_kind(json.loads((d / "config.json").read_text())))
    ),
    "config.json with another shape": lambda d: (d / "config.json").write_text(
        json.dumps(_with(json.loads((d / "config.json").read_text()), shape=[2, 5, 5]))
    ),
    "config.json with another code size": lambda d: (d / "config.json").write_text(
        json.dumps(_with(json.loads((d / "config.json").read_text()), latent_dim=7, n_components=7))
    ),
}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    from vaekit.training.checkpoints import save_pretrained

    root = tmp_path_factory.mktemp("kinds")
    for kind, (_, make) in KINDS.items():
        torch.manual_seed(0)
        save_pretrained(make(), root / kind)
    np.savez(root / "vectors.npz", x=np.random.default_rng(0).random((20, 7)).astype(np.float32))
    return root


@pytest.mark.parametrize("damage", MODEL_DAMAGE)
@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_model_directory_of_every_kind_is_one_line(kind, damage, model_dirs, tmp_path, capsys):
    d = tmp_path / kind
    shutil.copytree(model_dirs / kind, d)
    MODEL_DAMAGE[damage](d)
    out = tmp_path / "o.png"  # refused with the model, before the data (vectors, of no kind's shape) is read
    assert_one_line(
        main(["interpolate", str(d), "--data", str(model_dirs / "vectors.npz"), "--out", str(out)]),
        capsys.readouterr().err,
        str(d),
    )
    assert not out.exists()


def test_every_kind_loads_undamaged(model_dirs):
    import vaekit

    for kind, (shape, _) in KINDS.items():
        assert tuple(vaekit.load(model_dirs / kind).shape) == shape


def _sampler_tensors(change):
    def damage(d):
        _rewrite_weights(d / "sampler.safetensors", change)

    return damage


SAMPLER_DAMAGE = [  # (sampler dir, damage)
    ("gaussian", lambda d: (d / "config.json").write_text("{not json")),
    ("gaussian", lambda d: (d / "config.json").write_text("[1, 2]")),
    ("gaussian", lambda d: (d / "config.json").write_text('{"sampler": "gaussian", "model_weights_sha256": 7}')),
    (
        "gaussian",
        lambda d: (d / "config.json").write_text(
            '{"sampler": "gaussian", "model_weights_sha256": "' + "9" * 5000 + '"}'
        ),
    ),
    ("gaussian", lambda d: (d / "sampler.safetensors").write_bytes(b"\x00" * 10)),
    ("gaussian", lambda d: (d / "sampler.safetensors").unlink()),
    ("gaussian", lambda d: ((d / "sampler.safetensors").unlink(), (d / "sampler.safetensors").mkdir())),
    ("gaussian", _sampler_tensors(lambda t: t.pop("loc"))),
    ("gaussian", _sampler_tensors(lambda t: t.update(loc=torch.zeros(1, 5)))),
    ("gaussian", _sampler_tensors(lambda t: t.update(scale_tril=torch.zeros(1, 2)))),
    ("gaussian", _sampler_tensors(lambda t: t.update(logits=torch.zeros(3)))),
    ("gaussian", _sampler_tensors(lambda t: t.update(logits=torch.zeros(1, 1)))),
    ("gaussian", _sampler_tensors(lambda t: t.update(logits=torch.full((1,), float("nan"))))),
    ("gaussian", _sampler_tensors(lambda t: t.update(loc=torch.full((1, 2), float("inf"))))),
    ("gaussian", _sampler_tensors(lambda t: t.update(logits=torch.zeros(1, dtype=torch.int64)))),
    ("gaussian", _sampler_tensors(lambda t: t.update(scale_tril=-torch.eye(2)[None]))),
    ("gmm-2", _sampler_tensors(lambda t: t.update(logits=torch.full((2,), -float("inf"))))),
    ("gmm-2", _sampler_tensors(lambda t: t.update(scale_tril=torch.full((2, 2, 2), float("nan"))))),
    ("gmm-2", _sampler_tensors(lambda t: t.update(scale_tril=torch.zeros(2, 2, 2)))),
    ("gmm-2", lambda d: (d / "sampler.safetensors").write_bytes((d / "sampler.safetensors").read_bytes()[:-3])),
    ("two-stage", lambda d: shutil.rmtree(d / "model")),
    ("two-stage", lambda d: (d / "model" / "model.safetensors").write_bytes(b"junk")),
    (
        "two-stage",
        lambda d: (d / "model" / "config.json").write_text(
            (d / "model" / "config.json").read_text().replace('"latent_dim": 2', '"latent_dim": 3')
        ),
    ),
    ("two-stage", lambda d: (d / "model" / "config.json").write_text('{"model": "vae", "shape": [2]}')),
]


@pytest.mark.parametrize("verb", ["sample", "explore"])
@pytest.mark.parametrize(
    "case",
    # a damaged two-stage sampler trains a second VAE again (about 0.5 s): those cases run with -m slow
    [pytest.param(i, marks=pytest.mark.slow) if w == "two-stage" else i for i, (w, _) in enumerate(SAMPLER_DAMAGE)],
    ids=lambda i: f"{SAMPLER_DAMAGE[i][0]}-{i}",
)
def test_a_damaged_saved_sampler_is_fitted_again(case, verb, ae_run, tmp_path, capsys):
    """A saved sampler is derived data (the weights and the training data, both verified, give it
    back): damaged, it is said so in one line and fitted again, and the next run reuses the new one."""
    where, damage = SAMPLER_DAMAGE[case]
    run = tmp_path / "run"
    shutil.copytree(ae_run, run)
    damage(run / "samplers" / where)
    spec = where.replace("-", ":") if where.startswith("gmm") else where
    out = tmp_path / ("s.png" if verb == "sample" else "page")
    argv = [verb, str(run), "--sampler", spec, "--out", str(out)] + (["--n", "4"] if verb == "sample" else [])
    assert main(argv) == 0
    notes = capsys.readouterr().err.strip().splitlines()
    assert len(notes) == 2 and "ignoring a damaged saved sampler" in notes[0] and "fitted the" in notes[1], notes
    assert out.exists()
    assert main(argv) == 0 and capsys.readouterr().err == ""  # now whole again, and reused


def test_a_sampler_fitted_to_other_weights_is_fitted_again(ae_run, tmp_path, capsys):
    """Not damage: a sampler saved for other weights (a retrained run) is refitted, not trusted."""
    run = tmp_path / "run"
    shutil.copytree(ae_run, run)
    meta = json.loads((run / "samplers" / "gaussian" / "config.json").read_text())
    (run / "samplers" / "gaussian" / "config.json").write_text(json.dumps({**meta, "model_weights_sha256": "0" * 64}))
    assert main(["sample", str(run), "--sampler", "gaussian", "--n", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert "fitted the 'gaussian' sampler" in capsys.readouterr().err
    assert json.loads((run / "samplers" / "gaussian" / "config.json").read_text())["model_weights_sha256"] != "0" * 64


# 5. a 5000-digit integer in a model directory's config.json ---------------------------------


@pytest.mark.parametrize("where", ["model", "run"])
def test_a_5000_digit_integer_in_a_config_json_is_one_line(cvae_run, tmp_path, capsys, where):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(cvae_run, run)
    path = run / "model" / "config.json" if where == "model" else run / "config.json"
    text = path.read_text()
    path.write_text(text.replace('"latent_dim": 2', '"latent_dim": ' + "9" * 5000, 1))
    assert path.read_text() != text
    assert_one_line(main(["evaluate", str(run), "--k", "2"]), capsys.readouterr().err, "config.json")


# 9. litter after kill -9 -------------------------------------------------------------------

KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from vaekit.training.checkpoints import atomic_dir, atomic_file
    target, kind = Path(sys.argv[1]), sys.argv[2]
    with (atomic_file(target) if kind == "file" else atomic_dir(target)) as tmp:
        (tmp / "half" if kind == "dir" else tmp).write_bytes(b"half") if kind == "dir" else tmp.write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
""")


def _killed_writer(target, kind: str) -> None:
    p = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target), kind], capture_output=True, timeout=60)
    assert p.returncode == -signal.SIGKILL, p.stderr


@pytest.mark.slow  # SIGKILL in a fresh interpreter, as the other kill tests (test_kill.py)
def test_export_removes_what_a_killed_export_left(cvae_run, tmp_path, capsys):
    out = tmp_path / "onnx"
    out.mkdir()
    _killed_writer(out / "decoder.onnx", "file")
    litter = [p for p in out.iterdir() if p.name.startswith(".decoder.")]
    assert len(litter) == 1 and litter[0].suffix == ".onnx"  # what kill -9 leaves
    assert main(["export", str(cvae_run), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "encoder.onnx"]


@pytest.mark.slow  # SIGKILL in a fresh interpreter, as the other kill tests (test_kill.py)
def test_features_train_removes_what_a_killed_one_left(digits, tmp_path, capsys):
    out = tmp_path / "feat"
    _killed_writer(out, "dir")
    assert [p.name.startswith(".feat.") and p.name.endswith(".tmp") for p in tmp_path.iterdir()] == [True]
    assert main(["features", "train", str(digits / "d.npz"), "--out", str(out), "--epochs", "1", "--width", "8"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feat"]


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    """Only a dead process's files go: a concurrent writer (here, this process) keeps its own."""
    from vaekit.training.checkpoints import atomic_file

    with atomic_file(tmp_path / "a.png") as mine:
        mine.write_bytes(b"x")
        with atomic_file(tmp_path / "a.png") as other:  # a second writer of the same file, while the first is live
            other.write_bytes(b"y")
            assert mine.exists()
    assert (tmp_path / "a.png").read_bytes() == b"x" and [p.name for p in tmp_path.iterdir()] == ["a.png"]


# 10. a refusal is one line, late in training too, and after failed mirrors -------------------


def test_a_full_disk_late_in_training_is_one_line_on_stderr(digits, tmp_path, capsys, monkeypatch):
    """The epoch's summary is a result (stdout); stderr holds only the error."""
    import vaekit.training.state as trainer

    calls = {"n": 0}
    real = trainer.Trainer.checkpoint

    def checkpoint(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / "checkpoints"))
        return real(self, *a, **k)

    monkeypatch.setattr(trainer.Trainer, "checkpoint", checkpoint)
    argv = [
        "train",
        "--out",
        str(tmp_path / "r"),
        "--set",
        f"data.name={digits / 'd.npz'}",
        "--set",
        "train.epochs=3",
        "--set",
        "model.hidden=[8]",
        "--set",
        "data.val_size=0",
        "--set",
        "train.eval_k=0",
    ]
    code = main(argv)
    out, err = capsys.readouterr()
    assert_one_line(code, err, "No space left on device")
    assert "earlier checkpoints are intact" in err and "epoch 1: train_loss=" in out
