"""The docs cannot drift: the config reference is generated from the dataclasses, and every config
file, script, command, config key and Python name that the README, the docs and the config comments
mention exists (and every command and script answers --help)."""

import importlib
import re
import sys
from pathlib import Path

import pytest

from vaekit import config_reference
from vaekit.cli import main
from vaekit.config import load_config, sections

ROOT = Path(__file__).resolve().parents[1]
TEXTS = {
    p.relative_to(ROOT).as_posix(): p.read_text()
    for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "configs").glob("*.toml"))]
}
ALL = "\n".join(TEXTS.values())


def _found(pattern: str) -> list[str]:
    return sorted(set(re.findall(pattern, ALL)))


def test_the_config_reference_is_generated_from_the_dataclasses():
    page = (ROOT / "docs" / "reference" / "config.md").read_text()
    assert page == config_reference.markdown(), "run: python -m vaekit.config_reference > docs/reference/config.md"
    for section, cls in sections().items():  # every key, with its default, appears
        for name in cls.__dataclass_fields__:
            assert f"| `{section}.{name}` |" in page


def test_the_reference_would_notice_a_change():
    """The generator reads the code: a changed default shows up in its output."""
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(sections()["train"])}
    old = fields["lr"].default
    try:
        fields["lr"].default = 0.123
        assert "`0.123`" in config_reference.markdown()
    finally:
        fields["lr"].default = old


@pytest.mark.parametrize(
    "path",
    _found(r"\bconfigs/[a-z0-9_.-]+\.toml\b") + [f"configs/{n}" for n in _found(r"(?<![/\w])([a-z0-9_-]+\.toml)\b")],
)
def test_every_named_config_exists_and_loads(path):
    assert (ROOT / path).is_file(), path
    load_config(ROOT / path)


@pytest.mark.parametrize("script", _found(r"\bbench/\w+\.py\b"))
def test_every_named_script_exists_and_answers_help(script, capsys, monkeypatch):
    """Run as `python SCRIPT --help` would run it, in this process (a fresh interpreter per script
    cost about 3 s of imports each)."""
    import runpy

    assert (ROOT / script).is_file(), script
    monkeypatch.setattr(sys, "argv", [str(ROOT / script), "--help"])
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    assert done.value.code in (0, None) and "usage" in capsys.readouterr().out.lower()


@pytest.mark.parametrize("path", _found(r"\b(?:tests|src/vaekit|docs)/[\w./-]+\.(?:py|md)\b"))
def test_every_named_file_exists(path):
    assert (ROOT / path).exists(), path


def _code(path: str, text: str) -> str:
    """What is code in a text: fenced blocks and `inline` spans of Markdown; a config's comments."""
    if path.endswith(".toml"):
        return text
    return "\n".join(re.findall(r"```[^\n]*\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text))


CODE = "\n".join(_code(p, t) for p, t in TEXTS.items())
COMMANDS = sorted(set(re.findall(r"\bvaekit ((?:data )?[a-z]+)\b", CODE)))


def test_the_commands_named_are_found():
    assert {"train", "evaluate", "sample", "reconstruct", "interpolate", "tour", "data fetch", "data info"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_named_command_answers_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command.split(), "--help"])
    assert e.value.code == 0 and "usage: vaekit" in capsys.readouterr().out


FILE_SUFFIXES = {"safetensors", "json", "jsonl", "toml", "png", "py", "npz"}  # `model.safetensors` is a file, not a key


@pytest.mark.parametrize(
    "key", [k for k in _found(r"`(?:--set )?((?:data|model|train)\.\w+)") if k.split(".")[1] not in FILE_SUFFIXES]
)
def test_every_named_config_key_exists(key):
    section, name = key.split(".")
    assert name in sections()[section].__dataclass_fields__, key


@pytest.mark.parametrize("name", _found(r"`(vaekit(?:\.\w+)+)"))
def test_every_named_python_object_exists(name):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return
    pytest.fail(name)


@pytest.mark.parametrize("link", _found(r"\]\((docs/[\w./-]+\.md)(?:#[\w-]+)?\)"))
def test_the_readme_links_resolve(link):
    assert (ROOT / link).is_file(), link
