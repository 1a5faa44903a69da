"""iSHARE v2 to the letter and 3.0 beside it: the registry's shapes, paging, versions and
capabilities; did:ishare parties at a node's token endpoint. docs/ishare.md says why."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.http.auth import signed
from gateway.identity.assertions import ASSERTION_TYPE, make_assertion
from gateway.identity.parties import Party, TrustedCA, parse_party
from gateway.identity.pki import (
    Identity,
    fingerprint,
    load_chain,
    load_identity,
    make_ca,
    make_party,
    party_id_of,
)
from gateway.identity.replay import MemoryReplayCache
from gateway.identity.token_endpoint import authenticate_client
from gateway.identity.tokens import TokenIssuer
from gateway.registry import create_registry_app, load_registry_settings
from tests.kit import CORP, FIRM, REGISTRY, Federation, Pki, federation

pytestmark = pytest.mark.anyio


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))  # type: ignore[no-any-return]


@pytest.fixture
async def fed(tmp_path: Path, pki: Pki) -> Any:
    async with federation(tmp_path, pki) as f:
        yield f


async def registry(fed: Federation, path: str, token: bool = True, **params: str) -> httpx.Response:
    headers = {}
    if token:
        headers["authorization"] = "Bearer " + await fed.nodes[FIRM].state.dsgo.auth.trust.tokens.token(
            REGISTRY, "http://registry.test"
        )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fed.registry), base_url="http://registry.test"
    ) as c:
        return await c.get(path, params=params, headers=headers)


async def test_party_entry_has_the_specs_fields(fed: Federation) -> None:
    info = claims_of((await registry(fed, f"/parties/{CORP}")).json()["party_token"])["party_info"]
    assert info["capability_url"] == "http://p002.test/capabilities"
    assert info["registrar_id"] == REGISTRY and info["id"] == info["party_id"] == CORP
    assert {"additional_info", "agreements", "certificates", "roles", "auth_registries"} <= set(info)
    assert info["adherence"]["end_date"] == "2099-01-01T00:00:00.000Z"


async def test_federation_roles_are_kept_apart_from_ishare_roles(fed: Federation) -> None:
    info = claims_of((await registry(fed, f"/parties/{FIRM}")).json()["party_token"])["party_info"]
    assert info["roles"] == [] and info["dsgo"]["roles"] == ["ConstructionFirm"]


async def test_versions_are_anonymous_with_the_specs_fields(fed: Federation) -> None:
    answer = await registry(fed, "/versions", token=False)
    claims = claims_of(answer.json()["versions_token"])
    assert answer.status_code == 200 and "aud" not in claims
    assert set(claims["versions_info"][0]) == {"version_name", "valid_from", "valid_to", "version_status"}


async def test_registry_capabilities_name_the_satellite_role_and_absolute_urls(fed: Federation) -> None:
    info = claims_of((await registry(fed, "/capabilities")).json()["capabilities_token"])["capabilities_info"]
    assert info["ishare_roles"] == [{"role": "iShareSatellite"}]
    features = info["supported_versions"][0]["supported_features"][0]
    for feature in features["public"] + features["restricted"]:
        assert feature["id"] and feature["description"] and feature["url"].startswith("http://registry.test/")


async def test_unknown_page_parameter_is_400(fed: Federation) -> None:
    answer = await registry(fed, "/parties", page="0")
    assert answer.status_code == 400 and answer.json()["code"] == "bad_request"


def _many_parties(tmp_path: Path, pki: Pki, n: int) -> Path:
    parties = "".join(
        f'[[party]]\nid = "EU.EORI.NL{i:09d}"\nname = "P{i}"\nfingerprints = ["{"AB" * 32}"]\n\n'
        for i in range(100, 100 + n)
    )
    path = tmp_path / "many.toml"
    path.write_text(
        f'[registry]\nparty_id = "{REGISTRY}"\nkeys = "{pki.keys(REGISTRY)}"\ntrusted = ["{pki.ca / "root.cert.pem"}"]\n\n'
        + parties
    )
    return path


async def test_parties_are_paged_by_ten_with_count_of_all(tmp_path: Path, pki: Pki) -> None:
    app = create_registry_app(load_registry_settings(_many_parties(tmp_path, pki, 12)))
    issuer = TokenIssuer(load_identity(pki.keys(REGISTRY)))
    token = issuer.issue(FIRM, dt.datetime.now(dt.UTC).timestamp())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://registry.test",
            headers={"authorization": f"Bearer {token}"},
        ) as client,
    ):
        first = claims_of((await client.get("/parties", params={"name": "*"})).json()["parties_token"])
        second = claims_of(
            (await client.get("/parties", params={"name": "*", "page": "2"})).json()["parties_token"]
        )
        v3 = claims_of(
            (await client.get("/v3/parties", params={"pageSize": "5", "page": "3"})).json()["partiesToken"]
        )
    assert first["parties_info"]["count"] == 12 and len(first["parties_info"]["data"]) == 10
    assert len(second["parties_info"]["data"]) == 2
    assert (v3["partiesInfo"]["totalCount"], v3["partiesInfo"]["totalPages"], v3["partiesInfo"]["count"]) == (
        12,
        3,
        2,
    )


async def test_v3_party_reads_as_the_same_party_as_v2(fed: Federation) -> None:
    v2 = claims_of((await registry(fed, f"/parties/{CORP}")).json()["party_token"])["party_info"]
    v3 = claims_of((await registry(fed, f"/v3/parties/{CORP}")).json()["partyToken"])["partyInfo"]
    assert {c["type"] for c in v3["claims"]} >= {
        "frameworkCompliance",
        "dataspaceMembership",
        "x509Certificate",
    }
    a, b = parse_party(v2), parse_party(v3)
    assert (a.party_id, a.name, a.status, a.start_date, a.end_date, a.certificates, set(a.roles)) == (
        b.party_id,
        b.name,
        b.status,
        b.start_date,
        b.end_date,
        b.certificates,
        set(b.roles),
    )


async def test_v3_trusted_list_and_capabilities_are_camel_case(fed: Federation) -> None:
    trusted = claims_of((await registry(fed, "/v3/trustedList")).json()["trustedListToken"])
    caps = claims_of((await registry(fed, "/v3/capabilities", token=False)).json()["capabilitiesToken"])
    assert "certificateFingerprint" in trusted["trustedList"][0]
    assert caps["capabilitiesInfo"]["publicServices"] and "restrictedServices" not in caps["capabilitiesInfo"]


class _Trust:
    def __init__(self, party: Party, cas: list[TrustedCA]) -> None:
        self._party, self._cas = party, cas

    async def party(self, party_id: str) -> Party | None:
        return self._party if party_id == self._party.party_id else None

    async def trusted(self) -> list[TrustedCA]:
        return self._cas


async def test_did_ishare_party_gets_a_token_and_the_node_reads_it_back(tmp_path: Path) -> None:
    did, node = "did:ishare:EU.NL.NTRNL-12345678", "did:ishare:EU.NL.NTRNL-87654321"
    make_ca(tmp_path / "ca")
    for party in (did, node):
        make_party(party, tmp_path / party.replace(":", "_"), tmp_path / "ca")
    client = load_identity(tmp_path / did.replace(":", "_"))
    server = load_identity(tmp_path / node.replace(":", "_"))
    roots = [
        TrustedCA("root", fingerprint(c), "granted") for c in load_chain(tmp_path / "ca" / "root.cert.pem")
    ]
    entry = Party(
        did,
        "DID party",
        "Active",
        None,
        None,
        frozenset({fingerprint(client.chain[0])}),
        ("ServiceConsumer",),
    )
    now = dt.datetime.now(dt.UTC).timestamp()
    form = {
        "grant_type": "client_credentials",
        "client_id": did,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_assertion(client, node, now),
    }
    assertion, party = await authenticate_client(
        form, me=node, trust=_Trust(entry, roots), replay=MemoryReplayCache(), now=now
    )
    issuer = TokenIssuer(server)
    caller = issuer.check(issuer.issue(assertion.party_id, now, party.roles), now)
    assert caller.party_id == did


async def test_node_reads_a_page_of_parties_larger_than_an_access_token(fed: Federation, pki: Pki) -> None:
    # each entry carries its certificate: a page of ten outgrows the 16 kB bound of tokens
    registry = fed.nodes[FIRM].state.dsgo.auth.trust
    entry = claims_of(await registry_get_token(fed, f"/parties/{CORP}"))["party_info"]
    info = {"count": 10, "data": [entry] * 10}
    answer = signed(pki.ids[REGISTRY], "parties_info", info, FIRM, fed.clock())["parties_token"]
    assert len(answer) > 16 * 1024
    assert registry._verify(answer, "/parties")["parties_info"]["count"] == 10


async def registry_get_token(fed: Federation, path: str) -> str:
    token: str = (await registry(fed, path)).json()["party_token"]
    return token


def _eidas_party(ca: Path, org: str) -> Identity:
    """A certificate as eIDAS seals name a party: organizationIdentifier and C, no serialNumber."""
    issuing = x509.load_pem_x509_certificate((ca / "issuing.cert.pem").read_bytes())
    issuing_key = serialization.load_pem_private_key((ca / "issuing.key.pem").read_bytes(), None)
    root = x509.load_pem_x509_certificate((ca / "root.cert.pem").read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Seal"),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, org),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuing.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(issuing_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return Identity(f"did:ishare:EU.NL.{org}", key, (cert, issuing, root))


async def test_did_ishare_is_read_from_an_eidas_organization_identifier(tmp_path: Path) -> None:
    did, node = "did:ishare:EU.NL.NTRNL-12345678", "did:ishare:EU.NL.NTRNL-87654321"
    make_ca(tmp_path / "ca")
    client = _eidas_party(tmp_path / "ca", "NTRNL-12345678")
    assert party_id_of(client.chain[0]) == did
    roots = [
        TrustedCA("root", fingerprint(c), "granted") for c in load_chain(tmp_path / "ca" / "root.cert.pem")
    ]
    entry = Party(did, "Seal", "Active", None, None, frozenset({fingerprint(client.chain[0])}))
    now = dt.datetime.now(dt.UTC).timestamp()
    form = {
        "grant_type": "client_credentials",
        "client_id": did,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_assertion(client, node, now),
    }
    assertion, _ = await authenticate_client(
        form, me=node, trust=_Trust(entry, roots), replay=MemoryReplayCache(), now=now
    )
    assert assertion.party_id == did
