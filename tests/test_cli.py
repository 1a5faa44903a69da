"""Every error a user can cause at the `dsgo` command line is one line naming what to fix,
with the exit status the convention gives it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.cli.query import start_lines
from gateway.cli.registry import shorthand

ROOT = Path(__file__).resolve().parent.parent
FIRM = ROOT / "examples" / "pilot" / "firm" / "node.toml"


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_relative_resource_iri_is_a_usage_error_naming_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["policy", "explain", str(FIRM), "--party", "EU.EORI.NL000000103", "--resource", "IRI"]
    assert main(argv) == 2
    assert "'IRI' is not an absolute IRI; write it in full" in one_line(capsys)


def test_token_target_without_a_scheme_is_a_usage_error_naming_the_fix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["token", "--as", str(FIRM), "--to", "127.0.0.1:8202"]) == 2
    assert "write it as http://HOST:PORT" in one_line(capsys)


def test_token_target_with_a_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--as", str(FIRM), "--to", "http://127.0.0.1:8202/id/home/1001"]) == 2
    assert "give the base URL only" in one_line(capsys)


def test_query_start_must_be_an_absolute_iri(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "--as", str(FIRM), "ASK {}", "--start", "collections/bot:Building"]) == 2
    assert "not an absolute IRI" in one_line(capsys)


def test_missing_argument_is_one_line_pointing_to_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "somewhere"]) == 2
    assert "(see dsgo init --help)" in one_line(capsys)


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "init" in capsys.readouterr().out


def test_resource_outside_the_node_names_its_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    node = ROOT / "examples" / "pilot" / "municipality" / "node.toml"
    argv = ["policy", "explain", str(node), "--party", "EU.EORI.NL000000101"]
    assert main([*argv, "--resource", "https://elsewhere.example/id/x"]) == 2
    assert "its resources are under https://bag.basisregistraties.overheid.nl/id/" in one_line(capsys)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["registry", "r.toml"], ["registry", "serve", "r.toml"]),
        (["registry", "r.toml", "--port", "1"], ["registry", "serve", "r.toml", "--port", "1"]),
        (["registry", "add", "r.toml"], ["registry", "add", "r.toml"]),
        (["registry", "--help"], ["registry", "--help"]),
        (["serve", "registry"], ["serve", "registry"]),
    ],
)
def test_registry_file_alone_means_serve(argv: list[str], expected: list[str]) -> None:
    assert shorthand(argv) == expected


def test_query_file_start_lines_are_its_start_iris() -> None:
    text = (ROOT / "examples" / "pilot" / "queries" / "labels-and-insulation.rq").read_text()
    assert start_lines(text) == [
        "https://data.woonstichting.example/collections/bot:Building",
        "https://data.bouwbedrijf.example/collections/bot:Building",
    ]
