"""The workbench's pages: home, resources (this node's and the federation's), search,
SPARQL over the party's view, federated questions, and the operators' policy and audit.

Each handler takes the workbench, the request and the logged-in person, and renders a
template; reads go through ``Access`` (this node) or ``Federation`` (other nodes).
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import html
import io
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pyoxigraph as ox
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import BadRequest, HttpError, NotFound, UpstreamError
from gateway.formats import FORMATS, Format, Page
from gateway.http.resources import notice_for
from gateway.http.respond import audit
from gateway.http.sparql import refuse_service
from gateway.node import Built, Representation
from gateway.policy.model import Caller
from gateway.policy.report import grant_table
from gateway.web.guard import SECURITY_HEADERS, Person, check_form
from gateway.web.picture import report_picture
from gateway.web.reading import Reading, collection_parts, local_collection, local_resource, remote_resource
from gateway.web.render import WorkbenchLinker, fragment, resource_href, value_of
from gateway.web.workbench import Workbench

__all__ = ["PAGES"]

_VOID = "http://rdfs.org/ns/void#"
_SEE_ALSO = "http://www.w3.org/2000/01/rdf-schema#seeAlso"
_SEARCHED = (
    "http://www.w3.org/2000/01/rdf-schema#label",
    "https://vocab.dsgo.example/def#address",
    "http://purl.org/dc/terms/title",
)
_BY_NAME = {f.name: f for f in FORMATS}


def _party_names(parties: list[Any]) -> dict[str, str]:
    return {p.party_id: p.name for p in parties}


async def _namespaces(wb: Workbench) -> tuple[str, ...]:
    """This node's namespace and those the registry lists (none while it cannot be read:
    this node's own pages do not need it)."""
    try:
        others = [o.namespace for o in await wb.federation.owners()] if wb.federation else []
    except HttpError:
        others = []
    return (wb.node.namespace, *[ns for ns in others if ns != wb.node.namespace])


# -- home --------------------------------------------------------------------------------


def _classes(counts: dict[str, int], namespace: str, vocab: Any) -> list[dict[str, Any]]:
    out = []
    for cls, count in sorted(counts.items(), key=lambda item: vocab.curie(item[0])):
        name = vocab.curie(cls)
        out.append(
            {
                "name": name,
                "count": count,
                "href": resource_href(namespace + "collections/" + quote(name, safe=":")),
            }
        )
    return out


def _catalog_classes(triples: list[ox.Triple], vocab: Any) -> list[dict[str, Any]]:
    """The classes, counts and collections a node's VoID description lists."""
    by_part: dict[Any, dict[str, str]] = {}
    for t in triples:
        key = {_VOID + "class": "class", _VOID + "entities": "count", _SEE_ALSO: "collection"}.get(
            t.predicate.value
        )
        if key is not None:
            by_part.setdefault(t.subject, {})[key] = value_of(t.object)
    parts = [p for p in by_part.values() if "class" in p and "collection" in p]
    return [
        {
            "name": vocab.curie(p["class"]),
            "count": p.get("count", "?"),
            "href": resource_href(p["collection"]),
        }
        for p in sorted(parts, key=lambda p: vocab.curie(p["class"]))
    ]


async def _active_parties(wb: Workbench) -> list[Any]:
    assert wb.federation is not None
    now = dt.datetime.fromtimestamp(wb.clock(), dt.UTC)
    listed = await wb.federation.parties()
    return [p for p in listed if p.party_id != wb.party and p.active_at(now) is None]


def _party_entry(party: Any, read: Any, vocab: Any) -> dict[str, Any]:
    readable = read is not None and read.status == "ok"
    return {
        "id": party.party_id,
        "name": party.name,
        "roles": [r for r in party.roles if r not in ("ServiceProvider", "ServiceConsumer")],
        "status": read.status if read is not None else "no node",
        "classes": _catalog_classes(read.triples, vocab) if readable else [],
    }


async def _federation_parties(wb: Workbench) -> list[dict[str, Any]] | None:
    """Every other active party the registry lists, with its collections read live; None
    while the registry cannot be read."""
    if wb.federation is None:
        return []
    try:
        parties = await _active_parties(wb)
    except HttpError:
        return None
    served = [p for p in parties if p.namespaces and p.endpoint]
    reads = await asyncio.gather(*(wb.federation.read(p.namespaces[0] + ".well-known/void") for p in served))
    catalogs = {r.owner.party_id: r for r in reads if r.owner is not None}
    return [_party_entry(p, catalogs.get(p.party_id), wb.node.vocab) for p in parties]


async def home(wb: Workbench, request: Request, person: Person) -> Response:
    node = wb.node
    counts, note = await asyncio.to_thread(node.access.class_counts, wb.grant(), node.namespace)
    return wb.render(
        "home.html",
        request,
        person,
        sources=node.sources.health(),
        policy=node.access.health(),
        classes=_classes(counts, node.namespace, node.vocab),
        note=note,
        parties=await _federation_parties(wb),
    )


# -- resources ---------------------------------------------------------------------------


def _checked_iri(request: Request) -> str:
    iri = request.query_params.get("iri", "")
    try:
        ox.NamedNode(iri)
    except ValueError:
        raise BadRequest("give the resource's IRI: ?iri=https://...") from None
    if not iri.startswith(("http://", "https://")) or len(iri) > 2000:
        raise BadRequest("give the resource's http(s) IRI: ?iri=https://...")
    return iri


def _build_local(wb: Workbench, iri: str) -> Built | None:
    parts = collection_parts(iri) if iri.startswith(wb.node.namespace + "collections/") else None
    if parts is not None:
        return local_collection(wb.node, wb.grant(), *parts)
    grant = wb.grant()
    built = local_resource(wb.node, grant, iri)
    if built is None:
        return None
    subject = ox.NamedNode(iri)
    told = notice_for(wb.node, grant, iri, [t for t in built.triples if t.subject == subject])
    if told is None:
        return built
    page = Page(built.page.vocab, built.page.namespace, iri, notes=(told.text(wb.node.vocab.curie),))
    return dataclasses.replace(built, page=page, told=told)


def _download(body: bytes, fmt: Format, iri: str) -> Response:
    name = quote(iri.rstrip("/").rsplit("/", 1)[-1] or "resource", safe="")
    headers = {**SECURITY_HEADERS, "content-disposition": f'inline; filename="{name}.{fmt.name}"'}
    return Response(body, media_type=fmt.content_type, headers=headers)


async def _local_page(wb: Workbench, request: Request, person: Person, iri: str) -> Response:
    doc = iri.partition("#")[0]
    linker = WorkbenchLinker(wb.node.vocab, await _namespaces(wb))
    wanted = request.query_params.get("format")
    if wanted in _BY_NAME:
        fmt = _BY_NAME[wanted]
    else:
        fmt = Format(
            "workbench",
            "text/html",
            lambda triples, page: fragment(wb.env, triples, page.subject, linker, page.notes).encode(),
        )
    key = ("workbench", wb.grant().key, doc, linker.namespaces)
    rep = await wb.node.represent_async(key, fmt, lambda: _build_local(wb, doc))
    if rep is None:
        raise NotFound(f"{doc} is not on this node, or {wb.settings.name} may not see it")
    _audit(wb, request, person, rep)
    if wanted in _BY_NAME:
        return _download(rep.body, fmt, doc)
    return wb.render(
        "resource.html",
        request,
        person,
        iri=doc,
        body=rep.body.decode(),
        title=_heading(rep.body.decode()),
        owner=None,
        formats=_formats(doc),
        seconds=None,
    )


def _heading(body: str) -> str:
    """The page's first heading (the resource's label), as text, for its <title>."""
    found = re.search(r"<h1>(.*?)</h1>", body, re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip() if found else ""


def _audit(wb: Workbench, request: Request, person: Person, rep: Representation) -> None:
    audit(wb.node.audit, request, Caller(f"{wb.party} workbench:{person.username}"), rep)


def _formats(iri: str) -> list[tuple[str, str]]:
    return [
        (label, resource_href(iri) + "&format=" + name)
        for label, name in (("Turtle", "turtle"), ("JSON-LD", "jsonld"), ("N-Triples", "ntriples"))
    ]


def _refusal(reading: Reading, owner: str, party: str) -> HttpError | None:
    """Why a remote resource has no page, as an error; None when it was read."""
    if reading.status == "not found":
        return NotFound(f"{owner} has no {reading.iri}, or does not show it to {party}")
    if reading.status != "ok":
        return UpstreamError(f"{owner} could not be read: {reading.status}")
    return None


async def _remote_page(wb: Workbench, request: Request, person: Person, iri: str) -> Response:
    assert wb.federation is not None
    reading = await remote_resource(wb.federation, wb.node, wb.grant(), iri)
    if reading.owner is None:
        return wb.render("outside.html", request, person, iri=iri)
    names = _party_names(await wb.federation.parties())
    owner = {"id": reading.owner.party_id, "name": names.get(reading.owner.party_id, reading.owner.party_id)}
    refusal = _refusal(reading, owner["name"], wb.settings.name)
    if refusal is not None:
        raise refusal
    wanted = request.query_params.get("format")
    if wanted in _BY_NAME:
        fmt = _BY_NAME[wanted]
        return _download(fmt.render(reading.triples, wb.node.page(reading.iri)), fmt, reading.iri)
    notes: tuple[str, ...] = ()
    if reading.told or reading.withheld:
        notes = (reading.told.text(wb.node.vocab.curie, owner["name"], wb.settings.name),)
    linker = WorkbenchLinker(wb.node.vocab, await _namespaces(wb))
    body = fragment(wb.env, [*reading.triples, *reading.extra], reading.iri, linker, notes)
    return wb.render(
        "resource.html",
        request,
        person,
        iri=reading.iri,
        body=body,
        title=_heading(body),
        owner=owner,
        formats=_formats(reading.iri),
        seconds=reading.seconds,
    )


async def resource(wb: Workbench, request: Request, person: Person) -> Response:
    iri = _checked_iri(request)
    if iri.startswith(wb.node.namespace):
        return await _local_page(wb, request, person, iri)
    if wb.federation is None:
        return wb.render("outside.html", request, person, iri=iri)
    return await _remote_page(wb, request, person, iri)


# -- search and SPARQL -------------------------------------------------------------------


def _search(wb: Workbench, text: str) -> list[dict[str, str]]:
    """Resources of the party's view whose label or address contains ``text`` (any case)."""
    if wb.node.remote is not None:
        return []
    view = wb.node.access.view(wb.grant())
    wanted = text.casefold()
    found: dict[str, dict[str, str]] = {}
    for predicate in _SEARCHED:
        for quad in view.quads_for_pattern(None, ox.NamedNode(predicate), None):
            if isinstance(quad.subject, ox.NamedNode) and wanted in value_of(quad.object).casefold():
                found.setdefault(
                    quad.subject.value,
                    {
                        "iri": quad.subject.value,
                        "text": value_of(quad.object),
                        "href": resource_href(quad.subject.value),
                    },
                )
    return sorted(found.values(), key=lambda r: r["text"].lower())[:100]


async def search(wb: Workbench, request: Request, person: Person) -> Response:
    q = request.query_params.get("q", "").strip()[:200]
    if q.startswith(("http://", "https://")):
        return Response(status_code=303, headers={**SECURITY_HEADERS, "location": resource_href(q)})
    results = await asyncio.to_thread(_search, wb, q) if q else []
    return wb.render("search.html", request, person, q=q, results=results)


def _cell(term: Any, vocab: Any) -> dict[str, str | None]:
    if isinstance(term, ox.NamedNode):
        return {"text": vocab.curie(term.value), "href": resource_href(term.value)}
    return {"text": "" if term is None else term.value, "href": None}


def _run_sparql(wb: Workbench, query: str) -> dict[str, Any]:
    view = wb.node.access.view(wb.grant())
    timeout, max_results = wb.sparql_limits
    try:
        result = view.query(query, base_iri=wb.node.namespace, prefixes=wb.node.vocab.prefixes)
    except SyntaxError as exc:
        raise BadRequest(f"the query does not parse: {exc.msg or exc}") from None
    except (ValueError, OSError) as exc:
        raise BadRequest(f"the query cannot run: {exc}") from None
    if isinstance(result, ox.QueryBoolean):
        return {"boolean": bool(result)}
    deadline = time.monotonic() + timeout
    if isinstance(result, ox.QuerySolutions):
        variables = [v.value for v in result.variables]
        rows = [[row[v] for v in variables] for row in _bounded(result, max_results, deadline)]
    else:
        variables = ["subject", "predicate", "object"]
        rows = [[t.subject, t.predicate, t.object] for t in _bounded(result, max_results, deadline)]
    return {"variables": variables, "rows": rows}


def _bounded(result: Any, max_results: int, deadline: float) -> list[Any]:
    rows = []
    for row in result:
        rows.append(row)
        if len(rows) >= max_results or time.monotonic() > deadline:
            break
    return rows


def _csv(variables: list[str], rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180, as SPARQL 1.1 CSV results
    writer.writerow(variables)
    writer.writerows([["" if v is None else v.value for v in row] for row in rows])
    return out.getvalue().encode()


def _results_file(result: dict[str, Any], kind: str) -> Response:
    """SPARQL results to download: CSV (RFC 4180) or JSON."""
    if kind == "csv":
        body, media = _csv(result["variables"], result["rows"]), "text/csv"
    else:
        rows = [[None if v is None else v.value for v in r] for r in result["rows"]]
        body, media = orjson.dumps({"head": {"vars": result["variables"]}, "rows": rows}), "application/json"
    disposition = f'attachment; filename="results.{kind}"'
    return Response(body, media_type=media, headers={**SECURITY_HEADERS, "content-disposition": disposition})


async def sparql(wb: Workbench, request: Request, person: Person) -> Response:
    query = request.query_params.get("query", "").strip()
    remote = wb.node.remote is not None
    if not query or remote:
        page: dict[str, Any] = {"query": query or _EXAMPLE_SPARQL, "result": None, "remote": remote}
        return wb.render("sparql.html", request, person, **page)
    refuse_service(query)
    result = await asyncio.to_thread(_run_sparql, wb, query)
    download = request.query_params.get("download")
    if download in ("csv", "json") and "rows" in result:
        return _results_file(result, download)
    if "rows" in result:
        result["cells"] = [[_cell(v, wb.node.vocab) for v in row] for row in result["rows"]]
    links = {
        k: "/workbench/sparql?query=" + quote(query, safe="") + "&download=" + k for k in ("csv", "json")
    }
    return wb.render(
        "sparql.html", request, person, query=query, result=result, downloads=links, remote=False
    )


_EXAMPLE_SPARQL = """SELECT ?building ?label WHERE {
  ?building a bot:Building ; rdfs:label ?label .
} ORDER BY ?label LIMIT 50"""


# -- federated questions -----------------------------------------------------------------


def _examples(folder: Path | None) -> list[dict[str, Any]]:
    """The example questions (``*.rq``; ``# start: IRI`` lines name where the walk starts)."""
    if folder is None or not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.rq")):
        text = path.read_text(encoding="utf-8")
        start = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("# start:")]
        out.append({"name": path.stem, "query": text, "start": start})
    return out


def _example_form(examples: list[dict[str, Any]], name: str | None) -> dict[str, str]:
    chosen = next((e for e in examples if e["name"] == name), examples[0] if examples else None)
    if chosen is None:
        return {"query": "", "start": ""}
    return {"query": chosen["query"], "start": "\n".join(chosen["start"])}


async def _ask(wb: Workbench, form: dict[str, str]) -> dict[str, Any]:
    """Run a federated question from the form; the answer, its table and its picture."""
    if wb.federation is None:
        raise BadRequest("this node has no identity to ask other nodes with")
    start = [line.strip() for line in form["start"].splitlines() if line.strip()]
    if not form["query"].strip() or any(not s.startswith(("http://", "https://")) for s in start):
        raise BadRequest("give a SPARQL query, and start IRIs (http or https), one a line")
    outcome = await wb.federation.run(form["query"], start, wb.budget)
    names = _party_names(await wb.federation.parties())
    names[wb.party] = wb.settings.name
    cells = [[_cell(row.get(v), wb.node.vocab) for v in outcome.variables] for row in outcome.rows]
    return {
        "outcome": outcome,
        "cells": cells,
        "picture": report_picture(outcome.report, names),
        "names": names,
    }


async def query(wb: Workbench, request: Request, person: Person) -> Response:
    examples = _examples(wb.settings.workbench_questions)
    if request.method != "POST":
        form = _example_form(examples, request.query_params.get("example"))
        return wb.render("query.html", request, person, examples=examples, form=form, outcome=None)
    posted = await request.form()
    check_form(request, posted, person.session.csrf)
    form = {"query": str(posted.get("query", "")), "start": str(posted.get("start", ""))}
    answer = await _ask(wb, form)
    return wb.render("query.html", request, person, examples=examples, form=form, **answer)


# -- for operators -----------------------------------------------------------------------


async def policy(wb: Workbench, request: Request, person: Person) -> Response:
    policies = wb.node.access.policies
    rows = grant_table(policies, wb.node.vocab) if policies else []
    return wb.render("policy.html", request, person, rows=rows, health=wb.node.access.health())


async def explain(wb: Workbench, request: Request, person: Person) -> Response:
    party = request.query_params.get("party", "").strip()
    iri = request.query_params.get("iri", "").strip()
    reasons = None
    if party and iri:
        _checked_iri(request)
        reasons = await asyncio.to_thread(wb.node.access.explain, Caller(party), iri)
    parties = await wb.federation.parties() if wb.federation else []
    return wb.render("explain.html", request, person, party=party, iri=iri, reasons=reasons, parties=parties)


async def audit_page(wb: Workbench, request: Request, person: Person) -> Response:
    from gateway.audit.verify import tail, verify

    path = wb.settings.audit_path
    if path is None or not path.exists():
        return wb.render("audit.html", request, person, entries=[], report=None, log_path=path)
    entries, report = await asyncio.to_thread(lambda: (tail(path, 50), verify(path)))
    return wb.render(
        "audit.html", request, person, entries=list(reversed(entries)), report=report, log_path=path
    )


PAGES = (
    ("", home, False, ["GET"]),
    ("resource", resource, False, ["GET"]),
    ("search", search, False, ["GET"]),
    ("sparql", sparql, False, ["GET"]),
    ("query", query, False, ["GET", "POST"]),
    ("policy", policy, True, ["GET"]),
    ("explain", explain, True, ["GET"]),
    ("audit", audit_page, True, ["GET"]),
)
