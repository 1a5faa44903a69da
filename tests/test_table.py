"""CSV tables with a mapping file: typed values, links, value checks, the bad-row policy,
mapping mistakes named by key, encodings and delimiters, and freshness in a node."""

from __future__ import annotations

import gc
import textwrap
from pathlib import Path

import pyoxigraph as ox
import pytest

import connectors.table
from connectors import KINDS, SourceEnv
from connectors.table import CsvTable
from gateway.config import SourceSettings, load_node_settings
from gateway.errors import SourceError
from gateway.store.local import Store
from gateway.store.sources import Sources
from gateway.vocab import DSGO, load_vocab
from tests.conftest import write_node
from tests.test_sources import bump

NS = "https://data.test.example/"
ENV = SourceEnv(base_iri=NS, prefixes=load_vocab().prefixes)
XSD = "http://www.w3.org/2001/XMLSchema#"
VBO = "https://bag.basisregistraties.overheid.nl/id/verblijfsobject/"
DWELLING_1 = NS + "id/dwelling/0363010000000001"

MAPPING = """\
delimiter = ";"
decimal_separator = ","
on_error = "skip"

[subject]
iri = "id/dwelling/{vbo_id}"
types = ["bot:Zone"]

[columns.label]
property = "dsgo:energyLabel"
pattern = 'A\\+{0,5}|[B-G]'
required = true

[columns.registered]
property = "dsgo:energyLabelDate"
datatype = "date"

[columns.index]
property = "dsgo:energyIndex"
datatype = "decimal"
min = 0

[[link]]
property = "dsgo:bagVerblijfsobject"
iri = "https://bag.basisregistraties.overheid.nl/id/verblijfsobject/{vbo_id}"
"""

LABELS = """\
vbo_id;label;registered;index
0363010000000001;A++;2023-05-17;0,82
0363010000000002;C;2021-01-04;1,62
"""


def write(
    folder: Path, csv: str = LABELS, mapping: str = MAPPING, encoding: str = "utf-8"
) -> tuple[Path, Path]:
    path, mapping_path = folder / "labels.csv", folder / "labels.mapping.toml"
    path.write_bytes(csv.encode(encoding))
    mapping_path.write_text(mapping)
    return path, mapping_path


def table(folder: Path, csv: str = LABELS, mapping: str = MAPPING, encoding: str = "utf-8") -> CsvTable:
    path, _ = write(folder, csv, mapping, encoding)
    return CsvTable.make(path, {}, ENV)


def typed(value: str, datatype: str) -> ox.Literal:
    return ox.Literal(value, datatype=ox.NamedNode(XSD + datatype))


def about(triples: list[ox.Triple], subject: str) -> dict[str, list[ox.NamedNode | ox.Literal]]:
    out: dict[str, list[ox.NamedNode | ox.Literal]] = {}
    for t in triples:
        if t.subject == ox.NamedNode(subject):
            out.setdefault(t.predicate.value, []).append(t.object)  # type: ignore[arg-type]
    return out


# -- what a good table publishes ----------------------------------------------------------


def test_energy_label_row_becomes_a_typed_resource(tmp_path: Path) -> None:
    triples = table(tmp_path).load()
    assert about(triples, DWELLING_1) == {
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#type": [ox.NamedNode("https://w3id.org/bot#Zone")],
        DSGO + "energyLabel": [ox.Literal("A++")],
        DSGO + "energyLabelDate": [typed("2023-05-17", "date")],
        DSGO + "energyIndex": [typed("0.82", "decimal")],
        DSGO + "bagVerblijfsobject": [ox.NamedNode(VBO + "0363010000000001")],
    }
    assert len(triples) == 10


def test_subject_template_may_be_absolute(tmp_path: Path) -> None:
    mapping = MAPPING.replace(
        'iri = "id/dwelling/{vbo_id}"', 'iri = "https://labels.example/vbo/{vbo_id}#label"'
    )
    triples = table(tmp_path, mapping=mapping).load()
    assert {t.subject.value for t in triples} == {
        "https://labels.example/vbo/0363010000000001#label",
        "https://labels.example/vbo/0363010000000002#label",
    }


def test_placeholder_values_are_percent_encoded(tmp_path: Path) -> None:
    csv = "vbo_id;label;registered;index\nKerk straat/1;B;2020-01-01;1\n"
    triples = table(tmp_path, csv).load()
    assert triples[0].subject == ox.NamedNode(NS + "id/dwelling/Kerk%20straat%2F1")


def test_empty_optional_cell_gives_no_triple(tmp_path: Path) -> None:
    triples = table(tmp_path, "vbo_id;label;registered;index\n0363010000000001;B;;\n").load()
    assert set(about(triples, DWELLING_1)) == {
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#type",
        DSGO + "energyLabel",
        DSGO + "bagVerblijfsobject",
    }


def test_quoted_cells_may_hold_the_delimiter_and_newlines(tmp_path: Path) -> None:
    mapping = MAPPING.replace('datatype = "date"', 'datatype = "string"')
    csv = 'vbo_id;label;registered;index\n0363010000000001;B;"a;b\nc";1\n'
    triples = table(tmp_path, csv, mapping).load()
    assert about(triples, DWELLING_1)[DSGO + "energyLabelDate"] == [ox.Literal("a;b\nc")]


def test_utf8_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    assert len(table(tmp_path, "\ufeff" + LABELS).load()) == 10


def test_declared_latin1_file_is_read(tmp_path: Path) -> None:
    mapping = MAPPING.replace('delimiter = ";"', 'delimiter = ";"\nencoding = "latin-1"').replace(
        'datatype = "date"', 'datatype = "string"'
    )
    csv = "vbo_id;label;registered;index\n0363010000000001;B;Hélène;1\n"
    triples = table(tmp_path, csv, mapping, encoding="latin-1").load()
    assert about(triples, DWELLING_1)[DSGO + "energyLabelDate"] == [ox.Literal("Hélène")]


def test_mapping_may_declare_its_own_prefixes(tmp_path: Path) -> None:
    mapping = MAPPING.replace("[subject]", '[prefixes]\nep = "https://ep.example/def#"\n\n[subject]').replace(
        'types = ["bot:Zone"]', 'types = ["ep:Registration"]'
    )
    triples = table(tmp_path, mapping=mapping).load()
    assert triples[0].object == ox.NamedNode("https://ep.example/def#Registration")


def test_default_mapping_is_the_csv_name_with_mapping_toml(tmp_path: Path) -> None:
    path, mapping = write(tmp_path)
    assert CsvTable.make(path, {}, ENV).mapping == mapping
    assert KINDS["csv"].make(path, {"mapping": str(tmp_path / "m.toml")}, ENV).mapping == tmp_path / "m.toml"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("datatype", "cell", "term"),
    [
        ("string", "Kerkstraat 1", ox.Literal("Kerkstraat 1")),
        ("integer", "+0042", typed("42", "integer")),
        ("decimal", "-1.50", typed("-1.50", "decimal")),
        ("double", "1.5e3", typed("1.5e3", "double")),
        ("date", "2023-05-17", typed("2023-05-17", "date")),
        ("boolean", "Ja", typed("true", "boolean")),
        ("boolean", "0", typed("false", "boolean")),
        ("gYear", "1971", typed("1971", "gYear")),
        ("iri", "https://example.org/x", ox.NamedNode("https://example.org/x")),
    ],
)
def test_cell_is_converted_to_its_datatype(
    tmp_path: Path, datatype: str, cell: str, term: ox.Literal | ox.NamedNode
) -> None:
    triples = table(tmp_path, f"id,value\n1,{cell}\n", one_column(datatype)).load()
    assert [t.object for t in triples] == [term]


def test_date_format_option_reads_dutch_dates(tmp_path: Path) -> None:
    triples = table(tmp_path, "id,value\n1,17-05-2023\n", one_column("date", 'format = "%d-%m-%Y"')).load()
    assert [t.object for t in triples] == [typed("2023-05-17", "date")]


def test_string_column_may_have_a_language(tmp_path: Path) -> None:
    triples = table(tmp_path, "id,value\n1,woning\n", one_column("string", 'lang = "nl"')).load()
    assert [t.object for t in triples] == [ox.Literal("woning", language="nl")]


def one_column(datatype: str, extra: str = "") -> str:
    return (
        'on_error = "skip"\n[subject]\niri = "id/x/{id}"\n'
        f'[columns.value]\nproperty = "dsgo:value"\ndatatype = "{datatype}"\n{extra}\n'
    )


# -- bad rows -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("datatype", "cell", "extra", "reason"),
    [
        ("integer", "4.5", "", "column 'value': '4.5' is not an integer"),
        ("decimal", '"1,5"', "", "column 'value': '1,5' is not a decimal number"),
        ("decimal", "abc", "", "column 'value': 'abc' is not a decimal number"),
        ("double", "1e", "", "column 'value': '1e' is not a number"),
        ("date", "17-05-2023", "", "column 'value': '17-05-2023' is not a date (yyyy-mm-dd)"),
        ("date", "2023-02-30", "", "column 'value': '2023-02-30' is not a date (yyyy-mm-dd)"),
        (
            "boolean",
            "misschien",
            "",
            "column 'value': 'misschien' is not a boolean (true/false, 1/0, yes/no, ja/nee)",
        ),
        ("gYear", "71", "", "column 'value': '71' is not a year (yyyy)"),
        ("iri", "not an iri", "", "column 'value': 'not an iri' is not an absolute IRI"),
        ("decimal", "-0.5", "min = 0", "column 'value': -0.5 is below the minimum 0"),
        ("integer", "11", "max = 10", "column 'value': 11 is above the maximum 10"),
        ("string", "H", "pattern = '[A-G]'", "column 'value': 'H' does not match the pattern [A-G]"),
        ("string", "", "required = true", "column 'value' is empty but required"),
    ],
)
def test_bad_cell_is_a_bad_row_with_its_reason(
    tmp_path: Path, datatype: str, cell: str, extra: str, reason: str
) -> None:
    source = table(tmp_path, f"id,value\n1,ok\n2,{cell}\n", one_column(datatype, extra))
    source.load()
    assert [(p.reason, p.line) for p in source.problems][-1] == (reason, 3)


def test_skip_publishes_good_rows_and_reports_bad_ones_with_line_and_reason(tmp_path: Path) -> None:
    csv = LABELS + "0363010000000003;H;2023-01-01;1\n\n0363010000000004;B;2023-01-01\n"
    source = table(tmp_path, csv)
    triples = source.load()
    assert {t.subject.value for t in triples} == {DWELLING_1, NS + "id/dwelling/0363010000000002"}
    assert [(p.source, p.line, p.reason) for p in source.problems] == [
        (str(tmp_path / "labels.csv"), 4, "column 'label': 'H' does not match the pattern A\\+{0,5}|[B-G]"),
        (str(tmp_path / "labels.csv"), 6, "expected 4 fields, found 3 (delimiter ';')"),
    ]


def test_reject_publishes_nothing_from_a_file_with_bad_rows(tmp_path: Path) -> None:
    csv = LABELS + "0363010000000003;H;2023-01-01;1\n0363010000000004;B;2023-13-01;1\n"
    source = table(tmp_path, csv, MAPPING.replace('on_error = "skip"', 'on_error = "reject"'))
    with pytest.raises(SourceError) as err:
        source.load()
    assert err.value.line == 4
    assert err.value.reason == (
        "column 'label': 'H' does not match the pattern A\\+{0,5}|[B-G] (and 1 more bad rows); nothing is "
        'published (on_error = "reject" in labels.mapping.toml; "skip" publishes the good rows)'
    )


def test_reject_is_the_default(tmp_path: Path) -> None:
    source = table(tmp_path, LABELS + "x;B;2023-01-01;-1\n", MAPPING.replace('on_error = "skip"\n', ""))
    with pytest.raises(SourceError, match="column 'index': -1 is below the minimum 0"):
        source.load()


def test_row_repeating_a_subject_is_a_bad_row(tmp_path: Path) -> None:
    source = table(tmp_path, LABELS + "0363010000000001;B;2023-01-01;1\n")
    source.load()
    [problem] = source.problems
    assert (problem.line, problem.reason) == (4, f"subject <{DWELLING_1}> was already made by line 2")


def test_empty_subject_cell_is_a_bad_row(tmp_path: Path) -> None:
    source = table(tmp_path, LABELS + ";B;2023-01-01;1\n")
    source.load()
    assert [(p.line, p.reason) for p in source.problems] == [
        (4, "column 'vbo_id' is empty; the subject needs it")
    ]


# -- what stops the whole file ------------------------------------------------------------


def load_error(source: CsvTable) -> SourceError:
    with pytest.raises(SourceError) as err:
        source.load()
    return err.value


def test_wrong_delimiter_is_named_with_a_hint(tmp_path: Path) -> None:
    error = load_error(table(tmp_path, LABELS.replace(";", ",")))
    assert (error.source, error.line) == (str(tmp_path / "labels.csv"), 1)
    assert error.reason == (
        "the header has no column 'label' (and 3 more), named by columns.label in labels.mapping.toml "
        "(found 'vbo_id,label,registered,index' with delimiter ';'; the header looks ','-separated: "
        "set delimiter in the mapping)"
    )


def test_missing_column_is_named_with_the_mapping_key(tmp_path: Path) -> None:
    error = load_error(table(tmp_path, "vbo_id;label;index\n0363010000000001;B;1\n"))
    assert error.line == 1
    assert error.reason.startswith(
        "the header has no column 'registered', named by columns.registered in labels.mapping.toml"
    )


def test_template_placeholder_that_is_no_column_is_named(tmp_path: Path) -> None:
    mapping = MAPPING.replace("verblijfsobject/{vbo_id}", "verblijfsobject/{vbo}")
    error = load_error(table(tmp_path, mapping=mapping))
    assert error.reason.startswith(
        "the header has no column 'vbo', named by link[0].iri in labels.mapping.toml"
    )


def test_latin1_file_declared_utf8_names_the_line_and_byte(tmp_path: Path) -> None:
    csv = LABELS + "0363010000000003;B;Café;1\n"
    error = load_error(table(tmp_path, csv, encoding="latin-1"))
    assert (error.source, error.line) == (str(tmp_path / "labels.csv"), 4)
    assert error.reason == (
        'not utf-8: byte 0xe9 at column 23; set encoding in labels.mapping.toml (e.g. encoding = "latin-1")'
    )


def test_broken_quoting_is_named_with_its_line(tmp_path: Path) -> None:
    error = load_error(table(tmp_path, LABELS + '0363010000000003;"B"x;2023-01-01;1\n'))
    assert error.line == 4 and error.reason.startswith("not valid CSV (")


def test_empty_file_has_no_header(tmp_path: Path) -> None:
    error = load_error(table(tmp_path, ""))
    assert (error.line, error.reason) == (1, "empty: no header row")


def test_missing_csv_is_an_error_and_has_no_fingerprint(tmp_path: Path) -> None:
    source = CsvTable.make(tmp_path / "nope.csv", {}, ENV)
    assert source.fingerprint() == ""
    (tmp_path / "nope.mapping.toml").write_text(MAPPING)
    assert load_error(source).reason.startswith("cannot be read")


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (
            'delimiter = ";"',
            'delimter = ";"',
            "delimter: unknown key (expected one of columns, decimal_separator, ",
        ),
        (
            'datatype = "date"',
            'datatyp = "date"',
            "columns.registered.datatyp: unknown key (expected one of ",
        ),
        (
            '"dsgo:energyLabel"',
            '"dsg:energyLabel"',
            "columns.label.property: unknown prefix 'dsg' in 'dsg:energyLabel' (known: ",
        ),
        (
            '["bot:Zone"]',
            '["Zone"]',
            "subject.types[0]: expected a prefixed name (bot:Building) or an IRI, got 'Zone'",
        ),
        (
            "id/dwelling/{vbo_id}",
            "id/dwelling/{}",
            "subject.iri: empty placeholder {} in 'id/dwelling/{}'; name a column",
        ),
        (
            "id/dwelling/{vbo_id}",
            "id/dwelling/{vbo_id",
            "subject.iri: unbalanced { or } in 'id/dwelling/{vbo_id'",
        ),
        (
            "id/dwelling/{vbo_id}",
            "id/dwelling {vbo_id}",
            "subject.iri: 'id/dwelling {vbo_id}' does not make an IRI (",
        ),
        (
            'datatype = "decimal"',
            'datatype = "float"',
            "columns.index.datatype: expected one of string, integer, ",
        ),
        ("pattern = 'A", "pattern = '(A", "columns.label.pattern: not a regular expression ("),
        (
            'delimiter = ";"',
            'delimiter = "::"',
            "delimiter: expected one character other than a quote or newline",
        ),
        ('delimiter = ";"', 'encoding = "klingon"', "encoding: unknown encoding 'klingon'"),
        ('on_error = "skip"', 'on_error = "ignore"', "on_error: expected 'skip' or 'reject', got 'ignore'"),
        ("min = 0", 'min = "0"', "columns.index.min: expected a number, got '0'"),
        ("required = true", 'required = "yes"', "columns.label.required: expected true or false, got 'yes'"),
        ('[[link]]\nproperty = "dsgo:bagVerblijfsobject"\n', "[[link]]\n", "link[0].property: missing"),
        ("[subject]", "[subjects]", "subjects: unknown key"),
    ],
)
def test_mapping_mistake_names_the_mapping_file_and_key(
    tmp_path: Path, old: str, new: str, reason: str
) -> None:
    assert old in MAPPING
    error = load_error(table(tmp_path, mapping=MAPPING.replace(old, new, 1)))
    assert error.source == str(tmp_path / "labels.mapping.toml")
    assert error.reason.startswith(reason), error.reason


def test_mapping_that_is_not_toml_names_its_line(tmp_path: Path) -> None:
    error = load_error(table(tmp_path, mapping=MAPPING.replace("[columns.index]", "[columns.index")))
    assert error.source == str(tmp_path / "labels.mapping.toml")
    assert error.line == 18 and error.reason.startswith("not valid TOML (")


def test_missing_mapping_says_how_to_name_it(tmp_path: Path) -> None:
    path, mapping = write(tmp_path)
    mapping.unlink()
    error = load_error(CsvTable.make(path, {}, ENV))
    assert (error.source, error.reason) == (
        str(mapping),
        "mapping file not found (name it with mapping = in the [[source]])",
    )


# -- in a node ----------------------------------------------------------------------------


def test_mapping_path_is_relative_to_the_node_file(tmp_path: Path) -> None:
    sources = (
        '[[source]]\nname = "labels"\ntype = "csv"\npath = "data/labels.csv"\nmapping = "maps/labels.toml"\n'
    )
    [source] = load_node_settings(write_node(tmp_path, sources=sources), {}).sources
    assert source.options["mapping"] == (tmp_path / "maps" / "labels.toml").resolve()
    assert source.path == (tmp_path / "data" / "labels.csv").resolve()


def test_fingerprint_changes_with_the_mapping(tmp_path: Path) -> None:
    source = table(tmp_path)
    before = source.fingerprint()
    bump(tmp_path / "labels.mapping.toml", MAPPING.replace("min = 0", "min = 0\nmax = 5"))
    assert source.fingerprint() not in ("", before)


def labels_source(tmp_path: Path) -> tuple[Sources, Store]:
    path, mapping = write(tmp_path)
    settings = SourceSettings("labels", "csv", path, {"mapping": mapping})
    store = Store(None)
    return Sources((settings,), store, ENV), store


def label_of(store: Store, subject: str = DWELLING_1) -> list[str]:
    return [t.object.value for t in store.describe(subject) if t.predicate.value == DSGO + "energyLabel"]


def test_changed_csv_is_reread(tmp_path: Path) -> None:
    sources, store = labels_source(tmp_path)
    assert sources.refresh("labels") is True and label_of(store) == ["A++"]
    bump(tmp_path / "labels.csv", LABELS.replace("A++", "A+++"))
    assert sources.refresh("labels") is True
    assert label_of(store) == ["A+++"]


def test_changed_mapping_rereads_the_table(tmp_path: Path) -> None:
    sources, store = labels_source(tmp_path)
    sources.refresh("labels")
    bump(tmp_path / "labels.mapping.toml", MAPPING.replace("dsgo:energyLabel", "dsgo:label"))
    assert sources.refresh("labels") is True
    assert label_of(store) == []


def test_broken_csv_keeps_the_last_good_version_and_shows_in_health(tmp_path: Path) -> None:
    sources, store = labels_source(tmp_path)
    sources.refresh("labels")
    bump(tmp_path / "labels.csv", LABELS.replace(";", ","))
    assert sources.refresh("labels") is False
    assert label_of(store) == ["A++"]
    health = sources.health()["labels"]
    assert (health["status"], health["triples"], health["error"]["line"]) == ("failed", 10, 1)
    assert "the header has no column 'label'" in health["error"]["detail"]


def test_skipped_rows_show_as_warnings_in_health(tmp_path: Path) -> None:
    sources, _ = labels_source(tmp_path)
    bump(tmp_path / "labels.csv", LABELS + "0363010000000003;H;2023-01-01;1\n")
    sources.refresh("labels")
    health = sources.health()["labels"]
    assert (health["status"], health["triples"], health["warning_count"]) == ("ok", 10, 1)
    assert health["warnings"] == [
        {
            "detail": f"{tmp_path / 'labels.csv'}:4: column 'label': 'H' does not match the pattern A\\+{{0,5}}|[B-G]",
            "line": 4,
        }
    ]


def test_warnings_clear_when_the_rows_are_fixed(tmp_path: Path) -> None:
    sources, _ = labels_source(tmp_path)
    bump(tmp_path / "labels.csv", LABELS + "0363010000000003;H;2023-01-01;1\n")
    sources.refresh("labels")
    bump(tmp_path / "labels.csv", LABELS + "0363010000000003;G;2023-01-01;1\n")
    sources.refresh("labels")
    assert "warnings" not in sources.health()["labels"]


def test_mapping_example_of_the_module_docstring_reads_a_table(tmp_path: Path) -> None:
    doc = connectors.table.__doc__ or ""
    example = textwrap.dedent(doc[doc.index("    # labels.mapping.toml") : doc.index("Where the mapping is")])
    csv = "vbo_id;label;registered;index\n0363010000000001;A+;17-05-2023;1,2\n"
    source = table(tmp_path, csv, example)
    assert about(source.load(), DWELLING_1)[DSGO + "energyLabelDate"] == [typed("2023-05-17", "date")]
    assert source.problems == []


def test_loading_leaves_garbage_collection_as_it_was(tmp_path: Path) -> None:
    source = table(tmp_path)
    source.load()
    assert gc.isenabled()
    gc.disable()
    try:
        source.load()
        assert not gc.isenabled()
    finally:
        gc.enable()
