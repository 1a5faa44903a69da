"""The wheel carries every package of the tree and the data the node reads at run time."""

from __future__ import annotations

import tomllib
from pathlib import Path

from gateway.vocab import load_vocab, vocab_dir

ROOT = Path(__file__).resolve().parent.parent


def _listed() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(config["tool"]["setuptools"]["packages"])


def test_every_package_of_the_tree_is_listed_for_the_wheel() -> None:
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("gateway", "connectors")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found - _listed() == set()


def test_vocab_and_policy_schema_are_package_data() -> None:
    listed = _listed()
    assert {"gateway._vocab", "gateway._policies"} <= listed
    assert (vocab_dir() / "context.jsonld").is_file()
    assert load_vocab().prefixes["bot"] == "https://w3id.org/bot#"


def test_pilot_is_package_data_for_dsgo_demo() -> None:
    """`dsgo demo` from a wheel copies gateway._pilot out: every file the pilot runs on."""
    from importlib import resources

    pilot = resources.files("gateway._pilot")
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = listed["gateway._pilot"]
    tree = ROOT / "examples" / "pilot"
    needed = {
        p.relative_to(tree).as_posix()
        for p in tree.rglob("*")
        if p.is_file() and "state" not in p.parts and p.suffix not in (".py", ".pyc")
    }
    covered = {n for n in needed if any(Path(n).match(pattern) for pattern in patterns)}
    assert needed - covered == set()
    assert (pilot / "registry.toml").is_file()


def test_the_default_material_table_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "*.toml" in config["tool"]["setuptools"]["package-data"]["connectors"]
    assert (ROOT / "connectors" / "materials.toml").is_file()
