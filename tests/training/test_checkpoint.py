import json

import pytest
import torch
from torch import nn

from vaekit.config import ModelConfig
from vaekit.errors import VaekitError
from vaekit.models import PCA, VAE, build_model
from vaekit.training.checkpoints import atomic_dir, load, save_pretrained

CASES = [
    ModelConfig(name="vae", latent_dim=3, hidden=[16]),
    ModelConfig(name="vae", arch="conv", latent_dim=3, channels=[4, 8]),
    ModelConfig(name="ae", latent_dim=2, hidden=[8, 4], likelihood="gaussian", sigma=0.5),
    ModelConfig(name="linear_ae", latent_dim=2, tied=True),
    ModelConfig(name="linear_ae", latent_dim=2, tied=False),
    ModelConfig(name="vae", latent_dim=3, hidden=[16], likelihood="gaussian_shared", prior="mog", prior_components=4),
    ModelConfig(
        name="vae",
        latent_dim=3,
        hidden=[16, 16],
        block="gated",
        likelihood="gaussian_pixel",
        prior="vamp",
        prior_components=5,
    ),
    ModelConfig(
        name="vae",
        arch="resnet",
        latent_dim=3,
        channels=[4, 8],
        depth=1,
        likelihood="discretized_logistic_mixture",
        mixture_components=2,
    ),
    ModelConfig(name="vae", latent_dim=3, hidden=[16, 16], block="residual", conditional=True, num_classes=4),
]


@pytest.mark.parametrize(
    "cfg", CASES, ids=lambda c: f"{c.name}-{c.arch}-{c.tied}-{c.likelihood}-{c.prior}-{c.conditional}"
)
def test_round_trip(tmp_path, cfg):
    torch.manual_seed(0)
    m = build_model(cfg, (1, 6, 6)).eval()
    with torch.no_grad():  # learned scales and priors must travel too: move them off their initial values
        for name, p in m.named_parameters():
            if "log_sigma" in name or "prior_module" in name:
                p.add_(0.1 * torch.randn_like(p))
    save_pretrained(m, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    m2 = load(tmp_path / "m")
    x = torch.rand(4, 1, 6, 6)
    y = torch.tensor([0, 1, 2, 3]) if cfg.conditional else None
    args = (y,) if cfg.conditional else ()
    assert torch.equal(m.reconstruct(x, *args), m2.reconstruct(x, *args))
    if m.variational:
        torch.manual_seed(3)
        a = m(x, y).px.log_prob(x)
        torch.manual_seed(3)
        assert torch.equal(a, m2(x, y).px.log_prob(x))
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        assert torch.equal(
            m.sample(5, generator=g1, y=1 if cfg.conditional else None),
            m2.sample(5, generator=g2, y=1 if cfg.conditional else None),
        )
    assert type(m2) is type(m) and m2.config == m.config and m.config.name == cfg.name


def test_pca_round_trip(tmp_path):
    x = torch.rand(50, 1, 3, 3)
    p = PCA(3).fit(x)
    save_pretrained(p, tmp_path / "p")
    q = load(tmp_path / "p")
    assert torch.equal(p.transform(x), q.transform(x)) and torch.equal(p.score_samples(x), q.score_samples(x))


def test_custom_nets_need_modules(tmp_path):
    enc, dec = nn.Linear(4, 4), nn.Linear(2, 4)
    save_pretrained(VAE(enc, dec, (4,), 2), tmp_path / "c")
    with pytest.raises(VaekitError, match="pass encoder= and decoder="):
        load(tmp_path / "c")
    m = load(tmp_path / "c", encoder=nn.Linear(4, 4), decoder=nn.Linear(2, 4))
    assert torch.equal(m.decoder.weight, dec.weight)


def test_weights_that_do_not_match_the_config(tmp_path):
    save_pretrained(build_model(CASES[0], (1, 6, 6)), tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["config"]["hidden"] = [17]
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(VaekitError, match="do not match its config"):
        load(tmp_path / "m")


def test_newer_format_and_damage_refused(tmp_path):
    save_pretrained(build_model(CASES[0], (1, 6, 6)), tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(VaekitError, match="format 99"):
        load(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(VaekitError, match="cannot read weights"):
        load(tmp_path / "m")


def test_atomic_dir_keeps_the_old_on_failure(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as d:
        (d / "f").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "f").write_text("half")
            raise RuntimeError("killed mid-write")
    assert (target / "f").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary left behind


def test_model_directory_files_get_the_usual_permissions(tmp_path):
    """Every file of a model directory, the safetensors weights included (safetensors writes 0600),
    gets the mode the umask gives, so a shared model directory is readable by others."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        m = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[4]), (3,))
        save_pretrained(m, tmp_path / "m")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "m").iterdir()}
        assert modes == {"config.json": 0o644, "model.safetensors": 0o644}
        assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o755
    finally:
        os.umask(old)
