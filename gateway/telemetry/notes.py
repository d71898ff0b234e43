"""The gateway's own series beside the readings: device availability and alert events.

Written through :meth:`gateway.telemetry.recorder.Recorder.note`, so they are kept in the history
and streamed like readings (docs/telemetry.md lists them with the readings' schema):

* ``availability``, tags ``site``, ``device``: fields ``state`` (``online``, ``degraded``,
  ``offline``) and ``online`` (a bool), one point per change;
* ``alert``, tags ``site``, ``device``, ``rule``, ``priority``: fields ``event`` (``opened``,
  ``escalated``, ``cleared``, ...), ``active`` (a bool: whether the alert is open after it), and
  ``value`` and ``limit`` where the rule has them; one point per event.

Pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.contract import DeviceState
from gateway.telemetry.recorder import Note

if TYPE_CHECKING:
    from datetime import datetime

    from gateway.devices.codec import Value
    from gateway.devices.events import AvailabilityChanged

__all__ = ["NOTE_FIELDS", "alert_note", "availability_note"]

#: Every field each note measurement can carry (a dashboard may only ask for these).
NOTE_FIELDS: dict[str, frozenset[str]] = {
    "availability": frozenset({"state", "online"}),
    "alert": frozenset({"event", "active", "value", "limit"}),
}


def availability_note(site: str, change: AvailabilityChanged) -> Note:
    """The ``availability`` point of one availability change."""
    values: dict[str, Value] = {
        "state": change.state.value,
        "online": change.state is DeviceState.ONLINE,
    }
    tags = {"site": site, "device": change.device}
    return Note(change.device, "availability", tags, change.at, values)


def alert_note(
    site: str,
    *,
    device: str,
    rule: str,
    priority: str,
    event: str,
    active: bool,
    at: datetime,
    value: float | None = None,
    limit: float | None = None,
) -> Note:
    """The ``alert`` point of one alert event."""
    values: dict[str, Value] = {"event": event, "active": active}
    if value is not None:
        values["value"] = float(value)
    if limit is not None:
        values["limit"] = float(limit)
    tags = {"site": site, "device": device, "rule": rule, "priority": priority}
    return Note(device, "alert", tags, at, values)
