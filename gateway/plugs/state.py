"""The durable store and the dead-letter file, both in the state directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.store.deadletters import DeadLetterLog
from gateway.store.sqlite import Store

if TYPE_CHECKING:
    from gateway.wiring import Wiring


async def plug(w: Wiring) -> None:
    """The durable store and the dead-letter file (both in the state directory)."""
    cfg = w.cfg
    full = cfg.state.durability == "full"
    w.store = await w.supervisor.enter(Store(cfg.state.dir / "gateway.db", cfg.state.durability),
                                       "store")  # fmt: skip
    w.dead_letters = await w.supervisor.enter(
        DeadLetterLog(cfg.state.dir / "dead_letters.jsonl", fsync=full, now=w.clock.now,
                      time_uncertain=w.time.uncertain)
    )  # fmt: skip
