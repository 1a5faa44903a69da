"""A registry's file, read again when it changes, so a party joins a running federation.

The operator adds a ``[[party]]`` table (by hand or with ``dsgo registry add``) and the
registry serves it within ``interval`` seconds, without a restart. The file is checked
(a ``stat``) at most once per ``interval``, on a request, never in the background. A
file that no longer loads keeps the previous version in service and the reason is
logged once per broken version, as a node does with its sources; the registry's own
identity (``[registry] party_id`` and ``keys``) is the one it started with.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from gateway.errors import GatewayError
from gateway.registry.settings import RegistrySettings, load_registry_settings

__all__ = ["LiveSettings"]

log = logging.getLogger("gateway.registry")


def _version(file: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(file)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class LiveSettings:
    """The newest good version of a registry's settings."""

    def __init__(
        self,
        settings: RegistrySettings,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._settings, self.interval, self._clock = settings, interval, clock
        self._environ = environ
        self._seen = _version(settings.file)
        self._checked = clock()

    def current(self) -> RegistrySettings:
        now = self._clock()
        if now - self._checked < self.interval:
            return self._settings
        self._checked = now
        version = _version(self._settings.file)
        if version is None or version == self._seen:
            return self._settings
        self._seen = version
        try:
            fresh = load_registry_settings(self._settings.file, self._environ)
        except GatewayError as exc:
            log.error("%s (the previous version stays served)", exc.detail)
            return self._settings
        if (fresh.party_id, fresh.keys_dir) != (self._settings.party_id, self._settings.keys_dir):
            log.error("%s: [registry] party_id and keys change only with a restart; not reloaded", fresh.file)
            return self._settings
        self._settings = fresh
        log.info("%s: %d parties", fresh.file, len(fresh.parties))
        return fresh
