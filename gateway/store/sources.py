"""Keeps the store in step with the node's sources.

At start every source whose fingerprint differs from the version in the store is read;
afterwards ``watch`` polls the fingerprints and re-reads what changed, off the event
loop. A source that fails keeps its last good version in service; the failure (file,
line, reason, when) is kept for the health report until the source reads cleanly. An
empty source (no triples: a 0-byte or emptied file) is such a failure unless its table
says ``allow_empty = true``: an emptied file must not silently take the data away. While
a source has failed, ``failed_names()`` lists it and the node marks its answers as
possibly incomplete (``dsgo-failed-sources``), whether a last good version serves or not.
Connectors that publish a source despite bad parts (a CSV's skipped rows) list them in
``problems``; those of the version served show as ``warnings`` in the health report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyoxigraph as ox

from connectors import KINDS, Connector, SourceEnv
from gateway.config import SourceSettings
from gateway.errors import SourceError
from gateway.store.local import Store

__all__ = ["Failure", "Sources"]

log = logging.getLogger("dsgo.sources")
_MAX_WARNINGS = 20  # per source in the health report; warning_count has them all


@dataclass(frozen=True, slots=True)
class Failure:
    error: SourceError
    at: float
    fingerprint: str


class Sources:
    def __init__(self, settings: tuple[SourceSettings, ...], store: Store, env: SourceEnv) -> None:
        self.settings = {s.name: s for s in settings}
        self.store = store
        self.failures: dict[str, Failure] = {}
        self.warnings: dict[str, list[SourceError]] = {}
        self.connectors: dict[str, Connector] = {}
        self.on_change: list[Callable[[], None]] = []
        #: told (name, old triples, new triples, (old, new) fingerprints) before a source
        #: that was served switches to a new version (``gateway.notify``)
        self.before_replace: list[
            Callable[[str, Sequence[ox.Triple], Sequence[ox.Triple], tuple[str, str]], Any]
        ] = []
        for s in settings:
            assert s.path is not None
            try:
                self.connectors[s.name] = KINDS[s.kind].make(s.path, s.options, env)
            except SourceError as exc:
                self._fail(s.name, exc, "")
        for name in set(store.sources()) - set(self.settings):
            store.remove_source(name)  # dropped from the configuration

    def refresh(self, name: str, serving: bool = True) -> bool:
        """Re-read source ``name`` if it changed; True if the served data changed.
        ``serving`` false: nothing is served yet (the node starts), so it loads in bulk."""
        connector = self.connectors.get(name)
        if connector is None:
            return False
        fingerprint = connector.fingerprint()
        served = self.store.sources().get(name)
        if served is not None and served.fingerprint == fingerprint:
            self.failures.pop(name, None)  # e.g. a broken edit was reverted
            return False
        failed = self.failures.get(name)
        if failed is not None and failed.fingerprint == fingerprint:
            return False  # still the same broken version
        started = time.perf_counter()
        try:
            triples = self._read(name, connector, fingerprint)
            if triples is None:
                return False  # changed while being read: read it whole next time
            self._before_replace(name, triples, fingerprint)
            self.store.replace_source(name, triples, fingerprint, serving)
        except SourceError as exc:
            self._fail(name, exc, fingerprint)
            return False
        self.warnings[name] = list(getattr(connector, "problems", ()))
        self.failures.pop(name, None)
        log.info("source %s: %d triples in %.3fs", name, len(triples), time.perf_counter() - started)
        for callback in self.on_change:
            callback()
        return True

    def _read(self, name: str, connector: Connector, fingerprint: str) -> Sequence[ox.Triple] | None:
        """The source's triples; None if it changed while being read. A missing file and
        an empty source (unless ``allow_empty``) are errors: the last good version stays."""
        where = self.settings[name].path or name
        if not fingerprint:
            raise SourceError(where, "not found")
        triples = connector.load()
        if connector.fingerprint() != fingerprint:
            return None
        if not triples and not self.settings[name].allow_empty:
            raise SourceError(where, "has no triples (empty or emptied; allow_empty = true would serve it)")
        return triples

    def _before_replace(self, name: str, triples: Sequence[ox.Triple], fingerprint: str) -> None:
        """Tell the watchers what changes; a first version (nothing served yet) is no change."""
        served = self.store.sources().get(name)
        if served is None or not self.before_replace:
            return
        before = self.store.source_triples(name)
        for watcher in self.before_replace:
            try:
                watcher(name, before, triples, (served.fingerprint, fingerprint))
            except Exception:  # a watcher never keeps new data from being served
                log.exception("source %s: a change watcher failed", name)

    def refresh_all(self, serving: bool = True) -> bool:
        changed = False
        for name in self.settings:
            changed |= self.refresh(name, serving)
        return changed

    def _fail(self, name: str, error: SourceError, fingerprint: str) -> None:
        self.failures[name] = Failure(error, time.time(), fingerprint)
        served = self.store.sources().get(name)
        kept = (
            "its last good version stays served"
            if served
            else "nothing is served from it until it can be read"
        )
        log.error("source %s: %s (%s)", name, error.detail, kept)

    def failed_names(self) -> list[str]:
        """The sources whose newest version could not be read: answers may miss their data."""
        return sorted(self.failures)

    def health(self) -> dict[str, Any]:
        """Per source: what is served, and the last failure if it is not the newest."""
        report: dict[str, Any] = {}
        for name, s in self.settings.items():
            served = self.store.sources().get(name)
            failure = self.failures.get(name)
            entry: dict[str, Any] = {
                "type": s.kind,
                "path": str(s.path),
                "status": "failed" if failure else ("ok" if served else "empty"),
                "triples": served.triples if served else 0,
                "loaded_at": _iso(served.loaded_at) if served else None,
            }
            warnings = self.warnings.get(name)
            if warnings:
                entry["warnings"] = [{"detail": w.detail, "line": w.line} for w in warnings[:_MAX_WARNINGS]]
                entry["warning_count"] = len(warnings)
            if failure:
                entry["error"] = {
                    "code": failure.error.code,
                    "detail": failure.error.detail,
                    "line": failure.error.line,
                    "at": _iso(failure.at),
                    "serving": "the last good version" if served else "nothing",
                }
            report[name] = entry
        return report


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
