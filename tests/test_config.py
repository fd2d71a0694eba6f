import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaekit.config import RunConfig, apply_overrides, from_dict, load_config, parse_value
from vaekit.errors import VaekitError


def test_defaults_and_overrides():
    cfg = load_config(
        None,
        [
            "model.latent_dim=7",
            "train.lr=1",
            "model.hidden=[8, 4]",
            "train.grad_clip=2.5",
            "data.binarize=dynamic",
            "train.progress=false",
        ],
    )
    assert cfg.model.latent_dim == 7 and cfg.model.hidden == [8, 4]
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # ints widen to floats
    assert cfg.data.binarize == "dynamic" and cfg.train.progress is False
    assert cfg.train.grad_clip == 2.5 and load_config().train.grad_clip is None


def test_frozen():
    cfg = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 3.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.bogus=1", "unknown config key 'model.bogus'"),
        ("nosection.x=1", "section one of data, model, train"),
        ("train.lr=abc", "'train.lr': got 'abc', expected a number"),
        ("train.epochs=2.5", "'train.epochs': got 2.5, expected an integer"),
        ("model.name=gan", "'model.name': got 'gan', expected one of"),
        ("model.latent_dim=0", "'model.latent_dim': got 0, must be > 0"),
        ("train.batch_size=-3", "'train.batch_size': got -3, must be > 0"),
        ("model.hidden=[8, 0]", "every size must be > 0"),
        ("train.progress=3", "expected true/false"),
        ("justtext", "expected section.key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, fragment):
    with pytest.raises(VaekitError, match=None) as e:
        load_config(None, [override])
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_file_roundtrip(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('[model]\nname = "ae"\nlatent_dim = 5\n[train]\nepochs = 3\n')
    cfg = load_config(p, ["train.epochs=4"])
    assert (cfg.model.name, cfg.model.latent_dim, cfg.train.epochs) == ("ae", 5, 4)
    cfg.save(tmp_path / "c.json")
    assert from_dict(json.loads((tmp_path / "c.json").read_text())) == cfg


def test_bad_files(tmp_path):
    with pytest.raises(VaekitError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nname=")
    with pytest.raises(VaekitError, match="not valid toml"):
        load_config(bad)
    with pytest.raises(VaekitError, match="unknown config section 'optim'"):
        from_dict({"optim": {"lr": 1}})


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("true") is True and parse_value("[1,2]") == [1, 2]
    assert parse_value("mnist") == "mnist" and parse_value("/a/b.npz") == "/a/b.npz"


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), st.integers(), min_size=1, max_size=4))
def test_unknown_keys_always_rejected(extra):
    import dataclasses

    from vaekit.config import ModelConfig

    known = {
        f.name for f in dataclasses.fields(ModelConfig)
    }  # every real key (a fixed list went stale as keys were added)
    extra = {k: v for k, v in extra.items() if k not in known}
    if not extra:
        return
    with pytest.raises(VaekitError, match="unknown config key"):
        from_dict({"model": extra})


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(max_size=5), st.floats(allow_nan=False), st.booleans(), st.lists(st.integers(), max_size=3)))
def test_latent_dim_type_checked(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return
    if value in (
        "none",
        "null",
    ):  # the spelling of "unset" (the model's default), see test_set_none_unsets_optional_keys_only
        assert from_dict({"model": {"latent_dim": value}}).model.latent_dim == 20
        return
    with pytest.raises(VaekitError, match="model.latent_dim"):
        from_dict({"model": {"latent_dim": value}})


def test_apply_overrides_does_not_mutate():
    raw = {"train": {"lr": 0.1}}
    out = apply_overrides(raw, ["train.lr=0.2"])
    assert raw["train"]["lr"] == 0.1 and out["train"]["lr"] == 0.2


def test_set_none_unsets_optional_keys_only():
    cfg = load_config(overrides=["train.patience=5", "train.patience=none", "model.prior_components=null"])
    assert cfg.train.patience is None and cfg.model.prior_components is None
    # A string choice named "none" stays a string ...
    assert load_config(overrides=["data.binarize=none"]).data.binarize == "none"
    # ... and a required key cannot be unset.
    with pytest.raises(VaekitError, match="train.epochs"):
        load_config(overrides=["train.epochs=none"])
