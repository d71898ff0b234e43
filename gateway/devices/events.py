"""Typed events between the device adapters and the device service.

Data flows one way (``docs/design/devices.md``): the Modbus poller and the MQTT bridge turn wire
data into :class:`DeviceReadings`; the service turns poll outcomes into
:class:`AvailabilityChanged`; the MQTT bridge (a :class:`DeviceOutbox`) publishes both. No service
sees a topic, a pymodbus object or a socket.

A reading is only ever what a device said in one poll or one message: a value that could not be
read is absent from ``values``, never filled in from an earlier poll.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from datetime import datetime

    from gateway.contract import DeviceState
    from gateway.devices.codec import Value

__all__ = [
    "AvailabilityChanged",
    "DeviceEvent",
    "DeviceOutbox",
    "DeviceReadings",
    "ReadingsCallback",
]


@dataclass(frozen=True, slots=True)
class DeviceReadings:
    """Values read from one device at one time.

    Attributes:
        device: the device id from the site file.
        at: when the values were read (the service's clock).
        values: point id (Modbus) or field id (MQTT) -> engineering value; only what was read.
    """

    device: str
    at: datetime
    values: dict[str, Value]


@dataclass(frozen=True, slots=True)
class AvailabilityChanged:
    """A device's availability changed (emitted once per change, never repeated).

    Attributes:
        device: the device id from the site file.
        state: the new state.
        reason: why, in words ("3 polls failed: no answer within 0.5 s", "all reads ok").
        at: when the change was seen (the service's clock).
    """

    device: str
    state: DeviceState
    reason: str
    at: datetime


#: Everything the device service hands to its outbox.
DeviceEvent = DeviceReadings | AvailabilityChanged

#: A subscriber to readings; called in the event loop, must not block.
ReadingsCallback = Callable[[DeviceReadings], None]


class DeviceOutbox(Protocol):
    """What the device service needs from the adapter that carries its output."""

    def send(self, event: DeviceEvent) -> None:
        """Hand one event to the wire without blocking (telemetry may be dropped; status not)."""
        ...
