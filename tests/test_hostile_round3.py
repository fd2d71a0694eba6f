"""The hostile corpus, round three (issue 27): generated bad inputs where the audit looked next.

- damaged model directories of every model kind (each kind rebuilds itself from its own
  config.json, so each is damaged on its own);
- the samplers' saved directories under RUN/samplers/;
- the arguments of explore, export, traverse, sample and features train;
- the shapes grid and .npz files with factors.

Each case ends with exactly one line on stderr ("vaekit: error: ..." naming the problem), exit
code 2, no traceback and nothing half-written. The page the explorer writes embeds strings from the
run: a run whose strings hold </script> or HTML cannot change the page (last test)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import digit_like, train_small_run
from test_contract import MODELS as CONTRACT_MODELS
from test_hostile_corpus import _assert_one_line as _one_line
from vaekit.cli import main

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
    _one_line(
        main(["interpolate", str(d), "--data", str(model_dirs / "vectors.npz"), "--out", str(out)]),
        capsys.readouterr().err,
        str(d),
    )
    assert not out.exists()


def test_every_kind_loads_undamaged(model_dirs):
    import vaekit

    for kind, (shape, _) in KINDS.items():
        assert tuple(vaekit.load(model_dirs / kind).shape) == shape


# --- the samplers' saved directories ------------------------------------------------------


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ae")
    x, y = digit_like(200, size=8)
    np.savez(root / "d.npz", x=x, y=y)
    run = train_small_run(root / "d.npz", root / "ae", latent_dim=2, hidden=16, extra=("--set", "model.name=ae"))
    for spec in ("gaussian", "gmm:2", "two-stage"):
        assert main(["sample", str(run), "--sampler", spec, "--n", "2", "--out", str(root / "warm.png")]) == 0
    return run


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
@pytest.mark.parametrize("case", range(len(SAMPLER_DAMAGE)), ids=lambda i: f"{SAMPLER_DAMAGE[i][0]}-{i}")
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


# --- the arguments of explore, export, traverse, sample and features train ----------------

ARGUMENTS = [
    (["explore", "{run}", "--points", "0"], "--points 0"),
    (["explore", "{run}", "--points", "-3"], "--points -3"),
    (["explore", "{run}", "--points", "100000000"], "--points 100000000"),
    (["explore", "{run}", "--points", "1"], "--points 1"),
    (["explore", "{run}", "--sampler", "gmm:0"], "--sampler 'gmm:0'"),
    (["explore", "{run}", "--sampler", "gmm:1001"], "--sampler 'gmm:1001'"),
    (["explore", "{run}", "--sampler", "gmm:two"], "--sampler 'gmm:two'"),
    (["explore", "{run}", "--sampler", "../../etc"], "--sampler '../../etc'"),
    (["explore", "{run}", "--sampler", "prior"], "has no prior to sample from"),
    (["explore", "{run}", "--out", "{tmp}/file"], "exists and is not a folder"),
    (["explore", "{run}", "--out", "{tmp}/file/page"], "is not a folder"),
    (["explore", "{run}", "--out", "{tmp}/" + "p" * 300], "File name too long"),
    (["explore", "{run}", "--data", "{tmp}/missing.npz"], "neither a dataset name"),
    (["explore", "{run}", "--data", "{tmp}/vectors.npz"], "does not match the model's input shape"),
    (["explore", "{tmp}/no-run"], "does not exist"),
    (["export", "{run}", "--part", "head"], "invalid choice: 'head'"),
    (["export", "{run}", "--format", "tflite"], "invalid choice: 'tflite'"),
    (["export", "{run}", "--out", "{tmp}/file"], "exists and is not a folder"),
    (["export", "{run}", "--out", "{tmp}/dangling"], "is a symbolic link to"),
    (["export", "{tmp}/no-run"], "does not exist"),
    (["export", "{tmp}/file"], "does not exist"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--dims", "a,b"], "--dims 'a,b'"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--dims", "9"], "dimension"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--dims", "-1"], "dimension"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--dims", ""], "--dims"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--dims", "0," + "9" * 30], "dimension"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--steps", "0"], "--steps"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--steps", "1000000"], "--steps"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--span", "nan"], "--span"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--span", "inf"], "--span"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--span", "-1"], "--span"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--span", "0"], "--span"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--image", "-1"], "--image"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--image", "1000000"], "--image"),
    (["traverse", "{run}", "--out", "{tmp}/t.jpg"], "written as .png"),
    (["traverse", "{run}", "--out", "{tmp}/nowhere/t.png"], "does not exist"),
    (["sample", "{run}", "--out", "{tmp}/s.png", "--sampler", "gmm:-1"], "--sampler 'gmm:-1'"),
    (["sample", "{run}", "--out", "{tmp}/s.png", "--sampler", "two_stage"], "--sampler 'two_stage'"),
    (["sample", "{run}", "--out", "{tmp}/s.png", "--sampler", ""], "--sampler ''"),
    (["sample", "{run}", "--out", "{tmp}/s.png", "--sampler", "gmm:1000"], "needs more than 1000 examples"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--epochs", "0"], "--epochs 0"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--width", "0"], "--width 0"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--width", "100000"], "--width 100000"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--lr", "0"], "--lr 0"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--lr", "nan"], "--lr nan"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--lr", "3"], "--lr 3"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--seed", "-1"], "seed -1"),
    (["features", "train", "{tmp}/vectors.npz", "--out", "{tmp}/f"], "labels"),
    (["features", "train", "{tmp}/missing.npz", "--out", "{tmp}/f"], "neither a dataset name"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/file"], "exists and is not a folder"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/full"], "is not an empty folder"),
    (["features", "train", "shapes", "--out", "{tmp}/f"], "held in memory"),
    (["evaluate", "{run}", "--generation", "--features", "{tmp}/d.npz"], "d.npz"),
    (["evaluate", "{run}", "--generation", "--features", "{tmp}/full"], "full"),
    (["evaluate", "{run}", "--generation", "--sampler", "gmm:x"], "--sampler 'gmm:x'"),
    (["evaluate", "{run}", "--disentanglement", "--fraction", "0"], "--fraction 0"),
    (["evaluate", "{run}", "--disentanglement", "--fraction", "nan"], "--fraction nan"),
    (["evaluate", "{run}", "--disentanglement", "--fraction", "2"], "--fraction 2"),
    (["evaluate", "{run}", "--disentanglement"], "has no known generative factors"),
]


@pytest.mark.parametrize("argv, fragment", ARGUMENTS, ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None)
def test_bad_arguments_of_the_page_export_traverse_and_feature_verbs(argv, fragment, ae_run, tmp_path, capsys):
    x, y = digit_like(60, size=8)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    np.savez(tmp_path / "vectors.npz", x=np.random.default_rng(0).random((30, 5)).astype(np.float32))
    (tmp_path / "file").write_text("mine")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    before = set(tmp_path.iterdir())
    args = [a.format(run=ae_run, tmp=tmp_path) for a in argv]
    _one_line(main(args), capsys.readouterr().err, fragment)
    assert set(tmp_path.iterdir()) == before and (tmp_path / "file").read_text() == "mine"
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep"]


# --- the shapes grid and .npz files with factors -------------------------------------------

SHAPES_SETS = [
    (["data.shapes_grid=[3, 6, 40, 32]"], "expected 5 sizes"),
    (["data.shapes_grid=[4, 2, 2, 2, 2]"], "shapes (1-3)"),
    (["data.shapes_grid=[0, 2, 2, 2, 2]"], "every size must be > 0"),
    (["data.shapes_grid=[3, 2, 2, 2, -2]"], "every size must be > 0"),
    (["data.shapes_grid=[3, 100, 100, 100, 100]"], "at most 16,777,216 images"),
    (["data.shapes_grid=['a', 2, 2, 2, 2]"], "data.shapes_grid"),
    (["data.shapes_grid=3"], "data.shapes_grid"),
    (["data.image_size=[0, 16]"], "every size must be > 0"),
    (["data.image_size=[16]"], "expected [height, width]"),
    (["data.image_size=[16, 16, 16]"], "expected [height, width]"),
    (["data.image_size=[100000, 100000]"], "image_size"),
    (["data.image_size=[2, 2]"], "image_size"),
    (["data.binarize=fixed"], "need the data in memory"),
    (["data.dequantize=uniform"], "need the data in memory"),
    (["data.limit=0"], "must be > 0"),
    (["data.test_size=0"], "must be > 0"),
    (["data.val_size=-1"], "must be >= 0"),
    (["data.image_size=[300, 300]"], "each from 8 to 256"),
]


@pytest.mark.parametrize("sets, fragment", SHAPES_SETS, ids=lambda v: str(v)[:40])
def test_bad_shapes_settings_are_one_line(sets, fragment, tmp_path, capsys):
    argv = [
        "train",
        "--set",
        "data.name=shapes",
        "--set",
        "data.shapes_grid=[1, 2, 2, 4, 4]",
        "--set",
        "data.image_size=[16, 16]",
        "--set",
        "train.epochs=1",
        "--set",
        "model.hidden=[8]",
        "--quiet",
        "--out",
        str(tmp_path / "r"),
    ]
    for s in sets:
        argv += ["--set", s]
    _one_line(main(argv), capsys.readouterr().err, fragment)
    assert not (tmp_path / "r").exists()


def _factor_npz(**arrays):
    def write(path):
        np.savez(path, **arrays)

    return write


IMGS = (np.random.default_rng(0).random((40, 8, 8)) > 0.5).astype(np.uint8)
FACTORS = np.stack([np.arange(40) % 4, np.arange(40) // 4], 1)

FACTOR_FILES = [
    ("factors 1-D", _factor_npz(x=IMGS, factors=np.arange(40)), "expected an (N, F) array"),
    ("factors of another length", _factor_npz(x=IMGS, factors=FACTORS[:30]), "expected an (N, F) array for 40 images"),
    ("factors 3-D", _factor_npz(x=IMGS, factors=FACTORS[:, :, None]), "expected an (N, F) array"),
    ("factors with no columns", _factor_npz(x=IMGS, factors=np.zeros((40, 0))), "factor"),
    ("factors NaN", _factor_npz(x=IMGS, factors=np.full((40, 2), np.nan)), "factor"),
    ("factors as objects", _factor_npz(x=IMGS, factors=np.array([[{"a": 1}, 2]] * 40, dtype=object)), "cannot read"),
    ("factors, no images", _factor_npz(factors=FACTORS), "no data array"),
    ("images, 1-D", _factor_npz(x=np.zeros(40), factors=FACTORS), "shape"),
    ("images, 5-D", _factor_npz(x=np.zeros((40, 1, 1, 8, 8)), factors=FACTORS), "shape"),
    ("images float beyond [0, 1]", _factor_npz(x=IMGS * 3.0, factors=FACTORS), "must lie in [0, 1]"),
    ("images NaN", _factor_npz(x=np.full((40, 8, 8), np.nan), factors=FACTORS), "NaN"),
    ("images as strings", _factor_npz(x=np.full((40, 8, 8), "a"), factors=FACTORS), "not numeric"),
    ("no images", _factor_npz(x=IMGS[:0], factors=FACTORS[:0]), "0 examples"),
    ("one image", _factor_npz(x=IMGS[:1], factors=FACTORS[:1]), "at least one"),
    ("dSprites, latents 1-D", _factor_npz(imgs=IMGS, latents_classes=np.arange(40)), "latents_classes"),
    (
        "dSprites, latents of another length",
        _factor_npz(imgs=IMGS, latents_classes=np.zeros((7, 6), int)),
        "latents_classes",
    ),
    ("dSprites, images 2-D", _factor_npz(imgs=IMGS.reshape(40, 64), latents_classes=np.zeros((40, 6), int)), "imgs"),
    ("dSprites, one latent column", _factor_npz(imgs=IMGS, latents_classes=np.zeros((40, 1), int)), "latents_classes"),
]


@pytest.mark.parametrize("name, write, fragment", FACTOR_FILES, ids=lambda v: v if isinstance(v, str) else None)
@pytest.mark.parametrize("verb", ["train", "info"])
def test_bad_files_with_factors_are_one_line(name, write, fragment, verb, tmp_path, capsys):
    path = tmp_path / "factors.npz"
    write(path)
    out = tmp_path / "r"
    argv = (
        [
            "train",
            "--set",
            f"data.name={path}",
            "--set",
            "train.epochs=1",
            "--set",
            "model.hidden=[8]",
            "--set",
            "data.val_size=0",
            "--quiet",
            "--out",
            str(out),
        ]
        if verb == "train"
        else ["data", "info", str(path)]
    )
    _one_line(main(argv), capsys.readouterr().err, fragment)
    assert not out.exists()


def test_a_factor_file_payload_never_runs(tmp_path, capsys):
    """An object array whose unpickling would create a file: refused, and the file never appears."""

    class Plant:
        def __reduce__(self):
            return (open, (str(tmp_path / "planted"), "w"))

    np.savez(tmp_path / "f.npz", x=IMGS, factors=np.array([Plant()] * 2, dtype=object))
    _one_line(main(["data", "info", str(tmp_path / "f.npz")]), capsys.readouterr().err, "cannot read")
    assert not (tmp_path / "planted").exists()


# --- strings from the run inside the page ---------------------------------------------------

HOSTILE = '</script><script>document.title="pwned";fetch("http://127.0.0.1:9/x")</script><img src=x onerror=alert(1)>'


def test_strings_from_a_run_cannot_change_the_explorer_page(tmp_path):
    """A data path and a title holding </script> and HTML stay text: the page keeps one script
    block of its own, its CSP, and, in a real browser, runs no planted script and makes no request."""

    from vaekit.config import ModelConfig
    from vaekit.explorer.page import explore
    from vaekit.models import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(name="vae", hidden=[8], latent_dim=2), (1, 8, 8)).eval()
    x = torch.rand(30, 1, 8, 8)
    page = explore(model, x, tmp_path / "p", y=torch.arange(30) % 3, title=HOSTILE, points=30)
    html = page.read_text()
    assert "default-src 'none'" in html  # the CSP: nothing may be fetched, whatever runs
    assert html.count("<script") == 4 and html.count("</script>") == 4  # the page's own four blocks, no planted one
    assert "<img" not in html and "&lt;/script&gt;&lt;script&gt;document.title" in html  # the title as text
    _browser_runs_nothing_planted(page)


def _browser_runs_nothing_planted(page: Path) -> None:
    import shutil as sh

    assert sh.which("chromium"), "Debian's chromium is not installed (the README's test command installs it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=sh.which("chromium"), args=["--no-sandbox"])
        try:
            tab = browser.new_page()
            requests, dialogs = [], []
            tab.on("request", lambda r: requests.append(r.url))
            tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            tab.goto(page.as_uri())
            tab.wait_for_timeout(500)
            assert tab.title() == f"vaekit explorer: {HOSTILE}" and not dialogs  # shown as text, never run
            assert HOSTILE in tab.inner_text("h1")
            assert (
                tab.evaluate("JSON.parse(document.getElementById('vaekit-spec').textContent).models[0].title")
                == HOSTILE
            )
            assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
        finally:
            browser.close()


def test_an_idx_in_a_factor_folder_is_not_confused(tmp_path, capsys):
    """A file named like IDX but holding an npz with factors: the IDX reader says what it is."""
    np.savez(tmp_path / "x.npz", x=IMGS, factors=FACTORS)
    (tmp_path / "x-idx3-ubyte").write_bytes((tmp_path / "x.npz").read_bytes())
    _one_line(main(["data", "info", str(tmp_path / "x-idx3-ubyte")]), capsys.readouterr().err, "bad magic number")
