"""``dsgo source check``: the summary, the problems, ``--emit``, progress and one-line errors."""

from __future__ import annotations

import io
from pathlib import Path

import pyoxigraph as ox
import pytest

from connectors import SourceEnv
from connectors.table import CsvTable
from gateway.cli import main
from gateway.cli.source_check import DEFAULT_BASE, _Progress
from gateway.vocab import load_vocab
from tests.test_table import LABELS, MAPPING, write

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SMALLHOUSE = FIXTURES / "smallhouse.ifc"


def test_summary_of_an_ifc_model_counts_triples_resources_and_classes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["source", "check", str(SMALLHOUSE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{SMALLHOUSE}: 1552 triples about 54 resources (IFC model)"
    assert out[1:6] == [
        "resources per class:",
        "        27  dsgo:MaterialPart",
        "        20  bot:Element",
        "        11  dsgo:MaterialLayer",
        "         6  ifc:IfcWallStandardCase",
    ]
    assert "         1  bot:Building" in out and out[-1] == "problems: none"


def test_summary_shows_sample_resources_in_turtle(capsys: pytest.CaptureFixture[str]) -> None:
    main(["source", "check", str(SMALLHOUSE)])
    out = capsys.readouterr().out
    samples = out[out.index("samples:\n") :]
    assert f"    <{DEFAULT_BASE}id/ifc/1Y9nGTxX90dwWkO9TbXfao> a bot:Site , ifc:IfcSite ;" in samples
    assert f"    <{DEFAULT_BASE}id/ifc/3dW-chZ2P2nBViVyUAoHql> a bot:Building , ifc:IfcBuilding ;" in samples


def test_bad_rows_are_listed_and_the_exit_status_is_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = write(tmp_path, LABELS + "0363010000000003;H;2023-01-01;1\n")
    assert main(["source", "check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0]
        == f"{path}: 10 triples about 2 resources (CSV table, mapping {tmp_path / 'labels.mapping.toml'})"
    )
    assert out[-2:] == [
        "problems (1):",
        f"  {path}:4: column 'label': 'H' does not match the pattern A\\+{{0,5}}|[B-G]",
    ]


@pytest.mark.parametrize(
    ("fmt", "syntax"),
    [("turtle", ox.RdfFormat.TURTLE), ("ntriples", ox.RdfFormat.N_TRIPLES), ("jsonld", ox.RdfFormat.JSON_LD)],
)
def test_emit_writes_exactly_the_triples_a_node_would_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, syntax: ox.RdfFormat
) -> None:
    path, mapping = write(tmp_path)
    base = "https://data.labels.example/"
    assert main(["source", "check", str(path), "--mapping", str(mapping), "--emit", fmt, "--base", base]) == 0
    captured = capsys.readouterr()
    emitted = {q.triple for q in ox.parse(captured.out.encode(), syntax)}
    expected = CsvTable.make(path, {}, SourceEnv(base, prefixes=load_vocab().prefixes)).load()
    assert emitted == set(expected) and len(expected) == 10
    assert f"{path}: 10 triples about 2 resources" in captured.err


def test_bag_pand_option_links_the_building(capsys: pytest.CaptureFixture[str]) -> None:
    main(["source", "check", str(SMALLHOUSE), "--emit", "ntriples", "--bag-pand", "0363100012345678"])
    out = capsys.readouterr().out
    assert (
        f"<{DEFAULT_BASE}id/ifc/3dW-chZ2P2nBViVyUAoHql> <https://vocab.dsgo.example/def#bagPand> "
        "<https://bag.basisregistraties.overheid.nl/id/pand/0363100012345678> ."
    ) in out.splitlines()


def test_rdf_files_can_be_checked_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.ttl"
    path.write_text("<id/building/1> a <https://w3id.org/bot#Building> .")
    assert main(["source", "check", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[:3] == [
        f"{path}: 1 triple about 1 resource (RDF file)",
        "resources per class:",
        "         1  bot:Building",
    ]


def test_progress_is_a_line_per_phase_when_stderr_is_no_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    main(["source", "check", str(SMALLHOUSE)])
    assert capsys.readouterr().err.splitlines() == [
        "smallhouse.ifc: reading",
        "smallhouse.ifc: converting objects (27)",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal() -> None:
    stream = _Terminal()
    progress = _Progress(stream, "big.csv")
    for done in range(0, 101, 10):
        progress("converting rows", done, 100)
    progress.close()
    text = stream.getvalue()
    assert text.startswith("\rbig.csv: converting rows [") and text.endswith("\n")
    assert f"\rbig.csv: converting rows [{'#' * 30}] 100/100\x1b[K\n" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.ifc"], "dsgo: nope.ifc: not found"),
        (
            ["--base", "data.example/", str(SMALLHOUSE)],
            "dsgo: --base: expected an http(s) IRI ending in '/', got 'data.example/'",
        ),
        (
            ["--bag-pand", "12", str(SMALLHOUSE)],
            "dsgo: --bag-pand: expected the 16 digits of the model's BAG pand",
        ),
        (
            [str(FIXTURES / "README.md")],
            f"dsgo: {FIXTURES / 'README.md'}: unknown kind of source; expected .ifc, ",
        ),
    ],
)
def test_errors_are_one_line_and_exit_status_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["source", "check", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_broken_source_is_one_line_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = write(tmp_path, mapping=MAPPING.replace("dsgo:energyLabel", "dsg:energyLabel"))
    assert main(["source", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"dsgo: {tmp_path / 'labels.mapping.toml'}: columns.label.property: unknown prefix 'dsg'"
    )
    assert err.count("\n") == 1
