"""iSHARE delegation: ``POST /delegation`` answers masks from the node's own policies, and
delegation evidence from a trusted authorization registry becomes extra permit rules.

The firm's node publishes two buildings and a storey. The corporation may read labels,
energy labels and construction costs of buildings (costs of buildings are denied to
anyone by a deny rule), housing corporations (a registry role) every field of storeys, and the
inactive party labels (it is not an active participant, so it reads nothing).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import Forbidden
from gateway.http.auth import json_response
from gateway.http.delegation import evidence_rules_for
from gateway.identity import jwt
from gateway.identity.parties import Party
from gateway.identity.pki import Identity, fingerprint, load_identity
from gateway.identity.trust import parse_x5c
from gateway.policy.delegation import Evidence, Policy, evidence_rules, read_evidence, rules_from_evidence
from gateway.policy.model import Caller, Grant, Rule
from gateway.vocab import load_vocab
from tests.conftest import serving, write_node
from tests.kit import CORP, FIRM, INACTIVE, MUNI, UNKNOWN, Federation, Pki, federation

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent / "fixtures" / "ishare"

NS = "https://data.test.example/"
BOT, DSGO = "https://w3id.org/bot#", "https://vocab.dsgo.example/def#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
ENERGY, ADDRESS, COST = DSGO + "energyLabel", DSGO + "address", "https://w3id.org/props#constructionCost"
B1, B2, S1 = NS + "id/building/1", NS + "id/building/2", NS + "id/building/1/storey/0"

DATA = f"""
@prefix bot: <{BOT}> . @prefix dsgo: <{DSGO}> . @prefix props: <https://w3id.org/props#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
<id/building/1> a bot:Building ; rdfs:label "Kerkstraat 1" ; dsgo:energyLabel "F" ;
    dsgo:address "Kerkstraat 1, Amsterdam" ; props:constructionCost 250000 ;
    bot:hasStorey <id/building/1/storey/0> .
<id/building/1/storey/0> a bot:Storey ; rdfs:label "Begane grond" .
<id/building/2> a bot:Building ; rdfs:label "Dorpsstraat 2" .
"""

POLICY = f"""
rules:
  - id: corp-buildings
    effect: permit
    to: {{parties: [{CORP}]}}
    resources: {{classes: [bot:Building]}}
    fields: [rdfs:label, dsgo:energyLabel, props:constructionCost]
  - id: corporations-storeys
    effect: permit
    to: {{roles: [HousingCorporation]}}
    resources: {{classes: [bot:Storey]}}
    fields: all
  - id: lapsed
    effect: permit
    to: {{parties: [{INACTIVE}]}}
    resources: all
    fields: [rdfs:label]
  - id: no-costs
    effect: deny
    to: {{anyone: true}}
    resources: {{iris: ["{B1}", "{B2}"]}}
    fields: [props:constructionCost]
"""


@pytest.fixture
async def fed(tmp_path: Path, pki: Pki) -> AsyncIterator[Federation]:
    async with federation(
        tmp_path, pki, nodes=(FIRM, CORP, MUNI), policies={FIRM: POLICY}, data={FIRM: DATA}
    ) as f:
        yield f


def policy(
    type_: str = "bot:Building",
    identifiers: tuple[str, ...] = (B1,),
    attributes: tuple[str, ...] = ("dsgo:energyLabel",),
    actions: tuple[str, ...] = ("ISHARE.READ",),
    effect: str = "Permit",
    **target: Any,
) -> dict[str, Any]:
    resource = {"type": type_, "identifiers": list(identifiers), "attributes": list(attributes)}
    return {
        "target": {"resource": resource, "actions": list(actions), **target},
        "rules": [{"effect": effect}],
    }


def mask(*policies: dict[str, Any], subject: str = CORP, issuer: str = FIRM) -> dict[str, Any]:
    return {
        "delegationRequest": {
            "policyIssuer": issuer,
            "target": {"accessSubject": subject},
            "policySets": [{"policies": list(policies) or [policy()]}],
        }
    }


async def ask(fed: Federation, asker: str, body: Any) -> httpx.Response:
    async with await fed.client_as(asker) as client:
        return await client.post("/delegation", json=body)


def claims_of(answer: httpx.Response, pki: Pki) -> dict[str, Any]:
    """The delegation token's claims, its signature verified with the node's certificate."""
    assert answer.status_code == 200, answer.text
    key = pki.ids[FIRM].chain[0].public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return jwt.verify(answer.json()["delegation_token"], key, ValueError)


def effects(answer: httpx.Response, pki: Pki) -> list[str]:
    evidence = claims_of(answer, pki)["delegationEvidence"]
    return [p["rules"][0]["effect"] for s in evidence["policySets"] for p in s["policies"]]


# -- answering masks ----------------------------------------------------------------


async def test_permits_an_attribute_the_subject_may_read(fed: Federation, pki: Pki) -> None:
    assert effects(await ask(fed, CORP, mask(policy())), pki) == ["Permit"]


async def test_denies_an_attribute_the_policies_withhold(fed: Federation, pki: Pki) -> None:
    answer = await ask(fed, CORP, mask(policy(attributes=("dsgo:address",))))
    assert effects(answer, pki) == ["Deny"]


async def test_denies_an_attribute_a_file_deny_rule_covers(fed: Federation, pki: Pki) -> None:
    answer = await ask(fed, CORP, mask(policy(attributes=("props:constructionCost",))))
    assert effects(answer, pki) == ["Deny"]


async def test_denies_a_mix_of_granted_and_withheld_attributes(fed: Federation, pki: Pki) -> None:
    answer = await ask(fed, CORP, mask(policy(attributes=("rdfs:label", "dsgo:address"))))
    assert effects(answer, pki) == ["Deny"]


async def test_answers_each_policy_of_the_mask_on_its_own(fed: Federation, pki: Pki) -> None:
    answer = await ask(fed, CORP, mask(policy(), policy(attributes=(ADDRESS,)), policy(attributes=(LABEL,))))
    assert effects(answer, pki) == ["Permit", "Deny", "Permit"]


async def test_wildcard_identifiers_permit_when_every_building_releases_the_attributes(
    fed: Federation, pki: Pki
) -> None:
    answer = await ask(fed, CORP, mask(policy(identifiers=("*",), attributes=("rdfs:label",))))
    assert effects(answer, pki) == ["Permit"]


async def test_an_attribute_a_resource_has_no_value_for_is_judged_by_the_grant(
    fed: Federation, pki: Pki
) -> None:
    # building 2 has no energy label; the corporation's grant would release one
    answer = await ask(fed, CORP, mask(policy(identifiers=(B2,), attributes=("dsgo:energyLabel",))))
    assert effects(answer, pki) == ["Permit"]


async def test_wildcard_attributes_deny_when_any_field_is_withheld(fed: Federation, pki: Pki) -> None:
    answer = await ask(fed, CORP, mask(policy(attributes=("*",))))
    assert effects(answer, pki) == ["Deny"]  # building 1's address is withheld


async def test_wildcard_attributes_permit_when_every_field_is_released_through_a_registry_role(
    fed: Federation, pki: Pki
) -> None:
    answer = await ask(fed, CORP, mask(policy("bot:Storey", ("*",), ("*",))))
    assert effects(answer, pki) == ["Permit"]


async def test_wildcards_deny_when_one_building_withholds_a_field(fed: Federation, pki: Pki) -> None:
    answer = await ask(fed, CORP, mask(policy(identifiers=("*",), attributes=("*",))))
    assert effects(answer, pki) == ["Deny"]


@pytest.mark.parametrize("type_", ["bot:Nothing", "GS1.CONTAINER", "nope:Building", BOT + "Space"])
async def test_denies_an_unknown_or_empty_class(fed: Federation, pki: Pki, type_: str) -> None:
    answer = await ask(fed, CORP, mask(policy(type_, ("*",), ("rdfs:label",))))
    assert effects(answer, pki) == ["Deny"]


@pytest.mark.parametrize(
    "identifier", [NS + "id/building/999", S1, "https://elsewhere.example/id/building/1", "not an iri"]
)
async def test_denies_an_unknown_identifier_or_one_of_another_class(
    fed: Federation, pki: Pki, identifier: str
) -> None:
    answer = await ask(fed, CORP, mask(policy(identifiers=(identifier,), attributes=("rdfs:label",))))
    assert effects(answer, pki) == ["Deny"]


async def test_denies_actions_other_than_read(fed: Federation, pki: Pki) -> None:
    answer = await ask(fed, CORP, mask(policy(actions=("ISHARE.READ", "ISHARE.UPDATE"))))
    assert effects(answer, pki) == ["Deny"]


async def test_accepts_read_as_an_action(fed: Federation, pki: Pki) -> None:
    assert effects(await ask(fed, CORP, mask(policy(actions=("read",)))), pki) == ["Permit"]


async def test_denies_a_policy_about_another_service_provider(fed: Federation, pki: Pki) -> None:
    answer = await ask(fed, CORP, mask(policy(environment={"serviceProviders": [MUNI]})))
    assert effects(answer, pki) == ["Deny"]


async def test_the_nodes_own_party_may_ask_about_another_party(fed: Federation, pki: Pki) -> None:
    answer = await ask(fed, FIRM, mask(policy(), subject=CORP))
    assert effects(answer, pki) == ["Permit"]
    assert claims_of(answer, pki)["aud"] == FIRM


@pytest.mark.parametrize("subject", [INACTIVE, UNKNOWN])
async def test_a_party_that_is_not_an_active_participant_is_denied_everything(
    fed: Federation, pki: Pki, subject: str
) -> None:
    answer = await ask(fed, FIRM, mask(policy(attributes=("rdfs:label",)), subject=subject))
    assert effects(answer, pki) == ["Deny"]


async def test_a_third_party_may_not_ask_about_another(fed: Federation) -> None:
    answer = await ask(fed, MUNI, mask(policy(), subject=CORP))
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "forbidden"
    assert (
        answer.json()["detail"] == f"only {CORP} itself or this node's own party may ask what {CORP} may read"
    )


async def test_a_mask_for_another_policy_issuer_is_404_as_at_the_reference_ar(fed: Federation) -> None:
    answer = await ask(fed, CORP, mask(policy(), issuer=MUNI))
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"
    assert answer.json()["detail"] == (
        f"delegationRequest.policyIssuer must be this node's party, {FIRM}: it answers for its own "
        f"policies only; ask the authorization registry that holds {MUNI}'s"
    )


def _with(path: str, value: Any) -> dict[str, Any]:
    """A valid mask with the member at dotted ``path`` replaced (``...`` deletes it)."""
    body = mask(policy())
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return body


P0 = "delegationRequest.policySets[0].policies[0]"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ([], "the body must be a JSON object"),
        ({}, "delegationRequest must be a JSON object"),
        (
            _with("delegationRequest.target.accessSubject", ...),
            "delegationRequest.target.accessSubject must be a non-empty string",
        ),
        (
            _with("delegationRequest.target.accessSubject", "nobody"),
            "delegationRequest.target.accessSubject 'nobody' is not an iSHARE party id",
        ),
        (_with("delegationRequest.policySets", []), "delegationRequest.policySets must be a non-empty array"),
        (
            _with("delegationRequest.policySets.0.policies.0.target.resource.identifiers", B1),
            f"{P0}.target.resource.identifiers must be a non-empty array",
        ),
        (
            _with("delegationRequest.policySets.0.policies.0.target.resource.attributes", [""]),
            f"{P0}.target.resource.attributes must hold non-empty strings only",
        ),
        (
            _with("delegationRequest.policySets.0.policies.0.target.resource.type", 7),
            f"{P0}.target.resource.type must be a non-empty string",
        ),
        (
            _with("delegationRequest.policySets.0.policies.0.target.actions", ...),
            f"{P0}.target.actions must be a non-empty array",
        ),
        (
            _with("delegationRequest.policySets.0.policies.0.rules", [{"effect": "Deny"}]),
            f"{P0}.rules must hold a rule with effect 'Permit' (a mask asks whether its policies are permitted)",
        ),
        (
            _with("delegationRequest.policySets.0.policies.0.rules", [{"effect": "permit"}]),
            f"{P0}.rules[0].effect must be 'Permit' or 'Deny', got 'permit'",
        ),
        (
            _with("delegationRequest.policySets.0.policies.0.target.environment", ["x"]),
            f"{P0}.target.environment must be a JSON object",
        ),
        (
            _with("delegationRequest.policySets.0.policies", [policy()] * 101),
            "delegationRequest.policySets[0].policies may hold at most 100 entries",
        ),
    ],
)
async def test_a_malformed_mask_is_a_bad_request_naming_the_fault(
    fed: Federation, body: Any, detail: str
) -> None:
    answer = await ask(fed, CORP, body)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "bad_request"
    assert answer.json()["detail"] == detail


async def test_a_body_that_is_not_json_is_a_bad_request(fed: Federation) -> None:
    async with await fed.client_as(CORP) as client:
        answer = await client.post(
            "/delegation", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert answer.status_code == 400
    assert answer.json()["detail"] == "the body is not JSON; send a delegation mask"


async def test_a_mask_must_be_sent_as_json(fed: Federation) -> None:
    async with await fed.client_as(CORP) as client:
        answer = await client.post("/delegation", content=json.dumps(mask()).encode())
    assert answer.status_code == 400
    assert answer.json()["detail"] == "a delegation mask is sent as application/json"


async def test_delegation_needs_a_bearer_token(fed: Federation) -> None:
    async with fed.client(FIRM) as client:
        answer = await client.post("/delegation", json=mask())
    assert answer.status_code == 401
    assert answer.json()["code"] == "invalid_token"


async def test_an_open_node_issues_no_delegation_evidence(tmp_path: Path) -> None:
    from gateway.config import load_node_settings

    async with serving(load_node_settings(write_node(tmp_path), {})) as (_, client):
        answer = await client.post("/delegation", json=mask())
    assert answer.status_code == 404
    assert answer.json()["detail"] == "an open node has no identity to sign delegation evidence with"


async def test_the_token_is_signed_by_the_node_for_the_requester_and_echoes_the_mask(
    fed: Federation, pki: Pki
) -> None:
    sent = policy(environment={"serviceProviders": [FIRM]})
    answer = await ask(fed, CORP, mask(sent))
    claims = claims_of(answer, pki)  # verifies the signature with the node's certificate
    header = jwt.peek_header(answer.json()["delegation_token"], ValueError)
    assert header["x5c"] == pki.ids[FIRM].x5c
    assert answer.headers["cache-control"] == "no-store"
    assert (claims["iss"], claims["sub"], claims["aud"]) == (FIRM, CORP, CORP)
    assert claims["exp"] == claims["iat"] + 30
    assert claims["delegationEvidence"] == {
        "notBefore": claims["iat"],
        "notOnOrAfter": claims["iat"] + 30,
        "policyIssuer": FIRM,
        "target": {"accessSubject": CORP},
        "policySets": [
            {
                "maxDelegationDepth": 0,
                "target": {"environment": {"licenses": ["ISHARE.0001"]}},
                "policies": [{"target": sent["target"], "rules": [{"effect": "Permit"}]}],
            }
        ],
    }


async def test_capabilities_list_the_delegation_endpoint(fed: Federation) -> None:
    async with await fed.client_as(CORP) as client:
        token = (await client.get("/capabilities")).json()["capabilities_token"]
    info = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["capabilities_info"]
    restricted = info["supported_versions"][0]["supported_features"][0]["restricted"]
    delegation = next(f for f in restricted if f["feature"] == "delegation")
    assert delegation["url"] == "http://p001.test/delegation"
    assert delegation["token_endpoint"] == "http://p001.test/connect/token"


# -- accepting evidence ---------------------------------------------------------------

EXPAND = load_vocab().expand


def registered(identity: Identity, status: str = "Active") -> Party:
    return Party(identity.party_id, "AR", status, None, None, frozenset({fingerprint(identity.chain[0])}))


def trusted(pki: Pki) -> list[str]:
    return [fingerprint(pki.ids[CORP].chain[-1])]  # the development root CA


def evidence_token(
    signer: Identity,
    now: float,
    *policies: dict[str, Any],
    subject: str = MUNI,
    issuer: str = FIRM,
    window: tuple[float, float] | None = None,
    aud: str = MUNI,
) -> str:
    not_before, not_after = window or (now - 60, now + 3600)
    iat = int(now)
    evidence = {
        "notBefore": int(not_before),
        "notOnOrAfter": int(not_after),
        "policyIssuer": issuer,
        "target": {"accessSubject": subject},
        "policySets": [
            {
                "maxDelegationDepth": 0,
                "target": {"environment": {"licenses": ["ISHARE.0001"]}},
                "policies": list(policies) or [policy(attributes=("rdfs:label", "dsgo:energyLabel"))],
            }
        ],
    }
    claims = {
        "iss": signer.party_id,
        "sub": subject,
        "aud": aud,
        "jti": "x",
        "iat": iat,
        "exp": iat + 30,
        "delegationEvidence": evidence,
    }
    return jwt.sign(claims, signer.key, signer.x5c)


def accept(pki: Pki, token: str, now: float, ar: Identity | None = None) -> tuple[Rule, ...]:
    """The rules the firm's node gives MUNI for ``token``, trusting CORP as its AR."""
    authority = ar or pki.ids[CORP]
    return rules_from_evidence(
        token,
        me=FIRM,
        caller=MUNI,
        trusted=trusted(pki),
        authorities={authority.party_id: registered(authority)},
        now=now,
        expand=EXPAND,
    )


def released(fed: Federation, rules: tuple[Rule, ...], iri: str) -> frozenset[str] | None:
    """What MUNI (no file rules of its own) sees of ``iri`` with ``rules`` added."""
    access = fed.nodes[FIRM].state.dsgo.node.access
    base = access.grant(Caller(MUNI, frozenset({"Municipality"})))
    decision = access.resource(Grant.of(base.rules + rules, base.version), iri)
    return None if decision is None else decision.released


async def test_valid_evidence_releases_exactly_its_attributes(fed: Federation, pki: Pki) -> None:
    rules = accept(pki, evidence_token(pki.ids[CORP], fed.clock()), fed.clock())
    assert released(fed, (), B1) is None
    # rdf:type comes with a permit for the class, as for rules from files
    assert released(fed, rules, B1) == frozenset({RDF_TYPE, LABEL, ENERGY})
    assert released(fed, rules, B2) is None  # identifiers named building 1 only


def test_evidence_becomes_one_permit_rule_for_the_caller(pki: Pki) -> None:
    at = time.time()
    (rule,) = accept(pki, evidence_token(pki.ids[CORP], at), at)
    assert (rule.effect, rule.parties, rule.classes, rule.fields) == (
        "permit",
        frozenset({MUNI}),
        frozenset({BOT + "Building"}),
        frozenset({LABEL, ENERGY}),
    )
    assert [p.pattern for p in rule.iris] == [re.escape(B1) + r"\Z"]
    assert rule.valid_from == dt.datetime.fromtimestamp(int(at - 60), dt.UTC)
    assert rule.valid_until == dt.datetime.fromtimestamp(int(at + 3600), dt.UTC)


def test_equal_evidence_gives_equal_rule_ids_so_views_are_shared(pki: Pki) -> None:
    at = time.time()
    window = (at - 60, at + 3600)
    first = accept(pki, evidence_token(pki.ids[CORP], at, window=window), at)
    again = accept(pki, evidence_token(pki.ids[CORP], at + 5, window=window), at + 5)
    other = accept(pki, evidence_token(pki.ids[CORP], at, policy(), window=window), at)
    assert [r.id for r in first] == [r.id for r in again] != [r.id for r in other]


async def test_evidence_wildcards_release_every_building_and_field(fed: Federation, pki: Pki) -> None:
    token = evidence_token(pki.ids[CORP], fed.clock(), policy(identifiers=("*",), attributes=("*",)))
    rules = accept(pki, token, fed.clock())
    every_field_but_the_denied_cost = {RDF_TYPE, LABEL, ENERGY, ADDRESS, BOT + "hasStorey"}
    assert released(fed, rules, B1) == frozenset(every_field_but_the_denied_cost)
    assert released(fed, rules, B2) == frozenset({RDF_TYPE, LABEL})
    assert released(fed, rules, S1) is None  # another class


async def test_deny_rules_from_files_win_over_evidence(fed: Federation, pki: Pki) -> None:
    token = evidence_token(pki.ids[CORP], fed.clock(), policy(attributes=("rdfs:label", COST)))
    assert released(fed, accept(pki, token, fed.clock()), B1) == frozenset({RDF_TYPE, LABEL})


def test_evidence_with_a_deny_rule_grants_nothing(pki: Pki) -> None:
    token = evidence_token(pki.ids[CORP], time.time(), policy(effect="Deny"))
    assert accept(pki, token, time.time()) == ()


def test_evidence_without_a_read_action_grants_nothing(pki: Pki) -> None:
    token = evidence_token(pki.ids[CORP], time.time(), policy(actions=("ISHARE.CREATE",)))
    assert accept(pki, token, time.time()) == ()


def test_evidence_about_a_class_the_node_does_not_know_grants_nothing(pki: Pki) -> None:
    token = evidence_token(pki.ids[CORP], time.time(), policy("GS1.CONTAINER"))
    assert accept(pki, token, time.time()) == ()


def refusal(pki: Pki, token: str, at: float, ar: Identity | None = None) -> str | None:
    """Why (the reason code) the firm's node refuses ``token`` (see ``accept``)."""
    with pytest.raises(Forbidden) as refused:
        accept(pki, token, at, ar)
    assert refused.value.status == 403 and refused.value.code == "forbidden"
    return refused.value.reason


def test_expired_evidence_is_refused(pki: Pki) -> None:
    at = time.time()
    token = evidence_token(pki.ids[CORP], at, window=(at - 3600, at - 1))
    assert refusal(pki, token, at) == "evidence_not_in_force"


def test_evidence_not_yet_valid_is_refused(pki: Pki) -> None:
    at = time.time()
    token = evidence_token(pki.ids[CORP], at, window=(at + 60, at + 3600))
    assert refusal(pki, token, at) == "evidence_not_in_force"


def test_an_expired_delegation_token_is_refused(pki: Pki) -> None:
    at = time.time()
    token = evidence_token(pki.ids[CORP], at - 60)
    assert refusal(pki, token, at) == "expired"


def test_evidence_for_another_access_subject_is_refused(pki: Pki) -> None:
    token = evidence_token(pki.ids[CORP], time.time(), subject=CORP)
    assert refusal(pki, token, time.time()) == "access_subject_wrong"


def test_evidence_about_another_policy_issuer_is_refused(pki: Pki) -> None:
    token = evidence_token(pki.ids[CORP], time.time(), issuer=CORP)
    assert refusal(pki, token, time.time()) == "policy_issuer_wrong"


def test_evidence_from_an_authority_the_node_does_not_trust_is_refused(pki: Pki) -> None:
    token = evidence_token(pki.ids[MUNI], time.time())  # MUNI is no AR of this node's
    assert refusal(pki, token, time.time()) == "authority_untrusted"


def test_evidence_chained_to_an_untrusted_ca_is_refused(pki: Pki) -> None:
    rogue = load_identity(pki.folder / "rogue-firm")  # FIRM's id from a CA nobody trusts
    token = evidence_token(rogue, time.time())
    assert refusal(pki, token, time.time(), rogue) == "chain_untrusted"


def test_evidence_signed_with_an_unregistered_certificate_is_refused(pki: Pki) -> None:
    second = load_identity(pki.folder / "firm-second")  # FIRM's id, not its registered certificate
    token = evidence_token(second, time.time())
    with pytest.raises(Forbidden) as refused:
        rules_from_evidence(
            token,
            me=FIRM,
            caller=MUNI,
            trusted=trusted(pki),
            authorities={FIRM: registered(pki.ids[FIRM])},
            now=time.time(),
            expand=EXPAND,
        )
    assert refused.value.reason == "certificate_not_registered"


def test_evidence_from_an_authority_missing_from_the_registry_is_refused(pki: Pki) -> None:
    token = evidence_token(pki.ids[CORP], time.time())
    with pytest.raises(Forbidden) as refused:
        rules_from_evidence(
            token,
            me=FIRM,
            caller=MUNI,
            trusted=trusted(pki),
            authorities={CORP: None},
            now=time.time(),
            expand=EXPAND,
        )
    assert refused.value.reason == "authority_unknown"


def test_evidence_for_another_audience_is_refused(pki: Pki) -> None:
    token = evidence_token(pki.ids[CORP], time.time(), aud=CORP)
    assert refusal(pki, token, time.time()) == "aud_wrong"


def test_tampered_evidence_is_refused(pki: Pki) -> None:
    head, body, sig = evidence_token(pki.ids[CORP], time.time()).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["delegationEvidence"]["policySets"][0]["policies"][0]["target"]["resource"]["attributes"] = ["*"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert refusal(pki, f"{head}.{forged}.{sig}", time.time()) == "signature_invalid"


def test_evidence_with_a_malformed_claim_is_refused(pki: Pki) -> None:
    signer = pki.ids[CORP]
    iat = int(time.time())
    claims = {"iss": CORP, "aud": MUNI, "iat": iat, "exp": iat + 30, "delegationEvidence": {"notBefore": "x"}}
    token = jwt.sign(claims, signer.key, signer.x5c)
    assert refusal(pki, token, time.time()) == "evidence_malformed"


# -- the hook for the read paths ----------------------------------------------------


async def _probe(request: Request) -> Response:
    caller = Caller(MUNI)
    rules = await evidence_rules_for(request, caller, (CORP,))
    return json_response([sorted(r.fields or ()) for r in rules])


@pytest.fixture
async def probed(fed: Federation) -> Federation:
    fed.nodes[FIRM].router.routes.insert(0, Route("/_probe", _probe, methods=["GET"]))
    return fed


async def test_the_hook_reads_the_header_and_checks_the_authority_in_the_registry(
    probed: Federation, pki: Pki
) -> None:
    token = evidence_token(pki.ids[CORP], probed.clock())
    async with probed.client(FIRM) as client:
        answer = await client.get("/_probe", headers={"delegation_evidence": token})
        none = await client.get("/_probe")
    assert answer.json() == [sorted([LABEL, ENERGY])]
    assert none.json() == []


async def test_the_hook_refuses_bad_evidence_with_a_403_saying_why(probed: Federation, pki: Pki) -> None:
    token = evidence_token(pki.ids[CORP], probed.clock(), subject=CORP)
    async with probed.client(FIRM) as client:
        answer = await client.get("/_probe", headers={"delegation_evidence": token})
    assert answer.status_code == 403
    assert (answer.json()["code"], answer.json()["reason"]) == ("forbidden", "access_subject_wrong")


# -- iSHARE's own historical delegation token -----------------------------------------

HISTORICAL = json.loads((FIXTURES / "historical-jwts.json").read_text())["delegation_token"]
GS1 = {
    "GS1.CONTAINER": "urn:gs1:container",
    "GS1.CONTAINER.ATTRIBUTE.ETA": "urn:gs1:eta",
    "GS1.CONTAINER.ATTRIBUTE.WEIGHT": "urn:gs1:weight",
}


def historical() -> tuple[dict[str, Any], Evidence]:
    chain = parse_x5c(jwt.peek_header(HISTORICAL, ValueError)["x5c"], ValueError)
    key = chain[0].public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    claims = jwt.verify(HISTORICAL, key, ValueError)
    return claims, read_evidence(claims["delegationEvidence"], claims["iss"], ValueError)


def test_the_historical_ishare_delegation_token_parses_as_evidence() -> None:
    _, evidence = historical()
    assert evidence == Evidence(
        authority="EU.EORI.NL000000004",
        not_before=1541058939,
        not_on_or_after=1561058939,
        policy_issuer="EU.EORI.NL000000005",
        access_subject="EU.EORI.NL000000001",
        policies=(
            Policy(
                target=evidence.policies[0].target,
                type="GS1.CONTAINER",
                identifiers=("180621.CONTAINER-Z",),
                attributes=("GS1.CONTAINER.ATTRIBUTE.ETA", "GS1.CONTAINER.ATTRIBUTE.WEIGHT"),
                actions=("ISHARE.READ", "ISHARE.CREATE", "ISHARE.UPDATE", "ISHARE.DELETE"),
                service_providers=("EU.EORI.NL000000003",),
                effects=("Permit",),
            ),
        ),
    )


def test_the_historical_evidence_becomes_a_rule_at_its_own_time() -> None:
    claims, evidence = historical()
    (rule,) = evidence_rules(
        evidence,
        me="EU.EORI.NL000000005",
        caller="EU.EORI.NL000000001",
        now=claims["iat"] + 5,
        expand=GS1.get,
    )
    assert rule.classes == {"urn:gs1:container"} and rule.fields == frozenset(
        {"urn:gs1:eta", "urn:gs1:weight"}
    )
    assert rule.parties == {"EU.EORI.NL000000001"} and rule.iris[0].match("180621.CONTAINER-Z")


def test_the_historical_evidence_is_refused_today() -> None:
    _, evidence = historical()
    with pytest.raises(Forbidden) as refused:
        evidence_rules(
            evidence,
            me="EU.EORI.NL000000005",
            caller="EU.EORI.NL000000001",
            now=dt.datetime.now(dt.UTC).timestamp(),
            expand=GS1.get,
        )
    assert refused.value.reason == "evidence_not_in_force"


def test_the_historical_token_is_not_accepted_without_its_chain_to_a_trusted_ca() -> None:
    ca = x509.load_pem_x509_certificate((FIXTURES / "iSHARETestCA_TLS.cacert.pem").read_bytes())
    with pytest.raises(Forbidden) as refused:
        rules_from_evidence(
            HISTORICAL,
            me="EU.EORI.NL000000005",
            caller="EU.EORI.NL000000001",
            trusted=[fingerprint(ca)],
            authorities={"EU.EORI.NL000000004": None},
            now=1552402361,
            expand=GS1.get,
        )
    assert refused.value.reason == "chain_untrusted"


@pytest.fixture
async def fed_with_ar(tmp_path: Path, pki: Pki) -> AsyncIterator[Federation]:
    """The firm's node trusts the corporation as an authorization registry."""
    async with federation(
        tmp_path,
        pki,
        nodes=(FIRM, CORP, MUNI),
        policies={FIRM: POLICY},
        data={FIRM: DATA},
        authorities=(CORP,),
    ) as f:
        yield f


async def test_evidence_from_a_trusted_registry_widens_the_callers_view(
    fed_with_ar: Federation, pki: Pki
) -> None:
    token = evidence_token(pki.ids[CORP], fed_with_ar.clock(), aud=MUNI)
    async with await fed_with_ar.client_as(MUNI) as client:
        without = await client.get("/id/building/1", headers={"accept": "application/n-triples"})
        with_evidence = await client.get(
            "/id/building/1", headers={"accept": "application/n-triples", "delegation_evidence": token}
        )
    assert without.status_code == 404  # the files give the municipality nothing
    assert with_evidence.status_code == 200
    assert '"F"' in with_evidence.text and "Kerkstraat 1" in with_evidence.text
    assert "250000" not in with_evidence.text and "Amsterdam" not in with_evidence.text


async def test_evidence_never_beats_a_deny_rule_of_the_files(fed_with_ar: Federation, pki: Pki) -> None:
    token = evidence_token(pki.ids[CORP], fed_with_ar.clock(), policy(attributes=("props:constructionCost",)))
    async with await fed_with_ar.client_as(MUNI) as client:
        answer = await client.get(
            "/id/building/1", headers={"delegation-evidence": token, "accept": "application/n-triples"}
        )
    # the evidence's class comes with it (rdf:type), the denied cost does not
    assert answer.status_code == 200
    assert "250000" not in answer.text and "constructionCost" not in answer.text
    assert answer.text.count("\n") == 1


async def test_evidence_from_an_untrusted_registry_is_refused_with_a_reason(
    fed_with_ar: Federation, pki: Pki
) -> None:
    token = evidence_token(pki.ids[MUNI], fed_with_ar.clock())  # the municipality is no AR here
    async with await fed_with_ar.client_as(MUNI) as client:
        answer = await client.get("/id/building/1", headers={"delegation_evidence": token})
    assert answer.status_code == 403
    assert (answer.json()["code"], answer.json()["reason"]) == ("forbidden", "authority_untrusted")
