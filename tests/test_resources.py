"""Resources at their IRIs, collections and the node's self-description over HTTP."""

from __future__ import annotations

import json

import pyoxigraph as ox
import pytest

from gateway.config import NodeSettings
from tests.conftest import NS, serving

pytestmark = pytest.mark.anyio
B1 = NS + "id/building/1"


def triples_of(body: bytes, fmt: ox.RdfFormat) -> set[ox.Triple]:
    return {q.triple for q in ox.parse(body, fmt)}


async def test_resource_is_served_at_its_path_as_turtle_by_default(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        answer = await client.get("/id/building/1")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/turtle; charset=utf-8"
    got = triples_of(answer.content, ox.RdfFormat.TURTLE)
    subjects = {t.subject for t in got}
    assert ox.NamedNode(B1) in subjects
    assert ox.NamedNode(NS + "id/building/2") not in subjects


async def test_representation_is_the_concise_bounded_description(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        answer = await client.get("/id/building/1", headers={"accept": "application/n-triples"})
    got = triples_of(answer.content, ox.RdfFormat.N_TRIPLES)
    blank_subjects = [t for t in got if isinstance(t.subject, ox.BlankNode)]
    # the floor area node and the comment node nested in it, but not the storey's triples
    assert len({t.subject for t in blank_subjects}) == 2
    assert not any(t.subject == ox.NamedNode(NS + "id/building/1/storey/0") for t in got)
    assert len(got) == 13  # 9 of the building, 3 + 1 of the blank nodes


@pytest.mark.parametrize(
    ("accept", "media", "fmt"),
    [
        ("text/turtle", "text/turtle", ox.RdfFormat.TURTLE),
        ("application/n-triples", "application/n-triples", ox.RdfFormat.N_TRIPLES),
        ("application/ld+json", "application/ld+json", ox.RdfFormat.JSON_LD),
    ],
)
async def test_every_format_carries_the_same_triples(
    settings: NodeSettings, accept: str, media: str, fmt: ox.RdfFormat
) -> None:
    async with serving(settings) as (_, client):
        reference = await client.get("/id/building/1", headers={"accept": "application/n-triples"})
        answer = await client.get("/id/building/1", headers={"accept": accept})
    assert answer.headers["content-type"].startswith(media)
    ref = ox.Dataset(
        ox.Quad(t.subject, t.predicate, t.object)
        for t in triples_of(reference.content, ox.RdfFormat.N_TRIPLES)
    )
    got = ox.Dataset(ox.Quad(t.subject, t.predicate, t.object) for t in triples_of(answer.content, fmt))
    ref.canonicalize(ox.CanonicalizationAlgorithm.UNSTABLE)
    got.canonicalize(ox.CanonicalizationAlgorithm.UNSTABLE)
    assert ref == got


async def test_jsonld_is_compacted_with_the_project_context(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        doc = (await client.get("/id/building/1", headers={"accept": "application/ld+json"})).json()
    assert doc["@context"]["bot"] == "https://w3id.org/bot#"
    node = next(n for n in doc["@graph"] if n["@id"] == B1)
    assert node["@type"] == "bot:Building"
    assert node["dsgo:energyLabel"] == "C"
    assert node["dsgo:rcRoof"] == {"@value": "2.5", "@type": "xsd:decimal"}


async def test_html_page_links_iris(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        answer = await client.get("/id/building/1", headers={"accept": "text/html"})
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert 'href="/id/building/1/storey/0"' in answer.text
    assert 'href="https://bag.basisregistraties.overheid.nl/id/pand/0363100012345678"' in answer.text


async def test_format_query_parameter_overrides_accept(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        answer = await client.get("/id/building/1?format=jsonld", headers={"accept": "text/html"})
    assert answer.headers["content-type"] == "application/ld+json"


async def test_etag_on_every_representation_and_304_when_it_matches(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        tags = set()
        for accept in ("text/turtle", "application/ld+json", "application/n-triples", "text/html"):
            first = await client.get("/id/building/1", headers={"accept": accept})
            tag = first.headers["etag"]
            tags.add(tag)
            again = await client.get("/id/building/1", headers={"accept": accept, "if-none-match": tag})
            assert again.status_code == 304
            assert again.content == b""
            assert again.headers["etag"] == tag
            weak = await client.get(
                "/id/building/1", headers={"accept": accept, "if-none-match": f'"x", W/{tag}'}
            )
            assert weak.status_code == 304
        other = await client.get("/id/building/1", headers={"if-none-match": '"stale"'})
    assert len(tags) == 4
    assert other.status_code == 200


async def test_unknown_resource_is_404_problem_json(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        answer = await client.get("/id/building/999")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 404 and problem["code"] == "not_found"
    assert NS + "id/building/999" in problem["detail"]


async def test_unproducible_type_is_406_problem_json(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        answer = await client.get("/id/building/1", headers={"accept": "image/png"})
        unknown = await client.get("/id/building/1?format=xlsx")
    assert answer.status_code == 406
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "not_acceptable"
    assert "text/turtle" in answer.json()["detail"]
    assert unknown.status_code == 406


async def test_wrong_method_is_problem_json(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        answer = await client.delete("/id/building/1")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/problem+json"


async def test_collection_lists_members_of_a_class_with_paging(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        first = await client.get("/collections/bot:Building?limit=2")
        second = await client.get("/collections/bot:Building?limit=2&page=2")
        past = await client.get("/collections/bot:Building?limit=2&page=3")
        bad = await client.get("/collections/bot:Building?limit=zero")
        unknown = await client.get("/collections/nope:Thing")
        invalid = await client.get("/collections/https://x.example/%3Cbad%3E")
    assert first.status_code == 200
    assert '</collections/bot:Building?page=2&limit=2>; rel="next"' in first.headers["link"]
    members = lambda r: {  # noqa: E731
        t.object.value
        for t in triples_of(r.content, ox.RdfFormat.TURTLE)
        if t.predicate.value.endswith("#member")
    }
    assert members(first) == {NS + "id/building/1", NS + "id/building/2"}
    assert members(second) == {NS + "id/building/3"}
    assert 'rel="next"' not in second.headers["link"] and 'rel="prev"' in second.headers["link"]
    assert past.status_code == 404 and past.headers["content-type"] == "application/problem+json"
    assert bad.status_code == 400 and bad.json()["code"] == "bad_request"
    assert unknown.status_code == 404
    assert invalid.status_code == 404 and invalid.headers["content-type"] == "application/problem+json"


async def test_collection_in_jsonld_and_html(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        doc = (await client.get("/collections/bot:Storey", headers={"accept": "application/ld+json"})).json()
        page = await client.get("/collections/bot:Building", headers={"accept": "text/html"})
    coll = next(n for n in doc["@graph"] if "hydra:member" in n)
    assert coll["hydra:member"] == {"@id": NS + "id/building/1/storey/0"}
    assert 'href="/id/building/3"' in page.text


@pytest.mark.parametrize("path", ["/", "/.well-known/void"])
async def test_node_describes_what_it_publishes(settings: NodeSettings, path: str) -> None:
    async with serving(settings) as (_, client):
        answer = await client.get(path, headers={"accept": "application/n-triples"})
    got = triples_of(answer.content, ox.RdfFormat.N_TRIPLES)
    void = "http://rdfs.org/ns/void#"
    parts = {
        t.subject for t in got if t.predicate.value == void + "class" and t.object.value.endswith("#Building")
    }
    assert len(parts) == 1
    entities = {t.object.value for t in got if t.subject in parts and t.predicate.value == void + "entities"}
    assert entities == {"3"}
    media = {t.object.value for t in got if t.predicate.value.endswith("mediaType")}
    assert media == {"text/turtle", "application/ld+json", "application/n-triples", "text/html"}
    assert any(t.predicate.value == void + "uriSpace" and t.object.value == NS for t in got)


async def test_catalog_html_names_the_party(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        answer = await client.get("/", headers={"accept": "text/html"})
    assert "Test Bouw (EU.EORI.NL000000001)" in answer.text


async def test_health_reports_sources(settings: NodeSettings) -> None:
    async with serving(settings) as (_, client):
        health = (await client.get("/health")).json()
    assert health["status"] == "ready"
    assert health["sources"]["buildings"]["status"] == "ready"
    assert health["sources"]["buildings"]["triples"] == 18
    assert json.dumps(health)  # plain JSON
