"""The MQTT adapter of the devices: telemetry and status out, MQTT sensor nodes' telemetry in.

Out (a :class:`~gateway.devices.events.DeviceOutbox` for the device service):

* :class:`DeviceReadings` -> :class:`Telemetry` on ``rst/{site}/device/{device}/telemetry``, QoS 0:
  a lost reading is superseded by the next one, and QoS 1 for every poll of every appliance
  would only fill the broker's queues. ``seq`` counts from 1 per gateway run.
* :class:`AvailabilityChanged` -> retained :class:`DeviceStatus` (role ``appliance`` or
  ``sensor``) on ``rst/{site}/device/{device}/status``, QoS 1. The latest status of every device
  is published again after each reconnect of the MQTT client.

In: MQTT sensor nodes publish :class:`Telemetry` themselves. The bridge subscribes to the telemetry
topic of each device whose profile is ``mqtt`` (one topic each rather than ``device/+/telemetry``,
which would bring every Modbus reading the gateway publishes back to it), checks each payload
against the profile's fields, and hands :class:`DeviceReadings` to the service. A payload is all
or nothing: one implausible value makes the node suspect for the rest of that message. A bad
payload is counted by reason and logged once per device and reason; it never raises. A
``seq`` not above the last one taken is a duplicate (dropped, counted) unless ``at`` is later,
which is a node that restarted and counts from 1 again.

The sensors' topics are claimed on the :class:`~gateway.transport.dispatch.Dispatcher`, so this
bridge gets those messages and no others.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from gateway.codec import encode
from gateway.contract import DeviceStatus, Telemetry, Topics
from gateway.devices.events import AvailabilityChanged, DeviceReadings
from gateway.devices.profile import DeviceKind

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime

    from gateway.config import DeviceInstance
    from gateway.devices.codec import Value
    from gateway.devices.events import DeviceEvent
    from gateway.devices.profile import MqttField, Profile
    from gateway.transport.dispatch import Dispatcher
    from gateway.transport.mqtt import InboundMessage, MqttClient

__all__ = ["BridgeStats", "DeviceBridge", "LastSeen", "Rejection", "check_telemetry"]

log = logging.getLogger(__name__)

MAX_PAYLOAD = 16_384  # a sensor node's reading is a few hundred bytes
_MAX_TEXT = 200
_SENSOR_KINDS = frozenset({DeviceKind.SCALE, DeviceKind.LEVEL, DeviceKind.PROBE})
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "float": (int, float),
    "int": (int,),
    "bool": (bool,),
    "str": (str,),
}


@dataclass(slots=True)
class BridgeStats:
    """Counters of the device bridge, exposed as data.

    Attributes:
        telemetry_sent: telemetry messages handed to the MQTT client.
        telemetry_dropped: telemetry the client refused (QoS 0 while disconnected).
        status_sent: status messages published.
        sensor_accepted: sensor payloads turned into readings.
        sensor_duplicates: sensor payloads dropped as duplicates (seq not above the last).
        sensor_rejected: sensor payloads rejected, by reason.
    """

    telemetry_sent: int = 0
    telemetry_dropped: int = 0
    status_sent: int = 0
    sensor_accepted: int = 0
    sensor_duplicates: int = 0
    sensor_rejected: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class LastSeen:
    """The last message taken from a sensor node (what a duplicate is judged against).

    Attributes:
        seq: its sequence number.
        at: its reading time.
    """

    seq: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a sensor payload is not a valid reading.

    Attributes:
        kind: the counter key ("invalid", "wrong type", "out of range", "duplicate", ...).
        message: what is wrong and where (``values.temp_c: 80.0 outside -40.0..50.0``).
    """

    kind: str
    message: str


def check_telemetry(
    payload: bytes, device: str, fields: Sequence[MqttField], last: LastSeen | None = None
) -> Telemetry | Rejection:
    """Validate a sensor node's payload against its profile's fields. Pure; never raises.

    Args:
        payload: the MQTT payload.
        device: the device id from the topic.
        fields: the profile's fields.
        last: the last accepted message of this device (for duplicates), if any.

    Returns:
        The telemetry, every value of the right type and inside its range; or the rejection
        (``kind`` "duplicate" for a repeated ``seq``).
    """
    if len(payload) > MAX_PAYLOAD:
        return Rejection("too large", f"{len(payload)} bytes (at most {MAX_PAYLOAD})")
    try:
        msg = Telemetry.model_validate_json(payload)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(payload)"
        return Rejection("invalid", f"{where}: {first['msg']}")
    return _envelope_problem(msg, device, last) or _values_problem(msg, fields) or msg


def _envelope_problem(msg: Telemetry, device: str, last: LastSeen | None) -> Rejection | None:
    if msg.device != device:
        return Rejection("wrong device", f"device {msg.device!r} published on {device}'s topic")
    if msg.at.tzinfo is None:
        return Rejection("invalid", "at: needs a UTC offset (e.g. 2026-01-01T18:00:00Z)")
    if last is not None and msg.seq <= last.seq and msg.at <= last.at:
        return Rejection("duplicate", f"seq {msg.seq} is not above {last.seq}")
    return None


def _values_problem(msg: Telemetry, fields: Sequence[MqttField]) -> Rejection | None:
    unknown = sorted(set(msg.values) - {f.id for f in fields})
    if unknown:
        return Rejection("unknown field", f"values.{unknown[0]} is not in the profile")
    for f in fields:
        if f.id in msg.values:
            problem = _value_problem(f, msg.values[f.id])
            if problem is not None:
                return problem
        elif f.required:
            return Rejection("missing field", f"values.{f.id} is required")
    return None


def _value_problem(f: MqttField, value: Value) -> Rejection | None:
    # bool is an int in Python, but `true` for a temperature is a broken node, not 1 degree.
    if not isinstance(value, _JSON_TYPES[f.type]) or (isinstance(value, bool) and f.type != "bool"):
        return Rejection("wrong type", f"values.{f.id}: expected {f.type}, got {value!r}")
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return Rejection("out of range", f"values.{f.id}: over {_MAX_TEXT} characters")
    if isinstance(value, str | bool):
        return None
    if not math.isfinite(value):
        return Rejection("out of range", f"values.{f.id}: {value!r} is not a number")
    if (f.min is not None and value < f.min) or (f.max is not None and value > f.max):
        low = "-inf" if f.min is None else f"{f.min:g}"
        high = "inf" if f.max is None else f"{f.max:g}"
        return Rejection("out of range", f"values.{f.id}: {value!r} outside {low}..{high}")
    return None


def as_declared(values: Mapping[str, Value], fields: Sequence[MqttField]) -> dict[str, Value]:
    """``values`` with each float field a float, even where the node's JSON wrote ``21``.

    A field keeps one type for good: a time-series database refuses ``21i`` in a field that
    has held ``21.5`` (InfluxDB answers 422, field type conflict).
    """
    floats = {f.id for f in fields if f.type == "float"}
    # type() rather than isinstance(): a bool is an int, and it is checked as one already.
    return {k: float(v) if k in floats and type(v) is int else v for k, v in values.items()}


class DeviceBridge:
    """Publishes the device service's events and feeds it MQTT sensor nodes' readings.

    Attributes:
        stats: the counters.
    """

    def __init__(
        self,
        site: str,
        client: MqttClient,
        devices: Sequence[DeviceInstance],
        profiles: Mapping[str, Profile],
    ) -> None:
        """Bind to a site's topics on a (maybe not yet connected) client."""
        self.topics = Topics(site)
        self._client = client
        self._roles: dict[str, Literal["appliance", "sensor"]] = {}
        self._sensors: dict[str, tuple[MqttField, ...]] = {}
        for d in devices:
            profile = profiles.get(d.profile)
            if profile is None:
                continue
            sensor = profile.profile.kind in _SENSOR_KINDS
            self._roles[d.id] = "sensor" if sensor else "appliance"
            if profile.profile.protocol == "mqtt":
                self._sensors[d.id] = profile.fields
        self._seq: dict[str, int] = {}
        self._last: dict[str, LastSeen] = {}
        self._status: dict[str, bytes] = {}
        self._logged: set[tuple[str, str]] = set()
        self._submit: Callable[[DeviceReadings], None] | None = None
        self.stats = BridgeStats()

    owner = "devices"

    def attach(self, submit: Callable[[DeviceReadings], None], dispatcher: Dispatcher) -> None:
        """Claim the sensors' telemetry topics on ``dispatcher``; republish status on reconnect.

        Args:
            submit: takes the readings of sensor nodes (``DeviceService.submit``).
            dispatcher: routes the MQTT client's messages by topic.
        """
        self._submit = submit
        for device in self._sensors:
            topic = self.topics.device_telemetry(device)
            dispatcher.route(topic, self._on_message, qos=0, owner=self.owner)
        self._client.on_connection_change(lambda up: self.republish_status() if up else None)

    # --- out ----------------------------------------------------------------------------

    def send(self, event: DeviceEvent) -> None:
        """Publish one event of the device service (``DeviceOutbox``)."""
        if isinstance(event, DeviceReadings):
            seq = self._seq[event.device] = self._seq.get(event.device, 0) + 1
            body = encode(Telemetry(device=event.device, at=event.at, seq=seq, values=event.values))
            if self._client.publish(self.topics.device_telemetry(event.device), body, qos=0):
                self.stats.telemetry_sent += 1
            else:
                self.stats.telemetry_dropped += 1
        elif isinstance(event, AvailabilityChanged):
            role = self._roles.get(event.device, "appliance")
            status = DeviceStatus(device=event.device, state=event.state, role=role, at=event.at)
            self._status[event.device] = body = encode(status)
            self._client.publish(self.topics.device_status(event.device), body, retain=True)
            self.stats.status_sent += 1

    def republish_status(self) -> None:
        """Publish every device's latest status again (a broker may have lost retained ones)."""
        for device, body in self._status.items():
            self._client.publish(self.topics.device_status(device), body, retain=True)

    # --- in -----------------------------------------------------------------------------

    def _on_message(self, msg: InboundMessage) -> None:
        # Only our sensors' exact topics are routed here: rst/{site}/device/{device}/telemetry.
        device = msg.topic.split("/", 4)[3]
        fields = self._sensors[device]
        self._client.ack(msg)  # a no-op at QoS 0; a reading is never worth a redelivery
        telemetry = check_telemetry(msg.payload, device, fields, self._last.get(device))
        if isinstance(telemetry, Rejection):
            self._reject(device, telemetry)
            return
        self._last[device] = LastSeen(telemetry.seq, telemetry.at)
        self.stats.sensor_accepted += 1
        if self._submit is not None:
            values = as_declared(telemetry.values, fields)
            self._submit(DeviceReadings(device, telemetry.at, values))

    def _reject(self, device: str, bad: Rejection) -> None:
        if bad.kind == "duplicate":
            self.stats.sensor_duplicates += 1
            log.debug("dropped a duplicate reading of %s: %s", device, bad.message)
            return
        self.stats.sensor_rejected[bad.kind] += 1
        if (device, bad.kind) not in self._logged:
            self._logged.add((device, bad.kind))
            log.warning("rejected a reading of sensor %s (%s): %s", device, bad.kind, bad.message)
