"""POST /connect/token: the happy path, and an attack corpus where every malformed or
malicious request is refused with its own status and RFC 6749 error code, never 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.identity.assertions import ASSERTION_TYPE, make_assertion
from gateway.identity.pki import Identity, b64_der, load_identity
from tests.kit import CORP, ENDED, FIRM, INACTIVE, NOT_YET, UNKNOWN, Federation, Pki, federation, self_signed

pytestmark = pytest.mark.anyio
NODE = FIRM  # the node that answers; the client is CORP unless a case says otherwise


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws(
    header: dict[str, Any], claims: Any, key: rsa.RSAPrivateKey | None, *, raw_payload: bytes | None = None
) -> str:
    """A compact JWS signed RS256 with ``key`` (or unsigned when None), any header."""
    head = b64(json.dumps(header).encode())
    body = b64(raw_payload if raw_payload is not None else json.dumps(claims).encode())
    signing_input = f"{head}.{body}".encode()
    if key is None:
        return f"{head}.{body}."
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64(signature)}"


def claims(identity: Identity, now: float, **changes: Any) -> dict[str, Any]:
    iat = int(now)
    base: dict[str, Any] = {
        "iss": identity.party_id,
        "sub": identity.party_id,
        "aud": NODE,
        "jti": uuid.uuid4().hex,
        "iat": iat,
        "nbf": iat,
        "exp": iat + 30,
    }
    for name, value in changes.items():
        if value is _DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


_DROP = object()


def header(identity: Identity, **changes: Any) -> dict[str, Any]:
    head: dict[str, Any] = {"alg": "RS256", "typ": "JWT", "x5c": identity.x5c}
    head.update(changes)
    return head


def form(assertion: str, client_id: str = CORP, **changes: str | None) -> dict[str, str]:
    base = {
        "grant_type": "client_credentials",
        "scope": "iSHARE",
        "client_id": client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    for name, value in changes.items():
        if value is None:
            base.pop(name)
        else:
            base[name] = value
    return base


# -- the corpus --------------------------------------------------------------------------
# each case: (builder(pki, now) -> request kwargs for httpx, expected status, expected code)
Case = Callable[[Pki, float], dict[str, Any]]


def signed(change_header: dict[str, Any] | None = None, **change_claims: Any) -> Case:
    def build(pki: Pki, now: float) -> dict[str, Any]:
        me = pki.ids[CORP]
        token = jws(header(me, **(change_header or {})), claims(me, now, **change_claims), me.key)
        return {"data": form(token)}

    return build


def as_party(identity: Callable[[Pki], Identity], client_id: str | None = None) -> Case:
    def build(pki: Pki, now: float) -> dict[str, Any]:
        me = identity(pki)
        token = jws(header(me), claims(me, now, aud=NODE), me.key)
        return {"data": form(token, client_id or me.party_id)}

    return build


def custom(make: Callable[[Pki, float], str], client_id: str = CORP) -> Case:
    return lambda pki, now: {"data": form(make(pki, now), client_id)}


def valid(pki: Pki, now: float) -> str:
    return make_assertion(pki.ids[CORP], NODE, now)


def _none_alg(pki: Pki, now: float) -> str:
    me = pki.ids[CORP]
    return jws(header(me, alg="none"), claims(me, now), None)


def _hs256_with_certificate(pki: Pki, now: float) -> str:
    me = pki.ids[CORP]
    head = b64(json.dumps(header(me, alg="HS256")).encode())
    body = b64(json.dumps(claims(me, now)).encode())
    secret = (
        me.chain[0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def _other_key(pki: Pki, now: float) -> str:
    me = pki.ids[CORP]
    return jws(header(me), claims(me, now), pki.ids[FIRM].key)


def _payload(raw: bytes) -> Callable[[Pki, float], str]:
    return lambda pki, now: jws(header(pki.ids[CORP]), None, pki.ids[CORP].key, raw_payload=raw)


def _reversed_chain(pki: Pki, now: float) -> str:
    me = pki.ids[CORP]
    return jws(header(me, x5c=list(reversed(me.x5c))), claims(me, now), me.key)


def _leaf_only(pki: Pki, now: float) -> str:
    me = pki.ids[CORP]
    return jws(header(me, x5c=me.x5c[:1]), claims(me, now), me.key)


def _self_signed(pki: Pki, now: float) -> str:
    me = self_signed(CORP)
    return jws(header(me), claims(me, now), me.key)


def _access_token_of_another_node(pki: Pki, now: float) -> str:
    from gateway.identity.tokens import TokenIssuer

    return TokenIssuer(pki.ids[INACTIVE]).issue(CORP, now)


CORPUS: dict[str, tuple[Case, int, str]] = {
    "alg none": (custom(_none_alg), 401, "invalid_client"),
    "HS256 keyed with the certificate": (custom(_hs256_with_certificate), 401, "invalid_client"),
    "RS256 by a key that is not the certificate's": (custom(_other_key), 401, "invalid_client"),
    "alg RS512": (signed({"alg": "RS512"}), 401, "invalid_client"),
    "alg PS256": (signed({"alg": "PS256"}), 401, "invalid_client"),
    "crit header": (signed({"crit": ["exp"]}), 401, "invalid_client"),
    "aud as an array": (signed(aud=[NODE]), 401, "invalid_client"),
    "aud for another party": (signed(aud=CORP), 401, "invalid_client"),
    "aud missing": (signed(aud=_DROP), 401, "invalid_client"),
    "iat as a string": (signed(iat="1700000000"), 401, "invalid_client"),
    "exp as a string": (signed(exp="1700000030"), 401, "invalid_client"),
    "iat as a boolean": (signed(iat=True), 401, "invalid_client"),
    "iat missing": (signed(iat=_DROP), 401, "invalid_client"),
    "exp missing": (signed(exp=_DROP), 401, "invalid_client"),
    "exp - iat is 60": (lambda p, n: signed(exp=int(n) + 60)(p, n), 401, "invalid_client"),
    "exp - iat is 29": (lambda p, n: signed(exp=int(n) + 29)(p, n), 401, "invalid_client"),
    "expired": (
        lambda p, n: signed(iat=int(n) - 100, nbf=int(n) - 100, exp=int(n) - 70)(p, n),
        401,
        "invalid_client",
    ),
    "not yet valid (iat ahead)": (
        lambda p, n: signed(iat=int(n) + 60, nbf=int(n) + 60, exp=int(n) + 90)(p, n),
        401,
        "invalid_client",
    ),
    "nbf in the future": (lambda p, n: signed(nbf=int(n) + 60)(p, n), 401, "invalid_client"),
    "iss differs from sub": (signed(iss=FIRM), 401, "invalid_client"),
    "iss and sub not the client_id": (signed(iss=FIRM, sub=FIRM), 401, "invalid_client"),
    "iss missing": (signed(iss=_DROP), 401, "invalid_client"),
    "sub missing": (signed(sub=_DROP), 401, "invalid_client"),
    "sub of another party": (signed(sub=FIRM), 401, "invalid_client"),
    "jti missing": (signed(jti=_DROP), 401, "invalid_client"),
    "jti empty": (signed(jti=""), 401, "invalid_client"),
    "jti a number": (signed(jti=12), 401, "invalid_client"),
    "jti too long": (signed(jti="x" * 300), 401, "invalid_client"),
    "chain to an untrusted CA": (
        as_party(lambda p: load_identity(p.folder / "rogue-firm")),
        401,
        "invalid_client",
    ),
    "self-signed leaf": (custom(_self_signed), 401, "invalid_client"),
    "reversed chain (CA first)": (custom(_reversed_chain), 401, "invalid_client"),
    "leaf without its CAs": (custom(_leaf_only), 401, "invalid_client"),
    "x5c missing": (signed({"x5c": None}), 401, "invalid_client"),
    "x5c empty": (signed({"x5c": []}), 401, "invalid_client"),
    "x5c not certificates": (signed({"x5c": ["bm90IGEgY2VydA=="]}), 401, "invalid_client"),
    "x5c a string": (signed({"x5c": "MIIB"}), 401, "invalid_client"),
    "x5c of numbers": (signed({"x5c": [1, 2]}), 401, "invalid_client"),
    "party unknown to the registry": (as_party(lambda p: p.ids[UNKNOWN]), 401, "invalid_client"),
    "party inactive": (as_party(lambda p: p.ids[INACTIVE]), 401, "invalid_client"),
    "party past its end date": (as_party(lambda p: p.ids[ENDED]), 401, "invalid_client"),
    "party before its start date": (as_party(lambda p: p.ids[NOT_YET]), 401, "invalid_client"),
    "certificate not the registered one": (
        as_party(lambda p: load_identity(p.folder / "firm-second")),
        401,
        "invalid_client",
    ),
    "truncated token": (custom(lambda p, n: valid(p, n)[:-20]), 401, "invalid_client"),
    "token of two parts": (custom(lambda p, n: ".".join(valid(p, n).split(".")[:2])), 401, "invalid_client"),
    "token of four parts": (custom(lambda p, n: valid(p, n) + ".x"), 401, "invalid_client"),
    "oversized token": (custom(lambda p, n: valid(p, n) + "A" * 20_000), 401, "invalid_client"),
    "header not JSON": (
        custom(lambda p, n: "bm90IGpzb24." + valid(p, n).split(".", 1)[1]),
        401,
        "invalid_client",
    ),
    "payload not JSON": (custom(_payload(b"not json")), 401, "invalid_client"),
    "payload a JSON array": (custom(_payload(b"[1, 2]")), 401, "invalid_client"),
    "an access token minted by another node": (custom(_access_token_of_another_node), 401, "invalid_client"),
    "wrong grant type": (
        lambda p, n: {"data": form(valid(p, n), grant_type="password")},
        400,
        "unsupported_grant_type",
    ),
    "grant type missing": (lambda p, n: {"data": form(valid(p, n), grant_type=None)}, 400, "invalid_request"),
    "wrong scope": (lambda p, n: {"data": form(valid(p, n), scope="openid")}, 400, "invalid_scope"),
    "scope of other values only": (
        lambda p, n: {"data": form(valid(p, n), scope="openid profile")},
        400,
        "invalid_scope",
    ),
    "client_id missing": (lambda p, n: {"data": form(valid(p, n), client_id=None)}, 400, "invalid_request"),
    "client_assertion missing": (
        lambda p, n: {"data": form(valid(p, n), client_assertion=None)},
        400,
        "invalid_request",
    ),
    "client_assertion_type wrong": (
        lambda p, n: {"data": form(valid(p, n), client_assertion_type="urn:x")},
        400,
        "invalid_request",
    ),
    "client_id of another party": (
        lambda p, n: {"data": form(valid(p, n), client_id=FIRM)},
        401,
        "invalid_client",
    ),
    "JSON body instead of a form": (lambda p, n: {"json": form(valid(p, n))}, 400, "invalid_request"),
    "repeated parameter": (
        lambda p, n: {
            "content": httpx.QueryParams([*form(valid(p, n)).items(), ("scope", "iSHARE")])
            .__str__()
            .encode(),
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        400,
        "invalid_request",
    ),
    "body not UTF-8": (
        lambda p, n: {
            "content": b"grant_type=\xff\xfe",
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        400,
        "invalid_request",
    ),
    "empty body": (
        lambda p, n: {"content": b"", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        400,
        "invalid_request",
    ),
    "oversized form": (
        lambda p, n: {
            "content": b"a=" + b"x" * (32 * 1024),
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        400,
        "invalid_request",
    ),
}


#: the stable reason code each case must be refused with (None: the error code says it all)
REASON: dict[str, str | None] = {
    "alg none": "alg_not_allowed",
    "HS256 keyed with the certificate": "alg_not_allowed",
    "RS256 by a key that is not the certificate's": "signature_invalid",
    "alg RS512": "alg_not_allowed",
    "alg PS256": "alg_not_allowed",
    "crit header": "crit_unsupported",
    "aud as an array": "aud_array",
    "aud for another party": "aud_wrong",
    "aud missing": "aud_wrong",
    "iat as a string": "claim_type",
    "exp as a string": "claim_type",
    "iat as a boolean": "claim_type",
    "iat missing": "claim_missing",
    "exp missing": "claim_missing",
    "exp - iat is 60": "lifetime_wrong",
    "exp - iat is 29": "lifetime_wrong",
    "expired": "expired",
    "not yet valid (iat ahead)": "not_yet_valid",
    "nbf in the future": "not_yet_valid",
    "iss differs from sub": "iss_not_signer",
    "iss and sub not the client_id": "iss_not_signer",
    "iss missing": "iss_not_signer",
    "sub missing": "claim_missing",
    "sub of another party": "sub_not_client",
    "jti missing": "claim_missing",
    "jti empty": "claim_type",
    "jti a number": "claim_type",
    "jti too long": "jti_too_long",
    "chain to an untrusted CA": "chain_untrusted",
    "self-signed leaf": "leaf_self_signed",
    "reversed chain (CA first)": "leaf_is_ca",
    "leaf without its CAs": "chain_untrusted",
    "x5c missing": "x5c_missing",
    "x5c empty": "x5c_missing",
    "x5c not certificates": "x5c_not_certificate",
    "x5c a string": "x5c_missing",
    "x5c of numbers": "x5c_missing",
    "party unknown to the registry": "party_unknown",
    "party inactive": "party_not_active",
    "party past its end date": "party_not_active",
    "party before its start date": "party_not_active",
    "certificate not the registered one": "certificate_not_registered",
    "truncated token": "signature_invalid",
    "token of two parts": "token_malformed",
    "token of four parts": "token_malformed",
    "oversized token": "token_too_large",
    "header not JSON": "token_malformed",
    "payload not JSON": "token_malformed",
    "payload a JSON array": "token_malformed",
    "an access token minted by another node": "x5c_missing",
    "wrong grant type": None,
    "grant type missing": "parameter_missing",
    "wrong scope": None,
    "scope of other values only": None,
    "client_id missing": "parameter_missing",
    "client_assertion missing": "parameter_missing",
    "client_assertion_type wrong": "assertion_type_wrong",
    "client_id of another party": "signer_not_client",
    "JSON body instead of a form": "form_content_type",
    "repeated parameter": "parameter_repeated",
    "body not UTF-8": "form_malformed",
    "empty body": "parameter_missing",
    "oversized form": "form_too_large",
}


@pytest.fixture
async def fed(tmp_path: Path, pki: Pki) -> Any:
    async with federation(tmp_path, pki) as f:
        yield f


@pytest.mark.parametrize("name", sorted(CORPUS))
async def test_token_endpoint_refuses(fed: Federation, pki: Pki, name: str) -> None:
    build, status, code = CORPUS[name]
    async with fed.client(NODE) as client:
        answer = await client.post("/connect/token", **build(pki, fed.clock()))
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["code"] == code and body["error"] == code
    assert body.get("reason") == REASON[name]
    assert body["error_description"] == body["detail"] and "access_token" not in body


async def test_replayed_assertion_is_refused_the_second_time(fed: Federation, pki: Pki) -> None:
    data = form(valid(pki, fed.clock()))
    async with fed.client(NODE) as client:
        first = await client.post("/connect/token", data=data)
        second = await client.post("/connect/token", data=data)
    assert first.status_code == 200
    assert second.status_code == 401
    assert (second.json()["code"], second.json()["reason"]) == ("invalid_client", "jti_replayed")


async def test_valid_assertion_gets_an_iSHARE_access_token(fed: Federation, pki: Pki) -> None:
    async with fed.client(NODE) as client:
        answer = await client.post("/connect/token", data=form(valid(pki, fed.clock())))
        body = answer.json()
        data = await client.get("/id/building/1", headers={"authorization": f"Bearer {body['access_token']}"})
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    claims = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "=="))
    assert claims["aud"] == NODE and claims["iss"] == NODE and claims["sub"] == CORP
    assert data.status_code == 200


async def test_numeric_dates_may_be_fractional(fed: Federation, pki: Pki) -> None:
    me = pki.ids[CORP]
    now = fed.clock() + 0.5
    token = jws(header(me), claims(me, now, iat=now, nbf=now, exp=now + 30), me.key)
    async with fed.client(NODE) as client:
        answer = await client.post("/connect/token", data=form(token))
    assert answer.status_code == 200, answer.text


async def test_pem_text_in_x5c_is_accepted(fed: Federation, pki: Pki) -> None:
    me = pki.ids[CORP]
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in me.chain]
    token = jws(header(me, x5c=pems), claims(me, fed.clock()), me.key)
    async with fed.client(NODE) as client:
        answer = await client.post("/connect/token", data=form(token))
    assert answer.status_code == 200, answer.text


async def test_clock_skew_of_a_few_seconds_is_tolerated(fed: Federation, pki: Pki) -> None:
    me = pki.ids[CORP]
    ahead = fed.clock() + 8
    token = jws(header(me), claims(me, ahead, iat=int(ahead), nbf=int(ahead), exp=int(ahead) + 30), me.key)
    async with fed.client(NODE) as client:
        answer = await client.post("/connect/token", data=form(token))
    assert answer.status_code == 200, answer.text


async def test_x5c_as_base64_der_is_what_make_assertion_sends(pki: Pki) -> None:
    me = pki.ids[CORP]
    head = json.loads(base64.urlsafe_b64decode(make_assertion(me, NODE, 0).split(".")[0] + "=="))
    assert head["x5c"] == [b64_der(c) for c in me.chain] and head["alg"] == "RS256"


async def test_token_request_without_scope_is_an_iSHARE_request(fed: Federation, pki: Pki) -> None:
    async with fed.client(NODE) as client:
        answer = await client.post("/connect/token", data=form(valid(pki, fed.clock()), scope=None))
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "Bearer"
