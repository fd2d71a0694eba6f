"""Configs that vaekit refuses: broken TOML and JSON, keys of the wrong type or beyond reason,
absurd sizes and depths (refused with an estimate, before anything is allocated) and bad --set
values. Each is one line, exit code 2, and no run directory."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest
import torch

from refusals import RNG, assert_one_line
from vaekit.cli import main
from vaekit.config import sections


def _deep_json(n):
    return '{"a":' * n + "1" + "}" * n


CONFIG_FILES = [
    ("top level is a list", "list.json", json.dumps([1, 2]), "must be a table of sections, got list"),
    ("top level is a number", "num.json", "3", "must be a table of sections, got int"),
    ("top level is a string", "str.json", '"x"', "must be a table of sections, got str"),
    ("JSON nested 5000 deep", "deep.json", _deep_json(5000), "nests too deeply"),
    (
        "TOML array nested 5000 deep",
        "deep.toml",
        "[data]\nname = " + "[" * 5000 + "]" * 5000 + "\n",
        "nests too deeply",
    ),
    (
        "TOML inline table nested 2000 deep",
        "deept.toml",
        "[data]\nname = " + "{a=" * 2000 + "1" + "}" * 2000 + "\n",
        "nests too deeply",
    ),
    ("a 5000-digit integer in TOML", "bigint.toml", "[train]\nepochs = " + "9" * 5000 + "\n", "is not valid toml"),
    ("a 5000-digit integer in JSON", "bigint.json", '{"train": {"epochs": ' + "9" * 5000 + "}}", "is not valid json"),
    ("a 100-digit integer", "int100.toml", "[train]\nepochs = " + "9" * 100 + "\n", "must be at most 2147483647"),
    ("binary garbage", "garbage.toml", b"\xff\xfe\x00\x01".decode("latin1"), "is not valid toml"),
]


@pytest.mark.parametrize("case", CONFIG_FILES, ids=lambda c: c[0])
def test_bad_config_files_are_refused_in_one_line(case, tmp_path, capsys):
    _, file, text, fragment = case
    (tmp_path / file).write_text(text, encoding="latin1")
    assert_one_line(
        main(["train", str(tmp_path / file), "--out", str(tmp_path / "r")]), capsys.readouterr().err, fragment
    )
    assert not (tmp_path / "r").exists()


def _int_keys():
    """Every integer config key, with values no machine can honour."""
    import dataclasses
    import typing

    out = []
    for section, cls in sections().items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if "int" in str(hints[f.name]) and "float" not in str(hints[f.name]):
                out += [(f"{section}.{f.name}", v) for v in ("2147483648", "9" * 30, "-" + "9" * 30)]
    return out


@pytest.mark.parametrize("key, value", _int_keys())
def test_integers_beyond_reason_are_refused(key, value, tmp_path, capsys):
    assert_one_line(
        main(["train", "--set", f"{key}={value}", "--out", str(tmp_path / "r")]), capsys.readouterr().err, f"'{key}'"
    )
    assert not (tmp_path / "r").exists()


SET_VALUES = [
    ("train.epochs=1\ntrain.lr=5", "control characters"),
    ("train.epochs=1\rx", "control characters"),
    ("data.name=a\tb", "control characters"),
    ("data.name=\x00", "control characters"),
    ("model.hidden=" + "[" * 3000 + "]" * 3000, "nests too deeply"),
    ("data.seed=-1", "must be >= 0"),
    ("train.seed=-5", "must be >= 0"),
    ("data.seed=1.5", "expected an integer"),
]


@pytest.mark.parametrize("item, fragment", SET_VALUES, ids=lambda v: repr(v)[:30])
def test_bad_set_values_are_refused(item, fragment, tmp_path, capsys):
    assert_one_line(main(["train", "--set", item, "--out", str(tmp_path / "r")]), capsys.readouterr().err, fragment)
    assert not (tmp_path / "r").exists()


ABSURD = [
    ("model.hidden=[1000000000]", []),
    ("model.latent_dim=1000000000", []),
    ("train.samples=1000000000", []),
    ("model.prior_components=1000000000", ["model.prior=mog"]),
    ("model.channels=[1000000]", ["model.arch=conv"]),
    ("train.batch_size=2000000000", ["model.hidden=[100000]"]),
    ("model.hidden=[100000, 100000]", []),
    ("model.mixture_components=100000000", ["model.likelihood=discretized_logistic_mixture"]),
]


@pytest.mark.parametrize("item, extra", ABSURD, ids=lambda v: str(v)[:40])
def test_absurd_sizes_are_refused_with_an_estimate(item, extra, tmp_path, capsys):
    np.save(tmp_path / "img.npy", (RNG.random((60, 8, 8)) * 255).astype(np.uint8))
    argv = [
        "train",
        "--set",
        f"data.name={tmp_path / 'img.npy'}",
        "--set",
        "data.val_size=0",
        "--set",
        "train.epochs=1",
        "--set",
        "model.likelihood_check=false",
        "--set",
        item,
        "--out",
        str(tmp_path / "r"),
        "--quiet",
    ]
    for e in extra:
        argv += ["--set", e]
    assert_one_line(main(argv), capsys.readouterr().err, "GiB available")
    assert not (tmp_path / "r").exists()


def test_eval_k_beyond_the_protocol_is_refused(tmp_path, capsys):
    assert_one_line(
        main(["train", "--set", "train.eval_k=1000000000", "--out", str(tmp_path / "r")]),
        capsys.readouterr().err,
        "must be at most 5000",
    )


# --- round two, grown: every config key with values of the wrong type -------------------------


def _wrong_values(hint) -> list[str]:
    """TOML values no key of this type accepts."""
    t = str(hint)
    if "Literal" in t:
        return ["'nope'", "3", "[1]"]
    if "list[int]" in t:
        return ["'x'", "[0]", "[-3]", "[1.5]", "[[1]]"]
    if "bool" in t:
        return ["'yes'", "2", "[true]"]
    if "float" in t:
        return ["'x'", "[1.0]", "nan", "inf", "true"]
    if "int" in t:
        return ["'x'", "1.5", "[1]", "true"]
    return ["3", "[1]", "{a=1}", "true"]  # strings


def _typed_keys():
    import dataclasses
    import typing

    return [
        (f"{section}.{f.name}", v)
        for section, cls in sections().items()
        for f in dataclasses.fields(cls)
        for v in _wrong_values(typing.get_type_hints(cls)[f.name])
    ]


@pytest.mark.parametrize("key, value", _typed_keys())
def test_every_key_refuses_values_of_the_wrong_type(key, value, tmp_path, capsys):
    argv = ["train", "--set", f"{key}={value}", "--out", str(tmp_path / "r")]
    if key != "data.name":  # were the value accepted, the run would stop at the missing data, not train
        argv[1:1] = ["--set", f"data.name={tmp_path / 'absent.npy'}"]
    assert_one_line(main(argv), capsys.readouterr().err, f"'{key}'")
    assert not (tmp_path / "r").exists()


def test_epochs_beyond_any_schedule_are_refused(tmp_path, capsys):
    assert_one_line(
        main(["train", "--set", "train.epochs=1000001", "--out", str(tmp_path / "r")]),
        capsys.readouterr().err,
        "must be at most 1,000,000",
    )


# 8. absurd depth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sets, fragment",
    [
        (["model.hidden=[" + ",".join(["8"] * 3000) + "]"], "'model.hidden': 3000 layers; at most 128"),
        (["model.arch=resnet", "model.depth=100000"], "'model.depth': 100000 blocks per stage"),
        (["model.name=hvae", "model.latent_dims=[" + ",".join(["1"] * 500) + "]"], "500 stochastic layers"),
        (["model.posterior=iaf", "model.flow_steps=1000000"], "1000000 flow steps"),
        (["model.channels=[" + ",".join(["4"] * 200) + "]", "model.arch=conv"], "200 stages"),
    ],
)
def test_absurd_depth_is_refused_before_anything_is_built(tmp_path, capsys, sets, fragment):
    """Before the fix these built thousands of layers for minutes: an alarm turns a hang into a failure."""

    def hung(signum, frame):
        raise TimeoutError("no answer within 20 s")

    argv = ["train", "--out", str(tmp_path / "r")]
    for s in sets:
        argv += ["--set", s]
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        start = time.perf_counter()
        assert_one_line(main(argv), capsys.readouterr().err, fragment)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert time.perf_counter() - start < 10 and not (tmp_path / "r").exists()


def test_the_deepest_allowed_model_still_builds():
    from vaekit.config import MAX_LAYERS, ModelConfig
    from vaekit.models import build_model

    m = build_model(ModelConfig(name="ae", hidden=[4] * MAX_LAYERS, latent_dim=2), (6,))
    assert sum(isinstance(mod, torch.nn.Linear) for mod in m.modules()) == 2 * (MAX_LAYERS + 1)
