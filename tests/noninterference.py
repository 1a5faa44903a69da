"""Non-interference, as a reusable kit: stores that differ only outside a caller's view,
and everything a caller can receive from a node, normalised for comparison.

The property (DESIGN.md, "Non-interference"): for a caller, two stores that differ only
in triples outside that caller's view give byte-identical replies on every read path.

- ``variants(world, caller)`` draws a second dataset from ``world``'s by edits outside
  the caller's view: values of withheld fields changed, withheld fields added or
  removed, hidden resources added (``EXTRA``) or removed. An edit is kept only if the
  caller's view (``reference_view``, written from the policy semantics, not from the
  engine) stays the same, so conditions on withheld values cannot make a variant that
  changes the view itself.
- ``replies(harness, caller)`` reads every read path a caller has (GET in every format,
  HEAD, HTML, collections and their pages, ``POST /resources``, the self-description,
  ``/sparql`` with adversarial shapes in every result format, ``/delegation``, the
  federation report of a query that walks the node) and returns each reply as
  (status, headers less ``date`` and request ids, body). Signed delegation tokens are
  compared by their claims less the random ``jti``.

Other suites reuse both: a second view implementation, or the HTML workbench, runs
``replies`` (or its own reader) on ``harness.load(world)`` and on the variant.
"""

from __future__ import annotations

import base64
import dataclasses
import difflib
import pprint
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import orjson
from hypothesis import strategies as st

from gateway.federation.walk import Budget, Federation
from gateway.identity.client import TokenClient
from gateway.identity.parties import Party
from gateway.policy.model import Caller
from tests.kit import FIRM
from tests.test_policy_property import (
    BASE_URL,
    BLANK_VALUES,
    BLANKS,
    CLASSES,
    NS,
    RDF_TYPE,
    S1,
    SUBJECTS,
    VALUES,
    Harness,
    Triple,
    World,
    iri,
    lit,
    reference_view,
    sparql_term,
    union,
)

__all__ = ["EXTRA", "READERS", "Reader", "Reply", "explain", "replies", "reply", "variants"]

#: resources only a variant holds (hidden from the caller, or the edit is dropped)
EXTRA = (NS + "id/building/3", NS + "id/space/2")
NAMED = (*SUBJECTS, *EXTRA)
_EDITS = ("change", "change", "remove", "add", "add", "add_resource", "remove_resource")


def _view(world: World, data: set[Triple], caller: Caller) -> frozenset[Triple]:
    return union(reference_view(dataclasses.replace(world, data=frozenset(data)), caller))


def _hidden(data: set[Triple], view: frozenset[Triple]) -> list[Triple]:
    return sorted(data - view)


def _value(draw: st.DrawFn, subject: tuple[str, ...], predicate: str) -> tuple[str, ...]:
    pool = BLANK_VALUES if subject[0] == "blank" else VALUES
    return draw(pool.get(predicate, VALUES[RDF_TYPE]))


def _change(draw: st.DrawFn, data: set[Triple], view: frozenset[Triple]) -> set[Triple] | None:
    hidden = _hidden(data, view)
    if not hidden:
        return None
    s, p, o = draw(st.sampled_from(hidden))
    return (data - {(s, p, o)}) | {(s, p, _value(draw, s, p[1]))}


def _remove(draw: st.DrawFn, data: set[Triple], view: frozenset[Triple]) -> set[Triple] | None:
    hidden = _hidden(data, view)
    return None if not hidden else data - {draw(st.sampled_from(hidden))}


def _add(draw: st.DrawFn, data: set[Triple], view: frozenset[Triple]) -> set[Triple] | None:
    named = st.sampled_from(NAMED).map(iri)
    subject = draw(st.one_of(named, st.sampled_from(BLANKS).map(lambda b: ("blank", b))))
    pool = BLANK_VALUES if subject[0] == "blank" else VALUES
    predicate = draw(st.sampled_from(sorted(pool)))
    return data | {(subject, iri(predicate), _value(draw, subject, predicate))}


def _add_resource(draw: st.DrawFn, data: set[Triple], view: frozenset[Triple]) -> set[Triple] | None:
    subject = iri(draw(st.sampled_from(EXTRA)))
    fields = draw(st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=4, unique=True))
    cls = draw(st.sampled_from(CLASSES))
    return data | {(subject, iri(RDF_TYPE), iri(cls))} | {(subject, iri(p), draw(VALUES[p])) for p in fields}


def _remove_resource(draw: st.DrawFn, data: set[Triple], view: frozenset[Triple]) -> set[Triple] | None:
    shown = {s for s, _, _ in view}
    hidden = sorted({s for s, _, _ in data if s[0] == "iri" and s not in shown})
    if not hidden:
        return None
    gone = draw(st.sampled_from(hidden))
    return {t for t in data if t[0] != gone}


_EDIT: dict[str, Callable[[st.DrawFn, set[Triple], frozenset[Triple]], set[Triple] | None]] = {
    "change": _change,
    "remove": _remove,
    "add": _add,
    "add_resource": _add_resource,
    "remove_resource": _remove_resource,
}


@st.composite
def variants(draw: st.DrawFn, world: World, caller: Caller) -> World:
    """``world`` with data that differs from its own only outside ``caller``'s view."""
    view = union(reference_view(world, caller))
    data = set(world.data)
    for _ in range(draw(st.integers(1, 8))):
        edited = _EDIT[draw(st.sampled_from(_EDITS))](draw, data, view)
        if edited is not None and edited != data and _view(world, edited, caller) == view:
            data = edited
    return dataclasses.replace(world, data=frozenset(data))


# -- what a caller receives ----------------------------------------------------------------

Reply = tuple[int, tuple[tuple[str, str], ...], Any]
_UNSTABLE = frozenset({"date", "x-request-id"})
MEDIA = ("text/turtle", "application/n-triples", "application/ld+json", "text/html")
RESULTS = ("application/sparql-results+json", "application/sparql-results+xml", "text/csv")
RESULTS_TSV = "text/tab-separated-values"
#: the adversarial shapes of ``test_adversarial_sparql_answers_only_from_the_reference_view``
SHAPES = (
    "CONSTRUCT WHERE { ?s ?p ?o }",
    "SELECT * WHERE { ?s ?p ?o }",
    "SELECT DISTINCT ?p WHERE { [] ?p [] }",
    "SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }",
    "SELECT * FROM NAMED <urn:dsgo:meta> WHERE { GRAPH ?g { ?s ?p ?o } }",
    "SELECT * FROM <urn:dsgo:meta> WHERE { ?s ?p ?o }",
    "SELECT DISTINCT ?s ?o WHERE { ?s (<urn:x>|!<urn:x>)+ ?o }",
    "SELECT DISTINCT ?x ?y WHERE { ?x (<urn:x>|!<urn:x>)* ?y }",
    "SELECT DISTINCT ?s ?o WHERE { ?o ^!<urn:x> ?s }",
    "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }",
    "SELECT ?p (COUNT(*) AS ?n) WHERE { ?s ?p ?o } GROUP BY ?p",
    "SELECT ?c (COUNT(DISTINCT ?s) AS ?n) WHERE { ?s a ?c } GROUP BY ?c",
    'SELECT (GROUP_CONCAT(STR(?o); SEPARATOR="|") AS ?all) WHERE { ?s ?p ?o FILTER isLiteral(?o) }',
    "SELECT * WHERE { ?s ?p ?o } ORDER BY DESC(?o) LIMIT 3 OFFSET 1",
    "SELECT ?s WHERE { ?s ?p ?o FILTER NOT EXISTS { ?s a ?c } }",
)
#: values a withheld field may hold, probed with ASK
PROBES = (
    lit("2.5", "decimal"),
    lit("3", "integer"),
    lit("0.5", "decimal"),
    lit("F"),
    lit("1968", "gYear"),
    lit("0363"),
    iri("https://bag.example/pand/2"),
    iri(CLASSES[2]),
)


def reply(answer: httpx.Response) -> Reply:
    headers = tuple(sorted((k, v) for k, v in answer.headers.items() if k not in _UNSTABLE))
    return answer.status_code, headers, answer.content


def _resources(harness: Harness, caller: Caller, out: dict[str, Reply]) -> None:
    for subject in (*SUBJECTS[:-1], *EXTRA, S1 + "/unknown"):
        path = subject.removeprefix(NS[:-1])
        for accept in MEDIA:
            out[f"GET {path} {accept}"] = reply(harness.client.get(path, harness.headers(caller, accept)))
        out[f"GET {path}?format=html"] = reply(
            harness.client.get(path + "?format=html", harness.headers(caller, "*/*"))
        )
        out[f"HEAD {path}"] = reply(harness.client.head(path, harness.headers(caller, "text/html")))


def _collections(harness: Harness, caller: Caller, out: dict[str, Reply]) -> None:
    for cls in ("bot:Building", "bot:Storey", "bot:Space"):
        for query in ("", "?limit=1", "?limit=1&page=2", "?limit=1&page=3", "?page=2"):
            for accept in ("application/n-triples", "text/html"):
                path = f"/collections/{cls}{query}"
                out[f"GET {path} {accept}"] = reply(harness.client.get(path, harness.headers(caller, accept)))
    for path in ("/", "/.well-known/void"):
        for accept in MEDIA:
            out[f"GET {path} {accept}"] = reply(harness.client.get(path, harness.headers(caller, accept)))


def _batch(harness: Harness, caller: Caller, out: dict[str, Reply]) -> None:
    asked = [{"iri": s} for s in (*NAMED, S1 + "/unknown")]
    headers = harness.headers(caller, "application/json") | {"content-type": "application/json"}
    first = harness.client.post("/resources", orjson.dumps({"resources": asked}), headers)
    out["POST /resources"] = reply(first)
    if first.status_code == 200:  # again, naming the tags it gave: 304s where nothing changed
        known = [{"iri": e["iri"], "etag": e["etag"]} for e in first.json()["resources"] if "etag" in e]
        again = harness.client.post("/resources", orjson.dumps({"resources": known or asked}), headers)
        out["POST /resources with etags"] = reply(again)


def _sparql(harness: Harness, caller: Caller, out: dict[str, Reply]) -> None:
    graphs = sorted(g.value for g in harness.store.graphs())
    queries = [
        *SHAPES,
        *(f"DESCRIBE <{s}>" for s in NAMED),
        *(f"ASK {{ ?s ?p ?o FILTER(sameTerm(?o, {sparql_term(o)})) }}" for o in PROBES),
        *(f"ASK {{ <{SUBJECTS[0]}> <{p}> ?o }}" for p in sorted(VALUES)),
    ]
    headers = harness.headers(caller, "application/sparql-results+json") | {
        "content-type": "application/sparql-query"
    }
    for query in queries:
        accept = "text/turtle" if query.startswith(("CONSTRUCT", "DESCRIBE")) else headers["accept"]
        out[f"SPARQL {query}"] = reply(
            harness.client.post("/sparql", query.encode(), headers | {"accept": accept})
        )
    for i, graph in enumerate(graphs):  # a source graph's name changes with every load: keyed by place
        query = f"SELECT * FROM <{graph}> WHERE {{ ?s ?p ?o }}"
        out[f"SPARQL FROM source graph {i}"] = reply(harness.client.post("/sparql", query.encode(), headers))
    for accept in (*RESULTS, RESULTS_TSV):
        out[f"SPARQL {SHAPES[1]} {accept}"] = reply(
            harness.client.post("/sparql", SHAPES[1].encode(), headers | {"accept": accept})
        )
    for accept in MEDIA[:3]:
        out[f"SPARQL {SHAPES[0]} {accept}"] = reply(
            harness.client.post("/sparql", SHAPES[0].encode(), headers | {"accept": accept})
        )


def _policy(type_: str, identifiers: list[str], attributes: list[str]) -> dict[str, Any]:
    resource = {"type": type_, "identifiers": identifiers, "attributes": attributes}
    return {"target": {"resource": resource, "actions": ["ISHARE.READ"]}, "rules": [{"effect": "Permit"}]}


_MASKS = (
    ("bot:Building", ["*"], ["*"]),
    ("bot:Building", ["*"], ["rdfs:label", "dsgo:energyLabel"]),
    ("bot:Storey", ["*"], ["dsgo:rcRoof"]),
    ("bot:Building", [NS + "id/building/1", NS + "id/building/2"], ["rdfs:label"]),
    ("bot:Building", [NS + "id/building/3"], ["dsgo:energyLabel"]),
    ("bot:Space", [NS + "id/space/1"], ["*"]),
)


def _delegation(harness: Harness, caller: Caller, out: dict[str, Reply]) -> None:
    assert caller.party_id is not None
    policies = [_policy(*m) for m in _MASKS]
    mask = {
        "delegationRequest": {
            "policyIssuer": FIRM,
            "target": {"accessSubject": caller.party_id},
            "policySets": [{"policies": policies}],
        }
    }
    headers = harness.headers(caller, "application/json") | {"content-type": "application/json"}
    answer = harness.client.post("/delegation", orjson.dumps(mask), headers)
    status, head, body = reply(answer)
    if status == 200:
        token = orjson.loads(body)["delegation_token"]
        claims = orjson.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        claims.pop("jti")
        body = claims
    out["POST /delegation"] = (status, tuple(h for h in head if h[0] != "content-length"), body)


class _CallerTokens(TokenClient):
    """The caller's own token for the node under test (the walk asks for nothing else)."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http, self._token = http, token

    async def token(self, party_id: str, base_url: str) -> str:
        return self._token

    def forget(self, party_id: str, base_url: str) -> None:
        return None


def _federation(harness: Harness, caller: Caller, out: dict[str, Reply]) -> None:
    token = harness.headers(caller, "*/*")["authorization"].removeprefix("Bearer ")
    node = Party(FIRM, "Test Bouw", "Active", None, None, frozenset(), (), (NS,), BASE_URL)

    async def parties() -> list[Party]:
        return [node]

    async def local(docs: list[str]) -> dict[str, Any]:
        return {}

    engine = Federation(
        caller.party_id or "",
        "https://caller.invalid/",
        _CallerTokens(harness.client.client, token),
        parties,
        local,
        {},
        clock=lambda: 0.0,
    )
    start = [NS + "collections/" + c for c in ("bot:Building", "bot:Storey", "bot:Space")]
    start += [s for s in NAMED if s.startswith(NS)]
    outcome = harness.client.portal.call(
        engine.run, "SELECT ?s ?p ?o WHERE { ?s ?p ?o }", start, Budget(follow="all")
    )
    report = orjson.loads(orjson.dumps(outcome.report))
    report.pop("elapsed_ms")
    for entry in report["nodes"].values():
        entry.pop("time_ms"), entry.pop("read_at")
    rows = sorted(str(sorted((k, str(v)) for k, v in row.items())) for row in outcome.rows)
    out["federation report"] = (200, (), report)
    out["federation rows"] = (200, (), rows)


def explain(differ: list[str], before: dict[str, Reply], after: dict[str, Reply]) -> str:
    """Which paths answered differently, and how the first did (a diff, not two dumps)."""
    first = differ[0]
    lines = [repr(x) for x in (before[first], after.get(first))]
    shown = [
        s.splitlines()
        for s in (pprint.pformat(before[first], width=150), pprint.pformat(after.get(first), width=150))
    ]
    diff = "\n".join(difflib.unified_diff(*shown, "original store", "variant", lineterm="", n=1))
    return f"{len(differ)} paths differ: {differ[:8]}\nfirst, {first}:\n{diff or lines}"


Reader = Callable[[Harness, Caller, dict[str, Reply]], None]
#: the read paths ``replies`` takes; another suite passes its own (HTML pages of a
#: workbench, say) as ``readers=(*READERS, mine)``
READERS: tuple[Reader, ...] = (_resources, _collections, _batch, _sparql, _delegation, _federation)


def replies(harness: Harness, caller: Caller, readers: Sequence[Reader] = READERS) -> dict[str, Reply]:
    """Every reply ``caller`` gets from the harness node on each read path, keyed by path."""
    out: dict[str, Reply] = {}
    for read in readers:
        read(harness, caller, out)
    return out
