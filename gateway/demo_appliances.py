"""The demo's appliances: simulated Modbus appliances for the site's devices, and what to show.

:class:`DemoAppliances` serves one simulated appliance (a pymodbus server with physics, from
:mod:`simulators.appliances`) per Modbus device of the site, on the device's loopback address,
with random kitchen life (:class:`~simulators.appliances.activity.KitchenActivity`: doors open,
baskets drop, dishes go through) at the demo's speed. A port that is taken on this machine does
not stop the demo: that appliance is served on a free loopback port instead, and so is a device
whose host is not a loopback address, so the demo never talks to a real appliance.
:attr:`DemoAppliances.cfg` is the site pointed at where the appliances really are
(:func:`repoint`); :attr:`DemoAppliances.moved` says which moved.

The view reads the devices as a maintenance screen would, from what the gateway publishes on
MQTT (each device's retained status and its telemetry), never from the gateway's insides:
:func:`devices_summary` and :func:`devices_table` show how many are online and, through
:func:`key_readings`, the few values of each device's latest telemetry worth a glance.
"""

from __future__ import annotations

import ipaddress
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table

from gateway.contract import DeviceState
from gateway.devices.profile import DeviceKind
from gateway.lifecycle import Service
from simulators.appliances.activity import KitchenActivity
from simulators.appliances.server import SimulatedAppliance

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from gateway.config import DeviceInstance, SiteConfig
    from gateway.contract import TelemetryValue
    from gateway.devices.profile import Profile

__all__ = [
    "KEY_POINTS",
    "SUMMARY_KINDS",
    "DemoAppliances",
    "Moved",
    "devices_summary",
    "devices_table",
    "key_readings",
    "repoint",
    "simulated_address",
]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

#: The readings worth a glance, per kind of device: (point or field id, label), the headline
#: first. Points a (site) profile does not have are skipped.
KEY_POINTS: dict[DeviceKind, tuple[tuple[str, str], ...]] = {
    DeviceKind.FRYER: (("vat1_oil_temp", "vat 1 oil"), ("vat2_oil_temp", "vat 2 oil")),
    DeviceKind.OVEN: (("cabinet_temp", "cabinet"), ("core_temp", "core")),
    DeviceKind.FRIDGE: (("cabinet_temp", ""),),
    DeviceKind.FREEZER: (("cabinet_temp", ""),),
    DeviceKind.DISHWASHER: (("wash_temp", "wash"), ("rinse_temp", "rinse")),
    DeviceKind.SCALE: (("ch1_net", "pan 1"), ("ch2_net", "pan 2")),
    DeviceKind.LEVEL: (("level_pct", ""),),
    DeviceKind.PROBE: (("temp_c", ""),),
}
#: Whose headline reading the one-line summary carries: the first device of each kind.
SUMMARY_KINDS = (DeviceKind.FRIDGE, DeviceKind.FRYER)


# --- pure helpers --------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def simulated_address(device: DeviceInstance) -> tuple[str, int]:
    """Where the demo serves a Modbus device: its own address on loopback, else a free port.

    Returns:
        ``(host, port)``; port 0 (any free one, on 127.0.0.1) for a device whose host is not
        a loopback address: the demo must not pretend to be, or talk to, a real appliance.
    """
    if device.host is not None and _is_loopback(device.host):
        return device.host, device.port
    return LOOPBACK, 0


@dataclass(frozen=True, slots=True)
class Moved:
    """A device the demo serves at another address than its site entry gives.

    Attributes:
        device: the device id.
        wanted: the site entry's address (``host:port``).
        host: where the simulated appliance listens.
        port: its port.
        reason: why (``"is taken"``, ``"is not on this machine"``).
    """

    device: str
    wanted: str
    host: str
    port: int
    reason: str

    def line(self) -> str:
        """One line for the demo's output."""
        return f"{self.device} simulated on {self.host}:{self.port} ({self.wanted} {self.reason})"


def repoint(cfg: SiteConfig, moved: Iterable[Moved]) -> SiteConfig:
    """The site with each moved device's host and port set to where it is served."""
    where = {m.device: m for m in moved}
    if not where:
        return cfg
    devices = tuple(
        d.model_copy(update={"host": where[d.id].host, "port": where[d.id].port})
        if d.id in where
        else d
        for d in cfg.devices
    )
    return cfg.model_copy(update={"devices": devices})


def _unit(profile: Profile, point_id: str) -> str:
    point = profile.point(point_id)
    if point is not None:
        return point.unit
    field = next((f for f in profile.fields if f.id == point_id), None)
    return "" if field is None else field.unit


def _format(value: TelemetryValue, unit: str) -> str:
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.1f}"
    else:
        text = str(value)
    return f"{text} {unit}" if unit else text


def key_readings(
    profile: Profile, values: Mapping[str, TelemetryValue], *, limit: int | None = None
) -> str:
    """The device's key readings as text (``"vat 1 oil 175.0 °C, vat 2 oil 174.8 °C"``).

    Args:
        profile: the device's profile (its kind picks the points, its points give the units).
        values: the latest value of each point or field.
        limit: show at most this many (None: all of :data:`KEY_POINTS` for the kind).

    Returns:
        The readings present in ``values``, comma-separated; ``""`` when there are none.
    """
    parts = [
        " ".join(filter(None, (label, _format(values[pid], _unit(profile, pid)))))
        for pid, label in KEY_POINTS.get(profile.profile.kind, ())
        if pid in values
    ]
    return ", ".join(parts[:limit])


def devices_summary(
    devices: Sequence[DeviceInstance],
    profiles: Mapping[str, Profile],
    states: Mapping[str, DeviceState],
    readings: Mapping[str, Mapping[str, TelemetryValue]],
) -> str:
    """``devices 6/7 online (fridge-1 3.0 °C, fryer-1 vat 1 oil 175.0 °C)``.

    Args:
        devices: the site's devices (the total; a device never heard of is not online).
        profiles: profiles by id.
        states: the latest published state by device id.
        readings: the latest value of each point by device id.

    Returns:
        How many are online, and the headline reading of the first device of each of
        :data:`SUMMARY_KINDS` that has one.
    """
    online = sum(states.get(d.id) is DeviceState.ONLINE for d in devices)
    shown = []
    for kind in SUMMARY_KINDS:
        first = next((d for d in devices if profiles[d.profile].profile.kind is kind), None)
        if first is not None:
            text = key_readings(profiles[first.profile], readings.get(first.id, {}), limit=1)
            shown += [f"{first.id} {text}"] if text else []
    return f"devices {online}/{len(devices)} online" + (f" ({', '.join(shown)})" if shown else "")


def devices_table(
    devices: Sequence[DeviceInstance],
    profiles: Mapping[str, Profile],
    states: Mapping[str, DeviceState],
    readings: Mapping[str, Mapping[str, TelemetryValue]],
) -> Table:
    """The live view's table of devices: where each is, its state and its key readings."""
    online = sum(states.get(d.id) is DeviceState.ONLINE for d in devices)
    table = Table(
        "device", "where", "state", "readings", title=f"Devices {online}/{len(devices)} online"
    )
    for d in devices:
        state = states.get(d.id)
        table.add_row(
            d.id,
            d.location or d.station or "-",
            "-" if state is None else state.value,
            key_readings(profiles[d.profile], readings.get(d.id, {})) or "-",
        )
    return table


# --- the simulated appliances --------------------------------------------------------------


class DemoAppliances(Service):
    """Simulated appliances for a site's Modbus devices, with kitchen life; ready on enter.

    Attributes:
        cfg: the site, each moved device pointed at its simulated appliance (after entering).
        moved: the devices served elsewhere than their site entry says (after entering).
        appliances: the running appliances.
    """

    def __init__(
        self,
        cfg: SiteConfig,
        profiles: Mapping[str, Profile],
        *,
        speed: float,
        seed: int | None = None,
    ) -> None:
        """Keep the site and profiles; nothing listens until ``async with``.

        Args:
            cfg: the site (validated: every device names a loaded profile).
            profiles: profiles by id (``load_profiles(cfg.devices_profiles)``).
            speed: simulated seconds per real second, the demo's kitchen clock.
            seed: seed of the random kitchen life (None: random).
        """
        self.cfg = cfg
        self.moved: list[Moved] = []
        self.appliances: list[SimulatedAppliance] = []
        self._profiles = profiles
        self._speed = speed
        self._seed = seed
        self._stack: AsyncExitStack | None = None

    name = "demo-appliances"

    async def start(self) -> None:
        """Start every appliance (moving any whose port is taken), then the kitchen life.

        Raises:
            OSError: no loopback port at all could be had.
        """
        appliances: list[SimulatedAppliance] = []
        moved: list[Moved] = []
        async with AsyncExitStack() as stack:
            for device in self.cfg.devices:
                profile = self._profiles[device.profile]
                if profile.profile.protocol == "modbus":
                    appliance, move = await self._start(stack, device, profile)
                    appliances.append(appliance)
                    moved += [move] if move is not None else []
            self._stack = stack.pop_all()
        self.appliances, self.moved = appliances, moved
        self.cfg = repoint(self.cfg, self.moved)
        models = [a.model for a in appliances if a.physics_running]
        if models:
            activity = KitchenActivity(models, seed=self._seed)
            self.spawn(activity.run(self._speed), "kitchen-activity")

    async def stop(self) -> None:
        """Stop every appliance (the kitchen life has stopped)."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _start(
        self, stack: AsyncExitStack, device: DeviceInstance, profile: Profile
    ) -> tuple[SimulatedAppliance, Moved | None]:
        host, port = simulated_address(device)
        wanted = f"{device.host}:{device.port}"
        reason = "is not on this machine" if port == 0 else None
        try:
            appliance = await stack.enter_async_context(
                self._appliance(device, profile, host, port)
            )
        except OSError:
            if port == 0:
                raise
            appliance = await stack.enter_async_context(self._appliance(device, profile, host, 0))
            reason = "is taken"
        if reason is None:
            return appliance, None
        return appliance, Moved(device.id, wanted, host, appliance.port, reason)

    def _appliance(
        self, device: DeviceInstance, profile: Profile, host: str, port: int
    ) -> SimulatedAppliance:
        def make(physics: bool) -> SimulatedAppliance:
            return SimulatedAppliance(
                profile, device_id=device.id, host=host, port=port, unit=device.unit,
                speed=self._speed, physics=physics,
            )  # fmt: skip

        try:
            return make(physics=True)
        except ValueError as err:  # a site profile the physics cannot drive
            log.info("%s: static registers (%s)", device.id, err)
            return make(physics=False)
