"""The one-task timer heap behind the tablets' resends and the screens' cooks."""

from __future__ import annotations

import asyncio
import time

from simulators.timers import Timers


def test_items_fire_in_due_order_and_late_additions_wake_the_runner() -> None:
    async def main() -> list[str]:
        timers: Timers[str] = Timers()
        fired: list[str] = []
        done = asyncio.Event()

        async def fire(item: str) -> None:
            fired.append(item)
            if item == "again":
                timers.after(0.0, "last")
            if item == "c":
                done.set()

        timers.after(0.06, "c")
        timers.after(0.02, "a")
        timers.at(time.monotonic() + 0.02, "b")  # same time as "a": added later, fires later
        async with asyncio.TaskGroup() as tg:
            runner = tg.create_task(timers.run(fire))
            await asyncio.sleep(0.01)
            timers.after(0.03, "again")  # added while the runner waits for "a"
            async with asyncio.timeout(2):
                await done.wait()
            runner.cancel()
        assert len(timers) == 0
        return fired

    assert asyncio.run(main()) == ["a", "b", "again", "last", "c"]
