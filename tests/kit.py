"""An in-process federation for identity tests: a development PKI, a registry and nodes
talking over httpx ASGI transports (no sockets), with a clock the test can move."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI

from gateway.config import load_node_settings
from gateway.http.app import create_app
from gateway.identity.pki import Identity, load_identity, make_ca, make_party
from gateway.registry import create_registry_app, load_registry_settings
from tests.conftest import write_node

REGISTRY = "EU.EORI.NL000000000"
FIRM = "EU.EORI.NL000000001"
CORP = "EU.EORI.NL000000002"
MUNI = "EU.EORI.NL000000003"
INACTIVE = "EU.EORI.NL000000004"
ENDED = "EU.EORI.NL000000005"
UNKNOWN = "EU.EORI.NL000000006"
NOT_YET = "EU.EORI.NL000000007"
REGISTRY_URL = "http://registry.test"


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@dataclass
class Pki:
    folder: Path
    ids: dict[str, Identity] = field(default_factory=dict)

    @property
    def ca(self) -> Path:
        return self.folder / "ca"

    def keys(self, party: str) -> Path:
        return self.folder / party


def make_pki(folder: Path) -> Pki:
    pki = Pki(folder)
    make_ca(pki.ca)
    for party in (REGISTRY, FIRM, CORP, MUNI, INACTIVE, ENDED, UNKNOWN, NOT_YET):
        make_party(party, pki.keys(party), pki.ca, name=f"Party {party[-3:]}")
        pki.ids[party] = load_identity(pki.keys(party))
    # a second CA nobody trusts, and FIRM's id on a certificate from it
    make_ca(folder / "rogue-ca", name="Rogue")
    make_party(FIRM, folder / "rogue-firm", folder / "rogue-ca")
    # FIRM's id on a second, unregistered certificate from the trusted CA
    make_party(FIRM, folder / "firm-second", pki.ca)
    return pki


def self_signed(party: str) -> Identity:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "self"), x509.NameAttribute(NameOID.SERIAL_NUMBER, party)]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return Identity(party, key, (cert,))


def write_registry(folder: Path, pki: Pki) -> Path:
    roles = {FIRM: "ConstructionFirm", CORP: "HousingCorporation", MUNI: "Municipality"}

    def party(pid: str, status: str = "Active", start: str = "2020-01-01", end: str = "2099-01-01") -> str:
        return (
            f'[[party]]\nid = "{pid}"\nname = "Party {pid[-3:]}"\nstatus = "{status}"\n'
            f"start = {start}\nend = {end}\n"
            f'certificates = ["{pki.keys(pid) / "chain.pem"}"]\nroles = ["{roles.get(pid, "ServiceConsumer")}"]\n'
            f'namespaces = ["https://data.p{pid[-3:]}.example/"]\nendpoint = "http://p{pid[-3:]}.test"\n\n'
        )

    text = (
        f'[registry]\nparty_id = "{REGISTRY}"\nname = "Test registry"\nkeys = "{pki.keys(REGISTRY)}"\n'
        f'trusted = ["{pki.ca / "root.cert.pem"}"]\n\n'
        + party(FIRM)
        + party(CORP)
        + party(MUNI)
        + party(INACTIVE, status="NotActive")
        + party(ENDED, end="2021-01-01")
        + party(NOT_YET, start="2090-01-01")
    )
    path = folder / "registry.toml"
    path.write_text(text)
    return path


def namespace(party: str) -> str:
    """The namespace the test registry says ``party`` owns."""
    return f"https://data.p{party[-3:]}.example/"


def endpoint(party: str) -> str:
    return f"http://p{party[-3:]}.test"


class Router(httpx.AsyncBaseTransport):
    """Sends each request to the in-process app registered for its host."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.ASGITransport] = {}
        self.calls: list[str] = []

    def mount(self, base_url: str, app: FastAPI) -> None:
        self.apps[httpx.URL(base_url).host] = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url}")
        transport = self.apps.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"nothing listens at {request.url.host}", request=request)
        return await transport.handle_async_request(request)


@dataclass
class Federation:
    pki: Pki
    clock: Clock
    router: Router
    registry: FastAPI
    nodes: dict[str, FastAPI]

    async def client_as(self, party: str, node: str = FIRM) -> httpx.AsyncClient:
        """A client for ``node``'s node carrying the token ``party``'s node obtained there."""
        token = await self.nodes[party].state.dsgo.auth.trust.tokens.token(node, endpoint(node))
        client = self.client(node)
        client.headers["authorization"] = f"Bearer {token}"
        return client

    def client(self, party: str) -> httpx.AsyncClient:
        """A plain client for the node of ``party`` (no token)."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.nodes[party]), base_url=f"http://p{party[-3:]}.test"
        )


SHARE_ALL = """
rules:
  - id: share-all
    effect: permit
    to: {anyone: true}
    resources: all
    fields: all
"""


@contextlib.asynccontextmanager
async def federation(
    folder: Path,
    pki: Pki,
    nodes: tuple[str, ...] = (FIRM,),
    policies: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    own_namespaces: bool = False,
    authorities: tuple[str, ...] = (),
) -> AsyncIterator[Federation]:
    """A registry and nodes; ``policies`` and ``data`` map a party to its policy YAML
    (default: all to anyone) and its Turtle (default: conftest's buildings). With
    ``own_namespaces`` each node serves the namespace the registry says it owns
    (``https://data.pNNN.example/``) instead of conftest's shared ``NS``."""
    clock = Clock()
    router = Router()
    registry = create_registry_app(load_registry_settings(write_registry(folder, pki)), clock=clock)
    router.mount(REGISTRY_URL, registry)
    apps: dict[str, FastAPI] = {}
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(registry.router.lifespan_context(registry))
        http = await stack.enter_async_context(httpx.AsyncClient(transport=router))
        for party in nodes:
            sub = folder / f"node-{party[-3:]}"
            sub.mkdir()
            extra = {"base_iri": namespace(party)} if own_namespaces else {}
            toml = write_node(sub, open=False, party_id=party, **extra)
            if data and party in data:
                (sub / "data" / "buildings.ttl").write_text(data[party])
            (sub / "policies").mkdir()
            (sub / "policies" / "policy.yaml").write_text((policies or {}).get(party, SHARE_ALL))
            toml.write_text(
                toml.read_text()
                + f'\n[keys]\ndir = "{pki.keys(party)}"\n[registry]\nurl = "{REGISTRY_URL}"\n'
                f'party_id = "{REGISTRY}"\nca = ["{pki.ca / "root.cert.pem"}"]\n'
                f'certificates = ["{pki.keys(REGISTRY) / "cert.pem"}"]\n'
                '[policies]\ndir = "policies"\n'
                f"authorization_registries = {list(authorities)!r}\n".replace("'", '"')
            )
            app = create_app(load_node_settings(toml, {}), watch=False, http=http, clock=clock)
            await stack.enter_async_context(app.router.lifespan_context(app))
            router.mount(f"http://p{party[-3:]}.test", app)
            apps[party] = app
        yield Federation(pki, clock, router, registry, apps)
