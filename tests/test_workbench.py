"""The workbench: a party's people log in at their own node and read the federation there.

Nodes run in process (tests.kit); the person's node reads other nodes with its own token.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import argon2
import httpx
import pytest

from gateway.errors import ConfigError
from gateway.web.accounts import add_account, load_accounts
from gateway.web.sessions import Sessions
from tests.kit import CORP, FIRM, MUNI, Federation, Pki, federation, namespace
from tests.test_federation import CORP_DATA, CORP_POLICY, FIRM_DATA, FIRM_POLICY, MUNI_DATA, MUNI_POLICY

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"
#: OWASP's minimum Argon2id parameters: fast enough for tests, accepted by the node
FAST = argon2.PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
C, M = namespace(CORP), namespace(MUNI)


def accounts_file(fed: Federation, party: str) -> Path:
    path = fed.nodes[party].state.dsgo.settings.workbench_accounts
    assert isinstance(path, Path)
    return path


@pytest.fixture
async def fed(tmp_path: Path, pki: Pki) -> AsyncIterator[Federation]:
    async with federation(
        tmp_path,
        pki,
        nodes=(FIRM, CORP, MUNI),
        policies={FIRM: FIRM_POLICY, CORP: CORP_POLICY, MUNI: MUNI_POLICY},
        data={FIRM: FIRM_DATA, CORP: CORP_DATA, MUNI: MUNI_DATA},
        own_namespaces=True,
    ) as fed:
        add_account(
            accounts_file(fed, MUNI),
            "alice",
            PASSWORD,
            frozenset({"operator"}),
            "Alice",
            password_hasher=FAST,
        )
        add_account(accounts_file(fed, MUNI), "bob", PASSWORD, password_hasher=FAST)
        yield fed


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def login(client: httpx.AsyncClient, user: str = "alice") -> httpx.Response:
    form = await client.get("/login")
    return await client.post(
        "/login",
        data={"username": user, "password": PASSWORD, "csrf": csrf_of(form.text), "next": "/workbench/"},
    )


@contextlib.asynccontextmanager
async def logged_in(fed: Federation, user: str = "alice") -> AsyncIterator[httpx.AsyncClient]:
    async with fed.client(MUNI) as client:
        answer = await login(client, user)
        assert answer.status_code == 303 and answer.headers["location"] == "/workbench/", answer.text
        yield client


# -- accounts ----------------------------------------------------------------------------


def test_account_file_holds_argon2id_hashes_readable_by_owner_only(tmp_path: Path) -> None:
    file = tmp_path / "accounts.json"
    add_account(file, "carol", PASSWORD, password_hasher=FAST)
    assert file.stat().st_mode & 0o077 == 0
    account = load_accounts(file).by_name["carol"]
    assert account.hash.startswith("$argon2id$") and PASSWORD not in file.read_text()
    assert load_accounts(file).verify("carol", PASSWORD) == account
    assert load_accounts(file).verify("carol", "wrong password!") is None


@pytest.mark.parametrize(
    "stored",
    [
        "$2b$12$abcdefghijklmnopqrstuuVGHm5Bf5SsYHCgQk4WJcWT7E3b8Vh7u",  # bcrypt
        "5f4dcc3b5aa765d61d8327deb882cf99",  # MD5
        argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("x" * 12),  # weak Argon2id
        "$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",  # Argon2i, not id
    ],
)
def test_account_file_with_a_weak_hash_format_is_refused(tmp_path: Path, stored: str) -> None:
    file = tmp_path / "accounts.json"
    file.write_text(json.dumps({"format": 1, "accounts": {"carol": {"hash": stored, "roles": []}}}))
    with pytest.raises(ConfigError) as refused:
        load_accounts(file)
    assert refused.value.key == "accounts.carol.hash"


def test_short_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        add_account(tmp_path / "accounts.json", "carol", "short", password_hasher=FAST)


# -- sessions, CSRF, origins -------------------------------------------------------------


async def test_a_page_without_a_session_sends_the_browser_to_the_login_page(fed: Federation) -> None:
    async with fed.client(MUNI) as client:
        for path in ("/workbench/", "/workbench/resource?iri=" + quote(C + "id/home/1"), "/workbench/audit"):
            answer = await client.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")


async def test_login_sets_an_httponly_samesite_session_cookie_with_expiry(fed: Federation) -> None:
    async with fed.client(MUNI) as client:
        answer = await login(client)
        home = await client.get("/workbench/")
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("dsgo_session="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "max-age", "path"} <= attributes and "samesite=strict" in cookie.lower()
    assert home.status_code == 200 and "Alice" in home.text


async def test_login_without_the_csrf_token_is_refused(fed: Federation) -> None:
    async with fed.client(MUNI) as client:
        await client.get("/login")
        answer = await client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 403 and 'data-code="csrf_refused"' in answer.text
    assert "dsgo_session" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize(("path", "fields"), [("/logout", {}), ("/workbench/query", {"query": "ASK {}"})])
async def test_every_post_needs_the_sessions_csrf_token(
    fed: Federation, path: str, fields: dict[str, str]
) -> None:
    async with logged_in(fed) as client:
        answer = await client.post(path, data=fields)
        still = await client.get("/workbench/")
    assert answer.status_code == 403 and 'data-code="csrf_refused"' in answer.text
    assert still.status_code == 200  # the session was not ended by the forged logout


async def test_a_post_from_another_origin_is_refused_even_with_the_token(fed: Federation) -> None:
    async with logged_in(fed) as client:
        token = csrf_of((await client.get("/workbench/")).text)
        answer = await client.post(
            "/logout", data={"csrf": token}, headers={"origin": "https://evil.example"}
        )
    assert answer.status_code == 403 and 'data-code="csrf_refused"' in answer.text


async def test_a_cross_site_request_gets_no_session(fed: Federation) -> None:
    async with logged_in(fed) as client:
        answer = await client.get("/workbench/", headers={"sec-fetch-site": "cross-site"})
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


async def test_a_session_cookie_does_not_authorise_an_api_route(fed: Federation) -> None:
    async with logged_in(fed) as client:
        answer = await client.get("/pand/1", headers={"accept": "application/ld+json"})
    assert answer.status_code == 401 and answer.json()["code"] == "invalid_token"


async def test_another_partys_token_opens_no_workbench_page(fed: Federation) -> None:
    async with await fed.client_as(CORP, MUNI) as client:
        answer = await client.get("/workbench/")
        api = await client.get("/id/pand/1")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    assert api.status_code == 200  # the same token still reads the API: machines keep their tokens


async def test_logout_ends_the_session(fed: Federation) -> None:
    async with logged_in(fed) as client:
        old = dict(client.cookies)
        token = csrf_of((await client.get("/workbench/")).text)
        out = await client.post("/logout", data={"csrf": token})
        client.cookies.update(old)  # a copy of the cookie kept by an attacker
        after = await client.get("/workbench/")
    assert out.status_code == 303 and after.status_code == 303


async def test_a_password_reset_or_a_removed_account_ends_its_sessions(fed: Federation) -> None:
    async with logged_in(fed, "bob") as client:
        add_account(
            accounts_file(fed, MUNI), "bob", "another long password", replace=True, password_hasher=FAST
        )
        after_reset = await client.get("/workbench/")
    assert after_reset.status_code == 303 and after_reset.headers["location"].startswith("/login")


async def test_logins_are_rate_limited_per_user(fed: Federation) -> None:
    async with fed.client(MUNI) as client:
        token = csrf_of((await client.get("/login")).text)
        wrong = [
            (
                await client.post(
                    "/login", data={"username": "bob", "password": "not the password", "csrf": token}
                )
            ).status_code
            for _ in range(5)
        ]
        blocked = await client.post("/login", data={"username": "bob", "password": PASSWORD, "csrf": token})
    assert wrong == [401] * 5
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "dsgo_session" not in blocked.headers.get("set-cookie", "")


async def test_a_browser_without_a_token_on_a_data_route_is_sent_to_the_workbench(fed: Federation) -> None:
    async with fed.client(MUNI) as client:
        page = await client.get("/id/pand/1", headers={"accept": "text/html,*/*;q=0.8"})
        sparql = await client.get("/sparql?query=ASK{}", headers={"accept": "text/html"})
        machine = await client.get("/id/pand/1", headers={"accept": "application/ld+json"})
    assert (
        page.status_code == 303 and page.headers["location"] == "/workbench/resource?iri=" + M + "id/pand/1"
    )
    assert machine.status_code == 401 and machine.json()["code"] == "invalid_token"
    assert sparql.status_code == 303 and sparql.headers["location"] == "/workbench/"


async def test_operator_pages_are_for_operators_only(fed: Federation) -> None:
    async with logged_in(fed, "bob") as client:
        answer = await client.get("/workbench/policy")
    assert answer.status_code == 403 and 'data-code="forbidden"' in answer.text


# -- pages -------------------------------------------------------------------------------


async def test_home_lists_the_federations_parties_and_their_collections(fed: Federation) -> None:
    async with logged_in(fed) as client:
        home = await client.get("/workbench/")
    assert "Party 002" in home.text and "Party 001" in home.text
    assert 'href="/workbench/resource?iri=' + C + 'collections/bot:Building"' in home.text


async def test_a_remote_resource_is_read_through_the_own_node_under_its_owners_policy(
    fed: Federation,
) -> None:
    async with logged_in(fed) as client:
        page = await client.get("/workbench/resource?iri=" + quote(C + "id/home/1", safe=":/"))
    assert page.status_code == 200
    assert 'content="F"' in page.text  # the energy label the corporation releases
    assert "Straat 1" not in page.text  # its address it does not
    assert (  # the corporation named what its policy withholds, as its own page would
        "Withheld by Party 002: its policy withholds props:householdSize from Test Bouw, "
        "and may withhold fields it does not name."
    ) in page.text


async def test_a_local_resource_shows_the_links_to_it(fed: Federation) -> None:
    async with logged_in(fed) as client:
        page = await client.get("/workbench/resource?iri=" + quote(M + "id/pand/1", safe=":/"))
    assert page.status_code == 200 and "From this node's own data" in page.text


async def test_a_remote_page_that_the_owner_hides_is_404_and_says_so(fed: Federation) -> None:
    async with logged_in(fed) as client:
        page = await client.get("/workbench/resource?iri=" + quote(C + "id/home/99", safe=":/"))
    assert page.status_code == 404 and 'data-code="not_found"' in page.text


async def test_the_federated_query_form_answers_with_a_table_and_a_picture(fed: Federation) -> None:
    from tests.test_federation import QUESTION

    async with logged_in(fed) as client:
        token = csrf_of((await client.get("/workbench/query")).text)
        answer = await client.post(
            "/workbench/query",
            data={"csrf": token, "query": QUESTION, "start": C + "collections/bot:Building"},
        )
    assert answer.status_code == 200, answer.text[-2000:]
    assert "<svg" in answer.text and "Party 002" in answer.text


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("a", "link") and values.get("href"):
            self.links.append(values["href"] or "")
        if values.get("id"):
            self.ids.add(values["id"] or "")


async def test_every_local_link_reachable_from_home_works(fed: Federation) -> None:
    pages: dict[str, _Links | None] = {}
    todo, broken = ["/workbench/"], []
    async with logged_in(fed) as client:
        while todo and len(pages) < 600:
            url = todo.pop()
            doc, _, fragment = url.partition("#")
            if doc not in pages:
                answer = await client.get(doc)
                parsed = _Links() if answer.status_code == 200 else None
                if parsed is not None and answer.headers["content-type"].startswith("text/html"):
                    parsed.feed(answer.text)
                pages[doc] = parsed
                todo += [_local(doc, link) for link in (parsed.links if parsed else []) if _local(doc, link)]
                todo = [t for t in todo if t.partition("#")[0] not in pages or "#" in t]
            if pages[doc] is None or (fragment and fragment not in pages[doc].ids):  # type: ignore[union-attr]
                broken.append(url)
    assert broken == [] and len(pages) > 20


def _local(doc: str, link: str) -> str:
    if link.startswith("/") and not link.startswith("//"):
        return link
    if link.startswith("#"):
        return doc + link
    return ""


def test_dsgo_user_adds_lists_and_removes_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from gateway.cli import main
    from tests.conftest import write_node

    node = write_node(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", str(node), "dana", "--operator", "--name", "Dana", "--password-stdin"]) == 0
    assert main(["user", "list", str(node)]) == 0
    listed = capsys.readouterr().out
    assert "dana\toperator\tDana" in listed
    assert load_accounts(tmp_path / "state" / "accounts.json").verify("dana", PASSWORD) is not None
    assert main(["user", "remove", str(node), "dana"]) == 0
    assert main(["user", "remove", str(node), "dana"]) == 2  # one line on stderr, no traceback
    assert "no such account" in capsys.readouterr().err


def test_sessions_where_none_can_be_kept_stop_the_node_with_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file, not a folder")  # as a read-only mount refuses a file
    with pytest.raises(ConfigError) as caught:
        Sessions(tmp_path / "state" / "accounts.sessions.sqlite", b"k" * 32, 3600)
    assert caught.value.code == "config_invalid" and "DSGO_WORKBENCH_ACCOUNTS" in caught.value.detail
