"""Non-interference for change notifications: what a subscriber hears of a change depends
only on its view of the data before and after, never on data it may not see.

For random data, policies and a subscriber (``tests.test_policy_property``), a change from
one dataset to another, and the same change made on variants of both that differ only
outside the subscriber's view (``tests.noninterference.variants``), the node's notifier
(``Notifier.changed``, as a source watcher calls it) must store byte-identical signed
notifications. A subscription watches every field of every resource, so every visible
change is notified; policy conditions that follow links (``via``) make views depend on
other resources, which the notifier must find (``gateway.notify.change.linked``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from gateway.notify.notifier import Notifier
from gateway.notify.outbox import Outbox
from gateway.notify.subscription import parse_request
from gateway.policy.model import Caller
from tests.kit import FIRM
from tests.noninterference import variants
from tests.test_policy_property import (
    NOW,
    Harness,
    Triple,
    World,
    callers,
    datasets,
    harness,
    to_ox_triple,
    worlds,
)

__all__ = ["harness"]  # the module's node, shared with the policy property suite

EXAMPLES = int(os.environ.get("DSGO_NONINTERFERENCE_EXAMPLES", "20"))
_SETTINGS = settings(
    max_examples=3 * EXAMPLES,
    deadline=None,
    derandomize="DSGO_NONINTERFERENCE_RANDOM" not in os.environ,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextlib.contextmanager
def _notifier(harness: Harness) -> Iterator[Notifier]:
    """A notifier on the harness's node with a fresh outbox (nothing sent: no HTTP)."""
    with tempfile.TemporaryDirectory() as folder:
        outbox = Outbox(Path(folder) / "outbox.sqlite", harness.node.vocab)
        identity = harness.app.state.dsgo.auth.identity
        try:
            yield Notifier(harness.node, identity, outbox, None, None, clock=NOW.timestamp)  # type: ignore[arg-type]
        finally:
            outbox.close()


def notified(harness: Harness, world: World, new: frozenset[Triple], caller: Caller) -> list[bytes]:
    """The signed notifications the subscriber ``caller`` gets when ``world``'s data
    becomes ``new``: each body with its signature, in feed order."""
    assert caller.party_id is not None
    harness.load(world)
    sub, _ = parse_request(
        b'{"topic": {}}',
        consumer=caller.party_id,
        provider=FIRM,
        vocab=harness.node.vocab,
        now=NOW.timestamp(),
    )
    sub = dataclasses.replace(sub, id="s" * 32, webhook_url="http://subscriber.test/notifications")
    before = harness.store.source_triples("buildings")
    after = [to_ox_triple(t) for t in new]
    with _notifier(harness) as notifier:
        notifier.outbox.add(sub, sorted(caller.roles))
        notifier.changed("buildings", before, after, ("old", "new"))
        return [p.body + b"\n" + p.signature.encode() for p in notifier.outbox.feed(sub.id, 0, 1000)]


@_SETTINGS
@given(data=st.data())
def test_notifications_are_the_same_whatever_lies_outside_the_subscribers_view(
    harness: Harness, data: st.DataObject
) -> None:
    world = data.draw(worlds, "world")
    caller = data.draw(callers, "subscriber")
    assume(caller.party_id is not None)
    new = dataclasses.replace(world, data=data.draw(datasets(), "changed data"))
    seen = notified(harness, world, new.data, caller)
    world_v = data.draw(variants(world, caller), "variant of the world")
    new_v = data.draw(variants(new, caller), "variant of the changed data")
    assert notified(harness, world_v, new_v.data, caller) == seen


@_SETTINGS
@given(data=st.data())
def test_a_change_outside_the_subscribers_view_sends_nothing(harness: Harness, data: st.DataObject) -> None:
    world = data.draw(worlds, "world")
    caller = data.draw(callers, "subscriber")
    assume(caller.party_id is not None)
    variant = data.draw(variants(world, caller), "variant")
    assert notified(harness, world, variant.data, caller) == []
