"""The HTML format: RDFa that carries exactly the Turtle's triples, and links that work."""

from __future__ import annotations

import io
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import rdflib
from rdflib.compare import isomorphic

from gateway.config import load_node_settings
from gateway.http.app import create_app

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello" / "node.toml"
PAGES = [
    "/id/building/1",  # labels, years, decimals, links, and a quantity (a blank node)
    "/id/building/1/space/living",
    "/collections/bot:Building",  # a collection and its view
    "/",  # the node's description (hash IRIs of one document)
    "/vocab/dsgo:rcRoof",  # a vocabulary term (language-tagged texts, a unit)
]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")
        if values.get("id"):
            self.ids.add(values["id"] or "")


def parsed(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.fixture
async def hello() -> httpx.AsyncClient:
    app = create_app(load_node_settings(HELLO, {"DSGO_NODE_AUDIT": "false"}), watch=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hello") as client,
    ):
        yield client  # type: ignore[misc]


def rdfa(html: bytes, base: str) -> rdflib.Graph:
    """The triples an RDFa 1.1 processor (pyRdfa) finds in ``html``."""
    from pyRdfa import pyRdfa

    return pyRdfa(base=base, media_type="text/html").graph_from_source(io.BytesIO(html))


@pytest.mark.parametrize("path", PAGES)
async def test_rdfa_in_the_html_is_the_same_graph_as_the_turtle(hello: httpx.AsyncClient, path: str) -> None:
    html = await hello.get(path, headers={"accept": "text/html"})
    turtle = await hello.get(path, headers={"accept": "text/turtle"})
    assert html.status_code == turtle.status_code == 200
    expected = rdflib.Graph().parse(data=turtle.text, format="turtle")
    got = rdfa(html.content, "http://t" + path)
    assert len(expected) > 0
    assert isomorphic(got, expected), sorted(set(got) ^ set(expected))[:5]


async def test_every_local_link_reachable_from_the_home_page_works(hello: httpx.AsyncClient) -> None:
    """Fragments name an id on their page, queries are not escaped, terms are served."""
    pages: dict[str, _Page | None] = {}
    todo, checked = ["/"], set()
    broken = []
    while todo:
        url = todo.pop()
        doc, _, fragment = url.partition("#")
        if doc not in pages:
            answer = await hello.get(doc, headers={"accept": "text/html"})
            pages[doc] = parsed(answer.text) if answer.status_code == 200 else None
            for link in pages[doc].links if pages[doc] else []:
                full = _absolute(doc, link)
                if full is not None and full not in checked:
                    checked.add(full)
                    todo.append(full)
        page = pages[doc]
        if page is None or (fragment and fragment not in page.ids):
            broken.append(url)
    assert broken == []
    assert len(pages) > 50  # resources, collections, the description and vocabulary terms


def _absolute(doc: str, link: str) -> str | None:
    if link.startswith("/"):
        return link
    if link.startswith("#"):
        return doc + link
    if link.startswith("?"):
        return doc.partition("?")[0] + link
    return None  # another host


async def test_fragment_and_query_of_own_iris_are_kept_in_links(hello: httpx.AsyncClient) -> None:
    home = parsed((await hello.get("/", headers={"accept": "text/html"})).text)
    collection = parsed((await hello.get("/collections/bot:Building", headers={"accept": "text/html"})).text)
    assert "#publisher" in home.links and not any("%23" in link for link in home.links)
    assert "/collections/bot:Building?page=1" in collection.links
    assert not any("%3F" in link for link in collection.links)


async def test_vocabulary_terms_link_to_the_nodes_own_term_pages(hello: httpx.AsyncClient) -> None:
    page = await hello.get("/id/building/1", headers={"accept": "text/html"})
    term = await hello.get("/vocab/dsgo:energyLabel", headers={"accept": "text/html"})
    assert "/vocab/dsgo:rcRoof" in parsed(page.text).links
    assert not any(link.startswith("https://vocab.dsgo.example") for link in parsed(page.text).links)
    assert term.status_code == 200 and "energy label class" in term.text


async def test_unknown_vocabulary_term_is_404_problem(hello: httpx.AsyncClient) -> None:
    answer = await hello.get("/vocab/dsgo:noSuchTerm")
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


async def test_html_names_properties_by_their_vocabulary_labels_and_units(hello: httpx.AsyncClient) -> None:
    page = await hello.get("/id/building/1", headers={"accept": "text/html"})
    assert "<title>Dorpsstraat 1</title>" in page.text
    assert "thermal resistance Rc of the roof" in page.text and "2.5 m²·K/W" in page.text
    space = await hello.get("/id/building/1/space/living", headers={"accept": "text/html"})
    assert ">32.5</span> <a" in space.text and ">m²</a>" in space.text


async def test_format_links_of_a_collection_page_keep_the_page(hello: httpx.AsyncClient) -> None:
    page = await hello.get("/collections/bot:Building?page=1", headers={"accept": "text/html"})
    assert "/collections/bot:Building?page=1&format=turtle" in parsed(page.text).links
