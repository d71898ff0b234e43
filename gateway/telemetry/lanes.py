"""A sink's durable cursor, in two lanes: the backlog drains in order while live readings flow.

Readings in the history are numbered by ``seq`` (increasing, in the order they were written).
A sink that was down for a while has a backlog; if it simply went on in ``seq`` order, every
live reading would wait behind the whole backlog (after a 10-minute outage at 100x the demo's
rate: minutes). So the cursor has three numbers, ``done <= split <= live``:

* every reading with ``seq <= done`` has been written to the sink, and so has every reading with
  ``split < seq <= live``;
* the **backlog** lane writes ``(done, split]`` oldest first;
* the **live** lane writes what comes after ``live``.

When nothing is pending, ``done == split == live``. When the sink finds more than
``split_after`` readings waiting (it was down, or slow), it splits: ``split = live = head``, so
what arrives from now on goes by the live lane while the old readings drain by the backlog lane.
The sink alternates one batch of each, so neither starves the other. When the backlog lane
reaches ``split``, the lanes join again (``done = split = live``).

Saved after every batch the sink has written; after ``kill -9`` a batch may be written twice,
which a time-series database takes as the same point (same series and timestamp).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["Cursor", "Lane", "Take"]

Lane = Literal["backlog", "live"]


@dataclass(frozen=True, slots=True)
class Take:
    """What to write next: the readings with ``after < seq <= upto``, at most ``limit``."""

    lane: Lane
    after: int
    upto: int


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a sink is (see the module docstring)."""

    done: int = 0
    split: int = 0
    live: int = 0

    def __post_init__(self) -> None:
        """Check the order of the three numbers.

        Raises:
            ValueError: they are not ``done <= split <= live``.
        """
        if not self.done <= self.split <= self.live:
            got = f"{self.done}, {self.split}, {self.live}"
            msg = f"a cursor needs done <= split <= live, got {got}"
            raise ValueError(msg)

    @property
    def splitting(self) -> bool:
        """Whether a backlog is draining beside the live lane."""
        return self.done < self.split

    def delivered(self, seq: int) -> bool:
        """Whether the reading ``seq`` has been written to the sink."""
        return seq <= self.done or self.split < seq <= self.live

    def pending(self, head: int) -> int:
        """How many sequence numbers are not written yet (holes left by pruning count)."""
        return (self.split - self.done) + max(0, head - self.live)

    def plan(self, head: int, split_after: int, last: Lane | None) -> tuple[Cursor, Take | None]:
        """The cursor (split if it is time to) and the next range to write, if any.

        Args:
            head: the newest ``seq`` in the history.
            split_after: pending readings past which the backlog gets a lane of its own.
            last: the lane of the batch written last (the other one goes next, when both wait).
        """
        cur = self
        if not cur.splitting and head - cur.live > split_after:
            cur = Cursor(cur.live, head, head)
        live = Take("live", cur.live, head) if head > cur.live else None
        backlog = Take("backlog", cur.done, cur.split) if cur.splitting else None
        if live is not None and backlog is not None:
            return cur, backlog if last == "live" else live
        return cur, live or backlog

    def advance(self, take: Take, through: int) -> Cursor:
        """The cursor once the readings of ``take`` up to ``through`` are written."""
        if take.lane == "live":
            cur = replace(self, live=max(self.live, through))
        else:
            cur = replace(self, done=max(self.done, through))
        if cur.done >= cur.split:
            return Cursor(cur.live, cur.live, cur.live)
        return cur
