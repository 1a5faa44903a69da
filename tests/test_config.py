"""Node configuration: a wrong file is one clear line naming file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_node_settings
from gateway.errors import ConfigError
from tests.conftest import NS, write_node

ROOT = Path(__file__).resolve().parent.parent


def test_example_node_configuration_loads_with_paths_relative_to_the_file() -> None:
    s = load_node_settings(ROOT / "examples" / "hello" / "node.toml", {})
    assert s.party_id == "EU.EORI.NL000000901"
    assert s.base_iri == "https://data.hellobouw.example/"
    assert [src.name for src in s.sources] == ["buildings", "labels"]
    assert s.sources[0].path == ROOT / "examples" / "hello" / "data" / "buildings.ttl"
    assert s.store_path is None


def test_environment_overrides_single_values(tmp_path: Path) -> None:
    path = write_node(tmp_path)
    s = load_node_settings(path, {"DSGO_NODE_PORT": "9123", "DSGO_REGISTRY_URL": "http://127.0.0.1:9000/"})
    assert s.port == 9123
    assert s.registry_url == "http://127.0.0.1:9000"


def test_store_path_is_relative_to_the_file(tmp_path: Path) -> None:
    s = load_node_settings(write_node(tmp_path, store="state/store"), {})
    assert s.store_path == tmp_path / "state" / "store"


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        ({"party_id": "NL12"}, "node.party_id", "iSHARE party id"),
        ({"base_iri": "https://data.x.example"}, "node.base_iri", "ending in '/'"),
        ({"base_iri": "ftp://data.x.example/"}, "node.base_iri", "http(s) IRI"),
        ({"port": 70000}, "node.port", "port number"),
        ({"port": "eighty"}, "node.port", "port number"),
        ({"poll_interval": -1}, "node.poll_interval", "positive number"),
        ({"colour": "blue"}, "node.colour", "unknown key"),
        ({"sparql_party_queue": 0}, "node.sparql_party_queue", "positive whole number"),
        ({"sparql_queue": "many"}, "node.sparql_queue", "positive whole number"),
    ],
)
def test_wrong_node_values_name_file_key_and_expectation(
    tmp_path: Path, change: dict[str, object], key: str, expected: str
) -> None:
    path = write_node(tmp_path, **change)
    with pytest.raises(ConfigError) as err:
        load_node_settings(path, {})
    assert err.value.key == key
    assert expected in err.value.expected
    assert str(path) in str(err.value)


def test_missing_party_id_is_named(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\nname = "x"\nbase_iri = "{NS}"\n')
    with pytest.raises(ConfigError) as err:
        load_node_settings(path, {})
    assert err.value.key == "node.party_id"
    assert "missing" in err.value.expected


@pytest.mark.parametrize(
    ("sources", "key", "expected"),
    [
        ('[[source]]\nname = "a"\ntype = "excel"\npath = "x"\n', "source[0].type", "one of rdf"),
        ('[[source]]\nname = "a"\ntype = "rdf"\n', "source[0].path", "missing"),
        ('[[source]]\nname = "A B"\ntype = "rdf"\npath = "x"\n', "source[0].name", "lowercase"),
        ('[[source]]\nname = "a"\ntype = "rdf"\npath = "x"\nformat = "xls"\n', "source[0].format", "one of"),
        (
            '[[source]]\nname = "a"\ntype = "rdf"\npath = "x"\nmapping = "m"\n',
            "source[0].mapping",
            "unknown key",
        ),
        (
            '[[source]]\nname = "a"\ntype = "rdf"\npath = "x"\n[[source]]\nname = "a"\ntype = "rdf"\npath = "y"\n',
            "source[1].name",
            "unique",
        ),
    ],
)
def test_wrong_sources_are_named(tmp_path: Path, sources: str, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_node_settings(write_node(tmp_path, sources=sources), {})
    assert err.value.key == key
    assert expected in err.value.expected


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("[node\nparty_id = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_node_settings(path, {})


def test_wrong_environment_value_is_named_by_its_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_node_settings(write_node(tmp_path), {"DSGO_NODE_PORT": "http"})
    assert err.value.key == "node.port"


def test_serve_with_a_wrong_file_prints_one_line_and_does_not_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_node(tmp_path, port="x")
    assert main(["serve", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("dsgo: ") and "node.port" in err and str(path) in err


def test_serve_with_a_missing_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path / "nope.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_sparql_queue_sizes_are_read_from_the_node_file(tmp_path: Path) -> None:
    settings = load_node_settings(write_node(tmp_path, sparql_party_queue=64, sparql_queue=128), {})
    assert (settings.sparql_party_queue, settings.sparql_queue) == (64, 128)
