"""Interop with iSHARE's own published test parties and historical tokens."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from gateway.config import load_node_settings
from gateway.errors import InvalidClient, refusal
from gateway.http.app import create_app
from gateway.identity import jwt
from gateway.identity.assertions import ASSERTION_TYPE, make_assertion, verify_assertion
from gateway.identity.pki import fingerprint, load_identity
from gateway.identity.trust import check_audience, check_chain, parse_x5c
from gateway.registry import create_registry_app, load_registry_settings
from tests.conftest import write_node
from tests.kit import REGISTRY, REGISTRY_URL, Clock, Pki, Router

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent / "fixtures" / "ishare"
ABC, AWESOME, WAREHOUSE = "EU.EORI.NL000000001", "EU.EORI.NL000000002", "EU.EORI.NL000000003"
G5 = "FD5593DC874ECC1133C21A77259C3592552EC0C89DFCD7AB3C0BDCFD73F0F5CC"
ROOT = "8c39dd06e35de8467004a542d0ca4b8fdc7d6f8f713f40a35bd9e65938a191cf"  # lower case on purpose
HISTORICAL = json.loads((FIXTURES / "historical-jwts.json").read_text())


def party_folder(tmp: Path, name: str) -> Path:
    folder = tmp / name
    folder.mkdir()
    shutil.copy(FIXTURES / f"{name}.pem", folder / "chain.pem")
    shutil.copy(FIXTURES / f"{name}.key.pem", folder / "key.pem")
    return folder


def registry_toml(tmp: Path, pki: Pki) -> Path:
    parties = ""
    for pid, name in ((ABC, "ABCTrucking"), (AWESOME, "AwesomeWidgets"), (WAREHOUSE, "Warehouse13")):
        parties += (
            f'[[party]]\nid = "{pid}"\nname = "{name}"\ncertificates = ["{FIXTURES / (name + ".pem")}"]\n'
            f'roles = ["ServiceConsumer"]\nstart = 2020-01-01\nend = 2099-01-01\n\n'
        )
    path = tmp / "registry.toml"
    path.write_text(
        f'[registry]\nparty_id = "{REGISTRY}"\nkeys = "{pki.keys(REGISTRY)}"\n'
        f'trusted_fingerprints = ["{G5}", "{ROOT}"]\n\n{parties}'
    )
    return path


def test_ishare_test_parties_load_as_identities(tmp_path: Path) -> None:
    for name, pid in (("ABCTrucking", ABC), ("AwesomeWidgets", AWESOME), ("Warehouse13", WAREHOUSE)):
        assert load_identity(party_folder(tmp_path, name)).party_id == pid


async def test_abc_trucking_reads_a_resource_from_a_node_run_as_warehouse_13(
    tmp_path: Path, pki: Pki
) -> None:
    clock = Clock()
    router = Router()
    registry = create_registry_app(load_registry_settings(registry_toml(tmp_path, pki)), clock=clock)
    router.mount(REGISTRY_URL, registry)
    node_dir = tmp_path / "w13"
    node_dir.mkdir()
    toml = write_node(node_dir, open=False, party_id=WAREHOUSE, name="Warehouse 13")
    (node_dir / "policies").mkdir()
    (node_dir / "policies" / "abc.yaml").write_text(
        f"rules:\n  - {{id: abc-reads, effect: permit, to: {{parties: [{ABC}]}}, resources: all, fields: all}}\n"
    )
    toml.write_text(
        toml.read_text() + f'\n[keys]\ndir = "{party_folder(tmp_path, "Warehouse13")}"\n'
        f'[registry]\nurl = "{REGISTRY_URL}"\nparty_id = "{REGISTRY}"\nca = ["{pki.ca / "root.cert.pem"}"]\n'
        '[policies]\ndir = "policies"\n'
    )
    abc = load_identity(party_folder(tmp_path, "ABCTrucking"))
    async with registry.router.lifespan_context(registry), httpx.AsyncClient(transport=router) as http:
        node = create_app(load_node_settings(toml, {}), watch=False, http=http, clock=clock)
        async with (
            node.router.lifespan_context(node),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=node), base_url="http://w13.test") as client,
        ):
            form = {
                "grant_type": "client_credentials",
                "scope": "iSHARE",
                "client_id": ABC,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": make_assertion(abc, WAREHOUSE, clock()),
            }
            token = await client.post("/connect/token", data=form)
            assert token.status_code == 200, token.text
            bearer = {"authorization": f"Bearer {token.json()['access_token']}"}
            answer = await client.get("/id/building/1", headers=bearer)
    assert answer.status_code == 200
    assert "Kerkstraat 1" in answer.text


def test_historical_client_assertion_verifies_but_is_refused_for_its_array_audience() -> None:
    token = HISTORICAL["client_assertion"]
    header = jwt.peek_header(token, ValueError)
    chain = parse_x5c(header["x5c"], ValueError)
    claims = jwt.verify(token, chain[0].public_key(), ValueError)  # type: ignore[arg-type]
    assert isinstance(claims["aud"], list) and isinstance(claims["iat"], str)
    with pytest.raises(InvalidClient) as refused:
        check_audience(claims, ("EU.EORI.NL000000004",), refusal(InvalidClient))
    assert refused.value.reason == "aud_array"
    with pytest.raises(InvalidClient) as unchained:  # its x5c holds the leaf alone
        verify_assertion(
            token,
            client_id=AWESOME,
            audience="EU.EORI.NL000000004",
            trusted=[
                fingerprint(
                    x509.load_pem_x509_certificate((FIXTURES / "iSHARETestCA_TLS.cacert.pem").read_bytes())
                )
            ],
            now=float(claims["exp"]) - 5,
        )
    assert unchained.value.reason == "chain_untrusted"


def test_historical_delegation_token_verifies_with_a_fixed_clock() -> None:
    token = HISTORICAL["delegation_token"]
    header = jwt.peek_header(token, ValueError)
    chain = parse_x5c(header["x5c"], ValueError)
    claims = jwt.verify(token, chain[0].public_key(), ValueError)  # type: ignore[arg-type]
    assert claims["iss"] == "EU.EORI.NL000000004" and claims["exp"] - claims["iat"] == 30
    evidence = claims["delegationEvidence"]
    assert evidence["policySets"][0]["policies"][0]["rules"][0]["effect"] == "Permit"
    # the signer's certificate chains to iSHARE's older test CA, valid at the token's time
    ca = x509.load_pem_x509_certificate((FIXTURES / "iSHARETestCA_TLS.cacert.pem").read_bytes())

    at = dt.datetime.fromtimestamp(claims["iat"] + 5, dt.UTC)
    check_chain([chain[0], ca], [fingerprint(ca)], at, ValueError)
    with pytest.raises(ValueError) as expired:
        check_chain([chain[0], ca], [fingerprint(ca)], dt.datetime.now(dt.UTC), ValueError)
    assert expired.value.args[0] == "certificate_not_valid_now"


def test_tampered_historical_token_does_not_verify() -> None:
    head, body, sig = HISTORICAL["delegation_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["sub"] = "EU.EORI.NL000000002"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    chain = parse_x5c(jwt.peek_header(HISTORICAL["delegation_token"], ValueError)["x5c"], ValueError)
    with pytest.raises(ValueError) as refused:
        jwt.verify(f"{head}.{forged}.{sig}", chain[0].public_key(), ValueError)  # type: ignore[arg-type]
    assert refused.value.args[0] == "signature_invalid"
