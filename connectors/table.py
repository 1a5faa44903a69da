r"""CSV tables as triples, by a small TOML mapping file (read with ``tomllib``).

    # labels.mapping.toml: one resource per row of labels.csv
    delimiter = ";"                  # one character (default ",")
    encoding = "utf-8"               # a Python codec name (default utf-8; a BOM is dropped)
    decimal_separator = ","          # "." (default) or ","
    on_error = "skip"                # or "reject" (default): publish nothing if a row is bad

    [prefixes]                       # optional, on top of the node's (vocab/context.jsonld)
    ep = "https://ep-online.example/def#"

    [subject]
    iri = "id/dwelling/{vbo_id}"     # relative: in the node's namespace; or absolute
    types = ["bot:Zone"]

    [columns.label]                  # one table per mapped column, by its header name
    property = "dsgo:energyLabel"    # prefixed name or absolute IRI
    datatype = "string"              # string integer decimal double date boolean gYear iri
    pattern = 'A\+{0,5}|[B-G]'       # optional: the whole cell must match
    required = true                  # optional: an empty cell is a bad row (else: no triple)

    [columns.registered]
    property = "dsgo:energyLabelDate"
    datatype = "date"
    format = "%d-%m-%Y"              # optional strptime format (default yyyy-mm-dd)

    [columns.index]
    property = "dsgo:energyIndex"
    datatype = "decimal"
    min = 0                          # optional bounds for numbers
    max = 10

    [[link]]                         # IRIs built from cells, e.g. of other parties
    property = "dsgo:bagVerblijfsobject"
    iri = "https://bag.basisregistraties.overheid.nl/id/verblijfsobject/{vbo_id}"

Where the mapping is: the ``mapping`` option of the ``[[source]]`` table, a path relative
to the node's TOML file like ``path`` (the configuration resolves it, see ``Kind.paths``);
without it, ``{name}.mapping.toml`` next to the CSV (``labels.csv`` →
``labels.mapping.toml``). Its keys are checked: an unknown key, an unknown prefix or a
bad ``{placeholder}`` is an error naming the mapping file and the key.

``{column}`` in a template is that row's cell, percent-encoded where an IRI needs it. An
empty cell in the subject makes the row bad; in a link it just leaves the link out.
Booleans are true/false, 1/0, yes/no or ja/nee. Cells are stripped of surrounding spaces.

A bad row (wrong number of fields, a required cell empty, a value not of its datatype,
pattern or bounds, a subject already made by an earlier row) is a ``SourceError``
naming the CSV file, line and column. ``on_error = "skip"`` publishes the good rows and
lists the bad ones in ``problems`` (the node shows them in its health report);
``"reject"`` raises the first and publishes nothing. What stops the whole file is always
raised: the mapping, bytes that are not in the declared encoding, a header without the
mapped columns (with a hint when another delimiter seems to be in use), broken quoting.
"""

from __future__ import annotations

import codecs
import csv
import gc
import io
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyoxigraph as ox

from connectors.base import Progress, SourceEnv, file_fingerprint
from connectors.terms import RDF_TYPE, XSD
from gateway.errors import SourceError

__all__ = ["DATATYPES", "OPTIONS", "PATHS", "CsvTable", "default_mapping"]

OPTIONS = {
    "mapping": (
        lambda v: isinstance(v, str) and v != "",
        "expected the path of the CSV's mapping file (TOML), relative to this file",
    ),
}
PATHS = frozenset({"mapping"})
DATATYPES = ("string", "integer", "decimal", "double", "date", "boolean", "gYear", "iri")

_TRUE, _FALSE = {"true", "1", "yes", "ja"}, {"false", "0", "no", "nee"}
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_DOUBLE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?INF|NaN")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_YEAR = re.compile(r"-?[0-9]{4}")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_IRI_SAFE = re.compile(r"[A-Za-z0-9._~-]*")
_CACHE_SIZE = 4096  # literals remembered per column: label classes and dates repeat


def default_mapping(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.stem + ".mapping.toml")


@dataclass(slots=True)
class CsvTable:
    """One CSV file and its mapping; ``problems`` lists the bad rows of the last load."""

    path: Path
    mapping: Path
    env: SourceEnv
    problems: list[SourceError] = field(default_factory=list)

    @classmethod
    def make(cls, path: Path, options: Mapping[str, Any], env: SourceEnv) -> CsvTable:
        mapping = options.get("mapping")
        return cls(path, Path(mapping) if mapping else default_mapping(path), env)

    def fingerprint(self) -> str:
        """The CSV's and the mapping's stat: either changing re-reads the table."""
        return file_fingerprint(self.path, self.mapping)

    def load(self, progress: Progress | None = None) -> list[ox.Triple]:
        spec = _read_mapping(self.mapping, self.env)
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise SourceError(self.path, f"cannot be read ({exc.strerror or exc})") from None
        text = _decode(self.path, data, spec)
        collecting = gc.isenabled()
        gc.disable()  # rows make acyclic objects only; collecting meanwhile halves the rate
        try:
            triples, problems = _convert(self.path, text, spec, progress)
        finally:
            if collecting:
                gc.enable()
        if problems and spec.on_error == "reject":
            first = problems[0]
            more = f" (and {len(problems) - 1} more bad rows)" if len(problems) > 1 else ""
            raise SourceError(
                self.path,
                f"{first.reason}{more}; nothing is published "
                f'(on_error = "reject" in {self.mapping.name}; "skip" publishes the good rows)',
                first.line,
            )
        self.problems = problems
        return triples


# -- the mapping file -------------------------------------------------------------------


class _Template:
    """``id/dwelling/{vbo_id}``: literal text and column names, split once."""

    def __init__(self, text: str, key: str, where: Path, base: str) -> None:
        self.text, self.key = text, key
        self.parts: list[str] = []
        self.fields: list[str] = []
        pos = 0
        for found in _PLACEHOLDER.finditer(text):
            self.parts.append(text[pos : found.start()])
            name = found.group(1).strip()
            if not name:
                raise SourceError(where, f"{key}: empty placeholder {{}} in {text!r}; name a column")
            self.fields.append(name)
            pos = found.end()
        self.parts.append(text[pos:])
        if any("{" in p or "}" in p for p in self.parts):
            raise SourceError(where, f"{key}: unbalanced {{ or }} in {text!r}; write {{column}}")
        self.base = "" if re.match(r"(https?|urn):", text) else base
        try:
            ox.NamedNode(self.base + "".join(p + "x" for p in self.parts[:-1]) + self.parts[-1])
        except ValueError as exc:
            raise SourceError(where, f"{key}: {text!r} does not make an IRI ({exc})") from None


@dataclass(frozen=True, slots=True)
class _ColumnSpec:
    name: str
    key: str
    property: ox.NamedNode
    datatype: str
    required: bool
    pattern: re.Pattern[str] | None
    low: Decimal | None
    high: Decimal | None
    format: str | None
    lang: str | None


@dataclass(frozen=True, slots=True)
class _Spec:
    path: Path
    delimiter: str
    encoding: str
    decimal_separator: str
    on_error: str
    subject: _Template
    types: tuple[ox.NamedNode, ...]
    columns: tuple[_ColumnSpec, ...]
    links: tuple[tuple[ox.NamedNode, _Template], ...]


class _Reader:
    """Typed access to one mapping table; every error names the mapping file and key."""

    def __init__(self, where: Path, prefix: str, data: Any, allowed: set[str], required: set[str]) -> None:
        self.where, self.prefix = where, prefix
        if not isinstance(data, dict):
            raise SourceError(where, f"{prefix or 'the file'}: expected a table")
        self.data: dict[str, Any] = data
        for key in data:
            if key not in allowed:
                expected = ", ".join(sorted(allowed))
                raise SourceError(where, f"{self.key(key)}: unknown key (expected one of {expected})")
        for key in sorted(required - set(data)):
            raise SourceError(where, f"{self.key(key)}: missing")

    def key(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def get(self, key: str, kind: type | tuple[type, ...], expected: str, default: Any = None) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            raise SourceError(self.where, f"{self.key(key)}: expected {expected}, got {value!r}")
        return value

    def fail(self, key: str, reason: str) -> SourceError:
        return SourceError(self.where, f"{self.key(key)}: {reason}")


def _read_mapping(path: Path, env: SourceEnv) -> _Spec:
    top = _Reader(
        path,
        "",
        _load_toml(path),
        {"delimiter", "encoding", "decimal_separator", "on_error", "prefixes", "subject", "columns", "link"},
        {"subject", "columns"},
    )
    delimiter, encoding, separator, on_error = _options(top)
    names = _Names(_prefixes(top, env))
    subject = _Reader(path, "subject", top.data["subject"], {"iri", "types"}, {"iri"})
    template = _Template(subject.get("iri", str, "an IRI template"), "subject.iri", path, env.base_iri)
    types = subject.get("types", list, "a list of classes, e.g. ['bot:Building']", [])
    type_nodes = tuple(names.iri(subject, f"types[{i}]", t) for i, t in enumerate(types))
    columns = top.get("columns", dict, "a table of [columns.NAME] tables")
    specs = tuple(_column(path, name, value, names.iri) for name, value in columns.items())
    links = _links(top, names, env)
    return _Spec(path, delimiter, encoding, separator, on_error, template, type_nodes, specs, links)


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(path, "mapping file not found (name it with mapping = in the [[source]])") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(path, f"mapping file cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        raise SourceError(path, f"not valid TOML ({exc})", int(line.group(1)) if line else None) from None


def _options(top: _Reader) -> tuple[str, str, str, str]:
    """The mapping's delimiter, encoding, decimal separator and on_error, each checked."""
    delimiter = top.get("delimiter", str, "one character, e.g. ';'", ",")
    if len(delimiter) != 1 or delimiter in '\r\n"':
        raise top.fail(
            "delimiter", f"expected one character other than a quote or newline, got {delimiter!r}"
        )
    encoding = top.get("encoding", str, "a codec name such as 'utf-8' or 'latin-1'", "utf-8")
    try:
        encoding = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    except LookupError:
        raise top.fail("encoding", f"unknown encoding {encoding!r}") from None
    separator = top.get("decimal_separator", str, "'.' or ','", ".")
    if separator not in (".", ","):
        raise top.fail("decimal_separator", f"expected '.' or ',', got {separator!r}")
    on_error = top.get("on_error", str, "'skip' or 'reject'", "reject")
    if on_error not in ("skip", "reject"):
        raise top.fail("on_error", f"expected 'skip' or 'reject', got {on_error!r}")
    return delimiter, encoding, separator, on_error


def _prefixes(top: _Reader, env: SourceEnv) -> dict[str, str]:
    prefixes = dict(env.prefixes)
    extra = top.get("prefixes", dict, "a table of prefix = namespace IRI", {})
    for prefix, ns in extra.items():
        if not isinstance(ns, str) or not re.match(r"(https?|urn):\S+$", ns):
            raise top.fail(f"prefixes.{prefix}", f"expected a namespace IRI, got {ns!r}")
        prefixes[prefix] = ns
    return prefixes


@dataclass(frozen=True, slots=True)
class _Names:
    """Prefixed names (``bot:Building``) or IRIs of a mapping, resolved to IRIs."""

    prefixes: dict[str, str]

    def iri(self, reader: _Reader, key: str, name: Any) -> ox.NamedNode:
        if not isinstance(name, str) or not name:
            raise reader.fail(key, f"expected a prefixed name (bot:Building) or an IRI, got {name!r}")
        full = name if re.match(r"(https?|urn):", name) else self._expand(reader, key, name)
        try:
            return ox.NamedNode(full)
        except ValueError as exc:
            raise reader.fail(key, f"{name!r} is not an IRI ({exc})") from None

    def _expand(self, reader: _Reader, key: str, name: str) -> str:
        prefix, colon, local = name.partition(":")
        if not colon:
            raise reader.fail(key, f"expected a prefixed name (bot:Building) or an IRI, got {name!r}")
        if prefix not in self.prefixes:
            known = ", ".join(sorted(self.prefixes)) or "none"
            raise reader.fail(key, f"unknown prefix {prefix!r} in {name!r} (known: {known})")
        return self.prefixes[prefix] + local


def _links(top: _Reader, names: _Names, env: SourceEnv) -> tuple[tuple[ox.NamedNode, _Template], ...]:
    links: list[tuple[ox.NamedNode, _Template]] = []
    for i, value in enumerate(top.get("link", list, "[[link]] tables", [])):
        link = _Reader(top.where, f"link[{i}]", value, {"property", "iri"}, {"property", "iri"})
        template = _Template(
            link.get("iri", str, "an IRI template"), link.key("iri"), top.where, env.base_iri
        )
        links.append((names.iri(link, "property", link.data["property"]), template))
    return tuple(links)


def _column(
    path: Path, name: str, value: Any, iri: Callable[[_Reader, str, Any], ox.NamedNode]
) -> _ColumnSpec:
    allowed = {"property", "datatype", "required", "pattern", "min", "max", "format", "lang"}
    col = _Reader(path, f"columns.{name}", value, allowed, {"property"})
    datatype = col.get("datatype", str, "one of " + ", ".join(DATATYPES), "string")
    if datatype not in DATATYPES:
        raise col.fail("datatype", f"expected one of {', '.join(DATATYPES)}, got {datatype!r}")
    pattern = _pattern(col)
    low, high = _bound(col, "min", datatype), _bound(col, "max", datatype)
    fmt = col.get("format", str, "a strptime format such as '%d-%m-%Y'")
    if fmt is not None and datatype != "date":
        raise col.fail("format", "format applies to dates only")
    lang = _lang(col, datatype)
    return _ColumnSpec(
        name=name,
        key=col.prefix,
        property=iri(col, "property", col.data["property"]),
        datatype=datatype,
        required=col.get("required", bool, "true or false", False),
        pattern=pattern,
        low=low,
        high=high,
        format=fmt,
        lang=lang,
    )


def _pattern(col: _Reader) -> re.Pattern[str] | None:
    pattern = col.get("pattern", str, "a regular expression")
    try:
        return re.compile(pattern) if pattern is not None else None
    except re.error as exc:
        raise col.fail("pattern", f"not a regular expression ({exc})") from None


def _bound(col: _Reader, key: str, datatype: str) -> Decimal | None:
    bound = col.get(key, (int, float), "a number")
    if bound is None:
        return None
    if datatype not in ("integer", "decimal", "double"):
        raise col.fail(key, f"bounds apply to numbers, not to {datatype}")
    return Decimal(str(bound))


def _lang(col: _Reader, datatype: str) -> str | None:
    lang: str | None = col.get("lang", str, "a language tag such as 'nl'")
    if lang is not None and (
        datatype != "string" or not re.fullmatch(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*", lang)
    ):
        raise col.fail("lang", f"expected a language tag on a string column, got {lang!r}")
    return lang


# -- the table --------------------------------------------------------------------------


def _decode(path: Path, data: bytes, spec: _Spec) -> str:
    try:
        return data.decode(spec.encoding)
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        raise SourceError(
            path,
            f"not {spec.encoding.removesuffix('-sig')}: byte 0x{data[exc.start]:02x} at column "
            f'{exc.start - line_start + 1}; set encoding in {spec.path.name} (e.g. encoding = "latin-1")',
            data.count(b"\n", 0, exc.start) + 1,
        ) from None


class _BadRow(Exception):
    pass


_Term = ox.Literal | ox.NamedNode
_Convert = Callable[[str], _Term]


def _converter(spec: _ColumnSpec, separator: str) -> _Convert:
    """Cell text -> RDF term, or ``_BadRow`` saying why not (checks included)."""
    xsd = ox.NamedNode(XSD + spec.datatype)
    kind, pattern, low, high = spec.datatype, spec.pattern, spec.low, spec.high

    def number(text: str, shape: re.Pattern[str], what: str) -> str:
        if separator == ",":
            text = text.replace(",", ".")
        if not shape.fullmatch(text):
            raise _BadRow(f"{text!r} is not {what}")
        if low is not None or high is not None:
            try:
                value = Decimal(text)
            except InvalidOperation:  # INF, NaN
                raise _BadRow(f"{text!r} is out of bounds") from None
            if low is not None and value < low:
                raise _BadRow(f"{text} is below the minimum {low}")
            if high is not None and value > high:
                raise _BadRow(f"{text} is above the maximum {high}")
        return text

    def convert(text: str) -> _Term:
        if pattern is not None and not pattern.fullmatch(text):
            raise _BadRow(f"{text!r} does not match the pattern {pattern.pattern}")
        if kind == "string":
            return ox.Literal(text, language=spec.lang) if spec.lang else ox.Literal(text)
        if kind == "integer":
            return ox.Literal(str(int(number(text, _INTEGER, "an integer"))), datatype=xsd)
        if kind == "decimal":
            return ox.Literal(number(text, _DECIMAL, "a decimal number"), datatype=xsd)
        if kind == "double":
            return ox.Literal(number(text, _DOUBLE, "a number"), datatype=xsd)
        if kind == "date":
            return ox.Literal(_date(text, spec.format), datatype=xsd)
        if kind == "boolean":
            lowered = text.lower()
            if lowered not in _TRUE and lowered not in _FALSE:
                raise _BadRow(f"{text!r} is not a boolean (true/false, 1/0, yes/no, ja/nee)")
            return ox.Literal("true" if lowered in _TRUE else "false", datatype=xsd)
        if kind == "gYear":
            if not _YEAR.fullmatch(text):
                raise _BadRow(f"{text!r} is not a year (yyyy)")
            return ox.Literal(text, datatype=xsd)
        try:  # iri
            return ox.NamedNode(text)
        except ValueError:
            raise _BadRow(f"{text!r} is not an absolute IRI") from None

    return convert


def _date(text: str, fmt: str | None) -> str:
    try:
        if fmt is not None:
            return datetime.strptime(text, fmt).date().isoformat()
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise _BadRow(f"{text!r} is not a date ({fmt or 'yyyy-mm-dd'})")


def _render(template: _Template, cells: list[str], key: str) -> str:
    """The IRI of ``template`` for one row (``cells`` in template field order)."""
    out = [template.base]
    for part, name, cell in zip(template.parts, template.fields, cells, strict=False):
        if not cell:
            raise _BadRow(f"column {name!r} is empty; {key} needs it")
        out += (
            part,
            cell
            if (cell.isascii() and cell.isalnum()) or _IRI_SAFE.fullmatch(cell)
            else quote(cell, safe=""),
        )
    out.append(template.parts[-1])
    return "".join(out)


def _header(path: Path, reader: Any, spec: _Spec) -> dict[str, int]:
    """The column index of each header name; ``SourceError`` for an empty file, a name
    that appears twice, or a column the mapping names that is not there."""
    row = next((r for r in reader if r), None)
    if row is None:
        raise SourceError(path, "empty: no header row", 1)
    names = [c.strip() for c in row]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in index:
            raise SourceError(path, f"column {name!r} appears twice in the header", reader.line_num)
        index[name] = i
    missing = _missing(spec, index)
    if missing:
        raise SourceError(path, _missing_columns(missing, names, spec), reader.line_num)
    return index


def _missing(spec: _Spec, index: Mapping[str, int]) -> dict[str, str]:
    """The columns the mapping names that the header lacks, each with the first mapping
    key naming it."""
    wanted = [(c.name, c.key) for c in spec.columns]
    wanted += [(f, t.key) for t in (spec.subject, *(t for _, t in spec.links)) for f in t.fields]
    missing: dict[str, str] = {}
    for name, key in wanted:
        if name not in index:
            missing.setdefault(name, key)
    return missing


def _missing_columns(missing: dict[str, str], names: list[str], spec: _Spec) -> str:
    """What to say of the columns the mapping names but the header lacks: the first, how
    many more, what the header holds, and a hint when another delimiter would fit."""
    name, key = next(iter(missing.items()))
    found = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
    others = [d for d in ",;\t|" if d != spec.delimiter and any(d in n for n in names)]
    hint = f"; the header looks {others[0]!r}-separated: set delimiter in the mapping" if others else ""
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return (
        f"the header has no column {name!r}{more}, named by {key} in {spec.path.name} "
        f"(found {found} with delimiter {spec.delimiter!r}{hint})"
    )


@dataclass(frozen=True, slots=True)
class _Step:
    """One mapped column: where it is in a row, and how its cells become terms (each
    distinct cell converted once, up to ``_CACHE_SIZE`` per column)."""

    at: int
    name: str
    predicate: ox.NamedNode
    required: bool
    convert: _Convert
    cache: dict[str, _Term] = field(default_factory=dict)

    def term(self, cell: str) -> _Term:
        term = self.cache.get(cell)
        if term is None:
            try:
                term = self.convert(cell)
            except _BadRow as exc:
                raise _BadRow(f"column {self.name!r}: {exc}") from None
            if len(self.cache) < _CACHE_SIZE:
                self.cache[cell] = term
        return term


@dataclass(frozen=True, slots=True)
class _Plan:
    """How each row of one table becomes triples, from its header and its mapping."""

    spec: _Spec
    width: int
    steps: tuple[_Step, ...]
    subject_at: tuple[int, ...]
    links: tuple[tuple[ox.NamedNode, _Template, tuple[int, ...]], ...]

    @classmethod
    def of(cls, spec: _Spec, index: dict[str, int]) -> _Plan:
        steps = tuple(
            _Step(index[c.name], c.name, c.property, c.required, _converter(c, spec.decimal_separator))
            for c in spec.columns
        )
        links = tuple((p, t, tuple(index[f] for f in t.fields)) for p, t in spec.links)
        return cls(spec, len(index), steps, tuple(index[f] for f in spec.subject.fields), links)

    def row(self, row: list[str], seen: Mapping[str, int]) -> tuple[str, list[ox.Triple]]:
        """The subject IRI of a row and its triples; ``_BadRow`` (or ``ValueError`` for an
        invalid IRI) saying what is wrong with it."""
        if len(row) != self.width:
            raise _BadRow(
                f"expected {self.width} fields, found {len(row)} (delimiter {self.spec.delimiter!r})"
            )
        cells = [c.strip() for c in row]
        iri = _render(self.spec.subject, [cells[i] for i in self.subject_at], "the subject")
        if iri in seen:
            raise _BadRow(f"subject <{iri}> was already made by line {seen[iri]}")
        subject = ox.NamedNode(iri)
        triples = [ox.Triple(subject, RDF_TYPE, t) for t in self.spec.types]
        self._values(subject, cells, triples)
        for predicate, template, at in self.links:
            values = [cells[i] for i in at]
            if all(values):
                triples.append(ox.Triple(subject, predicate, ox.NamedNode(_render(template, values, ""))))
        return iri, triples

    def _values(self, subject: ox.NamedNode, cells: list[str], triples: list[ox.Triple]) -> None:
        for step in self.steps:
            cell = cells[step.at]
            if cell:
                triples.append(ox.Triple(subject, step.predicate, step.term(cell)))
            elif step.required:
                raise _BadRow(f"column {step.name!r} is empty but required")


def _made(
    path: Path, plan: _Plan, row: list[str], seen: Mapping[str, int], line: int
) -> tuple[str, list[ox.Triple]] | SourceError:
    """A row's subject and triples, or the problem with the row (at ``line``)."""
    try:
        return plan.row(row, seen)
    except _BadRow as exc:
        return SourceError(path, str(exc), line)
    except ValueError as exc:  # an IRI made from cells is not valid
        return SourceError(path, f"no valid IRI from this row ({exc})", line)


def _convert(
    path: Path, text: str, spec: _Spec, progress: Progress | None
) -> tuple[list[ox.Triple], list[SourceError]]:
    reader = csv.reader(io.StringIO(text), delimiter=spec.delimiter, strict=True)
    out: list[ox.Triple] = []
    problems: list[SourceError] = []
    total = text.count("\n")
    try:
        plan = _Plan.of(spec, _header(path, reader, spec))
        seen: dict[str, int] = {}
        line = reader.line_num
        for row in reader:
            first, line = line + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            made = _made(path, plan, row, seen, first)
            if isinstance(made, SourceError):
                problems.append(made)
                continue
            iri, triples = made
            seen[iri] = first
            out += triples
            if progress and len(seen) % 4096 == 0:
                progress("converting rows", line, total)
    except csv.Error as exc:
        raise SourceError(path, f"not valid CSV ({exc})", reader.line_num) from None
    if progress:
        progress("converting rows", total, total)
    return out, problems
