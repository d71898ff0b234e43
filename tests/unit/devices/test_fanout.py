"""Readings fan-out (gateway.devices.fanout): bounded, drop-oldest, one bad subscriber isolated."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
import uvloop

from gateway.devices.events import DeviceReadings
from gateway.devices.fanout import Fanout


def run(coro: Any) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def reading(n: int) -> DeviceReadings:
    return DeviceReadings("scale1", datetime(2026, 1, 1, tzinfo=UTC), {"kg": n})


async def drain(fanout: Fanout) -> None:
    task = asyncio.create_task(fanout.run())
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_a_full_buffer_drops_the_oldest_and_counts_them() -> None:
    async def main() -> None:
        fanout = Fanout(3)
        got: list[int] = []
        sub = fanout.subscribe(lambda r: got.append(int(r.values["kg"])))
        for n in range(10):
            fanout.publish(reading(n))
        await drain(fanout)
        assert got == [7, 8, 9]
        assert sub.dropped == 7
        assert sub.delivered == 3

    run(main())


def test_a_failing_subscriber_is_logged_once_and_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(_: DeviceReadings) -> None:
        raise RuntimeError("bug in a subscriber")

    async def main() -> None:
        fanout = Fanout(100)
        bad = fanout.subscribe(broken)
        got: list[DeviceReadings] = []
        fanout.subscribe(got.append)
        for n in range(5):
            fanout.publish(reading(n))
        await drain(fanout)
        assert len(got) == 5
        assert bad.errors == 5

    caplog.set_level(logging.ERROR, logger="gateway.devices.fanout")
    run(main())
    assert len(caplog.records) == 1


def test_a_closed_subscription_gets_nothing_more() -> None:
    async def main() -> None:
        fanout = Fanout(10)
        got: list[DeviceReadings] = []
        sub = fanout.subscribe(got.append)
        fanout.publish(reading(1))
        sub.close()
        fanout.publish(reading(2))
        await drain(fanout)
        assert got == []
        sub.close()  # twice is fine

    run(main())


def test_a_large_backlog_is_delivered_in_batches_with_turns_for_the_loop() -> None:
    async def main() -> None:
        fanout = Fanout(2000)
        got: list[DeviceReadings] = []
        fanout.subscribe(got.append)
        for n in range(1000):
            fanout.publish(reading(n))
        task = asyncio.create_task(fanout.run())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert 0 < len(got) < 1000  # not all in one go
        for _ in range(10):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert len(got) == 1000

    run(main())


def test_the_buffer_must_hold_something() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Fanout(0)


def test_a_recorder_gets_every_reading_at_once_with_no_buffer_to_drop_from() -> None:
    fanout = Fanout(1)  # a lossy subscriber keeps one; the recorder is not behind that buffer
    kept: list[int] = []
    fanout.record(lambda r: kept.append(int(r.values["kg"])))
    lossy = fanout.subscribe(lambda _: None)
    for n in range(50):
        fanout.publish(reading(n))
    assert kept == list(range(50))  # inside publish, before any fan-out task ran
    assert lossy.dropped == 49


def test_a_failing_recorder_is_counted_and_logged_once_and_polling_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    fanout = Fanout(10)

    def broken(_: DeviceReadings) -> None:
        raise RuntimeError("bug in a recorder")

    fanout.record(broken)
    for n in range(3):
        fanout.publish(reading(n))  # does not raise into the poller
    assert fanout.recorder_errors == 3
    assert caplog.text.count("a readings recorder failed") == 1
