"""The priority gate (gateway.devices.gate): writes jump ahead of polls, cancellation is safe."""

from __future__ import annotations

import asyncio
from typing import Any

import uvloop

from gateway.devices.gate import Priority, PriorityGate


def run(coro: Any) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def use(gate: PriorityGate, priority: Priority, name: str, order: list[str]) -> None:
    await gate.acquire(priority)
    try:
        order.append(name)
        await asyncio.sleep(0)
    finally:
        gate.release()


def test_waiting_writes_go_before_waiting_polls_first_come_first_served_within() -> None:
    async def main() -> list[str]:
        gate = PriorityGate()
        order: list[str] = []
        await gate.acquire(Priority.POLL)  # a poll in flight
        async with asyncio.TaskGroup() as tg:
            for name, prio in [("p1", Priority.POLL), ("w1", Priority.WRITE),
                               ("p2", Priority.POLL), ("w2", Priority.WRITE)]:  # fmt: skip
                tg.create_task(use(gate, prio, name, order))
                await asyncio.sleep(0)
            assert gate.waiting == 4
            gate.release()
        assert gate.waiting == 0
        return order

    assert run(main()) == ["w1", "w2", "p1", "p2"]


def test_a_waiter_cancelled_before_its_turn_leaves_the_queue() -> None:
    async def main() -> list[str]:
        gate = PriorityGate()
        order: list[str] = []
        await gate.acquire(Priority.POLL)
        waiter = asyncio.create_task(use(gate, Priority.WRITE, "cancelled", order))
        other = asyncio.create_task(use(gate, Priority.POLL, "p", order))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.sleep(0)
        gate.release()
        await other
        assert waiter.cancelled()
        return order

    assert run(main()) == ["p"]


def test_a_waiter_cancelled_just_as_it_was_handed_the_gate_passes_it_on() -> None:
    async def main() -> list[str]:
        gate = PriorityGate()
        order: list[str] = []
        await gate.acquire(Priority.POLL)
        first = asyncio.create_task(use(gate, Priority.WRITE, "first", order))
        second = asyncio.create_task(use(gate, Priority.POLL, "second", order))
        await asyncio.sleep(0)
        gate.release()  # hands the gate to `first`...
        first.cancel()  # ...which is cancelled before it runs
        await second
        assert first.cancelled()
        # and the gate is free again afterwards
        await asyncio.wait_for(gate.acquire(Priority.POLL), 1)
        return order

    assert run(main()) == ["second"]
