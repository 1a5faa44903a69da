"""One enforcement point: a decision table of party x resource x field x read path.

The firm's node publishes two buildings and a storey. The municipality may read a few
fields of buildings in its municipality (0363) and the storeys of those buildings; the
corporation may read buildings from before 1990 except their address; nobody may read
construction costs; a rule not yet in force grants nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pyoxigraph as ox
import pytest

from tests.kit import CORP, FIRM, MUNI, Federation, Pki, federation

pytestmark = pytest.mark.anyio

NS = "https://data.test.example/"
DSGO = "https://vocab.dsgo.example/def#"
BOT = "https://w3id.org/bot#"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
COST = "https://w3id.org/props#constructionCost"
B1, B2, S1 = NS + "id/building/1", NS + "id/building/2", NS + "id/building/1/storey/0"

DATA = f"""
@prefix bot: <{BOT}> . @prefix dsgo: <{DSGO}> . @prefix props: <https://w3id.org/props#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> . @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<id/building/1> a bot:Building ; rdfs:label "Kerkstraat 1" ; dsgo:municipalityCode "0363" ;
    dsgo:buildingYear "1968"^^xsd:gYear ; dsgo:energyLabel "F" ; dsgo:rcRoof 2.5 ;
    dsgo:address "Kerkstraat 1, Amsterdam" ; props:constructionCost 250000 ;
    dsgo:floorArea [ dsgo:value 81 ] ; bot:hasStorey <id/building/1/storey/0> .
<id/building/1/storey/0> a bot:Storey ; rdfs:label "Begane grond" .
<id/building/2> a bot:Building ; rdfs:label "Dorpsstraat 2" ; dsgo:municipalityCode "0344" ;
    dsgo:buildingYear "1995"^^xsd:gYear ; dsgo:energyLabel "B" ; props:constructionCost 310000 .
"""

POLICY = f"""
rules:
  - id: muni-energy
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources:
      classes: [bot:Building]
      where: [{{property: dsgo:municipalityCode, equals: "0363"}}]
    fields: [rdfs:label, dsgo:energyLabel, dsgo:buildingYear, bot:hasStorey]
    purpose: energy transition monitoring
  - id: muni-storeys
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources:
      classes: [bot:Storey]
      where: [{{via: ["^bot:hasStorey"], property: dsgo:municipalityCode, equals: "0363"}}]
    fields: all
  - id: corp-old-homes
    effect: permit
    to: {{roles: [HousingCorporation]}}
    resources:
      classes: [bot:Building]
      where: [{{property: dsgo:buildingYear, before: 1990}}]
    fields: {{all_except: [dsgo:address]}}
  - id: no-costs
    effect: deny
    to: {{anyone: true}}
    resources: all
    fields: [props:constructionCost]
  - id: future
    effect: permit
    to: {{anyone: true}}
    resources: all
    fields: all
    valid: {{from: 2090-01-01}}
"""

#: party -> resource -> the fields it may see (absent resource: 404)
EXPECTED: dict[str, dict[str, set[str]]] = {
    MUNI: {
        B1: {RDF_TYPE, RDFS_LABEL, DSGO + "energyLabel", DSGO + "buildingYear", BOT + "hasStorey"},
        S1: {RDF_TYPE, RDFS_LABEL},
    },
    CORP: {
        B1: {
            RDF_TYPE,
            RDFS_LABEL,
            DSGO + "municipalityCode",
            DSGO + "buildingYear",
            DSGO + "energyLabel",
            DSGO + "rcRoof",
            DSGO + "floorArea",
            BOT + "hasStorey",
        },
    },
}
#: what ``dsgo-withheld-fields`` says (gateway.policy.notice): how many of the fields the
#: policy names for such a resource it withholds, whatever this one holds. Buildings: the
#: address (the corporation's all_except) and costs (the deny); storeys: costs
TOLD = {(MUNI, B1): 2, (MUNI, S1): 1, (CORP, B1): 2}
RDF_FORMATS = {
    "text/turtle": ox.RdfFormat.TURTLE,
    "application/n-triples": ox.RdfFormat.N_TRIPLES,
    "application/ld+json": ox.RdfFormat.JSON_LD,
}


@pytest.fixture
async def fed(tmp_path: Path, pki: Pki) -> AsyncIterator[Federation]:
    async with federation(
        tmp_path, pki, nodes=(FIRM, CORP, MUNI), policies={FIRM: POLICY}, data={FIRM: DATA}
    ) as f:
        yield f


def fields_of(body: bytes, fmt: ox.RdfFormat, subject: str) -> set[str]:
    return {q.predicate.value for q in ox.parse(body, fmt) if q.subject == ox.NamedNode(subject)}


@pytest.mark.parametrize("party", [MUNI, CORP])
@pytest.mark.parametrize("resource", [B1, B2, S1])
@pytest.mark.parametrize("accept", sorted(RDF_FORMATS))
async def test_resource_get_releases_exactly_the_granted_fields(
    fed: Federation, party: str, resource: str, accept: str
) -> None:
    async with await fed.client_as(party) as client:
        answer = await client.get(resource.removeprefix(NS[:-1]), headers={"accept": accept})
    expected = EXPECTED[party].get(resource)
    if expected is None:
        assert answer.status_code == 404
        assert answer.json()["detail"] == f"no resource {resource} on this node"
        return
    assert answer.status_code == 200
    assert fields_of(answer.content, RDF_FORMATS[accept], resource) == expected
    assert answer.headers.get("dsgo-withheld-fields") == str(TOLD[party, resource])


async def test_hidden_resource_is_indistinguishable_from_a_missing_one(fed: Federation) -> None:
    async with await fed.client_as(MUNI) as client:
        hidden = await client.get("/id/building/2")
        missing = await client.get("/id/building/999")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.headers.keys() == missing.headers.keys()
    assert hidden.json()["detail"].replace("2", "999") == missing.json()["detail"]


async def test_withheld_values_appear_nowhere_in_any_format(fed: Federation) -> None:
    async with await fed.client_as(MUNI) as client:
        bodies = [
            (await client.get("/id/building/1", headers={"accept": a})).text
            for a in (*RDF_FORMATS, "text/html")
        ]
    for body in bodies:
        for secret in ("Kerkstraat 1, Amsterdam", "250000", "2.5", "rcRoof", "0363"):
            assert secret not in body


async def test_blank_nodes_come_with_the_field_that_reaches_them(fed: Federation) -> None:
    async with await fed.client_as(CORP) as corp, await fed.client_as(MUNI) as muni:
        corp_view = await corp.get("/id/building/1", headers={"accept": "application/n-triples"})
        muni_view = await muni.get("/id/building/1", headers={"accept": "application/n-triples"})
    assert '"81"' in corp_view.text
    assert "_:" not in muni_view.text and '"81"' not in muni_view.text


async def test_html_shows_only_the_view_and_says_fields_were_withheld(fed: Federation) -> None:
    async with await fed.client_as(MUNI) as client:
        page = await client.get("/id/building/1", headers={"accept": "text/html"})
    assert "dsgo:energyLabel" in page.text and "dsgo:rcRoof" not in page.text
    assert (
        "Fields are withheld: the policy of Test Bouw (EU.EORI.NL000000001) withholds dsgo:address,"
        " props:constructionCost from you, and may withhold fields it does not name."
    ) in page.text


async def test_a_partial_view_names_the_withheld_fields_in_a_header(fed: Federation) -> None:
    async with await fed.client_as(MUNI) as client:
        answer = await client.get("/id/building/1")
        batch = await client.post("/resources", json={"resources": [{"iri": B1}]})
    said = f"<{DSGO}address> <{COST}> *"  # the two the policy names, and maybe fields it does not
    assert answer.status_code == 200 and answer.headers["dsgo-withheld"] == said
    assert batch.json()["resources"][0]["withheld_fields"] == said


async def test_etags_differ_between_views_and_reveal_nothing(fed: Federation) -> None:
    async with await fed.client_as(MUNI) as muni, await fed.client_as(CORP) as corp:
        a = await muni.get("/id/building/1")
        b = await corp.get("/id/building/1")
    assert a.headers["etag"] != b.headers["etag"]
    from gateway.node import etag_of

    assert a.headers["etag"] == etag_of(a.content)  # a hash of what the caller got, nothing else


@pytest.mark.parametrize(("party", "members"), [(MUNI, [B1]), (CORP, [B1])])
async def test_collections_list_only_visible_members(fed: Federation, party: str, members: list[str]) -> None:
    async with await fed.client_as(party) as client:
        answer = await client.get("/collections/bot:Building", headers={"accept": "application/ld+json"})
    doc = answer.json()
    coll = next(n for n in doc["@graph"] if n.get("@type") == "hydra:Collection")
    listed = coll.get("hydra:member", [])
    listed = [listed] if isinstance(listed, dict) else listed
    assert [m["@id"] for m in listed] == members
    assert coll["hydra:totalItems"]["@value"] == str(len(members))


@pytest.mark.parametrize(("party", "buildings", "storeys"), [(MUNI, "1", "1"), (CORP, "1", None)])
async def test_self_description_counts_only_the_callers_view(
    fed: Federation, party: str, buildings: str, storeys: str | None
) -> None:
    async with await fed.client_as(party) as client:
        answer = await client.get("/", headers={"accept": "application/n-triples"})
    triples = [q.triple for q in ox.parse(answer.content, ox.RdfFormat.N_TRIPLES)]
    parts = {t.object.value: t.subject for t in triples if t.predicate.value.endswith("void#class")}
    count = {
        cls: next(
            t.object.value for t in triples if t.subject == part and t.predicate.value.endswith("entities")
        )
        for cls, part in parts.items()
    }
    assert count.get(BOT + "Building") == buildings
    assert count.get(BOT + "Storey") == storeys
    assert not any("source-" in t.subject.value for t in triples if isinstance(t.subject, ox.NamedNode))


async def sparql(
    client: httpx.AsyncClient, query: str, accept: str = "application/sparql-results+json"
) -> Any:
    return await client.post(
        "/sparql",
        content=query.encode(),
        headers={"content-type": "application/sparql-query", "accept": accept},
    )


async def test_sparql_sees_exactly_the_view(fed: Federation) -> None:
    async with await fed.client_as(MUNI) as client:
        answer = await sparql(client, "SELECT ?s ?p ?o WHERE { ?s ?p ?o }")
    rows = answer.json()["results"]["bindings"]
    got = {(r["s"]["value"], r["p"]["value"]) for r in rows}
    expected = {(s, p) for s, fields in EXPECTED[MUNI].items() for p in fields}
    assert got == expected


@pytest.mark.parametrize(
    "query",
    [
        "SELECT ?o WHERE { ?s dsgo:address ?o }",
        "SELECT ?o WHERE { ?s props:constructionCost ?o }",
        "SELECT ?o WHERE { GRAPH ?g { ?s ?p ?o } }",
        "SELECT ?o FROM NAMED <urn:dsgo:meta> WHERE { GRAPH ?g { ?s ?p ?o } }",
        'SELECT ?s WHERE { ?s a bot:Building FILTER EXISTS { ?s dsgo:municipalityCode "0344" } }',
        "SELECT ?s WHERE { ?s bot:hasStorey/(<urn:x>|!<urn:y>)* ?o . ?o dsgo:address ?a }",
        "SELECT (COUNT(*) AS ?n) WHERE { ?s props:constructionCost ?c FILTER(?c > 0) }",
        "SELECT ?s WHERE { <https://data.test.example/id/building/2> ?p ?s }",
    ],
)
async def test_adversarial_sparql_finds_nothing_withheld(fed: Federation, query: str) -> None:
    async with await fed.client_as(MUNI) as client:
        answer = await sparql(client, "PREFIX props: <https://w3id.org/props#>\n" + query)
    assert answer.status_code == 200, answer.text
    rows = answer.json()["results"]["bindings"]
    assert rows == [] or rows == [
        {"n": {"type": "literal", "value": "0", "datatype": "http://www.w3.org/2001/XMLSchema#integer"}}
    ]


async def test_sparql_describe_and_construct_stay_in_the_view(fed: Federation) -> None:
    async with await fed.client_as(MUNI) as client:
        described = await sparql(client, f"DESCRIBE <{B1}>", "application/n-triples")
        built = await sparql(client, "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }", "text/turtle")
    assert fields_of(described.content, ox.RdfFormat.N_TRIPLES, B1) == EXPECTED[MUNI][B1]
    assert fields_of(built.content, ox.RdfFormat.TURTLE, B1) == EXPECTED[MUNI][B1]
    assert "0344" not in built.text and "Dorpsstraat" not in built.text


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * WHERE { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }",
        "select * where { service silent <http://127.0.0.1:9/> { ?s ?p ?o } }",
        "SELECT * WHERE {\n  Service<http://127.0.0.1:9/> { ?s ?p ?o } }",
    ],
)
async def test_sparql_service_is_refused(fed: Federation, query: str) -> None:
    async with await fed.client_as(MUNI) as client:
        answer = await sparql(client, query)
    assert answer.status_code == 400 and "SERVICE is not allowed" in answer.json()["detail"]


async def test_service_inside_a_string_is_not_mistaken_for_the_keyword(fed: Federation) -> None:
    async with await fed.client_as(MUNI) as client:
        answer = await sparql(client, 'SELECT * WHERE { ?s rdfs:label "SERVICE desk" }')
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("accept", "media", "needle"),
    [
        (
            "application/sparql-results+xml",
            "application/sparql-results+xml",
            "<uri>https://data.test.example/id/building/1</uri>",
        ),
        ("text/csv", "text/csv", "https://data.test.example/id/building/1"),
        (
            "text/tab-separated-values",
            "text/tab-separated-values",
            "<https://data.test.example/id/building/1>",
        ),
    ],
)
async def test_sparql_results_in_every_format(fed: Federation, accept: str, media: str, needle: str) -> None:
    async with await fed.client_as(MUNI) as client:
        answer = await sparql(client, "SELECT ?s WHERE { ?s a bot:Building }", accept)
    assert answer.headers["content-type"].startswith(media)
    assert needle in answer.text


async def test_sparql_get_ask_and_errors(fed: Federation) -> None:
    async with await fed.client_as(MUNI) as client:
        ask = await client.get("/sparql", params={"query": "ASK { ?s dsgo:address ?a }"})
        bad = await client.get("/sparql", params={"query": "SELEKT nonsense"})
        update = await sparql(client, "DELETE WHERE { ?s ?p ?o }")
        blank = await client.get("/sparql", params={"query": " "})
    assert ask.json() == {"head": {}, "boolean": False}
    assert bad.status_code == 400 and "does not parse" in bad.json()["detail"]
    assert update.status_code == 400
    assert blank.status_code == 400


async def test_sparql_result_limit_is_a_clear_error(fed: Federation) -> None:
    fed.nodes[FIRM].state.dsgo.sparql_limits = (10.0, 3)
    async with await fed.client_as(MUNI) as client:
        answer = await sparql(client, "SELECT * WHERE { ?s ?p ?o }")
    assert answer.status_code == 400
    assert answer.json()["code"] == "query_limit" and "more than 3 results" in answer.json()["detail"]


async def test_sparql_needs_a_token(fed: Federation) -> None:
    async with fed.client(FIRM) as client:
        answer = await client.get("/sparql", params={"query": "ASK {}"})
    assert answer.status_code == 401


async def test_explain_over_http_is_for_the_nodes_own_party(fed: Federation) -> None:
    async with await fed.client_as(MUNI) as client:
        refused = await client.get("/policy/explain", params={"party": MUNI, "resource": B1})
    async with await fed.client_as(FIRM) as client:
        answer = await client.get("/policy/explain", params={"party": MUNI, "resource": B1})
    assert refused.status_code == 403
    fields = {f["field"]: f for f in answer.json()["fields"]}
    assert fields[DSGO + "energyLabel"]["released"] and fields[DSGO + "energyLabel"]["rules"] == [
        "muni-energy"
    ]
    assert fields[COST]["reason"] == "denied by rule no-costs"
    assert fields[DSGO + "address"]["reason"] == (
        "rule muni-storeys would release it but the resource does not match its selector; "
        "rule future would release it but is not in force now"
    )
    assert not fields[DSGO + "rcRoof"]["released"]


async def test_policy_change_takes_effect_without_a_restart(fed: Federation, tmp_path: Path) -> None:
    async with await fed.client_as(MUNI) as client:
        before = await client.get("/id/building/2")
        policy = tmp_path / "node-001" / "policies" / "policy.yaml"
        import os

        stat = policy.stat()
        policy.write_text(
            POLICY.replace(
                'equals: "0363"}]\n    fields: [rdfs:label', 'in: ["0363", "0344"]}]\n    fields: [rdfs:label'
            )
        )
        os.utime(policy, ns=(stat.st_mtime_ns + 10**9, stat.st_mtime_ns + 10**9))
        assert fed.nodes[FIRM].state.dsgo.node.access.refresh()
        after = await client.get("/id/building/2")
    assert before.status_code == 404 and after.status_code == 200
    assert json.dumps(after.text).count("Dorpsstraat") == 1


@pytest.mark.parametrize("party", [MUNI, CORP])
async def test_batch_reads_apply_the_policy_to_each_resource(fed: Federation, party: str) -> None:
    async with await fed.client_as(party) as client:
        answer = await client.post(
            "/resources", json={"resources": [{"iri": B1}, {"iri": B2}, {"iri": S1}, {"iri": NS + "none"}]}
        )
        items = {item["iri"]: item for item in answer.json()["resources"]}
        again = await client.post("/resources", json={"resources": [{"iri": B1, "etag": items[B1]["etag"]}]})
    for iri in (B1, B2, S1):
        expected = EXPECTED[party].get(iri)
        if expected is None:
            assert items[iri] == {"iri": iri, "status": 404}
        else:
            assert items[iri]["status"] == 200
            assert fields_of(items[iri]["ntriples"].encode(), ox.RdfFormat.N_TRIPLES, iri) == expected
            assert items[iri]["withheld"] == TOLD[party, iri]
    assert items[NS + "none"] == {"iri": NS + "none", "status": 404}
    assert again.json()["resources"] == [{"iri": B1, "status": 304, "etag": items[B1]["etag"]}]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "must be JSON"),
        (b'{"resources": []}', "non-empty"),
        (b'{"resources": [{"iri": "ftp://x"}]}', "http(s) IRI"),
        (b'{"resources": [{"iri": "https://x", "etag": 5}]}', "etag must be a string"),
    ],
)
async def test_batch_refuses_malformed_requests(fed: Federation, body: bytes, reason: str) -> None:
    async with await fed.client_as(MUNI) as client:
        answer = await client.post("/resources", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and reason in answer.json()["detail"]


async def test_batch_needs_a_token(fed: Federation) -> None:
    async with fed.client(FIRM) as client:
        answer = await client.post("/resources", json={"resources": [{"iri": B1}]})
    assert answer.status_code == 401
