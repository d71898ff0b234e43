"""The poll scheduler (gateway.devices.poller): pure scheduling helpers, then one poller on a fake
connection: outcomes, backoff, jitter measurement, and runs on virtual time (no real sleeps)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pytest
import uvloop

from gateway.clock import ManualClock
from gateway.devices.availability import Outcome
from gateway.devices.plan import plan_reads
from gateway.devices.poller import Poller, PollJob, backoff_due, first_due, next_due, snap
from gateway.devices.profile import ModbusPoint, ModbusSettings, Table
from gateway.errors import DeviceRefused, DeviceTimeout, DeviceUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from gateway.devices.codec import Value


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# --- pure helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize("r", [0.0, 0.25, 0.999999])
def test_first_poll_is_somewhere_inside_the_first_interval(r: float) -> None:
    assert first_due(100.0, 2.0, lambda: r) == pytest.approx(100.0 + 2.0 * r)


def test_snap_rounds_up_to_the_shared_tick_grid() -> None:
    assert snap(10.01, 0.05) == pytest.approx(10.05)
    assert snap(10.05, 0.05) == pytest.approx(10.05)  # already on the grid: unchanged
    assert snap(10.0500000001, 0.05) == pytest.approx(10.05)  # float noise is not a new slot
    assert snap(10.01, 0.0) == 10.01


@pytest.mark.parametrize("r", [0.0, 0.013, 0.5, 0.97])
def test_first_polls_on_a_tick_share_slots_within_the_first_interval(r: float) -> None:
    due = first_due(100.003, 1.0, lambda: r, tick_s=0.05)
    slot = due / 0.05
    assert slot == pytest.approx(round(slot))
    assert 100.003 <= due < 100.003 + 1.0 + 0.05


def test_next_due_stays_on_the_grid_when_a_poll_is_a_little_late() -> None:
    # due at 10, ran until 10.3: the next slot is still 11, not 11.3
    assert next_due(10.0, 1.0, 10.3) == (11.0, 0)


def test_next_due_skips_slots_that_went_by_instead_of_bunching_them() -> None:
    assert next_due(10.0, 1.0, 11.0) == (12.0, 1)  # a poll ending exactly on a slot skips it
    assert next_due(10.0, 1.0, 13.5) == (14.0, 3)
    assert next_due(10.0, 0.5, 10.49) == (10.5, 0)


@pytest.mark.parametrize(
    ("due", "interval", "now"),
    [(0.0, 1.0, 0.0), (5.0, 0.2, 9.97), (1.0, 3.0, 100.0), (0.0, 0.001, 7.77)],
)
def test_next_due_is_always_after_now_and_on_the_grid(
    due: float, interval: float, now: float
) -> None:
    nxt, skipped = next_due(due, interval, now)
    assert nxt > now
    assert nxt - interval <= now + 1e-9
    assert nxt == pytest.approx(due + (skipped + 1) * interval)


def test_backoff_doubles_from_two_intervals_and_is_capped() -> None:
    delays = [backoff_due(0.0, 1.0, n, cap_s=15.0) for n in range(1, 7)]
    assert delays == [2.0, 4.0, 8.0, 15.0, 15.0, 15.0]


def test_backoff_never_polls_a_slow_job_faster_than_its_interval() -> None:
    assert backoff_due(0.0, 60.0, 1, cap_s=15.0) == 60.0
    assert backoff_due(0.0, 1.0, 10_000, cap_s=15.0) == 15.0  # no overflow


# --- one poller, fake connection ------------------------------------------------------------


def pt(pid: str, address: int, table: str = "holding", **kw: Any) -> ModbusPoint:
    fields = {"id": pid, "name": pid, "table": table, "address": address} | kw
    return ModbusPoint.model_validate(fields)


SETTINGS = ModbusSettings(max_gap=0)
POINTS = [pt("a", 0), pt("b", 1, scale=0.5), pt("c", 10, table="input")]


def job(interval: float = 1.0, device: str = "d1", points: list[ModbusPoint] = POINTS) -> PollJob:
    blocks = tuple(plan_reads(points, SETTINGS))
    return PollJob(device, 1, interval, 0.5, blocks, SETTINGS)


class FakeConnection:
    name = "fake:502"

    def __init__(self, script: Callable[[Table, int, int], list[int] | Exception]) -> None:
        self.script = script
        self.calls: list[tuple[Table, int, int]] = []
        self.retry_at = 0.0

    async def read(self, table: Table, start: int, count: int, **_: Any) -> list[int]:
        self.calls.append((table, start, count))
        result = self.script(table, start, count)
        if isinstance(result, Exception):
            raise result
        return result


class Sink:
    def __init__(self) -> None:
        self.polls: list[tuple[str, Outcome, str, dict[str, Value]]] = []

    def polled(self, device: str, outcome: Outcome, detail: str, values: dict[str, Value]) -> None:
        self.polls.append((device, outcome, detail, values))


def ok(table: Table, start: int, count: int) -> list[int]:
    return [start + i + (100 if table is Table.INPUT else 0) for i in range(count)]


def poller(
    script: Callable[..., Any], jobs: list[PollJob], clock: ManualClock | None = None, **kw: Any
) -> tuple[Poller, Sink]:
    sink = Sink()
    conn = FakeConnection(script)
    return Poller(conn, jobs, sink, clock or ManualClock(), **kw), sink  # type: ignore[arg-type]


async def run_for(clock: ManualClock, seconds: float, *pollers: Poller) -> None:
    """Run ``pollers`` for ``seconds`` of virtual time, then stop them."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(p.run()) for p in pollers]
        await clock.run(seconds)
        for task in tasks:
            task.cancel()


def test_a_full_poll_reads_each_block_once_and_reports_decoded_values() -> None:
    async def main() -> None:
        j = job()
        clock = ManualClock()
        p, sink = poller(ok, [j], clock)
        now = clock.monotonic()
        j.due = now
        await p.poll(j, now)
        conn = p.connection
        assert conn.calls == [(Table.HOLDING, 0, 2), (Table.INPUT, 10, 1)]  # type: ignore[attr-defined]
        assert sink.polls == [("d1", Outcome.FULL, "", {"a": 0, "b": 0.5, "c": 110})]
        assert j.due == pytest.approx(now + 1.0)
        assert j.last_start == now
        assert p.stats["d1"].polls == 1
        assert list(p.stats["d1"].jitter_s) == []  # no previous start yet

    run(main())


def test_jitter_is_the_gap_between_starts_minus_the_interval() -> None:
    async def main() -> None:
        j = job()
        p, _ = poller(ok, [j])
        j.due = 0.0
        await p.poll(j, 0.0)
        await p.poll(j, 1.02)
        await p.poll(j, 1.99)
        assert list(p.stats["d1"].jitter_s) == pytest.approx([0.02, -0.03])

    run(main())


def test_a_refused_block_gives_a_partial_poll_with_the_other_blocks_values() -> None:
    def script(table: Table, start: int, count: int) -> list[int] | Exception:
        return DeviceRefused("d1", 8, 3) if table is Table.HOLDING else ok(table, start, count)

    async def main() -> None:
        j = job()
        p, sink = poller(script, [j])
        await p.poll(j, 0.0)
        ((_, outcome, detail, values),) = sink.polls
        assert outcome is Outcome.PARTIAL
        assert "exception 8 (memory parity error" in detail
        assert values == {"c": 110}  # nothing invented for a and b
        assert j.failures == 0
        assert p.stats["d1"].partial == 1

    run(main())


def test_a_timeout_stops_the_poll_and_backs_the_job_off() -> None:
    async def main() -> None:
        j = job(interval=1.0)
        clock = ManualClock()
        p, sink = poller(lambda *_: DeviceTimeout("d1", 0.5), [j], clock, backoff_max_s=5.0)
        delays = []
        for _ in range(4):
            await p.poll(j, clock.monotonic())
            delays.append(j.due - clock.monotonic())
        assert len(p.connection.calls) == 4  # type: ignore[attr-defined]  # one block each
        assert [round(d) for d in delays] == [2, 4, 5, 5]
        assert all(s[1] is Outcome.FAILED and s[3] == {} for s in sink.polls)
        assert j.last_start is None
        assert p.stats["d1"].failed == 4

    run(main())


def test_a_closed_connection_waits_for_its_next_connect_attempt() -> None:
    async def main() -> None:
        j = job(interval=0.2)
        clock = ManualClock(monotonic=50.0)  # far from the loop's own clock, on purpose
        p, sink = poller(lambda *_: DeviceUnavailable("d1", "refused"), [j], clock)
        loop = asyncio.get_running_loop()
        # The connection's next attempt is loop time; the poller waits for it on its clock.
        p.connection.retry_at = loop.time() + 3.0  # type: ignore[misc]
        j.due = clock.monotonic()
        await p.poll(j, clock.monotonic())
        assert sink.polls[0][1] is Outcome.DISCONNECTED
        assert j.due == pytest.approx(50.0 + 3.0, abs=0.01)
        p.connection.retry_at = 0.0  # type: ignore[misc]
        retried = j.due
        await p.poll(j, retried)
        assert j.due == pytest.approx(retried + 0.2)  # back on its own grid, no backoff
        assert j.failures == 0  # not a timeout: no backoff of its own

    run(main())


def test_an_undecodable_block_costs_only_its_points_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def short(table: Table, start: int, count: int) -> list[int]:
        return [] if table is Table.HOLDING else ok(table, start, count)

    async def main() -> None:
        j = job()
        p, sink = poller(short, [j])
        await p.poll(j, 0.0)
        await p.poll(j, 1.0)
        assert [s[3] for s in sink.polls] == [{"c": 110}, {"c": 110}]
        assert p.stats["d1"].decode_errors == 4

    caplog.set_level(logging.WARNING, logger="gateway.devices.poller")
    run(main())
    assert len(caplog.records) == 2  # one per point, not per poll


def test_run_polls_every_job_at_its_interval_without_busy_polling() -> None:
    clock = ManualClock()

    async def main() -> tuple[Poller, Sink]:
        fast, slow = job(0.05, "fast"), job(0.1, "slow")
        p, sink = poller(ok, [fast, slow], clock, rand=lambda: 0.0)
        await run_for(clock, 0.525, p)
        return p, sink

    p, sink = run(main())
    counts = {d: sum(1 for s in sink.polls if s[0] == d) for d in ("fast", "slow")}
    assert counts == {"fast": 11, "slow": 6}  # 0, 0.05, ..., 0.5 and 0, 0.1, ..., 0.5
    assert len(p.connection.calls) == 2 * len(sink.polls)  # type: ignore[attr-defined]
    jitter = [abs(x) for s in p.stats.values() for x in s.jitter_s]
    assert max(jitter) < 1e-9  # virtual time: every poll exactly on its slot
    # One sleep per wake-up at most (the slow job's slots are fast ones too): no busy polling.
    assert clock.sleeps <= counts["fast"]


def test_a_dead_device_is_polled_rarely_and_its_neighbour_keeps_its_pace() -> None:
    clock = ManualClock()

    class Conn(FakeConnection):
        async def read(self, table: Table, start: int, count: int, **kw: Any) -> list[int]:
            self.calls.append((table, start, count))
            if kw["device"] == "dead":
                await clock.sleep(0.04)  # the request timeout a dead device costs
                raise DeviceTimeout("dead", 0.04)
            return ok(table, start, count)

    async def main() -> Sink:
        sink = Sink()
        p = Poller(
            Conn(ok), [job(0.05, "dead"), job(0.05, "alive")], sink, clock,  # type: ignore[arg-type]
            backoff_max_s=0.4, rand=lambda: 0.0,
        )  # fmt: skip
        await run_for(clock, 1.0, p)
        return sink

    sink = run(main())
    dead = [s for s in sink.polls if s[0] == "dead"]
    alive = sum(1 for s in sink.polls if s[0] == "alive")
    # Polls at 0, 0.14, 0.38, 0.82 (a 40 ms timeout each, then 0.1, 0.2, 0.4 s of backoff):
    # not 20 timeouts a second.
    assert len(dead) == 4
    assert alive >= 17  # 21 slots at 50 ms, minus the few a timeout held the connection in


def test_devices_on_different_pollers_wake_together_on_the_tick() -> None:
    # Four pollers (four connections) started at different instants, all inside one tick:
    # their first polls fall on different instants (start + the same random phase), which the
    # shared grid puts into the same slot, so the loop wakes once for all four.
    clock = ManualClock(monotonic=1000.0)
    tick, interval, phase = 0.05, 0.1, 0.3
    gaps = [0.001, 0.003, 0.005, 0.006]  # started at 1000.000, .001, .004, .009

    async def main() -> tuple[list[float], list[list[float]]]:
        pollers = [
            poller(ok, [job(interval, f"d{n}")], clock, tick_s=tick, rand=lambda: phase)[0]
            for n in range(4)
        ]
        starts: list[list[float]] = [[] for _ in pollers]
        for n, p in enumerate(pollers):
            original = p.poll

            async def timed(j: PollJob, start: float, n: int = n, original: Any = original) -> None:
                starts[n].append(start)
                await original(j, start)

            p.poll = timed  # type: ignore[method-assign]
        firsts: list[float] = []
        async with asyncio.TaskGroup() as tg:
            tasks = []
            for p, gap in zip(pollers, gaps, strict=True):
                tasks.append(tg.create_task(p.run()))
                await clock.run(gap)  # it starts, reads the clock and schedules its first poll
            firsts = [p._jobs[0].due for p in pollers]
            await clock.run(0.45)
            for task in tasks:
                task.cancel()
        return firsts, starts

    firsts, starts = run(main())
    # Unsnapped, the first polls would be due at 1000.030, .031, .034 and .039.
    assert firsts == [pytest.approx(1000.05)] * 4
    assert len(set(firsts)) == 1  # the very same float: the same wake-up
    for due in firsts:
        assert due / tick == pytest.approx(round(due / tick), abs=1e-6)  # on the shared grid
    # And they stay together: every poll of every poller at the same instants, on the grid.
    assert all(s == starts[0] for s in starts)
    assert starts[0] == pytest.approx([1000.05 + k * interval for k in range(5)])


# --- devices as they are: sparse maps, exception codes, slow controllers ---------------------


def test_a_read_refused_for_its_hole_is_split_at_once_and_the_plan_learnt() -> None:
    points = [pt("a", 0), pt("b", 1), pt("c", 10), pt("d", 11)]
    defined = {0, 1, 10, 11}

    def sparse(table: Table, start: int, count: int) -> list[int] | Exception:
        if any(a not in defined for a in range(start, start + count)):
            return DeviceRefused("d1", 2, 3)
        return ok(table, start, count)

    async def main() -> None:
        s = ModbusSettings(max_gap=8)
        j = PollJob("d1", 1, 1.0, 0.5, tuple(plan_reads(points, s)), s)
        told: list[tuple[str, list[str]]] = []
        p, sink = poller(sparse, [j], learnt=lambda d, _m, new: told.append((d, new)))
        await p.poll(j, 0.0)
        conn = p.connection
        assert conn.calls == [(Table.HOLDING, 0, 12), (Table.HOLDING, 0, 2), (Table.HOLDING, 10, 2)]  # type: ignore[attr-defined]
        ((_, outcome, _, values),) = sink.polls
        assert outcome is Outcome.FULL  # nothing lost: every point the device has was read
        assert values == {"a": 0, "b": 1, "c": 10, "d": 11}
        assert told == [("d1", [])]  # a hole learnt, no point lost
        assert p.maps["d1"].avoid == {Table.HOLDING: set(range(2, 10))}
        conn.calls.clear()  # type: ignore[attr-defined]
        await p.poll(j, 1.0)
        assert conn.calls == [(Table.HOLDING, 0, 2), (Table.HOLDING, 10, 2)]  # type: ignore[attr-defined]
        assert p.stats["d1"].split_reads == 2
        assert p.stats["d1"].refused == 1

    run(main())


def test_a_known_map_is_planned_around_from_the_first_poll() -> None:
    from gateway.devices.sparse import DeviceMap  # noqa: PLC0415

    m = DeviceMap()
    m.add_undefined([pt("b", 1)], 2)
    p, _ = poller(ok, [job()], maps={"d1": m})
    (j,) = p._jobs
    assert [(b.table, b.start, b.count) for b in j.blocks] == [
        (Table.HOLDING, 0, 1), (Table.INPUT, 10, 1),
    ]  # fmt: skip


def test_a_table_the_device_lacks_names_its_points_and_is_not_read_again() -> None:
    def no_inputs(table: Table, start: int, count: int) -> list[int] | Exception:
        return DeviceRefused("d1", 1, 4) if table is Table.INPUT else ok(table, start, count)

    async def main() -> None:
        told: list[list[str]] = []
        j = job()
        p, sink = poller(
            no_inputs, [j], learnt=lambda _d, _m, new: told.append([x.id for x in new])
        )
        await p.poll(j, 0.0)
        assert told == [["c"]]
        assert p.maps["d1"].undefined == {"c": 1}
        assert sink.polls[0][1] is Outcome.FULL
        await p.poll(j, 1.0)
        assert p.connection.calls[-1] == (Table.HOLDING, 0, 2)  # type: ignore[attr-defined]
        assert len(p.connection.calls) == 3  # type: ignore[attr-defined]

    run(main())


@pytest.mark.parametrize("code", [5, 6])
def test_a_busy_device_is_asked_again_soon_and_that_is_no_failure(code: int) -> None:
    busy = [True, True, False]

    def script(table: Table, start: int, count: int) -> list[int] | Exception:
        if table is Table.INPUT and busy[0]:
            busy.pop(0)
            return DeviceRefused("d1", code, 4)
        return ok(table, start, count)

    async def main() -> None:
        j = job(interval=1.0)
        clock = ManualClock()
        p, sink = poller(script, [j], clock)
        t0 = clock.monotonic()
        j.due = t0
        await p.poll(j, t0)
        assert sink.polls[0][1] is Outcome.BUSY
        assert sink.polls[0][3] == {"a": 0, "b": 0.5}  # what was read is still reported
        assert j.due == pytest.approx(t0 + 0.1)
        await p.poll(j, j.due)
        assert j.due == pytest.approx(t0 + 0.2)  # the clock stood still: 0.2 s after "now"
        await p.poll(j, j.due)
        assert sink.polls[-1][1] is Outcome.FULL
        assert j.failures == 0
        stats = p.stats["d1"]
        assert (stats.busy, stats.failed) == (2, 0)

    run(main())


def test_a_device_busy_for_hours_is_asked_at_its_interval_and_never_crashes_the_poller() -> None:
    async def main() -> None:
        j = job(interval=1.0)
        clock = ManualClock()
        p, _ = poller(lambda *_: DeviceRefused("d1", 6, 4), [j], clock)
        for _ in range(1100):  # 2.0 ** 1024 would overflow: an OverflowError killed the task
            await p.poll(j, clock.monotonic())
            clock.advance(j.due - clock.monotonic())
        assert j.due - clock.monotonic() == pytest.approx(0.0)
        await p.poll(j, clock.monotonic())
        assert j.due == pytest.approx(clock.monotonic() + 1.0)  # no later than the interval
        assert j.failures == 0

    run(main())


@pytest.mark.parametrize("code", [10, 11])
def test_a_unit_a_modbus_gateway_cannot_reach_is_unreachable_and_backed_off(code: int) -> None:
    async def main() -> None:
        j = job(interval=1.0)
        clock = ManualClock()
        p, sink = poller(lambda *_: DeviceRefused("d1", code, 3), [j], clock, backoff_max_s=8.0)
        await p.poll(j, clock.monotonic())
        ((_, outcome, detail, _),) = sink.polls
        assert outcome is Outcome.UNREACHABLE
        assert f"exception {code}" in detail
        assert len(p.connection.calls) == 1  # type: ignore[attr-defined]  # not every block
        assert j.due == pytest.approx(clock.monotonic() + 2.0)  # backed off like a failure
        assert p.stats["d1"].unreachable == 1

    run(main())


def test_a_device_failure_fails_the_poll_is_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def script(table: Table, start: int, count: int) -> list[int] | Exception:
        return DeviceRefused("d1", 4, 4) if table is Table.INPUT else ok(table, start, count)

    async def main() -> None:
        j = job()
        p, sink = poller(script, [j])
        for t in range(3):
            await p.poll(j, float(t))
        assert [s[1] for s in sink.polls] == [Outcome.FAILED] * 3
        assert "internal failure" in sink.polls[0][2]
        assert p.stats["d1"].faults == 3

    caplog.set_level(logging.WARNING, logger="gateway.devices.poller")
    run(main())
    assert len(caplog.records) == 1
    assert "device failure" in caplog.records[0].getMessage()


def test_a_slow_controller_is_read_at_the_rate_it_can_take() -> None:
    clock = ManualClock()
    answers = iter([0.3, 0.8] + [0.6, 0.8, 0.7, 0.8, 0.5, 0.3] * 20)

    class Slow(FakeConnection):
        async def read(self, table: Table, start: int, count: int, **kw: Any) -> list[int]:
            self.calls.append((table, start, count))
            delay = next(answers)
            if delay > kw["timeout_s"]:
                await clock.sleep(kw["timeout_s"])
                raise DeviceTimeout("d1", kw["timeout_s"])
            await clock.sleep(delay)
            return ok(table, start, count)

    async def main() -> tuple[Poller, Sink]:
        sink = Sink()
        one = [pt("a", 0)]
        j = PollJob("slow", 1, 0.5, 0.5, tuple(plan_reads(one, SETTINGS)), SETTINGS)
        p = Poller(Slow(ok), [j], sink, clock, rand=lambda: 0.0, timeout_cap_s=2.0)  # type: ignore[arg-type]
        await run_for(clock, 30.0, p)
        return p, sink

    p, sink = run(main())
    stats = p.stats["slow"]
    outcomes = [s[1] for s in sink.polls]
    # Timed out once while its pace was being learnt, then every request answered.
    assert outcomes[:2] == [Outcome.FULL, Outcome.FAILED]
    assert set(outcomes[2:]) == {Outcome.FULL}
    assert stats.timeout_s == pytest.approx(1.6)  # twice its slowest answer, under the cap
    assert stats.answer_s == pytest.approx(0.8)
    # Asked every 0.5 s, it takes up to 0.8 s: slots are skipped, the effective interval shown.
    assert stats.skipped > 0
    assert 0.6 < stats.interval_s < 1.1


def test_a_device_refusing_every_point_fails_and_nothing_is_learnt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        told: list[str] = []
        j = job()
        p, sink = poller(
            lambda *_: DeviceRefused("d1", 2, 3), [j], learnt=lambda d, _m, _n: told.append(d)
        )
        await p.poll(j, 0.0)
        await p.poll(j, 10.0)
        assert [s[1] for s in sink.polls] == [Outcome.FAILED, Outcome.FAILED]
        assert "refuses every point" in sink.polls[0][2]
        assert p.maps == {}  # a wrong unit id must not be remembered as "defines nothing"
        assert told == []
        assert [b.start for b in j.blocks] == [0, 10]  # planned as the profile says

    caplog.set_level(logging.WARNING, logger="gateway.devices.poller")
    run(main())
    assert len(caplog.records) == 1


def test_nothing_is_learnt_from_a_device_that_never_answered_with_data() -> None:
    # A wrong unit id looks like a device defining none of the points asked so far: the first
    # job polled (here the 1 s one, whose points are all refused) must not teach "remove those
    # points", nor be kept, until the device answers something.
    fast = job(interval=1.0, points=[pt("a", 0), pt("b", 1)])
    slow = job(interval=60.0, points=[pt("c", 10, table="input")])
    refusing = [True]
    told: list[list[str]] = []

    def script(table: Table, start: int, count: int) -> list[int] | Exception:
        if refusing[0] and table is Table.HOLDING:
            return DeviceRefused("d1", 2, 3)
        return ok(table, start, count)

    async def main() -> None:
        p, sink = poller(
            script, [fast, slow], learnt=lambda _d, _m, new: told.append([x.id for x in new])
        )
        await p.poll(fast, 0.0)
        assert told == []
        assert "d1" not in p.maps
        assert sink.polls[-1][1] is Outcome.FAILED
        assert "unit id" in sink.polls[-1][2]
        # Once it has answered (the slow job's input register), what it refuses is learnt.
        await p.poll(slow, 1.0)
        await p.poll(fast, 2.0)
        assert told == [["a", "b"]]
        assert set(p.maps["d1"].undefined) == {"a", "b"}

    run(main())
