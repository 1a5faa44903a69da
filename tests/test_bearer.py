"""Bearer authentication on every data route, tokens obtained and reused by the outbound
client, and signed capabilities."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.identity import jwt
from gateway.identity.tokens import TokenIssuer
from tests.kit import CORP, FIRM, MUNI, Federation, Pki, federation

pytestmark = pytest.mark.anyio
DATA_ROUTES = ["/id/building/1", "/collections/bot:Building", "/", "/.well-known/void"]


@pytest.fixture
async def fed(tmp_path: Path, pki: Pki) -> AsyncIterator[Federation]:
    async with federation(tmp_path, pki, nodes=(FIRM, CORP)) as f:
        yield f


async def token_for(fed: Federation, client: str, node: str) -> str:
    """What ``client``'s node obtains from ``node`` through the outbound client."""
    auth = fed.nodes[client].state.dsgo.auth
    return str(await auth.trust.tokens.token(node, f"http://p{node[-3:]}.test"))


def payload(token: str) -> dict[str, object]:
    value: dict[str, object] = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    return value


@pytest.mark.parametrize("path", DATA_ROUTES)
async def test_data_route_without_token_is_401_with_a_bearer_challenge(fed: Federation, path: str) -> None:
    async with fed.client(FIRM) as client:
        answer = await client.get(path)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith(f'Bearer realm="{FIRM}", error="invalid_token"')
    assert answer.headers["content-type"] == "application/problem+json"
    assert (answer.json()["code"], answer.json()["reason"]) == ("invalid_token", "token_missing")


@pytest.mark.parametrize("path", DATA_ROUTES)
async def test_data_route_with_a_valid_token_answers(fed: Federation, path: str) -> None:
    token = await token_for(fed, CORP, FIRM)
    async with fed.client(FIRM) as client:
        answer = await client.get(path, headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Basic dXNlcjpwYXNz", "scheme_not_bearer"),
        ("Bearer not-a-jwt", "token_malformed"),
        ("Bearer a.b.c", "token_malformed"),
    ],
)
async def test_malformed_authorization_is_refused(fed: Federation, header: str, reason: str) -> None:
    async with fed.client(FIRM) as client:
        answer = await client.get("/id/building/1", headers={"authorization": header})
    assert answer.status_code == 401
    assert (answer.json()["code"], answer.json()["reason"]) == ("invalid_token", reason)
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


async def test_token_issued_by_another_node_is_refused(fed: Federation) -> None:
    token_of_corp_node = await token_for(fed, FIRM, CORP)  # valid at CORP's node only
    async with fed.client(FIRM) as client:
        answer = await client.get("/id/building/1", headers={"authorization": f"Bearer {token_of_corp_node}"})
    assert answer.status_code == 401
    assert (answer.json()["code"], answer.json()["reason"]) == ("invalid_token", "signature_invalid")


async def test_token_signed_with_this_nodes_key_for_another_audience_is_refused(
    fed: Federation, pki: Pki
) -> None:
    forged = jwt.sign(
        {"iss": FIRM, "aud": CORP, "sub": MUNI, "jti": "x", "exp": fed.clock() + 60}, pki.ids[FIRM].key
    )
    async with fed.client(FIRM) as client:
        answer = await client.get("/id/building/1", headers={"authorization": f"Bearer {forged}"})
    assert answer.status_code == 401
    assert (answer.json()["code"], answer.json()["reason"]) == ("invalid_token", "token_foreign")


async def test_tampered_token_is_refused(fed: Federation) -> None:
    token = await token_for(fed, CORP, FIRM)
    head, _body, sig = token.split(".")
    claims = payload(token)
    claims["sub"] = MUNI
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    async with fed.client(FIRM) as client:
        answer = await client.get(
            "/id/building/1", headers={"authorization": f"Bearer {head}.{forged_body}.{sig}"}
        )
    assert answer.status_code == 401
    assert (answer.json()["code"], answer.json()["reason"]) == ("invalid_token", "signature_invalid")


async def test_expired_token_is_refused_even_when_it_was_verified_before(fed: Federation) -> None:
    token = await token_for(fed, CORP, FIRM)
    async with fed.client(FIRM) as client:
        ok = await client.get("/id/building/1", headers={"authorization": f"Bearer {token}"})
        fed.clock.now += 3601
        late = await client.get("/id/building/1", headers={"authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert late.status_code == 401
    assert (late.json()["code"], late.json()["reason"]) == ("invalid_token", "expired")


async def test_issued_token_names_the_caller_and_the_node(fed: Federation) -> None:
    claims = payload(await token_for(fed, CORP, FIRM))
    assert claims["iss"] == FIRM and claims["aud"] == FIRM and claims["sub"] == CORP
    assert (
        isinstance(claims["exp"], int)
        and isinstance(claims["iat"], int)
        and claims["exp"] - claims["iat"] == 3600
    )


async def test_outbound_client_reuses_its_token_until_shortly_before_expiry(fed: Federation) -> None:
    first = await token_for(fed, CORP, FIRM)
    again = await token_for(fed, CORP, FIRM)
    fed.clock.now += 3600 - 30  # within the renewal margin
    renewed = await token_for(fed, CORP, FIRM)
    token_posts = [c for c in fed.router.calls if c == "POST http://p001.test/connect/token"]
    assert first == again != renewed
    assert len(token_posts) == 2


async def test_token_cache_is_bounded(pki: Pki) -> None:
    issuer = TokenIssuer(pki.ids[FIRM], cache_size=3)
    tokens = [issuer.issue(CORP, 1000.0 + i) for i in range(5)]
    for token in tokens:
        issuer.check(token, 1010.0)
    assert len(issuer._verified) == 3


async def test_capabilities_are_signed_and_list_restricted_endpoints_only_for_callers(
    fed: Federation,
) -> None:
    token = await token_for(fed, CORP, FIRM)
    async with fed.client(FIRM) as client:
        anonymous = (await client.get("/capabilities")).json()["capabilities_token"]
        known = (await client.get("/capabilities", headers={"authorization": f"Bearer {token}"})).json()
    public_claims = payload(anonymous)
    known_claims = payload(known["capabilities_token"])
    assert public_claims["iss"] == FIRM and public_claims["exp"] - public_claims["iat"] == 30
    features = public_claims["capabilities_info"]["supported_versions"][0]["supported_features"][0]  # type: ignore[index]
    assert "restricted" not in features and features["public"]
    known_features = known_claims["capabilities_info"]["supported_versions"][0]["supported_features"][0]  # type: ignore[index]
    assert known_claims["aud"] == CORP
    urls = {f["url"] for f in known_features["restricted"]}
    assert urls >= {"http://p001.test/{path}", "http://p001.test/collections/{class}"}
    assert all(f["id"] and f["description"] for f in known_features["restricted"] + features["public"])


async def test_health_shows_source_details_only_to_the_nodes_own_party(fed: Federation) -> None:
    outsider = await token_for(fed, CORP, FIRM)
    async with fed.client(FIRM) as client:
        anonymous = (await client.get("/health")).json()
        other = (await client.get("/health", headers={"authorization": f"Bearer {outsider}"})).json()
    assert anonymous["status"] == "ready" and anonymous["sources"] == {"buildings": {"status": "ready"}}
    assert other["sources"] == {"buildings": {"status": "ready"}}


@pytest.mark.parametrize("header", ["Bearer ", "Bearer", "Bearer a b", "Bearer <token>", "Bearer tok\ten"])
async def test_malformed_bearer_header_is_400_invalid_request(fed: Federation, header: str) -> None:
    async with fed.client(FIRM) as client:
        answer = await client.get("/id/building/1", headers={"authorization": header})
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_request"
    assert 'error="invalid_request"' in answer.headers["www-authenticate"]


async def test_two_authorization_headers_are_400_invalid_request(fed: Federation) -> None:
    token = await token_for(fed, CORP, FIRM)
    async with fed.client(FIRM) as client:
        headers = [("authorization", f"Bearer {token}"), ("authorization", "Bearer garbage")]
        answer = await client.get("/id/building/1", headers=headers)
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_request"
