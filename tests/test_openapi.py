"""The OpenAPI documents are complete and true: schemathesis, with every check on, finds no
5xx and no response outside the document, on a node (with a token of its own party) and
on the registry. Bounded: a fixed seed and few examples per operation.

One check is relaxed, for the operations whose input is a SPARQL query: no JSON Schema can
say which strings parse as SPARQL, so a schema-valid query may still be a 400 (nor which
names in a subscription's topic and watched fields the vocabulary declares); every other
check (and positive acceptance everywhere else) stays on. And for the catch-all resource
route, a path its schema excludes is another route's path: that route answers it, by its own
document (fuzzed as its own operation), so such a request is checked only for no 5xx. The delegation mask nests five
levels of arrays whose documented bounds (up to 1000 items) make each generated example
thousands of strings; the fuzzed copy of the document caps that body's arrays at 3 items
(the bounds themselves are tested in test_delegation.py)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.kit import FIRM, REGISTRY, REGISTRY_URL, Pki, endpoint, federation
from tests.loopback import Served, loopback


@pytest.fixture(scope="module")
def served(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("openapi")

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[tuple[Any, dict[str, Any]]]:
        async with federation(folder, pki, nodes=(FIRM,)) as fed:
            yield fed, {"node": fed.nodes[FIRM], "registry": fed.registry}

    with loopback(make) as served:
        yield served


def _token(served: Served, at: str) -> str:
    fed = served.value
    tokens = fed.nodes[FIRM].state.dsgo.auth.trust.tokens
    where = endpoint(FIRM) if at == "node" else REGISTRY_URL
    token: str = served.run(tokens.token(FIRM if at == "node" else REGISTRY, where))
    return token


def _capped(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: min(v, 3) if k == "maxItems" else _capped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_capped(v) for v in value]
    return value


@pytest.fixture(scope="module")
def node_schema(served: Served) -> Any:
    doc = httpx.get(served.urls["node"] + "/openapi.json").json()
    post = doc["paths"]["/delegation"]["post"]
    post["requestBody"] = _capped(post["requestBody"])
    return schemathesis.openapi.from_dict(doc)


@pytest.fixture(scope="module")
def registry_schema(served: Served) -> Any:
    return schemathesis.openapi.from_url(served.urls["registry"] + "/openapi.json")


_RESPONSE_CHECKS = [
    negative_data_rejection,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    allow_header_conformance,
]
_SPARQL_TEXT = {"GET /sparql", "POST /sparql", "POST /federation/query", "POST /subscriptions"}
_BOUNDED = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


def _fuzz(schema: Any, base_url: str, token: str) -> list[str]:
    """Every operation, positive and negative examples, every check; the failures found."""

    @schema.auth()
    class _Bearer:  # the valid token, as schemathesis's own auth (so it also probes without it)
        def get(self, case: Any, context: Any) -> str:
            return token

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        excluded = [positive_data_acceptance] if operation.label in _SPARQL_TEXT else []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _checker(operation, mode, base_url, excluded)()
            except Unsatisfiable:  # nothing can be negative (no parameters, no body)
                continue
            except (Exception, BaseExceptionGroup) as exc:  # one operation's failure; go on with the others
                failures.append(f"{operation.label} ({mode}): {str(exc)[:1500]}")
    return failures


def _elsewhere(operation: Any, case: Any) -> list[Any]:
    """The checks that do not apply: all but no-5xx when the catch-all's path is another route's."""
    if operation.label != "GET /{path}":
        return []
    path = str((case.path_parameters or {}).get("path", ""))
    schema = next(p for p in operation.definition.raw["parameters"] if p["name"] == "path")["schema"]
    return _RESPONSE_CHECKS if re.match(schema["not"]["pattern"], path) else [negative_data_rejection]


def _checker(operation: Any, mode: GenerationMode, base_url: str, excluded: list[Any]) -> Any:
    @given(case=operation.as_strategy(generation_mode=mode))
    @_BOUNDED
    @seed(11)
    def check(case: Any) -> None:
        case.call_and_validate(base_url=base_url, excluded_checks=excluded + _elsewhere(operation, case))

    return check


def test_node_answers_every_generated_request_as_its_document_says(node_schema: Any, served: Served) -> None:
    failures = _fuzz(node_schema, served.urls["node"], _token(served, "node"))
    assert not failures, "\n\n".join(failures)


def test_registry_answers_every_generated_request_as_its_document_says(
    registry_schema: Any, served: Served
) -> None:
    failures = _fuzz(registry_schema, served.urls["registry"], _token(served, "registry"))
    assert not failures, "\n\n".join(failures)


def test_node_document_lists_every_route(served: Served) -> None:
    doc = httpx.get(served.urls["node"] + "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert {"/{path}", "/sparql", "/connect/token", "/resources", "/collections/{cls}"} <= set(doc["paths"])
    assert "bearer" in doc["components"]["securitySchemes"]
    assert "invalid_request" in doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]


def test_docs_page_is_served(served: Served) -> None:
    assert httpx.get(served.urls["node"] + "/docs").status_code == 200


def test_registry_document_lists_every_route(served: Served) -> None:
    doc = httpx.get(served.urls["registry"] + "/openapi.json").json()
    assert {"/parties", "/parties/{party_id}", "/trusted_list", "/versions", "/connect/token"} <= set(
        doc["paths"]
    )
