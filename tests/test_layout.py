"""The package layout a maintainer reads: every module is listed in docs/development.md, no two
module names differ only in a suffix, packages never shadow a public function, and the flat module
paths of the previous release still import (as the new modules themselves, with a warning)."""

import importlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "vaekit"

# The flat paths of the previous release and where each module lives now.
MOVED = {
    "api": "runs",
    "checkpoint": "training.checkpoints",
    "classifier": "metrics.digit_score",
    "datasets": "data.named",
    "devices": "training.devices",
    "disentanglement": "metrics.disentanglement",
    "disentangling": "objectives.aggregate_posterior",
    "distributed": "training.distributed",
    "downloads": "data.downloads",
    "evaluation": "metrics.evaluation",
    "export": "explorer.onnx_export",
    "features": "metrics.features",
    "flows": "models.posteriors",
    "generation": "metrics.generation",
    "likelihoods": "models.likelihoods",
    "mnist": "data.mnist",
    "nets": "models.nets",
    "parallel": "training.lanes",
    "priors": "models.priors",
    "report": "tutorial.report",
    "runlock": "training.lock",
    "runlog": "training.runlog",
    "samplers": "models.samplers",
    "schedules": "training.schedules",
    "shapes": "data.shapes",
    "trainer": "training.state",
    "traversal": "explorer.traversal",
    "viz": "explorer.pictures",
    "webnets": "explorer.netprograms",
}
# Old modules whose name is a package now: the package gives the old module's public names.
BECAME_PACKAGES = {
    "data": ("data.prepared", ["prepare", "Data", "batches", "describe", "fingerprint"]),
    "objectives": ("objectives.elbo", ["elbo_terms", "iwae_terms", "Progress"]),
    "training": ("training.loop", ["fit", "mean_terms", "lr_factor", "kl_weight"]),
    "explorer": ("explorer.page", ["explore", "panel_spec", "write_page"]),
    "tutorial": ("tutorial.experiment", ["tour", "Steps", "generation_table"]),
}


def _modules() -> list[str]:
    """Every module of the package except the deprecated flat paths."""
    out = []
    for p in sorted(SRC.rglob("*.py")):
        parts = p.relative_to(SRC).with_suffix("").parts
        if len(parts) == 1 and parts[0] in MOVED:
            continue
        out.append(".".join(parts))
    return out


def _layout() -> dict[str, set[str]]:
    """docs/development.md's layout block: package folder -> the module names on its lines."""
    text = (ROOT / "docs" / "development.md").read_text()
    block = text.split("```", 2)[1]
    listed: dict[str, set[str]] = {}
    current = None
    for line in block.splitlines():
        m = re.match(r"(src/vaekit/(?:\w+/)?)\s", line)
        if m:
            current = m.group(1)
            line = line[len(current) :]
        elif not line.startswith(" ") or current is None:
            current = None
            continue
        words = re.sub(r"\([^)]*\)", " ", line).split()  # drop the parenthesised notes
        listed.setdefault(current, set()).update(words)
    return listed


def test_every_module_is_in_the_layout_of_the_development_guide():
    listed = _layout()
    missing = []
    for mod in _modules():
        *pkg, name = mod.split(".")
        folder = "src/vaekit/" + "".join(p + "/" for p in pkg)
        if name == "__init__":
            if pkg and folder not in listed:
                missing.append(mod)
            continue
        if name not in listed.get(folder, set()):
            missing.append(mod)
    assert missing == []


def test_the_layout_lists_nothing_that_does_not_exist():
    names = {m.split(".")[-1] for m in _modules()}
    for folder, words in _layout().items():
        assert (ROOT / folder).is_dir(), folder
        assert words - names == set(), folder


def test_no_two_module_names_differ_only_in_a_suffix():
    names = sorted({m.split(".")[-1] for m in _modules()} - {"__init__", "__main__"})
    clashes = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            n = len(next((p for p in (a[:k] for k in range(min(len(a), len(b)), 0, -1)) if b.startswith(p)), ""))
            if n >= 4 and len(a) - n <= 5 and len(b) - n <= 5:
                clashes.append((a, b))
    assert clashes == []


def test_the_rule_catches_the_old_look_alikes():
    """The check above, shown to fail on the pairs the flat layout had."""
    for a, b in [
        ("training", "trainer"),
        ("runlog", "runlock"),
        ("disentangling", "disentanglement"),
        ("likelihood", "likelihoods"),
    ]:
        n = len(next((p for p in (a[:k] for k in range(min(len(a), len(b)), 0, -1)) if b.startswith(p)), ""))
        assert n >= 4 and len(a) - n <= 5 and len(b) - n <= 5, (a, b)


def test_each_flat_path_of_the_last_release_is_the_new_module_with_a_warning():
    code = """
import importlib, sys, warnings
for old, new in MOVED.items():
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        m = importlib.import_module("vaekit." + old)
    said = [str(w.message) for w in said if w.category is DeprecationWarning]
    print(old, m is importlib.import_module("vaekit." + new), said)
"""
    out = subprocess.run(
        [sys.executable, "-c", f"MOVED = {MOVED!r}" + code], capture_output=True, text=True, check=True
    ).stdout  # a fresh process: each old path imported for the first time
    assert out.splitlines() == [f"{old} True ['vaekit.{old} moved to vaekit.{new}']" for old, new in MOVED.items()]


@pytest.mark.parametrize("old", sorted(BECAME_PACKAGES))
def test_a_module_that_became_a_package_still_gives_its_names(old):
    new, names = BECAME_PACKAGES[old]
    package, module = importlib.import_module(f"vaekit.{old}"), importlib.import_module(f"vaekit.{new}")
    for name in names:
        assert getattr(package, name) is getattr(module, name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        package.not_a_name  # noqa: B018 -- the attribute access is what is tested


def test_public_names_survive_every_module_being_imported():
    """A package named like a public function (`vaekit.train`, `vaekit.tour`, ...) would replace it
    on import. Import every module, then every public name must still be what `vaekit` exports."""
    import vaekit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for mod in _modules():
            if mod not in ("__init__", "__main__"):
                importlib.import_module("vaekit." + mod.removesuffix(".__init__"))
    for name in (
        "train",
        "load",
        "fit",
        "evaluate",
        "tour",
        "explore",
        "prepare",
        "save_pretrained",
        "load_config",
        "build_model",
    ):
        assert callable(getattr(vaekit, name)) and not isinstance(getattr(vaekit, name), type(vaekit)), name


def test_the_test_folders_mirror_the_packages():
    tests = ROOT / "tests"
    folders = {p.name for p in tests.iterdir() if p.is_dir() and p.name not in ("fixtures", "__pycache__")}
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    assert folders and folders <= packages
    assert all(any(p.glob("test_*.py")) for p in map(tests.joinpath, folders))
