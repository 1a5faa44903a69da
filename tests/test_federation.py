"""Federated queries follow live links across real nodes (in process) under each owner's
policy, report honestly on what failed, and keep nothing."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from gateway.federation.limits import Limits
from tests.kit import CORP, FIRM, MUNI, Federation, Pki, endpoint, federation, namespace

pytestmark = pytest.mark.anyio

F, C, M = namespace(FIRM), namespace(CORP), namespace(MUNI)
PREFIXES = """
@prefix bot: <https://w3id.org/bot#> . @prefix dsgo: <https://vocab.dsgo.example/def#> .
@prefix props: <https://w3id.org/props#> . @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
"""
# the municipality owns the building register; homes and models link to it
MUNI_DATA = PREFIXES + "".join(
    f'<id/pand/{i}> a bot:Building ; dsgo:municipalityCode "{code}" ; dsgo:buildingYear "{year}"^^xsd:gYear .\n'
    for i, code, year in ((1, "0363", 1965), (2, "0363", 1972), (3, "0344", 1968), (4, "0363", 2001))
)
CORP_DATA = PREFIXES + "".join(
    f'<id/home/{i}> a bot:Building ; dsgo:energyLabel "{label}" ; dsgo:bagPand <{M}id/pand/{i}> ;'
    f' dsgo:address "Straat {i}" ; props:householdSize {i + 1} .\n'
    for i, label in ((1, "F"), (2, "E"), (3, "G"), (4, "A"))
)
FIRM_DATA = PREFIXES + "".join(
    f"<id/model/{i}> a bot:Building ; dsgo:bagPand <{M}id/pand/{i}> ; dsgo:rcRoof {rc} ; dsgo:rcFacade 1.{i} ;"
    f" props:constructionCost {100000 * i} .\n"
    for i, rc in ((1, "1.5"), (2, "2.5"), (3, "3.5"), (4, "6.0"))
)
CORP_POLICY = f"""
rules:
  - {{id: muni-labels, effect: permit, to: {{parties: [{MUNI}]}}, resources: {{classes: [bot:Building]}},
     fields: [dsgo:energyLabel, dsgo:bagPand]}}
  - {{id: tenants-private, effect: deny, to: {{anyone: true}}, resources: all, fields: [props:householdSize]}}
"""
FIRM_POLICY = """
rules:
  - {id: insulation, effect: permit, to: {anyone: true}, resources: {classes: [bot:Building]},
     fields: {all_except: [props:constructionCost]}}
"""
MUNI_POLICY = """
rules:
  - {id: register, effect: permit, to: {anyone: true}, resources: all, fields: all}
"""
QUESTION = """
SELECT ?home ?label ?rcRoof ?rcFacade ?size ?cost WHERE {
  ?home dsgo:energyLabel ?label ; dsgo:bagPand ?pand .
  FILTER(?label IN ("E", "F", "G"))
  ?pand dsgo:municipalityCode "0363" .
  OPTIONAL { ?home props:householdSize ?size }
  OPTIONAL { ?model dsgo:bagPand ?pand ; dsgo:rcRoof ?rcRoof ; dsgo:rcFacade ?rcFacade .
             OPTIONAL { ?model props:constructionCost ?cost } }
} ORDER BY ?home
"""
START = [f"{C}collections/bot:Building", f"{F}collections/bot:Building"]


@pytest.fixture
async def fed(tmp_path: Path, pki: Pki) -> AsyncIterator[Federation]:
    async with federation(
        tmp_path,
        pki,
        nodes=(FIRM, CORP, MUNI),
        policies={FIRM: FIRM_POLICY, CORP: CORP_POLICY, MUNI: MUNI_POLICY},
        data={FIRM: FIRM_DATA, CORP: CORP_DATA, MUNI: MUNI_DATA},
        own_namespaces=True,
    ) as f:
        yield f


async def ask(fed: Federation, party: str, body: dict[str, Any], at: str | None = None) -> httpx.Response:
    """``party`` asks the node of ``at`` (default: its own) with its own token there."""
    at = at or party
    token = await fed.nodes[party].state.dsgo.auth.trust.tokens.token(at, endpoint(at))
    async with fed.client(at) as client:
        return await client.post(
            "/federation/query", json=body, headers={"authorization": f"Bearer {token}"}, timeout=30
        )


def values(answer: httpx.Response) -> list[dict[str, str]]:
    return [{k: v["value"] for k, v in row.items()} for row in answer.json()["results"]["bindings"]]


async def test_answer_holds_exactly_what_each_owner_grants(fed: Federation) -> None:
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START})
    assert answer.status_code == 200, answer.text
    assert values(answer) == [
        {"home": f"{C}id/home/1", "label": "F", "rcRoof": "1.5", "rcFacade": "1.1"},
        {"home": f"{C}id/home/2", "label": "E", "rcRoof": "2.5", "rcFacade": "1.2"},
    ]
    report = answer.json()["report"]
    assert report["complete"] is True and report["cut_short"] is None
    assert report["nodes"][CORP]["withheld_fields"] > 0 and report["nodes"][FIRM]["withheld_fields"] > 0
    assert set(report["nodes"]) == {FIRM, CORP, MUNI}
    assert report["nodes"][MUNI]["endpoint"] == "local"


async def test_a_party_cannot_borrow_another_nodes_rights(fed: Federation) -> None:
    # the municipality may not ask the corporation's node to walk links for it
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START}, at=CORP)
    assert answer.status_code == 403 and answer.json()["code"] == "forbidden"


async def test_what_an_owner_withholds_stays_withheld_through_another_node(fed: Federation) -> None:
    # the corporation asks its own node: the firm still hides costs, and the corporation
    # cannot see through the municipality anything the firm withholds
    answer = await ask(fed, CORP, {"query": QUESTION, "start": START})
    rows = values(answer)
    assert rows and all("cost" not in row for row in rows)
    assert {row["size"] for row in rows} == {"2", "3"}  # its own tenants' data, read locally


async def test_batch_endpoint_is_used_where_offered(fed: Federation) -> None:
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START})
    report = answer.json()["report"]
    for party in (FIRM, CORP):
        node = report["nodes"][party]
        assert node["batch"] is True
        assert node["requests"] <= 4  # capabilities, collection, one batch (+ a page)
    posts = [c for c in fed.router.calls if c.startswith("POST") and c.endswith("/resources")]
    assert len(posts) == 2


async def test_provenance_names_the_documents_behind_each_row(fed: Federation) -> None:
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START, "provenance": True})
    sources = answer.json()["sources"]
    assert sources[0] == [f"{C}id/home/1"]
    body = await ask(
        fed, MUNI, {"query": "SELECT ?m ?r WHERE { ?m dsgo:rcRoof ?r }", "start": START, "provenance": True}
    )
    assert all(s[0].startswith(F) for s in body.json()["sources"])


async def test_query_iris_are_the_start_when_none_are_given(fed: Federation) -> None:
    query = f"SELECT ?label WHERE {{ <{C}id/home/2> dsgo:energyLabel ?label }}"
    answer = await ask(fed, MUNI, {"query": query})
    assert values(answer) == [{"label": "E"}]


async def test_ask_and_construct(fed: Federation) -> None:
    ask_answer = await ask(fed, MUNI, {"query": f'ASK {{ <{C}id/home/1> dsgo:energyLabel "F" }}'})
    graph = await ask(fed, MUNI, {"query": f"CONSTRUCT WHERE {{ <{F}id/model/1> ?p ?o }}"})
    assert ask_answer.json()["boolean"] is True
    assert "rcRoof" in graph.json()["ntriples"] and "constructionCost" not in graph.json()["ntriples"]


async def test_a_node_that_is_down_gives_a_partial_answer_that_says_so(fed: Federation) -> None:
    del fed.router.apps["p001.test"]  # the firm's node is gone before it was ever asked
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START})
    report = answer.json()["report"]
    assert answer.status_code == 200
    assert [row["label"] for row in values(answer)] == ["F", "E"]
    assert all("rcRoof" not in row for row in values(answer))
    assert report["complete"] is False
    assert [f["reason"] for f in report["nodes"][FIRM]["failures"]] == ["no token"]


async def test_a_node_that_goes_down_after_issuing_a_token_is_reported_down(fed: Federation) -> None:
    await fed.nodes[MUNI].state.dsgo.auth.trust.tokens.token(FIRM, endpoint(FIRM))
    del fed.router.apps["p001.test"]  # gone now, with the municipality's token still valid
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START})
    report = answer.json()["report"]
    assert answer.status_code == 200 and report["complete"] is False
    assert [row["label"] for row in values(answer)] == ["F", "E"]
    assert {f["reason"] for f in report["nodes"][FIRM]["failures"]} == {"down"}


async def test_a_node_that_hangs_is_cut_off_at_the_timeout(fed: Federation) -> None:
    cut_off = asyncio.Event()

    async def hang(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.Event().wait()  # never answers
        except asyncio.CancelledError:
            cut_off.set()
            raise

    fed.router.apps["p001.test"] = httpx.ASGITransport(app=_Wrapped(fed.nodes[FIRM], hang, "/resources"))
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START, "timeout": 2})
    report = answer.json()["report"]
    assert cut_off.is_set()  # the request to the hanging node was abandoned, not waited out
    assert report["complete"] is False
    assert any(f["reason"] == "timeout" for f in report["nodes"][FIRM]["failures"])
    assert [row["label"] for row in values(answer)] == ["F", "E"]


async def test_a_node_that_answers_garbage_is_reported(fed: Federation) -> None:
    async def garbage(scope: Any, receive: Any, send: Any) -> None:
        await Response(b'{"resources": [{"iri": 1, "status": 200, "ntriples": "<<< nope"}]}')(
            scope, receive, send
        )

    fed.router.apps["p001.test"] = httpx.ASGITransport(app=_Wrapped(fed.nodes[FIRM], garbage, "/resources"))
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START})
    report = answer.json()["report"]
    assert answer.status_code == 200 and report["complete"] is False
    assert report["nodes"][FIRM]["failures"] == [{"reason": "malformed answer", "path": "/resources"}]


async def test_malformed_rdf_from_a_get_is_reported(fed: Federation) -> None:
    async def garbage(scope: Any, receive: Any, send: Any) -> None:
        await Response(b"<not> <n-triples", media_type="application/n-triples")(scope, receive, send)

    fed.router.apps["p001.test"] = httpx.ASGITransport(
        app=_Wrapped(fed.nodes[FIRM], garbage, "/collections/")
    )
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START})
    failures = answer.json()["report"]["nodes"][FIRM]["failures"]
    assert {"reason": "malformed RDF", "path": "/collections/bot:Building"} in failures


async def test_link_cycles_terminate(fed: Federation, tmp_path: Path) -> None:
    cycle = PREFIXES + f"<id/a> dsgo:next <{C}id/b> . \n"
    corp_cycle = PREFIXES + f"<id/b> dsgo:next <{F}id/a> . \n"
    (tmp_path / "node-001" / "data" / "buildings.ttl").write_text(FIRM_DATA + cycle)
    (tmp_path / "node-002" / "data" / "buildings.ttl").write_text(CORP_DATA + corp_cycle)
    fed.nodes[FIRM].state.dsgo.node.sources.refresh_all()
    fed.nodes[CORP].state.dsgo.node.sources.refresh_all()
    policy = "rules:\n  - {id: all, effect: permit, to: {anyone: true}, resources: all, fields: all}\n"
    for party, folder in ((FIRM, "node-001"), (CORP, "node-002")):
        (tmp_path / folder / "policies" / "policy.yaml").write_text(policy)
        import os

        os.utime(tmp_path / folder / "policies" / "policy.yaml", ns=(1, 1))
        assert fed.nodes[party].state.dsgo.node.access.refresh()
    answer = await ask(
        fed, MUNI, {"query": "SELECT ?x WHERE { ?x dsgo:next ?y }", "start": [f"{F}id/a"], "max_depth": 10}
    )
    report = answer.json()["report"]
    assert sorted(row["x"] for row in values(answer)) == [f"{F}id/a", f"{C}id/b"]
    assert report["complete"] is True and report["documents"] == 2


async def test_links_into_unregistered_namespaces_are_never_fetched(fed: Federation, tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    calls: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            calls.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    outside = f"http://127.0.0.1:{listener.getsockname()[1]}/id/x"
    (tmp_path / "node-001" / "data" / "buildings.ttl").write_text(
        FIRM_DATA + f"<id/model/1> dsgo:seeAlso <{outside}> .\n"
    )
    fed.nodes[FIRM].state.dsgo.node.sources.refresh_all()
    try:
        answer = await ask(
            fed,
            MUNI,
            {"query": "SELECT * WHERE { ?h dsgo:seeAlso ?x . ?x ?p ?o }", "start": START, "follow": "all"},
        )
    finally:
        stop.set()
        thread.join()
        listener.close()
    report = answer.json()["report"]
    assert calls == []
    assert outside in report["not_fetched_unregistered"]
    assert not any(outside in c for c in fed.router.calls)


async def test_an_expired_token_is_renewed(fed: Federation) -> None:
    first = await ask(fed, MUNI, {"query": QUESTION, "start": START})
    fed.clock.now += 3700  # the tokens the muni's node holds have expired at their nodes
    tokens = fed.nodes[MUNI].state.dsgo.auth.trust.tokens
    tokens.forget(MUNI, endpoint(MUNI))  # the test's own token to ask with
    for key in list(tokens._tokens):
        tokens._tokens[key] = type(tokens._tokens[key])(tokens._tokens[key].value, fed.clock.now + 100)
    again = await ask(fed, MUNI, {"query": QUESTION, "start": START})
    assert values(again) == values(first)
    assert again.json()["report"]["complete"] is True
    renewals = [c for c in fed.router.calls if c == "POST http://p001.test/connect/token"]
    assert len(renewals) == 2


async def test_budgets_cut_the_walk_short_and_say_so(fed: Federation) -> None:
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START, "max_documents": 3})
    report = answer.json()["report"]
    assert report["cut_short"] == "max_documents" and report["complete"] is False
    assert report["documents"] <= 3


def files(folder: Path) -> dict[Path, int]:
    """Every file under ``folder`` (the audit log aside) with its size."""
    return {p: p.stat().st_size for p in folder.rglob("*") if p.is_file() and "audit" not in p.name}


async def test_nothing_fetched_is_kept(fed: Federation, tmp_path: Path) -> None:
    before = files(tmp_path)
    muni = fed.nodes[MUNI].state.dsgo.node
    generation, triples = muni.store.generation, len(muni.store.quads())
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START})
    assert values(answer)
    assert files(tmp_path) == before
    assert muni.store.generation == generation and len(muni.store.quads()) == triples
    cached = b"".join(rep.body for rep in muni._cache.entries.values())
    assert b"energyLabel" not in cached and b"rcRoof" not in cached


async def test_progress_is_streamed_before_the_result(fed: Federation) -> None:
    token = await fed.nodes[MUNI].state.dsgo.auth.trust.tokens.token(MUNI, endpoint(MUNI))
    async with fed.client(MUNI) as client:
        answer = await client.post(
            "/federation/query",
            json={"query": QUESTION, "start": START},
            headers={"authorization": f"Bearer {token}", "accept": "application/x-ndjson"},
        )
    import json

    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert "progress" in lines[0] and "result" in lines[-1]
    assert len(lines[-1]["result"]["results"]["bindings"]) == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, '"query"'),
        ({"query": "SELEKT"}, "does not parse"),
        ({"query": "SELECT * WHERE { SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } }"}, "SERVICE"),
        ({"query": "ASK {}", "start": ["ftp://x"]}, '"start"'),
        ({"query": "ASK {}", "follow": "everything"}, "follow"),
        ({"query": "ASK {}", "max_documents": 10**9}, "max_documents"),
    ],
)
async def test_bad_requests_are_refused_clearly(fed: Federation, body: dict[str, Any], reason: str) -> None:
    answer = await ask(fed, MUNI, body)
    assert answer.status_code == 400 and reason in answer.json()["detail"]


class _Wrapped:
    """A node whose answers to paths starting with ``prefix`` are replaced by ``app``."""

    def __init__(self, node: FastAPI, app: Any, prefix: str) -> None:
        self.node, self.app, self.prefix = node, app, prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and Request(scope).url.path.startswith(self.prefix):
            await self.app(scope, receive, send)
        else:
            await self.node(scope, receive, send)


async def test_a_query_while_the_registry_cannot_be_reached_is_a_503_titled_for_the_registry(
    fed: Federation,
) -> None:
    token = await fed.nodes[MUNI].state.dsgo.auth.trust.tokens.token(MUNI, endpoint(MUNI))
    del fed.router.apps["registry.test"]  # gone before the node ever asked it for the parties
    async with fed.client(MUNI) as client:
        answer = await client.post(
            "/federation/query",
            json={"query": QUESTION, "start": START},
            headers={"authorization": f"Bearer {token}"},
        )
    body = answer.json()
    assert (answer.status_code, body["code"]) == (503, "temporarily_unavailable")
    assert body["title"] == "Participant registry unavailable"
    assert "participant registry cannot be reached" in body["detail"]
    assert answer.headers["retry-after"] == "5"


class _Hangs(httpx.AsyncBaseTransport):
    """A host that accepts every request and never answers."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_query_whose_time_limit_is_shorter_than_the_registry_timeout_fails_within_it(
    fed: Federation,
) -> None:
    token = await fed.nodes[MUNI].state.dsgo.auth.trust.tokens.token(MUNI, endpoint(MUNI))

    fed.router.apps["registry.test"] = _Hangs()  # before the node ever asked it for the parties
    async with fed.client(MUNI) as client:
        answer = await client.post(
            "/federation/query",
            json={"query": QUESTION, "start": START, "timeout": 0.3},  # registry.timeout is 2 s
            headers={"authorization": f"Bearer {token}"},
        )
    body = answer.json()
    assert (answer.status_code, body["code"]) == (503, "temporarily_unavailable")
    assert body["detail"] == "the participant registry did not answer within the query's time limit"


async def test_a_batch_answer_past_the_batch_limit_cuts_the_peer_off_and_keeps_the_others(
    fed: Federation,
) -> None:
    state = fed.nodes[MUNI].state.dsgo
    state.federation_budget = replace(state.federation_budget, limits=Limits(batch_bytes=200))
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START})
    report = answer.json()["report"]
    failures = report["nodes"][FIRM]["failures"] + report["nodes"][CORP]["failures"]
    assert answer.status_code == 200 and report["complete"] is False
    assert {f["reason"] for f in failures} == {"limit"}
    assert all("federation.max_batch_bytes" in f["detail"] for f in failures)


async def test_a_document_past_the_triple_limit_cuts_its_peer_off_and_says_which_limit(
    fed: Federation,
) -> None:
    state = fed.nodes[MUNI].state.dsgo
    state.federation_budget = replace(state.federation_budget, limits=Limits(document_triples=1))
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START})
    report = answer.json()["report"]
    failures = report["nodes"][FIRM]["failures"] + report["nodes"][CORP]["failures"]
    assert answer.status_code == 200 and report["complete"] is False
    assert {f["reason"] for f in failures} == {"limit"}
    assert all("federation.max_document_triples" in f["detail"] for f in failures)


async def test_a_query_past_its_byte_limit_stops_the_walk_and_says_so(fed: Federation) -> None:
    state = fed.nodes[MUNI].state.dsgo
    state.federation_budget = replace(state.federation_budget, limits=Limits(query_bytes=2000))
    answer = await ask(fed, MUNI, {"query": QUESTION, "start": START})
    report = answer.json()["report"]
    failures = report["nodes"][FIRM]["failures"] + report["nodes"][CORP]["failures"]
    assert answer.status_code == 200
    assert (report["complete"], report["cut_short"]) == (False, "max_query_bytes")
    assert any("federation.max_query_bytes" in f["detail"] for f in failures)


async def test_a_single_read_outside_a_query_keeps_the_nodes_limits(fed: Federation) -> None:
    federation = fed.nodes[MUNI].state.dsgo.federation
    whole = await federation.read(START[0])
    federation.limits = Limits(document_bytes=100)
    cut = await federation.read(START[0])
    assert whole.status == "ok" and whole.triples
    assert (cut.status, cut.triples) == ("limit", [])


async def test_an_unexpected_error_in_a_streamed_answer_is_logged_and_never_echoed(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a secret the caller must not see")

    monkeypatch.setattr(fed.nodes[MUNI].state.dsgo.federation, "run", broken)
    token = await fed.nodes[MUNI].state.dsgo.auth.trust.tokens.token(MUNI, endpoint(MUNI))
    async with fed.client(MUNI) as client:
        answer = await client.post(
            "/federation/query",
            json={"query": QUESTION},
            headers={"authorization": f"Bearer {token}", "accept": "application/x-ndjson"},
        )
    last = orjson.loads(answer.content.splitlines()[-1])
    assert answer.status_code == 200  # the stream had begun
    assert (last["error"]["status"], last["error"]["code"]) == (500, "internal_error")
    assert "secret" not in answer.text
