"""The participant registry: signed answers, filters, both iSHARE shapes, and a node
that trusts through it with a bounded cache and fails closed."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from gateway.identity.assertions import ASSERTION_TYPE, make_assertion
from gateway.identity.parties import parse_party
from gateway.identity.pki import fingerprint, make_party
from gateway.registry import load_registry_settings
from tests.kit import (
    CORP,
    FIRM,
    INACTIVE,
    MUNI,
    REGISTRY,
    REGISTRY_URL,
    Federation,
    Pki,
    federation,
    write_registry,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fed(tmp_path: Path, pki: Pki) -> AsyncIterator[Federation]:
    async with federation(tmp_path, pki, nodes=(FIRM,)) as f:
        yield f


def claims_of(token: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    return value


async def registry_get(fed: Federation, path: str, **params: str) -> Any:
    auth = fed.nodes[FIRM].state.dsgo.auth
    token = await auth.trust.tokens.token(REGISTRY, REGISTRY_URL)
    return await auth.trust.tokens.http.get(
        REGISTRY_URL + path, params=params, headers={"authorization": f"Bearer {token}"}
    )


def token_form(pki: Pki, client: str, audience: str, now: float) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": "iSHARE",
        "client_id": client,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_assertion(pki.ids[client], audience, now),
    }


async def test_parties_answer_is_signed_for_the_requester_and_lives_30_seconds(fed: Federation) -> None:
    answer = await registry_get(fed, "/parties")
    claims = claims_of(answer.json()["parties_token"])
    assert claims["iss"] == REGISTRY and claims["aud"] == FIRM and claims["exp"] - claims["iat"] == 30
    ids = {p["party_id"] for p in claims["parties_info"]["data"]}
    assert {FIRM, CORP, MUNI, INACTIVE} <= ids and claims["parties_info"]["count"] == len(ids)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"eori": CORP}, {CORP}),
        ({"name": "party 00[12]"}, {FIRM, CORP}),
        ({"name": "*003"}, {MUNI}),
        ({"namespace": "https://data.p002.example/id/building/7"}, {CORP}),
        ({"namespace": "https://elsewhere.example/x"}, set()),
    ],
)
async def test_parties_can_be_filtered(fed: Federation, params: dict[str, str], expected: set[str]) -> None:
    claims = claims_of((await registry_get(fed, "/parties", **params)).json()["parties_token"])
    assert {p["party_id"] for p in claims["parties_info"]["data"]} == expected


async def test_active_only_leaves_out_inactive_ended_and_future_parties(fed: Federation) -> None:
    claims = claims_of((await registry_get(fed, "/parties", active_only="true")).json()["parties_token"])
    assert {p["party_id"] for p in claims["parties_info"]["data"]} == {FIRM, CORP, MUNI}


async def test_party_entry_carries_ishare_fields_and_the_dsgo_extension(fed: Federation, pki: Pki) -> None:
    claims = claims_of((await registry_get(fed, f"/parties/{CORP}")).json()["party_token"])
    info = claims["party_info"]
    assert info["party_id"] == CORP and info["adherence"]["status"] == "Active"
    assert info["adherence"]["start_date"] == "2020-01-01T00:00:00.000Z"
    assert info["certificates"][0]["x5t#s256"] == fingerprint(pki.ids[CORP].chain[0])
    assert info["roles"] == []  # HousingCorporation is the federation's role, not iSHARE's
    assert info["dsgo"] == {
        "namespaces": ["https://data.p002.example/"],
        "endpoint": "http://p002.test",
        "roles": ["HousingCorporation"],
    }


async def test_unknown_party_is_404(fed: Federation) -> None:
    answer = await registry_get(fed, "/parties/EU.EORI.NL999999999")
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


async def test_trusted_list_names_the_development_root(fed: Federation, pki: Pki) -> None:
    from gateway.identity.pki import load_chain

    claims = claims_of((await registry_get(fed, "/trusted_list")).json()["trusted_list_token"])
    root = load_chain(pki.ca / "root.cert.pem")[0]
    assert [e["certificate_fingerprint"] for e in claims["trusted_list"]] == [fingerprint(root)]


async def test_versions_are_signed(fed: Federation) -> None:
    claims = claims_of((await registry_get(fed, "/versions")).json()["versions_token"])
    assert claims["versions_info"][0]["version_name"] == "2.0.0"


@pytest.mark.parametrize(
    "path", ["/parties", f"/parties/{CORP}", "/trusted_list", "/v3/parties", "/v3/trustedList"]
)
async def test_registry_routes_need_a_token(fed: Federation, path: str) -> None:
    answer = await fed.router.handle_async_request(__import__("httpx").Request("GET", REGISTRY_URL + path))
    await answer.aread()
    assert answer.status_code == 401


def test_both_ishare_shapes_parse_to_the_same_party() -> None:
    v2 = {
        "party_id": FIRM,
        "party_name": "Firm",
        "adherence": {
            "status": "Active",
            "start_date": "2020-01-01T00:00:00Z",
            "end_date": "2030-01-01T00:00:00Z",
        },
        "certificates": [{"x5t#s256": "ab" * 32}],
        "roles": [{"role": "ServiceProvider"}],
    }
    v3 = {
        "partyId": FIRM,
        "partyName": "Firm",
        "adherence": {
            "status": "Active",
            "startDate": "2020-01-01T00:00:00.000Z",
            "endDate": "2030-01-01T00:00:00Z",
        },
        "certificates": [{"x5t#s256": "AB" * 32}],
        "roles": [{"role": "ServiceProvider"}],
    }
    a, b = parse_party(v2), parse_party(v3)
    assert (a.party_id, a.name, a.status, a.start_date, a.end_date, a.certificates, a.roles) == (
        b.party_id,
        b.name,
        b.status,
        b.start_date,
        b.end_date,
        b.certificates,
        b.roles,
    )


async def test_node_serves_from_its_registry_cache_while_the_registry_is_down(
    fed: Federation, pki: Pki
) -> None:
    async with fed.client(FIRM) as client:
        warm = await client.post("/connect/token", data=token_form(pki, CORP, FIRM, fed.clock()))
        del fed.router.apps["registry.test"]  # the registry goes down
        fed.clock.now += 120  # past the refresh interval, within the lifetime
        cached = await client.post("/connect/token", data=token_form(pki, CORP, FIRM, fed.clock()))
        fed.clock.now += 600  # past the lifetime: fail closed
        refused = await client.post("/connect/token", data=token_form(pki, CORP, FIRM, fed.clock()))
    assert warm.status_code == 200 and cached.status_code == 200
    assert refused.status_code == 503
    assert refused.json()["code"] == "temporarily_unavailable"
    assert "registry cannot be reached" in refused.json()["detail"]


async def test_node_refuses_registry_answers_not_signed_by_the_registry(tmp_path: Path, pki: Pki) -> None:
    # the registry's file names FIRM's key: its answers are validly signed, but not by the registry
    async with federation(tmp_path, pki, nodes=(CORP,)) as fed:
        from gateway.registry import create_registry_app

        text = write_registry(tmp_path, pki).read_text().replace(str(pki.keys(REGISTRY)), str(pki.keys(FIRM)))
        text = text.replace(f'party_id = "{REGISTRY}"', f'party_id = "{FIRM}"', 1)
        (tmp_path / "impostor.toml").write_text(text)
        impostor = create_registry_app(load_registry_settings(tmp_path / "impostor.toml"), clock=fed.clock)
        fed.router.mount(REGISTRY_URL, impostor)
        async with impostor.router.lifespan_context(impostor), fed.client(CORP) as client:
            answer = await client.post("/connect/token", data=token_form(pki, MUNI, CORP, fed.clock()))
    assert answer.status_code == 503
    assert answer.json()["code"] == "temporarily_unavailable"


async def test_node_refuses_registry_answers_from_a_certificate_it_does_not_pin(
    tmp_path: Path, pki: Pki
) -> None:
    # the registry's id on a second certificate from the trusted CA: chain and serialNumber
    # are right, but it is not the registry certificate the node pins
    make_party(REGISTRY, tmp_path / "registry-second", pki.ca)
    async with federation(tmp_path, pki, nodes=(CORP,)) as fed:
        from gateway.registry import create_registry_app

        text = (
            write_registry(tmp_path, pki)
            .read_text()
            .replace(str(pki.keys(REGISTRY)), str(tmp_path / "registry-second"))
        )
        (tmp_path / "rekeyed.toml").write_text(text)
        rekeyed = create_registry_app(load_registry_settings(tmp_path / "rekeyed.toml"), clock=fed.clock)
        fed.router.mount(REGISTRY_URL, rekeyed)
        async with rekeyed.router.lifespan_context(rekeyed), fed.client(CORP) as client:
            answer = await client.post("/connect/token", data=token_form(pki, MUNI, CORP, fed.clock()))
    assert answer.status_code == 503
    assert answer.json()["code"] == "temporarily_unavailable"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("[registry]\n", "[registry]\ncolour = 1\n"), "registry.colour"),
        ((f'party_id = "{REGISTRY}"', 'party_id = "nobody"'), "registry.party_id"),
        (('id = "EU.EORI.NL000000001"', 'id = "x"'), "party[0].id"),
        (
            ('roles = ["ConstructionFirm"]', 'roles = ["ConstructionFirm"]\nflavour = "x"', 1),
            "party[0].flavour",
        ),
        (
            ('namespaces = ["https://data.p001.example/"]', 'namespaces = ["https://no-slash"]'),
            "party[0].namespaces",
        ),
    ],
)
def test_broken_registry_file_names_the_key(
    tmp_path: Path, pki: Pki, change: tuple[Any, ...], key: str
) -> None:
    path = write_registry(tmp_path, pki)
    path.write_text(path.read_text().replace(*change))
    with pytest.raises(ConfigError) as err:
        load_registry_settings(path)
    assert err.value.key == key


def test_party_endpoints_can_be_overridden_from_the_environment(tmp_path: Path, pki: Pki) -> None:
    path = write_registry(tmp_path, pki)
    settings = load_registry_settings(
        path, {"DSGO_PARTY_ENDPOINTS": f"{FIRM}=http://firm:8201/, {CORP}=http://corp:8202"}
    )
    endpoints = {p.party_id: p.endpoint for p in settings.parties}
    assert endpoints[FIRM] == "http://firm:8201" and endpoints[CORP] == "http://corp:8202"
    assert endpoints[MUNI] == "http://p003.test"


@pytest.mark.parametrize("value", ["EU.EORI.NL999999999=http://x:1", f"{FIRM}=ftp://x", "nonsense"])
def test_a_wrong_endpoint_override_is_named(tmp_path: Path, pki: Pki, value: str) -> None:
    with pytest.raises(ConfigError, match="DSGO_PARTY_ENDPOINTS"):
        load_registry_settings(write_registry(tmp_path, pki), {"DSGO_PARTY_ENDPOINTS": value})
