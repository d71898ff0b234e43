r"""Simulated Modbus appliances: one pymodbus TCP server per device, with physics and faults.

Each :class:`SimulatedAppliance` serves the registers of one shipped (or site) Modbus profile on
a loopback port. The register layout is derived from the profile and every value goes through
the gateway's codec (:mod:`simulators.appliances.registers`), so the simulator and the profile
cannot disagree. Physics models (:mod:`~simulators.appliances.cold_room`,
:mod:`~simulators.appliances.fryer`, :mod:`~simulators.appliances.oven`,
:mod:`~simulators.appliances.dishwasher`, :mod:`~simulators.appliances.scale`,
:mod:`~simulators.appliances.tank`) step on a timer, ``speed`` times faster than real time; gateway
writes land in the registers and the physics follows them. Faults
(:mod:`~simulators.appliances.faults`): a black hole (``hang``), a stopped server (``gone``), a
stuck sensor, a failed compressor or rinse booster, on command or on a schedule.

For tests::

    profiles = load_profiles()
    async with ApplianceFleet(
        SimulatedAppliance(profiles["walkin-fridge"], device_id=f"fridge-{n}") for n in (1, 2, 3)
    ) as fleet:
        site_devices = fleet.instances()      # host/port/unit for a SiteConfig
        fleet["fridge-2"].hang()              # reads time out
        await fleet["fridge-3"].go_away()     # connection refused
        await fleet["fridge-3"].come_back()   # same port again

For the demo (devices of a site file, whose hosts must be loopback)::

    python -m simulators.appliances --config examples/demo-site.toml --speed 60 --activity \
        --fault fridge-1:compressor@60
    python -m simulators.appliances --profile walkin-fridge@15020 --profile fryer-2vat
"""

from simulators.appliances.faults import Fault, FaultWindow, parse_fault
from simulators.appliances.fleet import ApplianceFleet, appliances_for_site
from simulators.appliances.models import MODELS, model_for
from simulators.appliances.registers import RegisterBank, WriteResult
from simulators.appliances.server import SimulatedAppliance

__all__ = [
    "MODELS",
    "ApplianceFleet",
    "Fault",
    "FaultWindow",
    "RegisterBank",
    "SimulatedAppliance",
    "WriteResult",
    "appliances_for_site",
    "model_for",
    "parse_fault",
]
