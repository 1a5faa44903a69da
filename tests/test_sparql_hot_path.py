"""A point look-up at ``/sparql`` by a known caller is answered before FastAPI's layers
(``gateway.http.hot_sparql``) with the route's status, body, headers and audit entry;
anything the route would decide anew or refuse still reaches it, with its error code."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.audit import tail
from gateway.http.hot_sparql import SparqlHotPath
from gateway.http.sparql_protocol import MAX_QUERY
from tests.kit import FIRM, MUNI, Federation, Pki, federation
from tests.test_policy_paths import B1, DATA, EXPECTED, POLICY

pytestmark = pytest.mark.anyio
POINT = f"SELECT ?p ?o WHERE {{ <{B1}> ?p ?o }}"
JSON = {"accept": "application/sparql-results+json"}


@pytest.fixture
async def fed(tmp_path: Path, pki: Pki) -> AsyncIterator[Federation]:
    async with federation(tmp_path, pki, nodes=(FIRM, MUNI), policies={FIRM: POLICY}, data={FIRM: DATA}) as f:
        yield f


@pytest.fixture
async def client(fed: Federation) -> AsyncIterator[httpx.AsyncClient]:
    """MUNI's client at FIRM's node, whose token FIRM's node has verified already."""
    async with await fed.client_as(MUNI) as c:
        (await c.get("/sparql", params={"query": POINT})).raise_for_status()
        yield c


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """One ``True`` per request the hot path answered."""
    seen: list[bool] = []
    original = SparqlHotPath._answer

    def spy(self: SparqlHotPath, scope: Any, query: str) -> Any:
        answer = original(self, scope, query)
        if answer is not None:
            seen.append(True)
        return answer

    monkeypatch.setattr(SparqlHotPath, "_answer", spy)
    yield seen


def comparable(answer: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    return answer.status_code, answer.content, dict(answer.headers)


def audited(fed: Federation, n: int) -> list[dict[str, Any]]:
    """The node's latest ``n`` audit entries without their sequence numbers and times."""
    log = fed.nodes[FIRM].state.dsgo.audit
    assert log.flush(timeout=10)
    return [{k: v for k, v in e.items() if k not in ("seq", "time")} for e in tail(log.path, n)]


async def test_get_point_lookup_has_the_routes_status_body_headers_and_audit_entry(
    fed: Federation, client: httpx.AsyncClient, fast: list[bool]
) -> None:
    headers = {**JSON, "x-request-id": "same-request"}
    hot = await client.get("/sparql", params={"query": POINT}, headers=headers)
    # an extra parameter the route ignores: the route itself answers
    routed = await client.get("/sparql", params={"query": POINT, "other": ""}, headers=headers)
    assert fast == [True]
    assert hot.status_code == 200
    assert comparable(hot) == comparable(routed)
    first, second = audited(fed, 2)
    assert first == second and first["caller"] == MUNI and first["path"] == "/sparql"
    assert {b["p"]["value"] for b in hot.json()["results"]["bindings"]} == EXPECTED[MUNI][B1]


async def test_posted_point_lookup_has_the_routes_status_body_headers_and_audit_entry(
    fed: Federation, client: httpx.AsyncClient, fast: list[bool]
) -> None:
    headers = {**JSON, "x-request-id": "same-request"}
    hot = await client.post(
        "/sparql", content=POINT.encode(), headers={**headers, "content-type": "application/sparql-query"}
    )
    routed = await client.post("/sparql", data={"query": POINT}, headers=headers)  # a form: the route's
    assert fast == [True]
    assert hot.status_code == 200
    assert comparable(hot) == comparable(routed)
    first, second = audited(fed, 2)
    assert first == second


@pytest.mark.parametrize(
    "accept", ["text/csv", "application/sparql-results+xml", "text/tab-separated-values"]
)
async def test_point_lookup_in_another_result_format_has_the_routes_answer(
    client: httpx.AsyncClient, fast: list[bool], accept: str
) -> None:
    hot = await client.get("/sparql", params={"query": POINT}, headers={"accept": accept})
    routed = await client.get("/sparql", params={"query": POINT, "other": ""}, headers={"accept": accept})
    assert fast == [True]
    assert hot.status_code == 200
    assert comparable(hot) == comparable(routed)


async def test_point_lookup_with_a_token_not_seen_before_is_answered_by_the_route(
    fed: Federation, fast: list[bool]
) -> None:
    async with await fed.client_as(MUNI) as c:
        answer = await c.get("/sparql", params={"query": POINT})
    assert answer.status_code == 200
    assert fast == []


async def test_other_query_shape_is_answered_by_the_route(
    client: httpx.AsyncClient, fast: list[bool]
) -> None:
    query = f"SELECT ?p ?o WHERE {{ <{B1}> ?p ?o FILTER(true) }}"
    answer = await client.get("/sparql", params={"query": query}, headers=JSON)
    hot = await client.get("/sparql", params={"query": POINT}, headers=JSON)
    assert (answer.status_code, fast) == (200, [True])
    assert answer.content == hot.content


async def test_posted_query_of_another_shape_reaches_the_route_with_its_body(
    client: httpx.AsyncClient, fast: list[bool]
) -> None:
    answer = await client.post(
        "/sparql",
        content=f"ASK {{ <{B1}> ?p ?o }}".encode(),
        headers={"content-type": "application/sparql-query"},
    )
    assert (answer.status_code, answer.json(), fast) == (200, {"head": {}, "boolean": True}, [])


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        (f"SELECT ?p ?o WHERE {{ <{B1}> ?p ?o", 400, "bad_request"),  # malformed
        (f"SELECT ?p ?p WHERE {{ <{B1}> ?p ?o }}", 400, "bad_request"),  # a variable selected twice
        ("SELECT * WHERE { SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } }", 400, "bad_request"),
    ],
)
async def test_bad_query_gets_the_routes_error(
    client: httpx.AsyncClient, fast: list[bool], query: str, status: int, code: str
) -> None:
    answer = await client.get("/sparql", params={"query": query})
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert fast == []


@pytest.mark.parametrize(
    "params",
    [
        {"query": POINT, "default-graph-uri": B1},
        {"query": POINT, "named-graph-uri": B1},
        {"query": [POINT, POINT]},
        {"query": " "},
    ],
)
async def test_point_lookup_with_other_parameters_gets_the_routes_400(
    client: httpx.AsyncClient, fast: list[bool], params: dict[str, Any]
) -> None:
    answer = await client.get("/sparql", params=params)
    assert (answer.status_code, answer.json()["code"]) == (400, "bad_request")
    assert fast == []


async def test_point_lookup_in_a_format_not_offered_is_406(
    client: httpx.AsyncClient, fast: list[bool]
) -> None:
    answer = await client.get("/sparql", params={"query": POINT}, headers={"accept": "image/png"})
    assert (answer.status_code, answer.json()["code"]) == (406, "not_acceptable")
    assert fast == []


async def test_point_lookup_with_two_authorization_headers_is_400(
    client: httpx.AsyncClient, fast: list[bool]
) -> None:
    token = client.headers["authorization"]
    answer = await client.get(
        "/sparql", params={"query": POINT}, headers=[("authorization", token), ("authorization", token)]
    )
    assert answer.status_code == 400
    assert (answer.json()["code"], answer.json()["reason"]) == ("invalid_request", "authorization_malformed")
    assert fast == []


async def test_point_lookup_without_a_token_is_401(
    fed: Federation, client: httpx.AsyncClient, fast: list[bool]
) -> None:
    async with fed.client(FIRM) as anonymous:
        answer = await anonymous.get("/sparql", params={"query": POINT})
    assert answer.status_code == 401
    assert (answer.json()["code"], answer.json()["reason"]) == ("invalid_token", "token_missing")
    assert fast == []


async def test_point_lookup_with_a_bad_token_is_401(client: httpx.AsyncClient, fast: list[bool]) -> None:
    answer = await client.get(
        "/sparql", params={"query": POINT}, headers={"authorization": "Bearer not.a.token"}
    )
    assert (answer.status_code, answer.json()["code"]) == (401, "invalid_token")
    assert fast == []


async def test_point_lookup_after_the_token_expired_is_401_expired(
    fed: Federation, client: httpx.AsyncClient, fast: list[bool]
) -> None:
    fed.clock.now += 3601
    answer = await client.get("/sparql", params={"query": POINT})
    assert answer.status_code == 401
    assert (answer.json()["code"], answer.json()["reason"]) == ("invalid_token", "expired")
    assert fast == []


async def test_point_lookup_with_delegation_evidence_is_decided_by_the_route(
    client: httpx.AsyncClient, fast: list[bool]
) -> None:
    answer = await client.get(
        "/sparql", params={"query": POINT}, headers={"delegation_evidence": "not-a-jwt"}
    )
    assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")
    assert fast == []


async def test_posted_query_larger_than_allowed_gets_the_routes_400(
    client: httpx.AsyncClient, fast: list[bool]
) -> None:
    query = POINT + " " * MAX_QUERY
    answer = await client.post(
        "/sparql", content=query.encode(), headers={"content-type": "application/sparql-query"}
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "bad_request")
    assert fast == []


async def test_posted_point_lookup_with_a_dataset_parameter_gets_the_routes_400(
    client: httpx.AsyncClient, fast: list[bool]
) -> None:
    answer = await client.post(
        "/sparql?default-graph-uri=" + B1,
        content=POINT.encode(),
        headers={"content-type": "application/sparql-query"},
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "bad_request")
    assert fast == []


async def test_point_lookup_while_the_audit_log_refuses_reads_gets_the_routes_answer(
    fed: Federation, client: httpx.AsyncClient, fast: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.errors import AuditUnavailable

    def refuse(entry: Any) -> None:
        raise AuditUnavailable("the audit log cannot be written")

    monkeypatch.setattr(fed.nodes[FIRM].state.dsgo.audit, "record", refuse)
    answer = await client.get("/sparql", params={"query": POINT})
    assert (answer.status_code, answer.json()["code"]) == (503, "audit_unavailable")
    assert fast == []


async def test_a_failing_hot_path_hands_the_query_to_the_route(
    fed: Federation, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It sits in front of the application's error handling: when it raises, the route
    answers (a POST with the body the hot path read), with the route's one audit entry."""
    hot = await client.post(
        "/sparql", content=POINT, headers={**JSON, "content-type": "application/sparql-query"}
    )

    def broken(self: SparqlHotPath, scope: Any, query: str) -> None:
        raise RuntimeError("a bug in the hot path")

    monkeypatch.setattr(SparqlHotPath, "_answer", broken)
    headers = {**JSON, "content-type": "application/sparql-query", "x-request-id": "after-the-bug"}
    routed = await client.post("/sparql", content=POINT, headers=headers)
    assert comparable(routed) == comparable(hot)
    assert [e["request_id"] for e in audited(fed, 2)].count("after-the-bug") == 1
