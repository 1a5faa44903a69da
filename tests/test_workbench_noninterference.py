"""The workbench's pages are a function of what the person's party may see.

A person reads as their node's own party (``Caller(FIRM)`` on the property suite's node):
for random data and policies, a variant store that differs only outside that party's
view (``tests.noninterference.variants``) must give byte-identical pages (status,
headers less ``date``, body): resources, collections, downloads, search, SPARQL, home.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, urlencode

import argon2
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gateway.policy.model import Caller
from gateway.web.accounts import add_account
from tests.kit import FIRM
from tests.noninterference import Reply, explain, reply, variants
from tests.test_policy_property import CLASSES, NS, SUBJECTS, Harness, harness, worlds

__all__ = ["harness"]  # the property suite's node, one per module

EXAMPLES = int(os.environ.get("DSGO_NONINTERFERENCE_EXAMPLES", "10"))
PERSON = Caller(FIRM)
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def person(harness: Harness) -> dict[str, str]:
    """A logged-in person of the node's party: the headers their browser sends."""
    accounts = harness.app.state.dsgo.settings.workbench_accounts
    fast = argon2.PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
    add_account(accounts, "ni", PASSWORD, replace=True, password_hasher=fast)
    form = harness.client.get("/login", {})
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    body = urlencode({"username": "ni", "password": PASSWORD, "csrf": csrf.group(1)}).encode()
    answer = harness.client.post("/login", body, {"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 303, answer.text
    return {"accept": "text/html"}  # the session cookie stays in the client


def _pages() -> list[str]:
    # this node's resources (another node's pages are that node's reply, read live)
    own = [s for s in SUBJECTS if s.startswith(NS)]
    iris = [*own, *(NS + "collections/" + quote(c, safe="") for c in CLASSES)]
    out = ["/workbench/", "/workbench/search?q=e", "/workbench/search?q=1"]
    out += ["/workbench/sparql?query=" + quote("SELECT * WHERE { ?s ?p ?o } ORDER BY ?s ?p ?o", safe="")]
    for iri in iris:
        out += [
            "/workbench/resource?iri=" + quote(iri, safe=":/"),
            "/workbench/resource?iri=" + quote(iri, safe=":/") + "&format=ntriples",
        ]
    return out


def pages(harness: Harness, headers: dict[str, str]) -> dict[str, Reply]:
    return {path: reply(harness.client.get(path, headers)) for path in _pages()}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="DSGO_NONINTERFERENCE_RANDOM" not in os.environ,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_workbench_pages_are_the_same_whatever_lies_outside_the_partys_view(
    harness: Harness, person: dict[str, str], data: st.DataObject
) -> None:
    world = data.draw(worlds, "world")
    variant = data.draw(variants(world, PERSON), "variant")
    harness.load(world)
    before = pages(harness, person)
    harness.load(variant)
    after = pages(harness, person)
    assert before["/workbench/"][0] == 200, before["/workbench/"][2][:500]
    differ = sorted(path for path in before if before[path] != after.get(path))
    assert not differ, explain(differ, before, after)
