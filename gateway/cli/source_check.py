"""``dsgo source check FILE``: what a source would publish, before a node serves it.

Reads FILE with the connector its extension names, exactly as a node would: ``.ifc`` an
IFC model, ``.csv``/``.tsv``/``.txt`` a CSV table with its mapping (``--mapping``, by
default ``FILE``'s name + ``.mapping.toml``), ``.ttl``/``.nt``/``.nq``/``.trig``/``.jsonld``
RDF. It prints the triple count, the resources per class, a few sample resources in
Turtle and the problems (bad rows skipped, odd GlobalIds). With ``--emit
turtle|ntriples|jsonld`` it writes the triples themselves to stdout and the summary to
stderr. Progress goes to stderr: a bar on a terminal, a line per phase otherwise.

Exit status: 0 clean, 1 published but with problems, 2 an error (one line ``dsgo: ...``).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import pyoxigraph as ox

from connectors import SourceEnv, ifc, rdf_file, table
from gateway.errors import ConfigError, SourceError
from gateway.formats import FORMATS, Page
from gateway.vocab import Vocab, load_vocab

__all__ = ["DEFAULT_BASE", "add_parser", "check"]

DEFAULT_BASE = "https://data.local.example/"
_EMIT = ("turtle", "ntriples", "jsonld")
_CSV = (".csv", ".tsv", ".txt")
_SAMPLES, _SAMPLE_LINES = 3, 14
_RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``dsgo source check`` (called by ``gateway.cli``)."""
    source = subparsers.add_parser("source", help="check a data source before a node serves it")
    actions = source.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "check", help="what a source would publish (or the triples themselves), and its problems"
    )
    p.add_argument("file", type=Path, metavar="FILE", help=".ifc, .csv (with a mapping) or an RDF file")
    p.add_argument(
        "--mapping", type=Path, metavar="M", help="a CSV's mapping file (default FILE.mapping.toml)"
    )
    p.add_argument("--emit", choices=_EMIT, metavar="FORMAT", help="write the triples: " + ", ".join(_EMIT))
    p.add_argument(
        "--base", default=DEFAULT_BASE, metavar="IRI", help=f"the namespace (default {DEFAULT_BASE})"
    )
    p.add_argument("--bag-pand", metavar="ID", help="an IFC model's BAG pand id (16 digits)")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        return check(args.file, args.mapping, args.emit, args.base, args.bag_pand)
    except BrokenPipeError:  # the reader stopped (| head): no traceback, and none at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def check(
    file: Path,
    mapping: Path | None = None,
    emit: str | None = None,
    base: str = DEFAULT_BASE,
    bag_pand: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    if not re.fullmatch(r"https?://[^\s/?#]+/[^\s?#]*", base) or not base.endswith("/"):
        raise ConfigError("--base", "", f"expected an http(s) IRI ending in '/', got {base!r}")
    vocab = load_vocab()
    env = SourceEnv(base_iri=base, contexts=vocab.contexts, prefixes=vocab.prefixes)
    if not file.is_file():
        raise SourceError(file, "not found")
    progress = _Progress(err, file.name)
    try:
        kind, triples, problems = _read(file, mapping, bag_pand, env, progress)
    finally:
        progress.close()
    if emit is not None:
        chosen = next(f for f in FORMATS if f.name == emit)
        body = chosen.render(triples, Page(vocab, base, base)).decode()
        out.write(body if body.endswith("\n") else body + "\n")
        out.flush()
        out = err
    _summary(out, file, kind, triples, problems, vocab)
    return 1 if problems else 0


def _read(
    file: Path, mapping: Path | None, bag_pand: str | None, env: SourceEnv, progress: _Progress
) -> tuple[str, Sequence[ox.Triple], Sequence[SourceError]]:
    """What kind of source ``file`` is, the triples it publishes and its problems."""
    suffix = file.suffix.lower()
    if suffix == ".ifc":
        if bag_pand is not None and not ifc.OPTIONS["bag_pand"][0](bag_pand):
            raise ConfigError("--bag-pand", "", f"{ifc.OPTIONS['bag_pand'][1]}, got {bag_pand!r}")
        model = ifc.IfcModel.make(file, {"bag_pand": bag_pand} if bag_pand else {}, env)
        return "IFC model", model.load(progress), model.problems
    if suffix in _CSV:
        csv = table.CsvTable.make(file, {"mapping": str(mapping)} if mapping else {}, env)
        triples = csv.load(progress)
        return f"CSV table, mapping {csv.mapping}", triples, csv.problems
    if suffix.lstrip(".") in rdf_file.FORMATS:
        return "RDF file", rdf_file.RdfFile.make(file, {}, env).load(), []
    raise SourceError(file, "unknown kind of source; expected .ifc, .csv, .tsv, .txt or an RDF file")


def _summary(
    out: TextIO,
    file: Path,
    kind: str,
    triples: Sequence[ox.Triple],
    problems: Sequence[SourceError],
    vocab: Vocab,
) -> None:
    classes: collections.Counter[str] = collections.Counter()
    types: dict[ox.NamedNode, set[str]] = {}
    for t in triples:
        if not isinstance(t.subject, ox.NamedNode):
            continue
        classes_of = types.setdefault(t.subject, set())
        if t.predicate.value == _RDF_TYPE and isinstance(t.object, ox.NamedNode):
            name = vocab.curie(t.object.value)
            classes[name] += 1
            classes_of.add(name)
    say = out.write
    counts = _plural(len(triples), "triple") + " about " + _plural(len(types), "resource")
    say(f"{file}: {counts} ({kind})\n")
    if classes:
        say("resources per class:\n")
        for name, count in sorted(classes.items(), key=lambda c: (-c[1], c[0])):
            say(f"  {count:8d}  {name}\n")
    if types:
        say("samples:\n")
        for subject in _samples(types):
            say(_sample(triples, subject, vocab))
    if problems:
        say(f"problems ({len(problems)}):\n")
        for problem in problems:
            say(f"  {problem.detail}\n")
    else:
        say("problems: none\n")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _samples(types: dict[ox.NamedNode, set[str]]) -> list[ox.NamedNode]:
    """The first resources of the first classes met (a site, a building, a storey), then any."""
    chosen: list[ox.NamedNode] = []
    covered: set[str] = set()
    for subject, classes in types.items():
        if len(chosen) < _SAMPLES and classes - covered:
            chosen.append(subject)
            covered |= classes
    rest = (s for s in types if s not in chosen)
    return chosen + [s for s, _ in zip(rest, range(_SAMPLES - len(chosen)), strict=False)]


def _sample(triples: Sequence[ox.Triple], subject: ox.NamedNode, vocab: Vocab) -> str:
    """The subject's triples (and its blank-node values') as indented Turtle, cut short."""
    own = [t for t in triples if t.subject == subject]
    nested = {t.object for t in own if isinstance(t.object, ox.BlankNode)}
    own += [t for t in triples if t.subject in nested]
    text = (ox.serialize(own, format=ox.RdfFormat.TURTLE, prefixes=vocab.prefixes) or b"").decode()
    lines = [line for line in text.splitlines() if line and not line.startswith("@prefix")]
    if len(lines) > _SAMPLE_LINES:
        lines = [*lines[:_SAMPLE_LINES], f"\t... ({len(lines) - _SAMPLE_LINES} more lines)"]
    return "".join(f"    {line.replace(chr(9), '    ')}\n" for line in lines)


class _Progress:
    """A bar on a terminal (redrawn at most ten times a second), else a line per phase."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self.stream, self.name = stream, name
        self.tty = stream.isatty()
        self.phase: str | None = None
        self.drawn_at = 0.0
        self.drawn = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.tty:
            if phase != self.phase:
                self.stream.write(f"{self.name}: {phase}" + (f" ({total})" if total else "") + "\n")
                self.phase = phase
            return
        now = time.monotonic()
        if phase == self.phase and done < total and now - self.drawn_at < 0.1:
            return
        self.phase, self.drawn_at, self.drawn = phase, now, True
        if total:
            filled = 30 * min(done, total) // total
            line = f"{phase} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}"
        else:
            line = f"{phase} ..."
        self.stream.write(f"\r{self.name}: {line}\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
