"""Change notifications: subscriptions to the fields a party may read, found by diffing a
source's old and new version, decided by the policy at change and at send time, signed,
sent from a durable outbox and replayable (``notifier`` puts it together)."""
