"""The one enforcement point: every read of the node's data goes through here.

``Access`` joins the store (what there is) with the policy (who may see what). Every
read path asks it: a resource (any format, HTML included), a collection, the counts of
the self-description, SPARQL and batch reads. On the embedded store a caller's whole
view (for SPARQL and counts) is the set of label graphs its grant sees
(``gateway.views``): no copy per caller. A grant the labels do not cover (permits from
delegation evidence) gets its view materialised, once per data version. Policy files
are re-read when they change; a broken file keeps the previous policy in force and
shows in the health report.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyoxigraph as ox

from gateway.errors import PolicyError
from gateway.labels import Labeller
from gateway.policy.conditions import MemoLookup
from gateway.policy.decide import Decision, decide, grant_for, grant_span
from gateway.policy.explain import FieldReason, explain
from gateway.policy.load import load_policies, policy_files
from gateway.policy.model import Caller, Grant, PolicySet, Rule
from gateway.store.local import RDF_TYPE, Labels, Store
from gateway.views import View, Views
from gateway.vocab import Vocab

__all__ = ["REMOTE_COUNT_BUDGET", "Access", "StoreLookup"]

log = logging.getLogger("dsgo.policy")
#: quads handed to the view store at once
_BATCH = 100_000
#: members of a remote store the per-caller class counts may decide (a query or more each)
REMOTE_COUNT_BUDGET = 1000
#: distinct (party, roles) whose grants are remembered at once
_MAX_GRANTS = 10_000


class StoreLookup:
    """Unfiltered reads for the engine's conditions (the engine does the filtering)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def objects(self, subject: str, predicate: str) -> list[Any]:
        return self.store.objects(subject, predicate)

    def subjects(self, predicate: str, obj: str) -> list[str]:
        return self.store.subjects(predicate, obj)


@dataclass(frozen=True, slots=True)
class _HeldGrant:
    """A caller's grant from the policy files, and the span ``[since, until)`` of clock
    seconds in which it stays the same (between two validity boundaries of its rules)."""

    grant: Grant
    since: float
    until: float


@dataclass(frozen=True, slots=True)
class _PolicyFailure:
    error: PolicyError
    at: float
    fingerprint: str


class Access:
    def __init__(
        self,
        store: Store,
        vocab: Vocab,
        policies_dir: Path | None,
        *,
        open_node: bool,
        clock: Callable[[], float] = time.time,
        max_views: int = 8,
    ) -> None:
        self.store = store
        self.vocab = vocab
        self.dir = policies_dir
        self.open = open_node
        self.clock = clock
        self.lookup = StoreLookup(store)
        self.failure: _PolicyFailure | None = None
        self._fingerprint = ""
        self.policies: PolicySet | None = None
        if policies_dir is not None:
            self._fingerprint = self._files_fingerprint()
            self.policies = load_policies(policy_files(policies_dir), vocab)  # errors stop the node
        self._grants: dict[tuple[str | None, frozenset[str]], _HeldGrant] = {}
        self._views: OrderedDict[tuple[Any, ...], ox.Store] = OrderedDict()
        self._views_lock = threading.Lock()
        self._max_views = max_views
        #: the label graphs of the embedded store; a remote store has none
        self.views = Views(store, self._labeller(self.policies)) if isinstance(store, Store) else None

    # -- policy files ----------------------------------------------------------------

    def _files_fingerprint(self) -> str:
        assert self.dir is not None
        parts = []
        for path in policy_files(self.dir):
            st = path.stat()
            parts.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
        return "|".join(parts)

    def refresh(self) -> bool:
        """Re-read the policy files if they changed; True if the policy in force changed."""
        if self.dir is None:
            return False
        try:
            fingerprint = self._files_fingerprint()
        except OSError:
            return False
        if fingerprint == self._fingerprint or (self.failure and self.failure.fingerprint == fingerprint):
            return False
        try:
            policies = load_policies(policy_files(self.dir), self.vocab)
        except PolicyError as exc:
            self.failure = _PolicyFailure(exc, self.clock(), fingerprint)
            log.error("policy not reloaded, the previous one stays in force: %s", exc.detail)
            return False

        def commit() -> None:
            self.policies, self._fingerprint, self.failure = policies, fingerprint, None
            self._grants.clear()

        if self.views is not None:  # labelled first: the previous policy is in force until then
            self.views.sync(self._labeller(policies), commit)
        else:
            commit()
        log.info("policy reloaded: %d rules", len(policies.rules))
        return True

    def _labeller(self, policies: PolicySet | None) -> Labeller:
        """Labels for the rules of ``policies`` that can still come into force."""
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        rules = policies.rules if policies else ()
        return Labeller(r for r in rules if r.valid_until is None or now < r.valid_until)

    def sync_labels(self) -> None:
        """Bring the label graphs in line with the policy in force (at start-up)."""
        if self.views is not None:
            self.views.sync()

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "status": "failed" if self.failure else ("ok" if self.policies or self.open else "none"),
            "rules": len(self.policies.rules) if self.policies else 0,
            "version": self.policies.version if self.policies else None,
        }
        if self.failure:
            report["error"] = {
                "detail": self.failure.error.detail,
                "line": self.failure.error.line,
                "rule": self.failure.error.rule,
            }
        return report

    # -- grants ----------------------------------------------------------------------

    def grant(self, caller: Caller, extra: tuple[Rule, ...] = ()) -> Grant:
        """The rules that apply to ``caller`` now, plus ``extra`` permits (from delegation
        evidence an authorization registry issued); deny rules of the files still win."""
        now = self.clock()
        base = self._file_grant(caller, now)
        if not extra or base.everything:
            return base
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        more = tuple(r for r in extra if r.applies_to(caller) and r.in_force(at))
        return Grant.of(base.rules + more, base.version) if more else base

    def _file_grant(self, caller: Caller, now: float) -> Grant:
        """The policy files' rules for ``caller`` at ``now``: remembered until the next
        validity boundary of the caller's rules, so a rule is in force to the second."""
        key = (caller.party_id, caller.roles)
        policies = self.policies
        held = self._grants.get(key)
        if (  # checked inline: every read asks
            held is not None
            and held.since <= now < held.until
            and held.grant.version == (policies.version if policies else "none")
        ):
            return held.grant
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        grant = grant_for(policies, caller, at, self.open)
        since, until = grant_span(policies, caller, at)
        if len(self._grants) >= _MAX_GRANTS:
            self._grants.clear()
        self._grants[key] = _HeldGrant(
            grant,
            since.timestamp() if since is not None else -math.inf,
            until.timestamp() if until is not None else math.inf,
        )
        return grant

    # -- reads -----------------------------------------------------------------------

    def resource(self, grant: Grant, iri: str) -> Decision | None:
        """The caller's view of one resource; None when it may see nothing of it."""
        cbd = self.store.describe(iri)
        if not cbd:
            return None
        decision = decide(grant, ox.NamedNode(iri), cbd, self.lookup)
        return decision if decision.triples else None

    def members(self, grant: Grant, class_iri: str, namespace: str) -> list[str]:
        """Resources of a class whose membership (its rdf:type) the caller may see."""
        if grant.everything:
            return self.store.members(class_iri, namespace)
        cls = ox.NamedNode(class_iri)
        out = []
        for iri in self.store.members(class_iri, namespace):
            decision = self.resource(grant, iri)
            if decision is not None and any(
                t.predicate == RDF_TYPE and t.object == cls for t in decision.triples
            ):
                out.append(iri)
        return out

    def view(self, grant: Grant) -> ox.Store:
        """The caller's whole view as a store of its own (default graph only), built once
        per distinct grant and data version: for grants the labels do not cover, and as
        the reference the label graphs are tested against."""
        key = (self.store.generation, grant.key)
        with self._views_lock:
            cached = self._views.get(key)
            if cached is not None:
                self._views.move_to_end(key)
                return cached
        quads: list[ox.Quad] = []
        lookup = MemoLookup(self.lookup)  # conditions of neighbours read the same links
        for subject, cbd in self._descriptions():
            decision = decide(grant, subject, cbd, lookup)
            quads.extend(ox.Quad(t.subject, t.predicate, t.object) for t in decision.triples)
        # in a canonical order: the view store answers in the order it was filled, which
        # must depend on the view alone, never on how the data store held it
        quads.sort(key=str)
        view = ox.Store()
        for i in range(0, len(quads), _BATCH):
            view.bulk_extend(quads[i : i + _BATCH])
        with self._views_lock:
            self._views = OrderedDict((k, v) for k, v in self._views.items() if k[0] == self.store.generation)
            self._views[key] = view
            while len(self._views) > self._max_views:
                self._views.popitem(last=False)
        return view

    def _descriptions(self) -> Iterator[tuple[ox.NamedNode, list[ox.Triple]]]:
        """Every named subject with its concise bounded description: the embedded store
        scans them leanly; other stores (a remote one refuses ``named_subjects``) are
        asked through ``describe``."""
        store = self.store
        if isinstance(store, Store):
            yield from store.descriptions()
            return
        for subject in store.named_subjects():
            yield subject, store.describe(subject.value)

    def class_counts(self, grant: Grant, namespace: str) -> tuple[dict[str, int], str | None]:
        """Visible typed resources per class (the self-description's counts), and a note
        when they are not given. The embedded store counts the caller's view. A remote
        store is not copied: one aggregate query for a caller who may see everything; for
        anyone else each member is decided as a collection would, up to
        ``REMOTE_COUNT_BUDGET`` resources, beyond which classes are left out with a note."""
        store = self.store
        if isinstance(store, Store):
            labelled = self.labelled(grant)
            if labelled is not None:
                return labelled.classes(), None
            rows = self.view(grant).query(
                "SELECT ?c (COUNT(DISTINCT ?s) AS ?n) WHERE { ?s a ?c FILTER isIRI(?c) } GROUP BY ?c"
            )
            assert isinstance(rows, ox.QuerySolutions)
            return {row["c"].value: int(row["n"].value) for row in rows}, None
        totals: dict[str, int] = store.class_counts(namespace)
        if grant.everything:
            return totals, None
        if sum(totals.values()) > REMOTE_COUNT_BUDGET:
            return {}, (
                f"Classes are not listed: this node reads a remote store holding more than "
                f"{REMOTE_COUNT_BUDGET} resources, too many to decide for you here; "
                "ask /collections/{class} for the resources of a class."
            )
        counts = {cls: len(self.members(grant, cls, namespace)) for cls in totals}
        return {cls: n for cls, n in counts.items() if n}, None

    def labelled(self, grant: Grant) -> View | None:
        """The label graphs ``grant`` sees on the embedded store; ``None`` on a remote
        store, or for a grant the labels do not cover (use ``view`` then)."""
        return self.views.view(grant) if self.views is not None else None

    def labelled_at(self, labels: Labels, grant: Grant) -> View | None:
        """The label graphs ``grant`` sees among ``labels`` (a snapshot's); ``None`` for a
        grant the labels do not cover."""
        return self.views.view_at(labels, grant) if self.views is not None else None

    def triple_count(self, grant: Grant) -> int:
        """How many triples the caller's whole view holds (embedded store only)."""
        labelled = self.labelled(grant)
        return labelled.triples() if labelled is not None else len(self.view(grant))

    def explain(self, caller: Caller, iri: str) -> list[FieldReason]:
        cbd = self.store.describe(iri)
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        return explain(self.policies, caller, ox.NamedNode(iri), cbd, self.lookup, now)
