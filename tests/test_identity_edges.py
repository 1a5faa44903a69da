"""The exact edges of the identity checks: token size, the algorithm allow-list of the
signature check itself, ``exp``/``iat``/``nbf`` with their leeway, the ``jti`` length,
and the access tokens a node issues. Refusals are asserted by their reason code."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from gateway.errors import InvalidClient, Unauthorized, UpstreamError
from gateway.identity import jwt
from gateway.identity.assertions import LEEWAY, LIFETIME, MAX_JTI, make_assertion, verify_assertion
from gateway.identity.pki import Identity, fingerprint
from gateway.identity.registry_client import verify_answer
from gateway.identity.tokens import ACCESS_TOKEN_LIFETIME, TokenIssuer
from gateway.policy.model import Caller
from tests.kit import CORP, FIRM, Pki

NOW = float(int(time.time()))


class Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jws(header: dict[str, Any], claims: dict[str, Any], identity: Identity, hash_: Any = None) -> str:
    """A JWS signed with ``identity``'s key under any header (PKCS#1 v1.5 with ``hash_``)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = identity.key.sign(signing_input.encode(), padding.PKCS1v15(), hash_ or hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def _reason(call: Any) -> str:
    with pytest.raises(Refused) as refused:
        call()
    return refused.value.reason


# -- jwt.py ------------------------------------------------------------------------------


def _sized(length: int) -> str:
    head = b64(b'{"alg":"RS256"}')
    return f"{head}.{'a' * (length - len(head) - 3)}.a"


def test_a_token_of_exactly_16_kib_is_read() -> None:
    assert jwt.peek_header(_sized(16 * 1024), Refused) == {"alg": "RS256"}


def test_a_token_one_byte_over_16_kib_is_refused() -> None:
    assert _reason(lambda: jwt.peek_header(_sized(16 * 1024 + 1), Refused)) == "token_too_large"


def _registry_answer(length: int) -> None:
    verify_answer(_sized(length), "/parties", registry=CORP, me=FIRM, anchors=(), pins=(), now=NOW)


def test_a_registry_answer_of_exactly_1_mib_is_read() -> None:
    with pytest.raises(UpstreamError) as refused:
        _registry_answer(1024 * 1024)
    assert refused.value.reason == "x5c_missing"  # read past the size check


def test_a_registry_answer_one_byte_over_1_mib_is_refused_unread() -> None:
    with pytest.raises(UpstreamError) as refused:
        _registry_answer(1024 * 1024 + 1)
    assert (refused.value.code, refused.value.reason) == ("upstream_error", "token_too_large")


@pytest.mark.parametrize(
    "token", ["", None, 12, "a.b", "a.b.c.d", "e30.b", "e30.b.c.d", ".b.c", "e30..c", "e30.b."]
)
def test_a_token_that_is_not_a_compact_jws_is_refused(token: Any) -> None:
    header = b64(b'{"alg":"RS256"}')
    token = token.replace("e30", header) if isinstance(token, str) else token
    assert _reason(lambda: jwt.peek_header(token, Refused)) == "token_malformed"


@pytest.mark.parametrize("part", [b"[1]", b"not json", b'"text"'])
def test_a_header_that_is_not_a_json_object_is_refused(part: bytes) -> None:
    assert _reason(lambda: jwt.peek_header(f"{b64(part)}.b.c", Refused)) == "token_malformed"


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "PS256", None, ["RS256"]])
def test_peek_header_allows_rs256_only(alg: Any) -> None:
    token = f"{b64(json.dumps({'alg': alg}).encode())}.b.c"
    assert _reason(lambda: jwt.peek_header(token, Refused)) == "alg_not_allowed"


def test_a_critical_header_is_refused() -> None:
    token = f"{b64(json.dumps({'alg': 'RS256', 'crit': ['x']}).encode())}.b.c"
    assert _reason(lambda: jwt.peek_header(token, Refused)) == "crit_unsupported"


@pytest.mark.parametrize(("alg", "hash_"), [("RS512", hashes.SHA512()), ("RS384", hashes.SHA384())])
def test_the_signature_check_itself_allows_rs256_only(pki: Pki, alg: str, hash_: Any) -> None:
    # correctly signed with the right key, but another algorithm: refused even by a caller
    # that skips peek_header
    me = pki.ids[CORP]
    token = raw_jws({"alg": alg}, {"iss": CORP}, me, hash_)
    assert _reason(lambda: jwt.verify(token, me.chain[0].public_key(), Refused)) == "signature_invalid"  # type: ignore[arg-type]


def test_a_well_signed_token_verifies_to_its_claims(pki: Pki) -> None:
    me = pki.ids[CORP]
    token = raw_jws({"alg": "RS256"}, {"iss": CORP, "n": 1}, me)
    assert jwt.verify(token, me.chain[0].public_key(), Refused) == {"iss": CORP, "n": 1}  # type: ignore[arg-type]


@pytest.mark.parametrize("payload", [b"[1, 2]", b"not json"])
def test_a_signed_payload_that_is_not_a_json_object_is_refused(pki: Pki, payload: bytes) -> None:
    me = pki.ids[CORP]
    signing_input = b64(b'{"alg":"RS256"}') + "." + b64(payload)
    sig = me.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{b64(sig)}"
    assert _reason(lambda: jwt.verify(token, me.chain[0].public_key(), Refused)) == "token_malformed"  # type: ignore[arg-type]


def test_sign_writes_rs256_jwt_headers_with_x5c_only_when_given(pki: Pki) -> None:
    me = pki.ids[CORP]
    plain = jwt.peek_header(jwt.sign({"a": 1}, me.key), Refused)
    chained = jwt.peek_header(jwt.sign({"a": 1}, me.key, me.x5c), Refused)
    assert plain == {"alg": "RS256", "typ": "JWT"}
    assert chained == {"alg": "RS256", "typ": "JWT", "x5c": me.x5c}


# -- assertions.py -----------------------------------------------------------------------


def trusted(pki: Pki) -> list[str]:
    return [fingerprint(pki.ids[CORP].chain[-1])]


def assertion(pki: Pki, **changes: Any) -> str:
    me = pki.ids[CORP]
    claims: dict[str, Any] = {
        "iss": CORP,
        "sub": CORP,
        "aud": FIRM,
        "jti": uuid.uuid4().hex,
        "iat": NOW,
        "exp": NOW + LIFETIME,
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return jwt.sign(claims, me.key, me.x5c)


def check(pki: Pki, token: str, now: float = NOW) -> Any:
    return verify_assertion(token, client_id=CORP, audience=FIRM, trusted=trusted(pki), now=now)


def refusal(pki: Pki, token: str, now: float = NOW) -> str | None:
    with pytest.raises(InvalidClient) as refused:
        check(pki, token, now)
    assert refused.value.code == "invalid_client"
    return refused.value.reason


def test_an_assertion_is_valid_until_the_leeway_after_its_exp(pki: Pki) -> None:
    assert check(pki, assertion(pki), NOW + LIFETIME + LEEWAY - 0.5).party_id == CORP


def test_an_assertion_expires_at_exactly_the_leeway_after_its_exp(pki: Pki) -> None:
    assert refusal(pki, assertion(pki), NOW + LIFETIME + LEEWAY) == "expired"


def test_an_assertion_issued_the_leeway_ahead_is_accepted(pki: Pki) -> None:
    assert check(pki, assertion(pki), NOW - LEEWAY).party_id == CORP


def test_an_assertion_issued_beyond_the_leeway_ahead_is_refused(pki: Pki) -> None:
    assert refusal(pki, assertion(pki), NOW - LEEWAY - 0.5) == "not_yet_valid"


def test_an_nbf_the_leeway_ahead_is_accepted(pki: Pki) -> None:
    assert check(pki, assertion(pki, nbf=NOW + LEEWAY)).party_id == CORP


def test_an_nbf_beyond_the_leeway_ahead_is_refused(pki: Pki) -> None:
    assert refusal(pki, assertion(pki, nbf=NOW + LEEWAY + 0.5)) == "not_yet_valid"


@pytest.mark.parametrize("nbf", ["1700000000", True, [1]])
def test_an_nbf_that_is_not_a_number_is_refused(pki: Pki, nbf: Any) -> None:
    assert refusal(pki, assertion(pki, nbf=nbf)) == "claim_type"


@pytest.mark.parametrize("exp", [NOW + LIFETIME - 0.5, NOW + LIFETIME + 0.5])
def test_exp_must_be_iat_plus_exactly_30(pki: Pki, exp: float) -> None:
    assert refusal(pki, assertion(pki, exp=exp)) == "lifetime_wrong"


def test_a_jti_of_the_maximum_length_is_accepted(pki: Pki) -> None:
    assert check(pki, assertion(pki, jti="j" * MAX_JTI)).jti == "j" * MAX_JTI


def test_a_jti_one_over_the_maximum_length_is_refused(pki: Pki) -> None:
    assert refusal(pki, assertion(pki, jti="j" * (MAX_JTI + 1))) == "jti_too_long"


def test_a_sub_that_is_not_a_string_is_refused(pki: Pki) -> None:
    assert refusal(pki, assertion(pki, sub=7)) == "claim_type"


def test_an_accepted_assertion_says_who_until_when_with_which_chain(pki: Pki) -> None:
    token = assertion(pki, jti="the-jti")
    accepted = check(pki, token)
    assert (accepted.party_id, accepted.jti, accepted.expires) == (CORP, "the-jti", NOW + LIFETIME)
    assert accepted.chain == pki.ids[CORP].chain and accepted.claims["aud"] == FIRM


def test_make_assertion_writes_the_ishare_claims(pki: Pki) -> None:
    token = make_assertion(pki.ids[CORP], FIRM, NOW + 0.7)
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert {k: v for k, v in claims.items() if k != "jti"} == {
        "iss": CORP,
        "sub": CORP,
        "aud": FIRM,
        "iat": int(NOW),
        "nbf": int(NOW),
        "exp": int(NOW) + 30,
    }
    assert len(claims["jti"]) == 32 and check(pki, token).jti == claims["jti"]


# -- tokens.py ---------------------------------------------------------------------------


def access_token(pki: Pki, **changes: Any) -> str:
    claims: dict[str, Any] = {
        "iss": FIRM,
        "aud": FIRM,
        "sub": CORP,
        "jti": "j",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 100,
        "roles": ["Role"],
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return jwt.sign(claims, pki.ids[FIRM].key)


def bearer_refusal(pki: Pki, token: str, now: float = NOW) -> str | None:
    with pytest.raises(Unauthorized) as refused:
        TokenIssuer(pki.ids[FIRM]).check(token, now)
    assert refused.value.code == "invalid_token"
    return refused.value.reason


def test_an_issued_token_stands_for_its_party_and_roles(pki: Pki) -> None:
    issuer = TokenIssuer(pki.ids[FIRM])
    token = issuer.issue(CORP, NOW + 0.4, ("A", "B"))
    assert issuer.check(token, NOW) == Caller(CORP, frozenset({"A", "B"}))
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert {k: v for k, v in claims.items() if k != "jti"} == {
        "iss": FIRM,
        "aud": FIRM,
        "sub": CORP,
        "client_id": CORP,
        "scope": "iSHARE",
        "roles": ["A", "B"],
        "iat": int(NOW),
        "nbf": int(NOW),
        "exp": int(NOW) + ACCESS_TOKEN_LIFETIME,
    }


def test_a_token_is_valid_until_the_second_before_its_exp(pki: Pki) -> None:
    assert TokenIssuer(pki.ids[FIRM]).check(access_token(pki), NOW + 99.5) == Caller(
        CORP, frozenset({"Role"})
    )


def test_a_token_expires_at_its_exp(pki: Pki) -> None:
    assert bearer_refusal(pki, access_token(pki), NOW + 100) == "expired"


def test_an_expired_token_is_forgotten(pki: Pki) -> None:
    issuer = TokenIssuer(pki.ids[FIRM])
    token = access_token(pki)
    issuer.check(token, NOW)
    with pytest.raises(Unauthorized):
        issuer.check(token, NOW + 100)
    assert token not in issuer._verified


def test_an_nbf_the_leeway_ahead_is_accepted_on_a_token(pki: Pki) -> None:
    assert TokenIssuer(pki.ids[FIRM]).check(access_token(pki, nbf=NOW + 10), NOW).party_id == CORP


def test_an_nbf_beyond_the_leeway_ahead_is_refused_on_a_token(pki: Pki) -> None:
    assert bearer_refusal(pki, access_token(pki, nbf=NOW + 10.5)) == "not_yet_valid"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": CORP}, "token_foreign"),
        ({"aud": CORP}, "token_foreign"),
        ({"sub": None}, "claim_missing"),
        ({"sub": ""}, "claim_missing"),
        ({"jti": 5}, "claim_missing"),
        ({"exp": None}, "claim_type"),
        ({"exp": True}, "claim_type"),
        ({"exp": "soon"}, "claim_type"),
        ({"roles": "Role"}, "claim_type"),
        ({"roles": [1]}, "claim_type"),
    ],
)
def test_a_token_with_bad_claims_is_refused(pki: Pki, changes: dict[str, Any], reason: str) -> None:
    assert bearer_refusal(pki, access_token(pki, **changes)) == reason


def test_a_token_without_roles_stands_for_a_caller_without_roles(pki: Pki) -> None:
    assert TokenIssuer(pki.ids[FIRM]).check(access_token(pki, roles=None), NOW) == Caller(CORP)


def test_a_token_signed_by_another_key_is_refused(pki: Pki) -> None:
    token = jwt.sign({"iss": FIRM, "aud": FIRM, "sub": CORP, "jti": "j", "exp": NOW + 100}, pki.ids[CORP].key)
    assert bearer_refusal(pki, token) == "signature_invalid"


def test_a_verified_token_is_remembered_up_to_the_cache_size(pki: Pki) -> None:
    issuer = TokenIssuer(pki.ids[FIRM], cache_size=2)
    tokens = [access_token(pki, jti=str(i)) for i in range(3)]
    for token in tokens:
        issuer.check(token, NOW)
    assert list(issuer._verified) == tokens[1:]


def test_an_issued_access_token_lives_one_hour(pki: Pki) -> None:
    claims = json.loads(
        base64.urlsafe_b64decode(TokenIssuer(pki.ids[FIRM]).issue(CORP, NOW).split(".")[1] + "==")
    )
    assert claims["exp"] - claims["iat"] == 3600


def test_a_token_is_verified_once_then_remembered(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    verified: list[str] = []
    real = jwt.verify

    def counting(token: str, *args: Any) -> dict[str, Any]:
        verified.append(token)
        return real(token, *args)

    monkeypatch.setattr(jwt, "verify", counting)
    issuer, token = TokenIssuer(pki.ids[FIRM]), access_token(pki)
    callers = [issuer.check(token, NOW + i) for i in range(3)]
    assert callers == [Caller(CORP, frozenset({"Role"}))] * 3 and verified == [token]


def test_a_checked_token_is_remembered_for_its_caller_until_the_second_before_its_exp(pki: Pki) -> None:
    issuer, token = TokenIssuer(pki.ids[FIRM]), access_token(pki)
    issuer.check(token, NOW)
    assert issuer.remembered(token, NOW + 99.5) == Caller(CORP, frozenset({"Role"}))
    assert issuer.remembered(token, NOW + 100) is None


def test_a_token_never_checked_is_not_remembered(pki: Pki) -> None:
    assert TokenIssuer(pki.ids[FIRM]).remembered(access_token(pki), NOW) is None


def test_a_jti_may_be_256_characters_and_no_more(pki: Pki) -> None:
    assert check(pki, assertion(pki, jti="j" * 256)).jti == "j" * 256
    assert refusal(pki, assertion(pki, jti="j" * 257)) == "jti_too_long"
