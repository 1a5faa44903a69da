"""What a node's routes share: one typed object, built once by ``create_app``.

It lives at ``app.state.dsgo``; routes reach it through ``node_state(request)``. The
registry app keeps its own there (with the same ``auth`` member, which
``gateway.http.auth`` reads for both).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from gateway.audit import AuditLog
from gateway.config import NodeSettings
from gateway.federation.walk import Budget, Federation
from gateway.http.auth import Auth
from gateway.node import Node
from gateway.notify.notifier import Notifier
from gateway.notify.receive import Inbox
from gateway.sparql.pool import QueryPool

__all__ = ["NodeState", "node_state"]


@dataclass(slots=True)
class NodeState:
    settings: NodeSettings
    node: Node
    #: None on an open node (no identity, anonymous readers)
    auth: Auth | None
    audit: AuditLog | None
    #: the federated query engine; None on an open node
    federation: Federation | None
    #: the parties that may ask this node federated questions (its own, and its clients)
    federation_clients: frozenset[str]
    federation_budget: Budget
    #: (seconds, results) a /sparql query may take and return
    sparql_limits: tuple[float, int]
    #: the worker processes /sparql queries run in; None on a node reading a remote store
    queries: QueryPool | None = None
    clock: Callable[[], float] = field(default=time.time)
    #: the sources were read once (or a store on disk serves their last versions)
    started: bool = False
    #: change notifications: subscriptions and sending (None: not offered), the inbox
    notifier: Notifier | None = None
    inbox: Inbox | None = None


def node_state(request: Request) -> NodeState:
    state: NodeState = request.app.state.dsgo
    return state
