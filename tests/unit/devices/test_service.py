"""The device service (gateway.devices.service): which points are polled how often, then the
service itself on fake connections and a virtual clock: availability, readings, a dead unit
behind a shared connection, guarded and audited writes, MQTT sensor silence."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.clock import ManualClock
from gateway.config import DeviceInstance, StateConfig
from gateway.contract import DeviceState
from gateway.devices.events import AvailabilityChanged, DeviceReadings
from gateway.devices.gate import Priority
from gateway.devices.guard import Approved, Reason, Refused, WriteGuard, WriteRequest
from gateway.devices.profile import Profile
from gateway.devices.service import DeviceService, Tuning, _jobs
from gateway.errors import (
    DeviceError,
    DeviceRefused,
    DeviceTimeout,
    DeviceUnavailable,
    ServiceFailed,
)

if TYPE_CHECKING:
    from collections.abc import Coroutine, Sequence

    from gateway.devices.events import DeviceEvent
    from gateway.devices.profile import Table


def profile(**modbus: Any) -> Profile:
    return Profile.model_validate({
        "profile": {"id": "p", "vendor": "v", "model": "m", "kind": "oven", "protocol": "modbus"},
        "modbus": {"poll_s": 2.0, **modbus},
        "points": [
            {"id": "temp", "name": "t", "table": "input", "address": 0},
            {"id": "door", "name": "d", "table": "input", "address": 1, "poll_s": 0.5},
            {"id": "serial", "name": "s", "table": "input", "address": 2, "poll_s": 60},
        ],
    })  # fmt: skip


def intervals(device: DeviceInstance, p: Profile) -> dict[float, list[str]]:
    return {j.interval: [pt.id for b in j.blocks for pt in b.points] for j in _jobs(device, p)}


def test_points_are_grouped_by_interval_and_each_group_is_planned_on_its_own() -> None:
    d = DeviceInstance(id="oven1", profile="p", host="h")
    assert intervals(d, profile()) == {0.5: ["door"], 2.0: ["temp"], 60: ["serial"]}


def test_a_site_poll_s_replaces_the_default_and_is_the_fastest_a_point_gets() -> None:
    d = DeviceInstance(id="oven1", profile="p", host="h", poll_s=5.0)
    assert intervals(d, profile()) == {5.0: ["temp", "door"], 60: ["serial"]}


def test_jobs_carry_the_device_unit_and_the_profile_timeout() -> None:
    d = DeviceInstance(id="oven1", profile="p", host="h", unit=7)
    (job, *_) = _jobs(d, profile(timeout_s=0.3))
    assert (job.device, job.unit, job.timeout_s) == ("oven1", 7, 0.3)


# --- the service on fake connections, on virtual time ----------------------------------------

OVEN = Profile.model_validate({
    "profile": {"id": "oven", "vendor": "v", "model": "m", "kind": "oven", "protocol": "modbus"},
    "modbus": {"poll_s": 1.0, "timeout_s": 0.5, "max_gap": 0, "writes_per_minute": 60},
    "points": [
        {"id": "temp", "name": "t", "table": "input", "address": 0, "scale": 0.1},
        {"id": "door", "name": "d", "table": "input", "address": 10},
        {
            "id": "set_temp", "name": "s", "table": "holding", "address": 20, "access": "rw",
            "write": {"min": 50, "max": 250},
        },
    ],
})  # fmt: skip
PROBE = Profile.model_validate({
    "profile": {"id": "probe", "vendor": "v", "model": "m", "kind": "probe", "protocol": "mqtt"},
    "fields": [{"id": "temp", "name": "Temperature"}],
})  # fmt: skip
# Settings at 0-1 and 10-11 merged into one read across eight registers the device may lack.
PAIR = Profile.model_validate({
    "profile": {"id": "pair", "vendor": "v", "model": "m", "kind": "fryer", "protocol": "modbus"},
    "modbus": {"poll_s": 1.0, "timeout_s": 0.5, "max_gap": 8},
    "points": [
        {"id": f"r{a}", "name": f"r{a}", "table": "holding", "address": a} for a in (0, 1, 10, 11)
    ],
})  # fmt: skip
PROFILES = {"oven": OVEN, "probe": PROBE, "pair": PAIR}
TUNING = Tuning(poll_tick_s=0.0, offline_after=2, backoff_max_s=8.0, sensor_silence_s=60.0)


class FakeConnection:
    """A Modbus TCP connection to a gateway with units behind it, as the service sees one.

    Units answer from ``registers`` (address -> word); a unit in ``dead`` never answers (its
    request takes the whole timeout, on the test's clock); an address in ``refused`` gets
    exception 2 (outside the device's map), as real controllers answer.
    """

    def __init__(self, host: str, port: int, tuning: Tuning, clock: ManualClock) -> None:
        self.name = f"{host}:{port}"
        self.tuning = tuning
        self.clock = clock
        self.up = True
        self.registers: dict[int, dict[int, int]] = defaultdict(dict)
        self.dead: set[int] = set()
        self.refused: dict[tuple[int, int], int] = {}
        self.reads: list[tuple[int, int]] = []  # (unit, start)
        self.writes: list[tuple[int, int, list[int]]] = []
        self.clamp: int | None = None  # a device that stores this instead of what was written
        self.defined: dict[int, set[int]] = {}  # a unit's whole map, when it is sparse
        self.closed = 0
        self._lock = asyncio.Lock()  # one request in flight, as on a real connection

    @property
    def connected(self) -> bool:
        return self.up

    @property
    def retry_at(self) -> float:
        return 0.0

    async def connect(self) -> bool:
        return self.up

    def close(self) -> None:
        self.closed += 1

    async def read(
        self, table: Table, start: int, count: int, *, unit: int, device: str, timeout_s: float,
        priority: Priority = Priority.POLL,
    ) -> list[int]:  # fmt: skip
        async with self._lock:
            self.reads.append((unit, start))
            if not self.up:
                raise DeviceUnavailable(device, f"cannot connect to {self.name}")
            if unit in self.dead:
                await self.clock.sleep(timeout_s)
                raise DeviceTimeout(device, timeout_s)
            if (unit, start) in self.refused:
                raise DeviceRefused(device, self.refused[unit, start], 4)
            span = range(start, start + count)
            if unit in self.defined and not self.defined[unit].issuperset(span):
                raise DeviceRefused(device, 2, 3)
            regs = self.registers[unit]
            return [regs.get(start + i, 0) for i in range(count)]

    async def write(
        self, table: Table, address: int, words: Sequence[int], *, unit: int, device: str,
        timeout_s: float,
    ) -> None:  # fmt: skip
        async with self._lock:
            self.writes.append((unit, address, list(words)))
            stored = list(words) if self.clamp is None else [self.clamp]
            for i, w in enumerate(stored):
                self.registers[unit][address + i] = w


class Outbox:
    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []

    def send(self, event: DeviceEvent) -> None:
        self.events.append(event)

    def changes(self, device: str) -> list[DeviceState]:
        return [
            e.state
            for e in self.events
            if isinstance(e, AvailabilityChanged) and e.device == device
        ]

    def readings(self, device: str) -> list[DeviceReadings]:
        return [e for e in self.events if isinstance(e, DeviceReadings) and e.device == device]


class Audit:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, str]] = []

    def record(self, request: WriteRequest, outcome: str, detail: str = "") -> None:
        self.records.append((request.source, outcome, detail))


@dataclass
class Site:
    """The part of a ``SiteConfig`` the device service reads."""

    devices: list[DeviceInstance]
    state: StateConfig = field(
        default_factory=lambda: StateConfig(dir=Path(tempfile.mkdtemp(prefix="devsvc-")))
    )


class Rig:
    """A device service on fake connections and a virtual clock."""

    def __init__(self, *devices: DeviceInstance, state: Path | None = None) -> None:
        self.clock = ManualClock()
        self.faults: list[tuple[str, str]] = []
        self.outbox = Outbox()
        self.audit = Audit()
        self.connections: dict[tuple[str, int], FakeConnection] = {}
        self.guard = WriteGuard(PROFILES, devices, monotonic=self.clock.monotonic)
        site = Site(list(devices)) if state is None else Site(list(devices), StateConfig(dir=state))
        self.service = DeviceService(
            site,  # type: ignore[arg-type]
            PROFILES, self.outbox, self.guard, self.audit,  # type: ignore[arg-type]
            self.clock, connect=self._connect, tuning=TUNING,
            on_fault=lambda device, reason: self.faults.append((device, reason)),
        )  # fmt: skip

    def _connect(self, host: str, port: int, tuning: Tuning) -> FakeConnection:
        assert (host, port) not in self.connections  # one connection per (host, port)
        conn = self.connections[host, port] = FakeConnection(host, port, tuning, self.clock)
        return conn

    def conn(self, host: str = "10.0.0.5", port: int = 502) -> FakeConnection:
        return self.connections[host, port]


def oven(id_: str = "oven1", unit: int = 1, host: str = "10.0.0.5") -> DeviceInstance:
    return DeviceInstance(id=id_, profile="oven", host=host, unit=unit)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_connections_come_from_the_factory_one_per_host_and_port() -> None:
    rig = Rig(oven("a", 1), oven("b", 2), oven("c", 1, host="10.0.0.6"))
    assert set(rig.connections) == {("10.0.0.5", 502), ("10.0.0.6", 502)}
    assert rig.conn().tuning is TUNING

    async def main() -> None:
        async with rig.service:
            pass
        assert [c.closed for c in rig.connections.values()] == [1, 1]  # closed on the way out

    run(main())


def test_availability_changes_once_per_change_and_readings_are_only_what_was_read() -> None:
    rig = Rig(oven())
    conn = rig.conn()
    conn.registers[1].update({0: 1805, 10: 1, 20: 180})
    watched: list[DeviceState] = []
    rig.service.on_availability(lambda change: watched.append(change.state))

    async def main() -> None:
        started = rig.clock.now()
        async with rig.service as svc:
            await rig.clock.run(3.0)  # three polls, all fine
            assert rig.outbox.changes("oven1") == [DeviceState.ONLINE]
            assert svc.availability("oven1") is DeviceState.ONLINE
            first = rig.outbox.readings("oven1")[0]
            assert first.values == {"temp": 180.5, "door": 1, "set_temp": 180}
            assert started <= first.at < started + timedelta(seconds=1)  # stamped when read
            # The door register fails (a parity error): the other blocks still read.
            conn.refused[1, 10] = 8
            await rig.clock.run(1.0)
            assert rig.outbox.changes("oven1") == [DeviceState.ONLINE, DeviceState.DEGRADED]
            assert rig.outbox.readings("oven1")[-1].values == {"temp": 180.5, "set_temp": 180}
            # The connection goes: offline at once, and no readings at all (nothing invented).
            conn.up = False
            before = len(rig.outbox.readings("oven1"))
            await rig.clock.run(3.0)
            assert rig.outbox.changes("oven1")[-1] is DeviceState.OFFLINE
            assert len(rig.outbox.readings("oven1")) == before
            conn.up, conn.refused = True, {}
            await rig.clock.run(2.0)
            assert rig.outbox.changes("oven1") == [
                DeviceState.ONLINE, DeviceState.DEGRADED, DeviceState.OFFLINE, DeviceState.ONLINE,
            ]  # fmt: skip
        # Leaving says the devices are no longer watched.
        assert rig.outbox.changes("oven1")[-1] is DeviceState.OFFLINE
        assert watched == rig.outbox.changes("oven1")  # a watcher sees every change, once

    run(main())


def test_a_dead_device_behind_a_shared_connection_does_not_stall_the_others() -> None:
    rig = Rig(oven("alive", 1), oven("dead", 2))
    conn = rig.conn()
    conn.dead.add(2)

    async def main() -> None:
        async with rig.service as svc:
            await rig.clock.run(30.0)
            assert svc.availability("dead") is DeviceState.OFFLINE
            assert svc.availability("alive") is DeviceState.ONLINE
            alive = rig.outbox.readings("alive")
            # Polled every second, each poll held back at most by one 0.5 s timeout.
            assert len(alive) >= 29
            gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(alive)]
            assert max(gaps) <= 1.5
            # The dead one costs a timeout per backoff period (2, 4, 8, 8 ... s), not per second.
            dead_polls = sum(1 for unit, _ in conn.reads if unit == 2)
            assert dead_polls <= 7
            assert rig.outbox.readings("dead") == []
            assert svc.poll_stats()["dead"].failed == dead_polls

    run(main())


def test_writes_go_through_the_guard_and_every_attempt_is_audited() -> None:
    rig = Rig(oven())
    conn = rig.conn()

    async def main() -> None:
        async with rig.service as svc:
            ok = await svc.write(WriteRequest("oven1", "set_temp", 200, "cli"))
            assert isinstance(ok, Approved)
            assert conn.writes == [(1, 20, [200])]
            refused = await svc.write(WriteRequest("oven1", "set_temp", 400, "cli"))
            assert isinstance(refused, Refused)
            assert refused.kind is Reason.OUT_OF_RANGE
            assert len(conn.writes) == 1  # nothing sent
            conn.clamp = 150  # the device takes a write but stores another value
            with pytest.raises(DeviceError, match="reads back 150"):
                await svc.write(WriteRequest("oven1", "set_temp", 210, "cli"))
        assert rig.audit.records == [
            ("cli", "approved", "words 0x00c8"),
            ("cli", "written", "read back 200"),
            ("cli", "refused", "out of range 50..250"),
            ("cli", "approved", "words 0x00d2"),
            ("cli", "written", "read back 150, not the value sent"),
        ]
        assert rig.guard.approved == 2

    run(main())


@pytest.mark.parametrize("step_s", [-7200.0, 7200.0])
def test_an_mqtt_sensor_is_offline_after_its_silence_in_monotonic_time(step_s: float) -> None:
    rig = Rig(DeviceInstance(id="probe1", profile="probe"))

    async def main() -> None:
        async with rig.service as svc:
            assert svc.availability("probe1") is DeviceState.OFFLINE  # never heard yet
            svc.submit(DeviceReadings("probe1", rig.clock.now(), {"temp": 3.5}))
            assert svc.availability("probe1") is DeviceState.ONLINE
            rig.clock.step_wall(step_s)  # NTP: neither fresher nor staler
            assert svc.availability("probe1") is DeviceState.ONLINE
            rig.clock.advance(59.0)
            assert svc.availability("probe1") is DeviceState.ONLINE
            rig.clock.advance(1.0)
            assert svc.availability("probe1") is DeviceState.OFFLINE
            with pytest.raises(KeyError):
                svc.availability("nope")

    run(main())


def test_a_service_with_named_loops_and_a_failing_loop_leaves_as_service_failed() -> None:
    rig = Rig(oven())

    class Broken(Exception):
        pass

    def send(event: DeviceEvent) -> None:
        if isinstance(event, DeviceReadings):
            raise Broken("the outbox has a bug")
        rig.outbox.events.append(event)

    rig.outbox.send = send  # type: ignore[method-assign]

    async def running() -> None:
        async with rig.service as svc:
            names = sorted(t.get_name() for t in asyncio.all_tasks())
            assert "devices:poll:10.0.0.5:502" in names
            assert "devices:fanout" in names
            assert svc.running
            await rig.clock.run(5.0)
            pytest.fail("the failing poller should have stopped the service")

    async def main() -> None:
        with pytest.raises(ServiceFailed) as failed:
            await running()
        assert failed.value.service == "devices"
        assert isinstance(failed.value.cause, Broken)
        assert rig.conn().closed == 1  # stop() ran: the connection is closed all the same

    run(main())


@pytest.mark.parametrize("step_s", [7200.0, -7200.0])
def test_a_wall_clock_step_mid_polling_moves_no_poll_and_flips_no_state(step_s: float) -> None:
    # NTP reaching a server mid-service, or an operator's correction (issue 20): the polls keep
    # their monotonic slots, nothing changes state, and only the stamps of records jump.
    rig = Rig(oven("a", 1), oven("b", 2, host="10.0.0.6"), DeviceInstance(id="p", profile="probe"))
    polled: dict[str, list[float]] = defaultdict(list)
    for conn in rig.connections.values():
        original = conn.read

        async def read(*args: Any, original: Any = original, **kw: Any) -> list[int]:
            polled[kw["device"]].append(rig.clock.monotonic())
            result: list[int] = await original(*args, **kw)
            return result

        conn.read = read  # type: ignore[method-assign]

    async def sensor(svc: DeviceService) -> None:
        while True:  # an MQTT node that reports every 20 s (silence limit: 60 s)
            svc.submit(DeviceReadings("p", rig.clock.now(), {"temp": 3.0}))
            await rig.clock.sleep(20.0)

    async def main() -> None:
        async with rig.service as svc, asyncio.TaskGroup() as tg:
            node = tg.create_task(sensor(svc))
            await rig.clock.run(30.3)
            rig.clock.step_wall(step_s)
            await rig.clock.run(30.0)
            rig.clock.step_wall(-step_s)  # and back again
            await rig.clock.run(30.0)
            assert [svc.availability(d) for d in ("a", "b", "p")] == [DeviceState.ONLINE] * 3
            node.cancel()
        # One change per device, at the first poll: no step made anything offline or online.
        assert rig.outbox.changes("a") == [DeviceState.ONLINE, DeviceState.OFFLINE]  # + stop
        assert rig.outbox.changes("b") == [DeviceState.ONLINE, DeviceState.OFFLINE]
        for device in ("a", "b"):
            starts = polled[device][::3]  # three blocks a poll, each read at the poll's start
            gaps = [b - a for a, b in itertools.pairwise(starts)]
            # Every poll exactly one interval after the last: none early, none late, none lost.
            assert gaps == [pytest.approx(1.0, abs=1e-9)] * len(gaps)
            assert len(starts) in (90, 91)
            stamps = [r.at for r in rig.outbox.readings(device)]
            jumped = [
                b - a for a, b in itertools.pairwise(stamps) if abs(b - a) > timedelta(seconds=2)
            ]
            # The records carry the wall clock as it read: it jumps by the step and back.
            assert jumped == [timedelta(seconds=s + 1.0) for s in (step_s, -step_s)]

    run(main())


def test_a_sparse_device_is_learnt_once_said_once_and_remembered_across_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fryer = DeviceInstance(id="fryer1", profile="pair", host="10.0.0.5")

    def rig() -> Rig:
        r = Rig(fryer, state=tmp_path)
        r.conn().defined[1] = {0, 1, 10}  # no register 11 (its point) nor 2..9 (the hole)
        return r

    async def main(r: Rig) -> None:
        async with r.service as svc:
            await r.clock.run(3.0)
            assert svc.availability("fryer1") is DeviceState.ONLINE
            assert set(svc.device_maps()["fryer1"].undefined) == {"r11"}

    caplog.set_level(logging.WARNING, logger="gateway.devices.service")
    first = rig()
    run(main(first))
    # The first poll: the merged read, refused; its two parts; 10..11 refused, so 10 and 11
    # alone. Then two requests a poll, and never the refused ones again.
    assert first.conn().reads[:5] == [(1, 0), (1, 0), (1, 10), (1, 10), (1, 11)]
    assert set(first.conn().reads[5:]) == {(1, 0), (1, 10)}
    assert all(r.values.keys() == {"r0", "r1", "r10"} for r in first.outbox.readings("fryer1"))
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert "does not define r11 (exception 2)" in said[0]
    assert "remove those [[points]] from profile pair" in said[0]
    assert "holding registers 2..9" in said[1]
    assert "max_gap = 0" in said[1]
    saved = json.loads((tmp_path / "device_maps.json").read_text())
    assert saved["devices"]["fryer1"]["undefined"] == {"r11": 2}
    # A restart plans around the map at once: no refused read, nothing said again.
    caplog.clear()
    second = rig()
    run(main(second))
    assert set(second.conn().reads) == {(1, 0), (1, 10)}
    assert caplog.records == []


def test_a_device_reporting_its_own_failure_is_named_until_it_reads_again() -> None:
    rig = Rig(oven("oven1", 1), oven("oven2", 2))
    conn = rig.conn()
    conn.refused[1, 0] = 4

    async def main() -> None:
        async with rig.service as svc:
            await rig.clock.run(3.0)
            assert svc.faulty() == {"oven1"}
            assert len(rig.faults) == 1  # told once, for an alert
            assert rig.faults[0][0] == "oven1"
            assert "exception 4" in rig.faults[0][1]
            assert svc.availability("oven1") is DeviceState.OFFLINE  # after offline_after
            assert svc.availability("oven2") is DeviceState.ONLINE
            assert svc.poll_stats()["oven1"].faults >= 2
            conn.refused = {}
            await rig.clock.run(10.0)  # its backoff, then a full poll
            assert svc.faulty() == frozenset()
            assert svc.availability("oven1") is DeviceState.ONLINE

    run(main())
