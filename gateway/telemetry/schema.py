"""The one telemetry schema: what a reading of a device becomes in a time-series database.

* measurement: the device profile's kind (``fridge``, ``fryer``, ``probe``...);
* tags: ``site``, ``device``, ``station`` and ``location`` (the last two only where the site file
  sets them), so a chart can group by any of them;
* fields: one per point id (Modbus) or field id (MQTT sensor node), with the point's own type:
  ``bool`` for bits, ``str`` for text, an integer for an unscaled integer register, a float
  otherwise (``gateway.devices.codec.decode_point``), and a float for every MQTT ``float`` field
  whatever its JSON spelled (``gateway.devices.bridge.as_declared``): a field keeps one type;
* timestamp: when the reading was taken (the poll, or the sensor node's own ``at``), never when
  it was written.

Readings of Modbus polling and of MQTT sensor nodes land in the same schema. Which points are
food-safety records comes from the profile (``food_safety = true``): the history keeps those
apart from the others so that it can drop the others first (``gateway.telemetry.history``).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.config import DeviceInstance, SiteConfig
    from gateway.devices.codec import Value
    from gateway.devices.profile import Profile

__all__ = ["DeviceSchema", "schemas_for_site", "split_values"]


@dataclass(frozen=True, slots=True)
class DeviceSchema:
    """How one device's readings are written.

    Attributes:
        device: the device id.
        measurement: the profile's kind.
        tags: tag -> value, without empty ones.
        food_safety: the point (or field) ids that are food-safety records.
        units: point id -> unit, for people (``gateway telemetry query``).
    """

    device: str
    measurement: str
    tags: tuple[tuple[str, str], ...]
    food_safety: frozenset[str]
    units: Mapping[str, str]


def schema_for(site_id: str, device: DeviceInstance, profile: Profile) -> DeviceSchema:
    """The schema of one device of the site."""
    tags = [("site", site_id), ("device", device.id)]
    if device.station:
        tags.append(("station", device.station))
    if device.location:
        tags.append(("location", device.location))
    points = profile.points or profile.fields
    return DeviceSchema(
        device=device.id,
        measurement=profile.profile.kind.value,
        tags=tuple(sorted(tags)),
        food_safety=frozenset(p.id for p in points if p.food_safety),
        units={p.id: p.unit for p in points},
    )


def schemas_for_site(cfg: SiteConfig, profiles: Mapping[str, Profile]) -> dict[str, DeviceSchema]:
    """The schema of every device of the site, by device id."""
    return {d.id: schema_for(cfg.site.id, d, profiles[d.profile]) for d in cfg.devices}


def split_values(
    values: Mapping[str, Value], food_safety: frozenset[str]
) -> tuple[dict[str, Value], dict[str, Value]]:
    """``values`` as (food-safety points, the others); either may be empty."""
    if not food_safety:
        return {}, dict(values)
    safe = {k: v for k, v in values.items() if k in food_safety}
    if not safe:
        return {}, dict(values)
    return safe, {k: v for k, v in values.items() if k not in food_safety}
