"""The devices' MQTT adapter (gateway.devices.bridge) on a fake MQTT client: what is published,
and how sensor nodes' telemetry is judged (good -> readings, bad -> counted, never raised)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.config import DeviceInstance
from gateway.contract import DeviceState, Telemetry
from gateway.devices.bridge import (
    DeviceBridge,
    LastSeen,
    Rejection,
    as_declared,
    check_telemetry,
)
from gateway.devices.events import AvailabilityChanged, DeviceReadings
from gateway.devices.profile import MqttField, Profile
from gateway.transport.dispatch import Dispatcher
from gateway.transport.messages import InboundMessage

AT = datetime(2026, 1, 1, 18, 0, tzinfo=UTC)

PROBE = Profile.model_validate({
    "profile": {"id": "probe", "vendor": "v", "model": "m", "kind": "probe", "protocol": "mqtt"},
    "fields": [
        {"id": "temp_c", "name": "t", "type": "float", "min": -40, "max": 50},
        {"id": "door_open", "name": "door", "type": "bool", "required": False},
        {"id": "rssi", "name": "rssi", "type": "int", "required": False, "max": 0},
        {"id": "fw", "name": "firmware", "type": "str", "required": False},
    ],
})  # fmt: skip
FRYER = Profile.model_validate({
    "profile": {"id": "fryer", "vendor": "v", "model": "m", "kind": "fryer", "protocol": "modbus"},
    "points": [{"id": "oil", "name": "oil", "table": "input", "address": 0}],
})  # fmt: skip
PROFILES = {"probe": PROBE, "fryer": FRYER}
DEVICES = [
    DeviceInstance(id="probe1", profile="probe"),
    DeviceInstance(id="fryer1", profile="fryer", host="10.0.0.5"),
]
FIELDS: tuple[MqttField, ...] = PROBE.fields


def payload(**kw: Any) -> bytes:
    body = {"v": 1, "device": "probe1", "at": "2026-01-01T18:00:00Z", "seq": 1,
            "values": {"temp_c": 3.5}} | kw  # fmt: skip
    return json.dumps(body).encode()


class FakeMqtt:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, int, bool]] = []
        self.subscribed: list[tuple[str, int]] = []
        self.acked: list[InboundMessage] = []
        self.handler: Any = None
        self.callbacks: list[Any] = []
        self.up = True

    def set_handler(self, handler: Any) -> None:
        self.handler = handler

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.subscribed.append((topic, qos))

    def publish(self, topic: str, body: bytes, *, qos: int = 1, retain: bool = False) -> bool:
        if qos == 0 and not self.up:
            return False
        self.published.append((topic, body, qos, retain))
        return True

    def ack(self, msg: InboundMessage) -> None:
        self.acked.append(msg)

    def on_connection_change(self, cb: Any) -> None:
        self.callbacks.append(cb)


def message(topic: str, body: bytes) -> InboundMessage:
    return InboundMessage(topic, body, qos=0, retain=False, mid=0, response_topic=None,
                          correlation_data=None, received_at=0.0)  # fmt: skip


def bridge() -> tuple[DeviceBridge, FakeMqtt, list[DeviceReadings], Dispatcher]:
    client = FakeMqtt()
    b = DeviceBridge("s1", client, DEVICES, PROFILES)  # type: ignore[arg-type]
    readings: list[DeviceReadings] = []
    dispatcher = Dispatcher(client)  # type: ignore[arg-type]
    b.attach(readings.append, dispatcher)
    dispatcher.open()
    return b, client, readings, dispatcher


# --- check_telemetry (pure) -------------------------------------------------------------------


def test_a_good_payload_passes_with_its_types_kept() -> None:
    values = {"temp_c": 3, "door_open": True, "rssi": -60}
    t = check_telemetry(payload(values=values), "probe1", FIELDS)
    assert isinstance(t, Telemetry)
    assert t.values == {"temp_c": 3, "door_open": True, "rssi": -60}
    assert isinstance(t.values["door_open"], bool)


@pytest.mark.parametrize(
    ("body", "kind", "text"),
    [
        (b"not json", "invalid", ""),
        (b"x" * 20_000, "too large", "20000 bytes"),
        (payload(v=2), "invalid", "v"),
        (payload(seq=-1), "invalid", "seq"),
        (payload(device="probe2"), "wrong device", "probe2"),
        (payload(at="2026-01-01T18:00:00"), "invalid", "UTC offset"),
        (payload(values={"door_open": True}), "missing field", "temp_c"),
        (payload(values={"temp_c": 3, "humidity": 40}), "unknown field", "humidity"),
        (payload(values={"temp_c": "3.5"}), "wrong type", "expected float"),
        (payload(values={"temp_c": True}), "wrong type", "expected float"),
        (payload(values={"temp_c": 3, "rssi": 1.5}), "wrong type", "expected int"),
        (payload(values={"temp_c": 3, "door_open": 1}), "wrong type", "expected bool"),
        (payload(values={"temp_c": 80.0}), "out of range", "-40..50"),
        (payload(values={"temp_c": -41}), "out of range", "temp_c"),
        (payload(values={"temp_c": 3, "rssi": 5}), "out of range", "-inf..0"),
        (payload(values={"temp_c": 3, "fw": "x" * 300}), "out of range", "characters"),
        (b'{"v":1,"device":"probe1","at":"2026-01-01T18:00:00Z","seq":1,"values":{"temp_c":NaN}}',
         "out of range", "not a number"),
    ],
)  # fmt: skip
def test_bad_payloads_are_rejected_with_a_kind_and_a_reason(
    body: bytes, kind: str, text: str
) -> None:
    verdict = check_telemetry(body, "probe1", FIELDS)
    assert isinstance(verdict, Rejection)
    assert verdict.kind == kind
    assert text in verdict.message


def test_a_repeated_seq_is_a_duplicate_unless_the_node_restarted() -> None:
    first = check_telemetry(payload(seq=5), "probe1", FIELDS)
    assert isinstance(first, Telemetry)
    last = LastSeen(first.seq, first.at)
    dup = check_telemetry(payload(seq=5), "probe1", FIELDS, last)
    assert isinstance(dup, Rejection)
    assert dup.kind == "duplicate"
    older = check_telemetry(payload(seq=3), "probe1", FIELDS, last)
    assert isinstance(older, Rejection)
    restarted = check_telemetry(payload(seq=1, at="2026-01-01T18:05:00Z"), "probe1", FIELDS, last)
    assert isinstance(restarted, Telemetry)
    assert isinstance(check_telemetry(payload(seq=6), "probe1", FIELDS, last), Telemetry)


# --- the adapter ------------------------------------------------------------------------------


def test_attach_subscribes_to_each_mqtt_sensor_only() -> None:
    _, client, _, _ = bridge()
    assert client.subscribed == [("rst/s1/device/probe1/telemetry", 0)]


def test_readings_become_qos0_telemetry_with_a_growing_seq() -> None:
    b, client, _, _ = bridge()
    b.send(DeviceReadings("fryer1", AT, {"oil": 180.5, "on": True}))
    b.send(DeviceReadings("fryer1", AT, {"oil": 181}))
    (t1, body1, qos, retain), (_, body2, _, _) = client.published
    assert t1 == "rst/s1/device/fryer1/telemetry"
    assert (qos, retain) == (0, False)
    first, second = json.loads(body1), json.loads(body2)
    assert first["values"] == {"oil": 180.5, "on": True}
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["v"] == 1
    assert b.stats.telemetry_sent == 2


def test_telemetry_that_cannot_go_out_is_counted_not_queued() -> None:
    b, client, _, _ = bridge()
    client.up = False
    b.send(DeviceReadings("fryer1", AT, {"oil": 1}))
    assert client.published == []
    assert b.stats.telemetry_dropped == 1


def test_availability_becomes_a_retained_status_with_the_role_and_is_republished() -> None:
    b, client, _, _ = bridge()
    b.send(AvailabilityChanged("fryer1", DeviceState.DEGRADED, "a poll failed", AT))
    b.send(AvailabilityChanged("probe1", DeviceState.OFFLINE, "silent", AT))
    (topic, body, qos, retain), (_, body2, _, _) = client.published
    assert topic == "rst/s1/device/fryer1/status"
    assert (qos, retain) == (1, True)
    assert json.loads(body)["role"] == "appliance"
    assert json.loads(body)["state"] == "degraded"
    assert json.loads(body2)["role"] == "sensor"
    client.published.clear()
    for cb in client.callbacks:
        cb(up=True)  # the MQTT client reconnected
    assert [p[0] for p in client.published] == [
        "rst/s1/device/fryer1/status",
        "rst/s1/device/probe1/status",
    ]


def test_sensor_telemetry_becomes_readings_and_nothing_else_reaches_the_bridge() -> None:
    b, client, readings, dispatcher = bridge()
    # Only the sensors' own topics are claimed: not device/+/telemetry, which would bring
    # every Modbus reading the gateway publishes back to it.
    assert dispatcher.filters == {"rst/s1/device/probe1/telemetry": "devices"}
    client.handler(message("rst/s1/device/probe1/telemetry", payload(values={"temp_c": 4.0})))
    other = message("rst/s1/kds/grill/events", b"{}")
    client.handler(other)
    modbus_echo = message("rst/s1/device/fryer1/telemetry", b"{}")
    client.handler(modbus_echo)
    assert readings == [DeviceReadings("probe1", AT, {"temp_c": 4.0})]
    assert dispatcher.stats.unclaimed == 2
    assert b.stats.sensor_accepted == 1


def test_bad_sensor_payloads_are_counted_logged_once_and_never_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.devices.bridge")
    b, client, readings, _ = bridge()
    topic = "rst/s1/device/probe1/telemetry"
    hot = payload(values={"temp_c": 99.0})
    for body in [b"{", b"\xff\xfe", hot, hot, payload(seq=3), payload(seq=3)]:
        client.handler(message(topic, body))
    assert b.stats.sensor_rejected == {"invalid": 2, "out of range": 2}
    assert b.stats.sensor_duplicates == 1
    assert b.stats.sensor_accepted == 1
    assert len(readings) == 1
    assert len(caplog.records) == 2  # once per (device, kind)


def test_a_float_field_is_a_float_whatever_the_json_wrote() -> None:
    fields = [
        MqttField(id="t", name="t", type="float"),
        MqttField(id="n", name="n", type="int"),
        MqttField(id="b", name="b", type="bool"),
    ]
    got = as_declared({"t": 21, "n": 3, "b": True}, fields)
    assert got == {"t": 21.0, "n": 3, "b": True}
    assert [type(v) for v in got.values()] == [float, int, bool]
