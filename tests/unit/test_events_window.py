"""The dispatcher's shared read window: whatever positions its consumers read from, and however
appends interleave with the reads, `Outbox.pending` returns exactly what a plain read of the
database returns."""

from __future__ import annotations

import random

from moorage.events.outbox import Outbox
from moorage.events.types import Actor, TagMoved

DEV = Actor("dev", "user", "10.0.0.7")


def _emit(outbox: Outbox, n: int) -> None:
    for i in range(n):
        outbox.emit(TagMoved(actor=DEV, repository="team/a", digest=f"sha256:{i:064x}",
                             tag=f"t{i}"))


def test_pending_equals_a_plain_read_from_any_position(registry) -> None:
    outbox = Outbox(registry.database, window=40)
    rng = random.Random(7)
    positions = [0, 0, 0]
    _emit(outbox, 25)
    for _ in range(300):
        if rng.random() < 0.3:
            _emit(outbox, rng.randint(1, 12))
        i = rng.randrange(len(positions))
        if rng.random() < 0.05:
            positions[i] = rng.randint(0, outbox.last_id())  # jump: far behind or ahead
        limit = rng.randint(1, 30)
        got = outbox.pending(positions[i], limit)
        assert [e["id"] for e in got] == [e["id"] for e in outbox.since(positions[i], limit)]
        assert got == outbox.since(positions[i], limit)  # payloads too
        if got:
            positions[i] = got[-1]["id"]
    assert len(outbox._window.events) <= 40
