"""The one verifier of signed answers, attacked: every refusal of a certificate chain, by
the verifier itself and through each of its three users (the token endpoint, the
registry client, delegation evidence), asserted by its stable reason code; and every
refusal of a bad registry answer."""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.errors import Forbidden, InvalidClient, TemporarilyUnavailable, UpstreamError
from gateway.identity import jwt
from gateway.identity.assertions import ASSERTION_TYPE
from gateway.identity.client import TokenClient
from gateway.identity.parties import Party
from gateway.identity.pki import fingerprint
from gateway.identity.registry_client import RegistryClient, verify_answer
from gateway.identity.trust import check_chain, normalise_fingerprint, parse_x5c, verify_signed
from gateway.policy.delegation import verify_evidence
from tests.forge import Issuer, dev_issuing, dev_root, ec_key, issue, name, rsa_key, x5c
from tests.kit import CORP, FIRM, MUNI, REGISTRY, Federation, Pki, federation

pytestmark = pytest.mark.anyio


class Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


def trusted(pki: Pki) -> list[str]:
    return [fingerprint(dev_root(pki).cert)]


# -- the chains ---------------------------------------------------------------------------
# each builds (chain, the key that signs the JWT) for a party id; with the flaw its name says

Chain = tuple[list[x509.Certificate], Any]
Build = Callable[[Pki, str], Chain]


def _from(issuer: Issuer, pki: Pki, leaf: tuple[x509.Certificate, Any]) -> Chain:
    """``leaf`` followed by ``issuer`` and the development root."""
    return [leaf[0], issuer.cert, dev_root(pki).cert], leaf[1]


def good(pki: Pki, party: str) -> Chain:
    issuing = dev_issuing(pki)
    return _from(issuing, pki, issue(name("leaf", party), issuing))


def _forged_link(pki: Pki, party: str) -> Chain:
    issuing = dev_issuing(pki)
    leaf = issue(name("leaf", party), issuing, sign_with=rsa_key())  # names the CA, not signed by it
    return _from(issuing, pki, leaf)


def _non_ca_parent(pki: Pki, party: str) -> Chain:
    issuing = dev_issuing(pki)
    parent, parent_key = issue(name("a party", CORP), issuing)
    leaf = issue(name("leaf", party), Issuer(parent, parent_key))
    return [leaf[0], parent, issuing.cert, dev_root(pki).cert], leaf[1]


def _ca_parent_without_basic_constraints(pki: Pki, party: str) -> Chain:
    root = dev_root(pki)
    mid, mid_key = issue(name("no constraints"), root, ca=None, usage={"key_cert_sign": True})
    leaf = issue(name("leaf", party), Issuer(mid, mid_key))
    return [leaf[0], mid, root.cert], leaf[1]


def _ca_without_cert_sign(pki: Pki, party: str) -> Chain:
    root = dev_root(pki)
    mid, mid_key = issue(name("crl only"), root, ca=True, usage={"crl_sign": True})
    leaf = issue(name("leaf", party), Issuer(mid, mid_key))
    return [leaf[0], mid, root.cert], leaf[1]


def _untrusted_root(pki: Pki, party: str) -> Chain:
    root = Issuer(*issue(name("Rogue Root"), None, ca=True))
    issuing = Issuer(*issue(name("Rogue Issuing"), root, ca=True))
    leaf = issue(name("leaf", party), issuing)
    return [leaf[0], issuing.cert, root.cert], leaf[1]


def _self_signed(pki: Pki, party: str) -> Chain:
    cert, key = issue(name("leaf", party), None)
    return [cert, dev_issuing(pki).cert, dev_root(pki).cert], key


def _impostor_ca(pki: Pki, party: str) -> Chain:
    real = dev_issuing(pki)
    fake = Issuer(*issue(real.cert.subject, None, ca=True))  # the real CA's name, its own key
    leaf = issue(name("leaf", party), fake)
    return [leaf[0], fake.cert, dev_root(pki).cert], leaf[1]


def _leaf_with(**options: Any) -> Build:
    def build(pki: Pki, party: str) -> Chain:
        issuing = dev_issuing(pki)
        leaf_name = name("leaf", None if options.get("anonymous") else party)
        rest = {k: v for k, v in options.items() if k != "anonymous"}
        cert, key = issue(leaf_name, issuing, **rest)
        return [cert, issuing.cert, dev_root(pki).cert], key if not rest.get("key") else rsa_key()

    return build


def _expired_ca(pki: Pki, party: str) -> Chain:
    root = dev_root(pki)
    mid = Issuer(*issue(name("expired CA"), root, ca=True, days=(-30, -1)))
    leaf = issue(name("leaf", party), mid)
    return [leaf[0], mid.cert, root.cert], leaf[1]


def _leaf_only(pki: Pki, party: str) -> Chain:
    chain, key = good(pki, party)
    return chain[:1], key


def _six(pki: Pki, party: str) -> Chain:
    chain, key = good(pki, party)
    return [*chain, *chain], key


CHAINS: dict[str, tuple[Build, str]] = {
    "a forged link signature": (_forged_link, "link_signature_invalid"),
    "a parent that is not a CA": (_non_ca_parent, "issuer_not_ca"),
    "a parent without BasicConstraints": (_ca_parent_without_basic_constraints, "issuer_not_ca"),
    "a CA parent whose keyUsage forbids signing certificates": (_ca_without_cert_sign, "issuer_key_usage"),
    "a chain that ends outside the trusted list": (_untrusted_root, "chain_untrusted"),
    "a leaf without its CAs": (_leaf_only, "chain_untrusted"),
    "a self-signed certificate merely carrying the id": (_self_signed, "leaf_self_signed"),
    "the id from an impostor CA named like the real one": (_impostor_ca, "link_signature_invalid"),
    "an expired leaf": (_leaf_with(days=(-30, -1)), "certificate_not_valid_now"),
    "a leaf not valid yet": (_leaf_with(days=(1, 30)), "certificate_not_valid_now"),
    "an expired issuing CA": (_expired_ca, "certificate_not_valid_now"),
    "a leaf whose keyUsage forbids signatures": (
        _leaf_with(usage={"key_encipherment": True}),
        "leaf_key_usage",
    ),
    "a leaf that is a CA": (_leaf_with(ca=True), "leaf_is_ca"),
    "a leaf without a party id": (_leaf_with(anonymous=True), "leaf_no_party_id"),
    "a leaf with an EC key": (_leaf_with(key=ec_key()), "leaf_not_rsa"),
    "six certificates": (_six, "x5c_too_long"),
}

ACCEPTED: dict[str, Build] = {
    "a leaf from the development CA": good,
    "a leaf without keyUsage": _leaf_with(usage={}),
    "a leaf with nonRepudiation only": _leaf_with(usage={"content_commitment": True}),
    "a leaf without BasicConstraints": _leaf_with(ca=None),
}


def _token(claims: dict[str, Any], chain: Chain) -> str:
    certs, key = chain
    return jwt.sign(claims, key, x5c(*certs))


def _claims(iss: str, aud: str, now: float, **more: Any) -> dict[str, Any]:
    iat = int(now)
    return {"iss": iss, "sub": iss, "aud": aud, "jti": uuid.uuid4().hex, "iat": iat, "exp": iat + 30, **more}


# -- the verifier itself -------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CHAINS))
def test_the_verifier_refuses(pki: Pki, case: str) -> None:
    build, reason = CHAINS[case]
    now = time.time()
    with pytest.raises(Refused) as refused:
        verify_signed(
            _token(_claims(FIRM, CORP, now), build(pki, FIRM)), trusted=trusted(pki), now=now, fail=Refused
        )
    assert refused.value.reason == reason


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_the_verifier_accepts(pki: Pki, case: str) -> None:
    now = time.time()
    signed = verify_signed(
        _token(_claims(FIRM, CORP, now), ACCEPTED[case](pki, FIRM)),
        trusted=trusted(pki),
        now=now,
        fail=Refused,
    )
    assert signed.signer == FIRM and signed.claims["aud"] == CORP and len(signed.chain) == 3


def test_a_ca_without_key_usage_may_sign_certificates(pki: Pki) -> None:
    """RFC 5280 §4.2.1.3: a certificate without a keyUsage extension is not restricted, so
    a CA (BasicConstraints cA) without one may sign the certificates below it."""
    root = dev_root(pki)
    mid, mid_key = issue(name("CA without keyUsage"), root, ca=True, usage={})
    assert mid.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf, _ = issue(name("leaf", FIRM), Issuer(mid, mid_key))
    assert check_chain([leaf, mid, root.cert], trusted(pki), dt.datetime.now(dt.UTC), Refused) == {FIRM}


@pytest.mark.parametrize("header", [None, [], "MIIBx5c", {"0": "MIIBx5c"}, [5], [None]])
def test_an_x5c_that_is_no_non_empty_array_is_refused(header: object) -> None:
    with pytest.raises(Refused) as refused:
        parse_x5c(header, Refused)
    assert refused.value.reason == "x5c_missing"


@pytest.mark.parametrize(
    "entry", ["not base64 !", "AAAA", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_an_x5c_entry_that_is_no_certificate_is_refused(pki: Pki, entry: str) -> None:
    chain, _ = good(pki, FIRM)
    with pytest.raises(Refused) as refused:
        parse_x5c([*x5c(chain[0]), entry], Refused)
    assert refused.value.reason == "x5c_not_certificate"


def test_an_x5c_entry_may_be_pem_text(pki: Pki) -> None:
    leaf = good(pki, FIRM)[0][0]
    assert parse_x5c([leaf.public_bytes(serialization.Encoding.PEM).decode()], Refused) == [leaf]


def test_an_x5c_entry_may_be_base64_wrapped_over_lines(pki: Pki) -> None:
    leaf = good(pki, FIRM)[0][0]
    [text] = x5c(leaf)
    wrapped = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    assert parse_x5c([wrapped], Refused) == [leaf]


def test_an_x5c_entry_with_a_character_outside_base64_is_refused(pki: Pki) -> None:
    [text] = x5c(good(pki, FIRM)[0][0])
    with pytest.raises(Refused) as refused:
        parse_x5c([text[:100] + "!" + text[100:]], Refused)
    assert refused.value.reason == "x5c_not_certificate"


def test_an_x5c_of_five_certificates_is_read(pki: Pki) -> None:
    chain, _ = good(pki, FIRM)
    assert parse_x5c(x5c(*chain, *chain[:2]), Refused) == [*chain, *chain[:2]]


def test_a_chain_may_be_trusted_at_its_issuing_ca(pki: Pki) -> None:
    chain, _ = good(pki, FIRM)
    at = dt.datetime.now(dt.UTC)
    assert check_chain(chain[:2], [fingerprint(dev_issuing(pki).cert)], at, Refused) == {FIRM}


def test_the_leaf_itself_on_the_trusted_list_does_not_make_a_chain(pki: Pki) -> None:
    chain, _ = good(pki, FIRM)
    with pytest.raises(Refused) as refused:
        check_chain(chain[:1], [fingerprint(chain[0])], dt.datetime.now(dt.UTC), Refused)
    assert refused.value.reason == "chain_untrusted"


@pytest.mark.parametrize("edge", ["not_valid_before_utc", "not_valid_after_utc"])
def test_a_certificate_is_valid_at_its_own_edges(pki: Pki, edge: str) -> None:
    chain, _ = _leaf_with(days=(0, 30))(pki, FIRM)
    at = getattr(chain[0], edge)
    assert check_chain(chain, trusted(pki), at, Refused) == {FIRM}


@pytest.mark.parametrize(("edge", "step"), [("not_valid_before_utc", -1), ("not_valid_after_utc", 1)])
def test_a_certificate_is_not_valid_a_second_outside_its_edges(pki: Pki, edge: str, step: int) -> None:
    chain, _ = _leaf_with(days=(0, 30))(pki, FIRM)
    at = getattr(chain[0], edge) + dt.timedelta(seconds=step)
    with pytest.raises(Refused) as refused:
        check_chain(chain, trusted(pki), at, Refused)
    assert refused.value.reason == "certificate_not_valid_now"


def test_an_answer_whose_iss_is_not_its_signer_is_refused(pki: Pki) -> None:
    now = time.time()
    token = _token(_claims(CORP, FIRM, now), good(pki, FIRM))
    with pytest.raises(Refused) as refused:
        verify_signed(token, trusted=trusted(pki), now=now, fail=Refused)
    assert refused.value.reason == "iss_not_signer"


def test_an_answer_signed_by_another_key_than_its_leafs_is_refused(pki: Pki) -> None:
    now = time.time()
    certs, _ = good(pki, FIRM)
    with pytest.raises(Refused) as refused:
        verify_signed(
            _token(_claims(FIRM, CORP, now), (certs, rsa_key())), trusted=trusted(pki), now=now, fail=Refused
        )
    assert refused.value.reason == "signature_invalid"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ab" * 32, "AB" * 32),
        (":".join(["ab"] * 32), "AB" * 32),
        (_b64url(bytes(range(32))), bytes(range(32)).hex().upper()),
        # base64url of 32 bytes written with hex digits only: still base64url (43 characters)
        ("A" * 42 + "E", "00" * 31 + "01"),
    ],
)
def test_fingerprints_are_normalised_to_upper_case_hex(given: str, expected: str) -> None:
    assert normalise_fingerprint(given) == expected


def test_a_fingerprint_that_is_neither_hex_nor_32_bytes_is_kept_upper_cased() -> None:
    assert normalise_fingerprint(" abc ") == "ABC"
    assert normalise_fingerprint("not base64 at all!") == "NOT BASE64 AT ALL!"


# -- through the token endpoint ------------------------------------------------------------


@pytest.fixture
async def fed(tmp_path: Path, pki: Pki) -> Any:
    async with federation(tmp_path, pki) as f:
        yield f


async def _ask_token(fed: Federation, assertion: str, client_id: str = CORP) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "scope": "iSHARE",
        "client_id": client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    async with fed.client(FIRM) as client:
        return await client.post("/connect/token", data=form)


@pytest.mark.parametrize("case", sorted(CHAINS))
async def test_the_token_endpoint_refuses(fed: Federation, pki: Pki, case: str) -> None:
    build, reason = CHAINS[case]
    answer = await _ask_token(fed, _token(_claims(CORP, FIRM, fed.clock()), build(pki, CORP)))
    assert answer.status_code == 401
    assert (answer.json()["code"], answer.json()["reason"]) == ("invalid_client", reason)


# -- through delegation evidence -----------------------------------------------------------

AR = "EU.EORI.NL000000004"


def _evidence_claims(now: float) -> dict[str, Any]:
    evidence = {
        "notBefore": int(now) - 60,
        "notOnOrAfter": int(now) + 3600,
        "policyIssuer": FIRM,
        "target": {"accessSubject": MUNI},
        "policySets": [
            {
                "policies": [
                    {
                        "target": {
                            "resource": {"type": "bot:Building", "identifiers": ["*"], "attributes": ["*"]},
                            "actions": ["read"],
                        },
                        "rules": [{"effect": "Permit"}],
                    }
                ]
            }
        ],
    }
    return _claims(AR, MUNI, now, delegationEvidence=evidence)


def _verify_evidence(pki: Pki, chain: Chain, now: float, claims: dict[str, Any] | None = None) -> Any:
    entry = Party(AR, "AR", "Active", None, None, frozenset({fingerprint(chain[0][0])}))
    return verify_evidence(
        _token(claims or _evidence_claims(now), chain),
        me=FIRM,
        caller=MUNI,
        trusted=trusted(pki),
        authorities={AR: entry},
        now=now,
    )


@pytest.mark.parametrize("case", sorted(CHAINS))
def test_delegation_evidence_is_refused(pki: Pki, case: str) -> None:
    build, reason = CHAINS[case]
    with pytest.raises(Forbidden) as refused:
        _verify_evidence(pki, build(pki, AR), time.time())
    assert (refused.value.code, refused.value.reason) == ("forbidden", reason)


def test_delegation_evidence_with_a_good_chain_is_accepted(pki: Pki) -> None:
    evidence = _verify_evidence(pki, good(pki, AR), time.time())
    assert evidence.authority == AR and evidence.access_subject == MUNI


# -- through the registry client -----------------------------------------------------------


def _answer(pki: Pki, chain: Chain, now: float, **changes: Any) -> str:
    claims = _claims(REGISTRY, CORP, now, party_info=_PARTY)
    for key, value in changes.items():
        if value is None:
            claims.pop(key)
        else:
            claims[key] = value
    return _token(claims, chain)


_PARTY = {
    "party_id": FIRM,
    "party_name": "Firm",
    "adherence": {
        "status": "Active",
        "start_date": "2020-01-01T00:00:00Z",
        "end_date": "2099-01-01T00:00:00Z",
    },
    "certificates": [],
}


def _check_answer(pki: Pki, token: str, now: float, pins: tuple[str, ...] = ()) -> dict[str, Any]:
    return verify_answer(
        token, "/parties/x", registry=REGISTRY, me=CORP, anchors=trusted(pki), pins=pins, now=now
    )


@pytest.mark.parametrize("case", sorted(CHAINS))
def test_the_registry_client_refuses_an_answer_with(pki: Pki, case: str) -> None:
    build, reason = CHAINS[case]
    now = time.time()
    with pytest.raises(UpstreamError) as refused:
        _check_answer(pki, _answer(pki, build(pki, REGISTRY), now), now)
    assert (refused.value.code, refused.value.reason) == ("upstream_error", reason)


def _registry_refusal(pki: Pki, token: str, now: float, pins: tuple[str, ...] = ()) -> str:
    with pytest.raises(UpstreamError) as refused:
        _check_answer(pki, token, now, pins)
    assert refused.value.code == "upstream_error" and refused.value.reason is not None
    return refused.value.reason


def test_a_registry_answer_signed_by_another_party_is_refused(pki: Pki) -> None:
    now = time.time()
    token = _token(_claims(FIRM, CORP, now), good(pki, FIRM))  # validly signed, by FIRM
    assert _registry_refusal(pki, token, now) == "signer_not_registry"


def test_a_registry_answer_from_a_certificate_that_is_not_pinned_is_refused(pki: Pki) -> None:
    now = time.time()
    pinned = pki.ids[REGISTRY].chain[0]
    other = good(pki, REGISTRY)  # the registry's id, from the trusted CA, but not its pinned certificate
    assert (
        _registry_refusal(pki, _answer(pki, other, now), now, (fingerprint(pinned),))
        == "certificate_not_pinned"
    )


def test_a_registry_answer_from_a_pinned_certificate_is_accepted(pki: Pki) -> None:
    now = time.time()
    registry = pki.ids[REGISTRY]
    token = _answer(pki, (list(registry.chain), registry.key), now)
    assert _check_answer(pki, token, now, (fingerprint(registry.chain[0]),))["party_info"] == _PARTY


async def test_the_registry_client_normalises_its_pins(pki: Pki) -> None:
    now = time.time()
    registry = pki.ids[REGISTRY]
    answer = httpx.Response(
        200, json={"party_token": _answer(pki, (list(registry.chain), registry.key), now)}
    )
    client = _client(pki, {f"/parties/{FIRM}": answer}, now, pins=(fingerprint(registry.chain[0]).lower(),))
    party = await client.party(FIRM)
    assert party is not None and party.party_id == FIRM


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": CORP}, "iss_not_signer"),
        ({"iss": None}, "iss_not_signer"),
        ({"aud": FIRM}, "aud_wrong"),
        ({"aud": None}, "aud_wrong"),
        ({"aud": [CORP]}, "aud_array"),
        ({"exp": "soon"}, "claim_type"),
        ({"iat": None}, "claim_missing"),
        ({"exp": None}, "claim_missing"),
        ({"exp": 0}, "lifetime_wrong"),
    ],
)
def test_a_registry_answer_with_bad_claims_is_refused(pki: Pki, changes: dict[str, Any], reason: str) -> None:
    now = time.time()
    assert _registry_refusal(pki, _answer(pki, good(pki, REGISTRY), now, **changes), now) == reason


@pytest.mark.parametrize(("age", "reason"), [(-11, "not_yet_valid"), (40, "expired")])
def test_a_registry_answer_outside_its_lifetime_is_refused(pki: Pki, age: int, reason: str) -> None:
    now = time.time()
    token = _answer(pki, good(pki, REGISTRY), now - age)
    assert _registry_refusal(pki, token, now) == reason


def test_a_tampered_registry_answer_is_refused(pki: Pki) -> None:
    now = time.time()
    head, _, sig = _answer(pki, good(pki, REGISTRY), now).split(".")
    body = _answer(pki, good(pki, REGISTRY), now, party_info={"party_id": CORP}).split(".")[1]
    assert _registry_refusal(pki, f"{head}.{body}.{sig}", now) == "signature_invalid"


def test_a_registry_answer_that_is_not_a_jwt_is_refused(pki: Pki) -> None:
    assert _registry_refusal(pki, "not a token", time.time()) == "token_malformed"


def _client(
    pki: Pki, answers: dict[str, httpx.Response], now: float, pins: tuple[str, ...] = ()
) -> RegistryClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/connect/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600})
        return answers.get(request.url.path, httpx.Response(404))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    tokens = TokenClient(pki.ids[CORP], http, lambda: now)
    return RegistryClient(
        "http://registry.test", REGISTRY, trusted(pki), tokens, clock=lambda: now, pins=pins
    )


async def test_the_registry_client_believes_a_good_answer(pki: Pki) -> None:
    now = time.time()
    answer = httpx.Response(200, json={"party_token": _answer(pki, good(pki, REGISTRY), now)})
    party = await _client(pki, {f"/parties/{FIRM}": answer}, now).party(FIRM)
    assert party is not None and party.party_id == FIRM


async def test_the_registry_client_fails_closed_on_an_untrustworthy_answer(pki: Pki) -> None:
    now = time.time()
    answer = httpx.Response(200, json={"party_token": _answer(pki, _forged_link(pki, REGISTRY), now)})
    with pytest.raises(TemporarilyUnavailable) as refused:
        await _client(pki, {f"/parties/{FIRM}": answer}, now).party(FIRM)
    assert refused.value.code == "temporarily_unavailable"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500),
        httpx.Response(200, json={"no": "token"}),
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, json=["a list"]),
    ],
)
async def test_the_registry_client_fails_closed_on_a_broken_answer(pki: Pki, answer: httpx.Response) -> None:
    now = time.time()
    with pytest.raises(TemporarilyUnavailable) as refused:
        await _client(pki, {f"/parties/{FIRM}": answer}, now).party(FIRM)
    assert refused.value.code == "temporarily_unavailable"


async def test_a_party_the_registry_does_not_know_is_none(pki: Pki) -> None:
    assert await _client(pki, {}, time.time()).party(FIRM) is None


def test_an_assertion_signed_by_one_party_for_another_client_id_is_refused(pki: Pki) -> None:
    from gateway.identity.assertions import verify_assertion

    now = time.time()
    token = _token(_claims(FIRM, CORP, now), good(pki, FIRM))
    with pytest.raises(InvalidClient) as refused:
        verify_assertion(token, client_id=CORP, audience=CORP, trusted=trusted(pki), now=now)
    assert refused.value.reason == "signer_not_client"
