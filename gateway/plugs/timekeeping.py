"""The clock watch: whether the wall clock can be trusted; first, before any record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.clockwatch import ClockWatch, check_start_time, newest_mtime
from gateway.wiring import STATE_FILES

if TYPE_CHECKING:
    from gateway.wiring import Wiring


async def plug(w: Wiring) -> None:
    """Whether the wall clock can be trusted; first, before anything writes a record."""
    state = w.cfg.state.dir
    state.mkdir(parents=True, exist_ok=True)
    # The newest write to the state files is the newest durable record's time, near enough.
    newest = newest_mtime(*(state / n for n in STATE_FILES))
    w.time = await w.supervisor.enter(ClockWatch(w.real_clock, state / "clock.json", w.alert))
    if check_start_time(w.real_clock.now(), newest, w.alert):
        w.time.behind_records = True
