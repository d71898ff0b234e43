"""Polling real pymodbus servers on loopback: pace beside a black hole, a device that disappears
and returns, guarded writes ahead of polls, and readings on MQTT through a real Mosquitto.

Servers are plain pymodbus ``ModbusTcpServer`` instances with ``SimDevice`` registers; a black hole
is an asyncio server that accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvloop
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gateway.app import Gateway
from gateway.clock import SystemClock
from gateway.contract import DeviceState
from gateway.devices.audit import AuditLog
from gateway.devices.connection import modbus_connection
from gateway.devices.events import AvailabilityChanged, DeviceReadings
from gateway.devices.guard import Approved, Refused, WriteGuard, WriteRequest
from gateway.devices.profile import load_profiles
from gateway.devices.service import DeviceService, Tuning
from gateway.site_file import load_site, parse_site
from gateway.transport.broker import free_port, free_ports
from gateway.transport.mqtt import InboundMessage, MqttClient

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from gateway.config import SiteConfig
    from gateway.devices.events import DeviceEvent
    from gateway.transport.broker import MosquittoProcess

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
INTERVAL = 0.2
FAST = Tuning(
    connect_timeout_s=0.5, reconnect_s=(0.05, 0.3), backoff_max_s=0.4, sensor_silence_s=5.0
)

PROFILE = f"""
[profile]
id = "itest-10"
vendor = "test"
model = "ten registers"
kind = "fridge"
protocol = "modbus"

[modbus]
poll_s = {INTERVAL}
timeout_s = 0.2

[[points]]
id = "setpoint"
name = "setpoint"
table = "holding"
address = 0
scale = 0.1
access = "rw"
write = {{ min = 0.0, max = 50.0 }}
""" + "".join(
    f'\n[[points]]\nid = "r{n}"\nname = "r{n}"\ntable = "holding"\naddress = {n}\n'
    for n in range(1, 10)
)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def registers(unit: int = 1) -> SimDevice:
    bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    hr = [SimData(0, values=[40 + unit, *range(1, 20)], datatype=DataType.REGISTERS)]
    ir = [SimData(0, count=20, values=0, datatype=DataType.REGISTERS)]
    return SimDevice(id=unit, simdata=(bits, bits, hr, ir))


class Sim:
    """A pymodbus server that can be stopped and started again on the same port."""

    def __init__(self, port: int, units: int = 1) -> None:
        self.port = port
        self.units = units
        self.server: ModbusTcpServer | None = None

    async def start(self) -> None:
        devices = [registers(u) for u in range(1, self.units + 1)]
        self.server = ModbusTcpServer(devices, address=(HOST, self.port))
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None


async def black_hole(port: int) -> asyncio.Server:
    """Accepts connections, reads what it is sent, never answers (a hung controller)."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):
                pass
        writer.close()

    return await asyncio.start_server(swallow, HOST, port)


def site(
    tmp_path: Path, devices: list[dict[str, Any]], base: SiteConfig | None = None
) -> SiteConfig:
    profiles = tmp_path / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "itest.toml").write_text(PROFILE)
    data: dict[str, Any] = {
        "site": {"id": "itest", "name": "polling"},
        "state": {"dir": str(tmp_path / "state"), "durability": "normal"},
        "tables": {"count": 1},
        "stations": [{"id": "cold", "name": "Cold"}],
        "groups": [{"id": "g", "names": {"en": "g"}}],
        "items": [{"id": "i", "group": "g", "names": {"en": "i"}, "price": 1, "prep_s": 1}],
        "routes": [{"group": "g", "station": "cold"}],
    }
    if base is not None:
        data = base.model_dump(mode="json", exclude_none=True)
    data["devices"] = devices
    data["devices_profiles"] = [str(profiles)]
    return parse_site(data)


class Outbox:
    """Records every event with the loop time it was emitted at."""

    def __init__(self) -> None:
        self.events: list[tuple[float, DeviceEvent]] = []

    def send(self, event: DeviceEvent) -> None:
        self.events.append((asyncio.get_running_loop().time(), event))

    def readings(self, device: str, after: float = 0.0) -> list[float]:
        return [
            t for t, e in self.events
            if isinstance(e, DeviceReadings) and e.device == device and t > after
        ]  # fmt: skip

    def states(self, device: str) -> list[tuple[float, DeviceState]]:
        return [
            (t, e.state) for t, e in self.events
            if isinstance(e, AvailabilityChanged) and e.device == device
        ]  # fmt: skip


def service(cfg: SiteConfig, outbox: Outbox, tmp_path: Path) -> DeviceService:
    profiles = load_profiles(cfg.devices_profiles)
    audit = AuditLog(tmp_path / "audit.jsonl")
    guard = WriteGuard(profiles, cfg.devices)
    return DeviceService(
        cfg, profiles, outbox, guard, audit, SystemClock(), connect=modbus_connection, tuning=FAST
    )


async def until(pred: Any, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1]


def test_nineteen_devices_keep_their_interval_beside_a_black_hole(tmp_path: Path) -> None:
    ports = free_ports(20)
    cfg = site(tmp_path, [
        {"id": f"dev{n}", "profile": "itest-10", "host": HOST, "port": port}
        for n, port in enumerate(ports)
    ])  # fmt: skip

    async def main() -> None:
        sims = [Sim(p) for p in ports[1:]]
        for s in sims:
            await s.start()
        hole = await black_hole(ports[0])
        outbox = Outbox()
        try:
            async with service(cfg, outbox, tmp_path) as svc:
                await asyncio.sleep(3.0)
                assert svc.availability("dev0") is DeviceState.OFFLINE
                stats = svc.poll_stats()
        finally:
            hole.close()
            for s in sims:
                await s.stop()
        assert outbox.readings("dev0") == []
        assert stats["dev0"].polls <= 7  # backed off: ~15 timeouts without a backoff
        for n in range(1, 20):
            times = outbox.readings(f"dev{n}")
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert len(times) >= 12, (n, len(times))
            assert p95(gaps) <= 1.5 * INTERVAL, (n, sorted(gaps)[-3:])
            assert outbox.states(f"dev{n}")[-1][1] is DeviceState.OFFLINE  # said on exit
            assert [s for _, s in outbox.states(f"dev{n}")[:1]] == [DeviceState.ONLINE]

    run(main())


def test_a_device_that_disappears_goes_offline_silently_and_comes_back(tmp_path: Path) -> None:
    port, steady_port = free_ports(2)
    cfg = site(tmp_path, [
        {"id": "gone", "profile": "itest-10", "host": HOST, "port": port},
        {"id": "steady", "profile": "itest-10", "host": HOST, "port": steady_port},
    ])  # fmt: skip

    async def main() -> None:
        sim, steady = Sim(port), Sim(steady_port)
        await sim.start()
        await steady.start()
        outbox = Outbox()
        loop = asyncio.get_running_loop()
        try:
            async with service(cfg, outbox, tmp_path) as svc:
                await until(lambda: svc.availability("gone") is DeviceState.ONLINE, 2, "online")
                await sim.stop()
                stopped = loop.time()
                await until(lambda: svc.availability("gone") is DeviceState.OFFLINE, 3, "offline")
                offline_at = loop.time()
                await asyncio.sleep(1.0)  # gone for a while: nothing may be read or invented
                assert outbox.readings("gone", after=offline_at) == []
                assert len(outbox.readings("steady", after=offline_at)) >= 4
                await sim.start()
                restarted = loop.time()
                await until(lambda: svc.availability("gone") is DeviceState.ONLINE, 3, "back")
                await until(lambda: len(outbox.readings("gone", restarted)) >= 3, 2, "readings")
        finally:
            await sim.stop()
            await steady.stop()
        states = [s for t, s in outbox.states("gone") if t < loop.time()]
        assert states[:3] == [DeviceState.ONLINE, DeviceState.OFFLINE, DeviceState.ONLINE]
        assert outbox.readings("gone", after=stopped + 0.05)[0] > restarted

    run(main())


def test_writes_go_ahead_of_polls_are_read_back_and_audited(tmp_path: Path) -> None:
    port = free_port()
    # Five units behind one address share one connection, polled back to back.
    cfg = site(tmp_path, [
        {"id": f"unit{u}", "profile": "itest-10", "host": HOST, "port": port, "unit": u,
         "poll_s": 0.01, "writes": {"setpoint": {"min": 2.0, "max": 8.0}}}
        for u in range(1, 6)
    ])  # fmt: skip

    async def main() -> list[float]:
        sim = Sim(port, units=5)
        await sim.start()
        outbox = Outbox()
        latencies = []
        try:
            async with service(cfg, outbox, tmp_path) as svc:
                await asyncio.sleep(0.3)
                loop = asyncio.get_running_loop()
                for n in range(10):
                    start = loop.time()
                    result = await svc.write(WriteRequest("unit3", "setpoint", 4.0 + n / 10, "t"))
                    latencies.append(loop.time() - start)
                    assert isinstance(result, Approved)
                refused = await svc.write(WriteRequest("unit3", "setpoint", 9.5, "t"))
                assert isinstance(refused, Refused)
                await asyncio.sleep(INTERVAL)
        finally:
            await sim.stop()
        last = [e for _, e in outbox.events if isinstance(e, DeviceReadings)][-20:]
        assert any(e.device == "unit3" and e.values["setpoint"] == 4.9 for e in last)
        return latencies

    latencies = run(main())
    assert max(latencies) < 0.1  # two requests, behind at most the one poll in flight
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [x["outcome"] for x in lines[:2]] == ["approved", "written"]
    assert lines[1]["detail"] == "read back 4.0"
    assert lines[-1]["outcome"] == "refused"
    assert lines[-1]["detail"] == "out of range 2..8"


class Recorder:
    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []

    def __call__(self, msg: InboundMessage) -> None:
        self.messages.append(msg)

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.messages if m.topic == topic]


def test_readings_and_status_on_mqtt_and_sensor_nodes_validated(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    port = free_port()
    base = load_site(Path(__file__).with_name("fast-site.toml")).with_overrides(
        mqtt_url=broker.url, state_dir=tmp_path / "state"
    )
    cfg = site(tmp_path, [
        {"id": "fridge1", "profile": "itest-10", "host": HOST, "port": port},
        {"id": "probe1", "profile": "fridge-probe-node"},
    ], base)  # fmt: skip
    topic = "rst/itest/device/{}/{}".format

    async def main() -> None:
        sim = Sim(port)
        await sim.start()
        seen = Recorder()
        try:
            async with MqttClient(broker.url, "observer") as obs, Gateway(cfg) as gw:
                obs.set_handler(seen)
                obs.subscribe("rst/itest/device/+/+", qos=1)
                assert gw.devices is not None
                assert gw.device_bridge is not None
                got: list[DeviceReadings] = []
                gw.devices.subscribe(got.append)
                await until(
                    lambda: len(seen.on(topic("fridge1", "telemetry"))) >= 3, 3, "telemetry"
                )
                await until(lambda: seen.on(topic("fridge1", "status")), 2, "status")
                good = {"v": 1, "device": "probe1", "at": "2026-01-01T18:00:00Z", "seq": 1,
                        "values": {"temp_c": 3.5, "door_open": False}}  # fmt: skip
                bad = good | {"seq": 2, "values": {"temp_c": 500.0}}
                obs.publish(topic("probe1", "telemetry"), b"{not json", qos=0)
                obs.publish(topic("probe1", "telemetry"), json.dumps(bad).encode(), qos=0)
                obs.publish(topic("probe1", "telemetry"), json.dumps(good).encode(), qos=0)
                await until(lambda: any(r.device == "probe1" for r in got), 3, "sensor reading")
                stats = gw.device_bridge.stats
                assert stats.sensor_rejected == {"invalid": 1, "out of range": 1}
                assert stats.sensor_accepted == 1
                assert gw.devices.availability("probe1") is DeviceState.ONLINE
                probe = [r for r in got if r.device == "probe1"]
                assert probe[0].values == {"temp_c": 3.5, "door_open": False}
        finally:
            await sim.stop()
        telemetry = seen.on(topic("fridge1", "telemetry"))
        assert telemetry[0]["values"]["setpoint"] == pytest.approx(4.1)
        assert set(telemetry[0]["values"]) == {"setpoint", *(f"r{n}" for n in range(1, 10))}
        seqs = [t["seq"] for t in telemetry]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
        statuses = [(s["state"], s["role"]) for s in seen.on(topic("fridge1", "status"))]
        assert statuses[0] == ("online", "appliance")
        assert statuses[-1] == ("offline", "appliance")  # the gateway said so when it stopped
        assert not seen.on(topic("probe1", "status"))  # a node reports its own presence

    run(main())
