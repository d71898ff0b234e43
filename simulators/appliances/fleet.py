"""Several simulated appliances started and stopped together, e.g. from a site file's devices."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Self

from simulators.appliances.server import SimulatedAppliance

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from types import TracebackType

    from gateway.config import DeviceInstance, SiteConfig
    from gateway.devices.profile import Profile
    from simulators.appliances.faults import FaultWindow

__all__ = ["ApplianceFleet", "appliances_for_site"]


class ApplianceFleet:
    """Appliances entered together (each on its own port) and left together.

    Example (three fridges, one black-holed, one restarted)::

        profile = load_profiles()["walkin-fridge"]
        fleet = ApplianceFleet(
            SimulatedAppliance(profile, device_id=f"fridge-{n}") for n in range(1, 4)
        )
        async with fleet:
            devices = fleet.instances()        # DeviceInstance entries for a SiteConfig
            fleet["fridge-2"].hang()
            await fleet["fridge-3"].go_away()
            await fleet["fridge-3"].come_back()
    """

    def __init__(self, appliances: Iterable[SimulatedAppliance]) -> None:
        """Keep the appliances (not started yet).

        Raises:
            ValueError: two appliances share a device id, or a fixed host and port.
        """
        self._by_id: dict[str, SimulatedAppliance] = {}
        ports: set[tuple[str, int]] = set()
        for a in appliances:
            if a.device_id in self._by_id:
                raise ValueError(f"device id {a.device_id!r} appears twice")
            if a.port and (a.host, a.port) in ports:
                raise ValueError(
                    f"{a.device_id}: {a.host}:{a.port} is taken by another appliance "
                    "(each simulated appliance has its own port)"
                )
            ports.add((a.host, a.port))
            self._by_id[a.device_id] = a
        self._stack: AsyncExitStack | None = None

    def __getitem__(self, device_id: str) -> SimulatedAppliance:
        """An appliance by device id."""
        return self._by_id[device_id]

    def __iter__(self) -> Iterator[SimulatedAppliance]:
        """The appliances, in the order given."""
        return iter(self._by_id.values())

    def __len__(self) -> int:
        """How many appliances."""
        return len(self._by_id)

    def instances(self, **fields: Any) -> list[DeviceInstance]:
        """Site-file device entries for every appliance (ports are known once entered)."""
        return [a.instance(**fields) for a in self]

    async def __aenter__(self) -> Self:
        """Start every appliance; if one fails, the ones started are stopped again."""
        async with AsyncExitStack() as stack:
            for a in self:
                await stack.enter_async_context(a)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop every appliance (in reverse order)."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)


def appliances_for_site(
    cfg: SiteConfig,
    profiles: Mapping[str, Profile],
    *,
    only: Sequence[str] = (),
    faults: Mapping[str, Sequence[FaultWindow]] | None = None,
    **options: Any,
) -> list[SimulatedAppliance]:
    """One appliance per Modbus device of the site file (MQTT sensor nodes are skipped).

    Args:
        cfg: the site; each Modbus device's host must be a loopback address.
        profiles: profiles by id (``load_profiles(cfg.devices_profiles)``).
        only: device ids to simulate (default: every Modbus device).
        faults: fault schedules by device id.
        **options: passed to every :class:`SimulatedAppliance` (``speed``, ``tick_s`` ...).

    Raises:
        ValueError: an unknown profile or device id, a device without a host or with a
            non-loopback one, or a fault for a device that is not simulated.
    """
    faults = dict(faults or {})
    wanted = set(only)
    known = {d.id for d in cfg.devices}
    unknown = sorted((wanted | set(faults)) - known)
    if unknown:
        raise ValueError(f"no such device in the site file: {', '.join(unknown)}")
    out: list[SimulatedAppliance] = []
    for d in cfg.devices:
        if wanted and d.id not in wanted:
            continue
        profile = profiles.get(d.profile)
        if profile is None:
            raise ValueError(f"device {d.id!r}: unknown profile {d.profile!r}")
        if profile.profile.protocol != "modbus":
            continue
        if d.host is None:
            raise ValueError(f"device {d.id!r} has no host")
        appliance = SimulatedAppliance(
            profile, device_id=d.id, host=d.host, port=d.port, unit=d.unit,
            faults=faults.pop(d.id, ()), **options,
        )  # fmt: skip
        out.append(appliance)
    if faults:
        raise ValueError(f"faults for devices that are not simulated: {', '.join(sorted(faults))}")
    return out
