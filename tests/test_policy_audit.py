"""Every read path appends to the node's audit log: who read which resources on which
path, the fields released, how many were withheld, the granting rules and their purpose;
never a withheld value or the name of a withheld field, and the chain verifies after."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.audit import log as audit_log
from gateway.audit import tail, verify
from tests.kit import FIRM, MUNI, Federation, Pki, federation

pytestmark = pytest.mark.anyio

NS = "https://data.test.example/"
B1 = NS + "id/building/1"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
ENERGY_LABEL = "https://vocab.dsgo.example/def#energyLabel"
PURPOSE = "energy transition monitoring"

DATA = """
@prefix bot: <https://w3id.org/bot#> . @prefix dsgo: <https://vocab.dsgo.example/def#> .
@prefix props: <https://w3id.org/props#> . @prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
<id/building/1> a bot:Building ; rdfs:label "Kerkstraat 1" ; dsgo:municipalityCode "0363" ;
    dsgo:energyLabel "F" ; dsgo:address "Geheimstraat 13, Amsterdam" ; props:constructionCost 987654321 ;
    dsgo:rcRoof 4.7531862 ; dsgo:floorArea [ dsgo:value 818161814 ] .
<id/building/2> a bot:Building ; rdfs:label "Dorpsstraat 2" ; dsgo:municipalityCode "0344" .
"""
POLICY = f"""
rules:
  - id: muni-energy
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources:
      classes: [bot:Building]
      where: [{{property: dsgo:municipalityCode, equals: "0363"}}]
    fields: [rdfs:label, dsgo:energyLabel]
    purpose: {PURPOSE}
  - id: no-costs
    effect: deny
    to: {{anyone: true}}
    resources: all
    fields: [props:constructionCost]
"""
#: what MUNI may not see of building 1 (values and field names) and of building 2 (all);
#: numbers long enough not to turn up by chance among a log's digits (times, hashes)
SECRETS = (
    b"Geheimstraat",
    b"987654321",
    b"4.7531862",
    b"818161814",
    b"address",
    b"constructionCost",
    b"municipalityCode",
    b"rcRoof",
    b"floorArea",
    b"Dorpsstraat",
    b"id/building/2",
)
#: B1 has 8 fields; MUNI gets its type (by the permit's class), label and energy label
RESOURCE_ENTRY = {
    "caller": MUNI,
    "resources": [B1],
    "released": sorted([RDF_TYPE, RDFS_LABEL, ENERGY_LABEL]),
    "withheld": 5,
    "rules": ["muni-energy"],
    "purpose": PURPOSE,
}


@contextlib.asynccontextmanager
async def firm_node(tmp_path: Path, pki: Pki) -> AsyncIterator[tuple[Federation, httpx.AsyncClient]]:
    """FIRM's node and a client that reads it as MUNI (token from FIRM's own issuer)."""
    async with federation(tmp_path, pki, nodes=(FIRM,), policies={FIRM: POLICY}, data={FIRM: DATA}) as fed:
        auth = fed.nodes[FIRM].state.dsgo.auth
        token = auth.issuer.issue(MUNI, fed.clock(), ("Municipality",))
        async with fed.client(FIRM) as client:
            client.headers["authorization"] = f"Bearer {token}"
            yield fed, client


def audit_path(fed: Federation) -> Path:
    path: Path = fed.nodes[FIRM].state.dsgo.audit.path
    return path


def entries(fed: Federation) -> list[dict[str, Any]]:
    assert fed.nodes[FIRM].state.dsgo.audit.flush(timeout=10)
    return tail(audit_path(fed), 1000)


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ("caller", "resources", "released", "withheld", "rules", "purpose")}


async def sparql(client: httpx.AsyncClient, query: str, accept: str) -> httpx.Response:
    return await client.post(
        "/sparql",
        content=query.encode(),
        headers={"content-type": "application/sparql-query", "accept": accept},
    )


async def read_every_path(client: httpx.AsyncClient) -> None:
    """MUNI reads through every path, SPARQL included, naming withheld values in queries."""
    for accept in ("text/turtle", "application/ld+json", "application/n-triples", "text/html"):
        assert (await client.get("/id/building/1", headers={"accept": accept})).status_code == 200
    assert (await client.get("/collections/bot:Building")).status_code == 200
    assert (await client.get("/", headers={"accept": "text/turtle"})).status_code == 200
    assert (await sparql(client, "CONSTRUCT WHERE { ?s ?p ?o }", "text/turtle")).status_code == 200
    asked = await client.get(
        "/sparql", params={"query": 'ASK { ?s ?p ?o FILTER(?o = "Geheimstraat 13, Amsterdam") }'}
    )
    assert asked.json() == {"head": {}, "boolean": False}
    probe = "SELECT ?o WHERE { ?s <https://w3id.org/props#constructionCost> ?o FILTER(?o = 987654321) }"
    assert (await sparql(client, probe, "application/sparql-results+json")).json()["results"][
        "bindings"
    ] == []


@pytest.mark.parametrize("accept", ["text/turtle", "application/ld+json"])
async def test_resource_read_is_audited_with_released_fields_withheld_count_rules_and_purpose(
    tmp_path: Path, pki: Pki, accept: str
) -> None:
    async with firm_node(tmp_path, pki) as (fed, client):
        answer = await client.get("/id/building/1", headers={"accept": accept, "x-request-id": "req-42"})
        logged = entries(fed)
    # costs: of the fields the policy names, the one it withholds
    assert answer.status_code == 200 and answer.headers["dsgo-withheld-fields"] == "1"
    assert [(e["path"], e["request_id"]) for e in logged] == [("/id/building/1", "req-42")]
    assert summary(logged[0]) == RESOURCE_ENTRY


async def test_a_cached_representation_is_audited_on_every_read(tmp_path: Path, pki: Pki) -> None:
    async with firm_node(tmp_path, pki) as (fed, client):
        for _ in range(3):
            assert (await client.get("/id/building/1")).status_code == 200
        logged = entries(fed)
    assert [summary(e) for e in logged] == [RESOURCE_ENTRY] * 3


async def test_collection_read_is_audited_with_the_members_it_lists(tmp_path: Path, pki: Pki) -> None:
    async with firm_node(tmp_path, pki) as (fed, client):
        answer = await client.get("/collections/bot:Building", headers={"accept": "text/turtle"})
        logged = entries(fed)
    assert answer.status_code == 200
    assert [e["path"] for e in logged] == ["/collections/bot:Building"]
    entry = logged[0]
    assert (entry["caller"], entry["resources"], entry["released"], entry["withheld"]) == (
        MUNI,
        [B1],
        [RDF_TYPE],
        0,
    )
    assert (entry["rules"], entry["purpose"]) == (["muni-energy"], PURPOSE)  # the caller's permits


async def test_catalog_read_is_audited(tmp_path: Path, pki: Pki) -> None:
    async with firm_node(tmp_path, pki) as (fed, client):
        answer = await client.get("/", headers={"accept": "application/ld+json"})
        logged = entries(fed)
    assert answer.status_code == 200
    assert [(e["caller"], e["path"], e["resources"], e["withheld"]) for e in logged] == [(MUNI, "/", [], 0)]
    assert (logged[0]["rules"], logged[0]["purpose"]) == (["muni-energy"], PURPOSE)


async def test_sparql_reads_are_audited_with_the_resources_they_return(tmp_path: Path, pki: Pki) -> None:
    async with firm_node(tmp_path, pki) as (fed, client):
        built = await sparql(client, "CONSTRUCT WHERE { ?s ?p ?o }", "application/n-triples")
        selected = await sparql(client, "SELECT ?s WHERE { ?s a ?c }", "application/sparql-results+json")
        logged = entries(fed)
    assert built.status_code == selected.status_code == 200
    assert [(e["caller"], e["path"], e["resources"], e["withheld"]) for e in logged] == [
        (MUNI, "/sparql", [B1], 0),
        (MUNI, "/sparql", [], 0),
    ]
    assert [(e["released"], e["rules"], e["purpose"]) for e in logged] == [
        (sorted([RDF_TYPE, RDFS_LABEL, ENERGY_LABEL]), ["muni-energy"], PURPOSE),  # a graph's fields
        ([], ["muni-energy"], PURPOSE),  # solutions name no fields
    ]


async def test_a_refused_read_is_not_audited_as_a_read(tmp_path: Path, pki: Pki) -> None:
    async with firm_node(tmp_path, pki) as (fed, client):
        hidden = await client.get("/id/building/2")
        service = await sparql(client, "SELECT * WHERE { SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } }", "*/*")
        logged = entries(fed)
    assert (hidden.status_code, service.status_code) == (404, 400)
    assert logged == []


async def test_the_log_never_contains_a_withheld_value_or_field(tmp_path: Path, pki: Pki) -> None:
    async with firm_node(tmp_path, pki) as (fed, client):
        await read_every_path(client)
        path = audit_path(fed)
        count = len(entries(fed))
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))  # the file, any WAL
    assert count == 9 and b"Kerkstraat" not in raw  # released values are not logged either
    assert B1.encode() in raw and PURPOSE.encode() in raw  # the log is readable as bytes
    assert [secret for secret in SECRETS if secret in raw] == []


async def test_the_chain_verifies_after_reads_through_every_path(tmp_path: Path, pki: Pki) -> None:
    async with firm_node(tmp_path, pki) as (fed, client):
        await read_every_path(client)
        path = audit_path(fed)
    report = verify(path)
    assert (report.ok, report.problems, report.entries) == (True, [], 9)


async def test_health_shows_the_audit_log_and_reports_a_failing_one(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with firm_node(tmp_path, pki) as (fed, client):
        own = fed.nodes[FIRM].state.dsgo.auth.issuer.issue(FIRM, fed.clock(), ())
        operator = {"authorization": f"Bearer {own}"}
        assert (await client.get("/id/building/1")).status_code == 200
        assert fed.nodes[FIRM].state.dsgo.audit.flush(timeout=10)
        healthy = (await client.get("/health", headers=operator)).json()
        assert healthy["audit"] == {
            "status": "ready",
            "queued": 0,
            "written": 1,
            "dropped": 0,
            "last_error": None,
            "on_failure": "refuse",
        }

        def disk_full(*args: object) -> list[str]:
            raise OSError("No space left on device")

        monkeypatch.setattr(audit_log, "append", disk_full)
        assert (await client.get("/id/building/1")).status_code == 200
        assert not fed.nodes[FIRM].state.dsgo.audit.flush(timeout=0.5)
        failing = (await client.get("/health", headers=operator)).json()
        seen_by_muni = (await client.get("/health")).json()
        monkeypatch.undo()  # the disk is back: closing writes what waited
    assert (failing["status"], failing["audit"]["status"], failing["audit"]["queued"]) == (
        "degraded",
        "degraded",  # retried; failing (reads refused) only once its queue is full too
        1,
    )
    assert failing["audit"]["last_error"] == "OSError: No space left on device"
    assert seen_by_muni["audit"] == {"status": "degraded"}  # no details for others
    assert len(tail(audit_path(fed), 10)) == 2  # the read made while the disk was full, too
    assert verify(audit_path(fed)).ok


async def test_health_says_failing_when_the_policy_files_are_gone(tmp_path: Path, pki: Pki) -> None:
    async with firm_node(tmp_path, pki) as (fed, client):
        state = fed.nodes[FIRM].state.dsgo
        own = state.auth.issuer.issue(FIRM, fed.clock(), ())
        for file in state.settings.policies_dir.glob("*.y*ml"):
            file.unlink()
        state.node.access.refresh()
        health = (await client.get("/health", headers={"authorization": f"Bearer {own}"})).json()
        ready = await client.get("/health/ready")
    assert (health["status"], health["policy"]["status"], health["policy"]["files"]) == (
        "failing",
        "failing",
        [],
    )
    assert "no policy files" in health["policy"]["detail"]
    assert ready.status_code == 503 and ready.json()["policy"] == {"status": "failing"}
