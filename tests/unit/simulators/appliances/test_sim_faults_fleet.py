"""Fault specs, building appliances from a site file, the demo's random kitchen life."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import DeviceInstance, SiteConfig
from gateway.devices.profile import load_profiles
from gateway.site_file import load_site
from simulators.appliances import (
    ApplianceFleet,
    Fault,
    FaultWindow,
    SimulatedAppliance,
    appliances_for_site,
    model_for,
    parse_fault,
)
from simulators.appliances.activity import KitchenActivity
from simulators.appliances.cold_room import ColdRoomModel
from simulators.appliances.fryer import FryerModel
from simulators.appliances.registers import RegisterBank

ROOT = Path(__file__).resolve().parents[4]
PROFILES = load_profiles()
SITE = load_site(ROOT / "examples" / "demo-site.toml")


def site_with(*devices: DeviceInstance) -> SiteConfig:
    return SITE.model_copy(update={"devices": devices})


@pytest.mark.parametrize(
    ("spec", "device", "window"),
    [
        ("fridge-1:hang@30+20", "fridge-1", FaultWindow(Fault.HANG, 30.0, 20.0)),
        ("fryer.a:gone@0", "fryer.a", FaultWindow(Fault.GONE, 0.0)),
        (
            "fryer-1:stuck=vat1_oil_temp@1.5",
            "fryer-1",
            FaultWindow(Fault.STUCK, 1.5, None, "vat1_oil_temp"),
        ),
    ],
)
def test_fault_specs_parse(spec: str, device: str, window: FaultWindow) -> None:
    assert parse_fault(spec) == (device, window)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fridge-1:hang", "DEVICE:FAULT"),
        ("fridge-1:melt@3", "unknown fault 'melt'"),
        ("fridge-1:stuck@3", "needs a point"),
        ("fridge-1:hang=x@3", "needs a point"),
        ("fridge-1:hang@3+0", "lasts > 0 s"),
    ],
)
def test_bad_fault_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(spec)


def test_site_devices_become_appliances_and_mqtt_nodes_are_skipped() -> None:
    cfg = site_with(
        DeviceInstance(id="fridge-1", profile="walkin-fridge", host="127.0.0.1", port=15021),
        DeviceInstance(id="fry-1", profile="fryer-2vat", host="localhost", port=15022, unit=3),
        DeviceInstance(id="probe-1", profile="fridge-probe-node"),
    )
    faults = {"fridge-1": [FaultWindow(Fault.COMPRESSOR, 5.0)]}
    apps = appliances_for_site(cfg, PROFILES, faults=faults, speed=10.0)
    assert [(a.device_id, a.port, a.unit, a.host) for a in apps] == [
        ("fridge-1", 15021, 1, "127.0.0.1"),
        ("fry-1", 15022, 3, "127.0.0.1"),
    ]
    assert apps[0].speed == 10.0
    assert apps[1].instance(station="fry") == DeviceInstance(
        id="fry-1", profile="fryer-2vat", host="127.0.0.1", port=15022, unit=3, station="fry"
    )


@pytest.mark.parametrize(
    ("devices", "kwargs", "message"),
    [
        ((DeviceInstance(id="f", profile="walkin-fridge", host="10.0.0.5"),), {}, "loopback only"),
        ((DeviceInstance(id="f", profile="walkin-fridge"),), {}, "has no host"),
        ((DeviceInstance(id="f", profile="nope", host="127.0.0.1"),), {}, "unknown profile"),
        ((), {"only": ["ghost"]}, "no such device"),
        (
            (DeviceInstance(id="p", profile="fridge-probe-node"),),
            {"faults": {"p": [FaultWindow(Fault.HANG, 1.0)]}},
            "not simulated",
        ),
    ],
)
def test_site_problems_are_refused(
    devices: tuple[DeviceInstance, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        appliances_for_site(site_with(*devices), PROFILES, **kwargs)  # type: ignore[arg-type]


def test_faults_that_do_not_fit_the_appliance_are_refused() -> None:
    with pytest.raises(ValueError, match="no compressor"):
        SimulatedAppliance(PROFILES["fryer-2vat"], faults=[FaultWindow(Fault.COMPRESSOR, 1.0)])
    with pytest.raises(ValueError, match="no rinse booster"):
        SimulatedAppliance(PROFILES["walkin-fridge"], faults=[FaultWindow(Fault.BOOSTER, 1.0)])
    with pytest.raises(KeyError, match="no point 'nope'"):
        SimulatedAppliance(
            PROFILES["walkin-fridge"], faults=[FaultWindow(Fault.STUCK, 1.0, point="nope")]
        )


def test_without_physics_there_is_no_model() -> None:
    app = SimulatedAppliance(PROFILES["walkin-fridge"], physics=False)
    with pytest.raises(RuntimeError, match="without physics"):
        _ = app.model
    with pytest.raises(TypeError, match="driven by NoneType"):
        app.model_as(ColdRoomModel)
    with pytest.raises(ValueError, match="speed"):
        SimulatedAppliance(PROFILES["walkin-fridge"], speed=0)
    fridge = SimulatedAppliance(PROFILES["walkin-fridge"])
    assert fridge.model_as(ColdRoomModel) is fridge.model
    with pytest.raises(TypeError, match="driven by ColdRoomModel"):
        fridge.model_as(FryerModel)


def test_a_fleet_refuses_duplicate_ids_and_ports() -> None:
    fridge = PROFILES["walkin-fridge"]
    with pytest.raises(ValueError, match="appears twice"):
        ApplianceFleet([SimulatedAppliance(fridge), SimulatedAppliance(fridge)])
    with pytest.raises(ValueError, match="is taken"):
        ApplianceFleet(
            [
                SimulatedAppliance(fridge, device_id="a", port=15030),
                SimulatedAppliance(fridge, device_id="b", port=15030),
            ]
        )


def test_every_shipped_modbus_profile_has_physics() -> None:
    for profile in PROFILES.values():
        if profile.profile.protocol == "modbus":
            model_for(RegisterBank(profile)).step(60)


def test_kitchen_activity_makes_things_happen_reproducibly() -> None:
    def run(seed: int) -> list[object]:
        banks = [RegisterBank(p) for p in PROFILES.values() if p.profile.protocol == "modbus"]
        models = [model_for(b) for b in banks]
        activity = KitchenActivity(models, seed=seed)
        for _ in range(360):
            activity.step(10.0)
            for m in models:
                m.step(10.0)
        return [b.words(p.id) for b in banks for p in b.profile.points]

    first = run(7)
    assert first == run(7)
    banks = {p.profile.id: RegisterBank(p) for p in PROFILES.values() if p.points}
    models = {k: model_for(b) for k, b in banks.items()}
    activity = KitchenActivity(models.values(), seed=1)
    for _ in range(360):
        activity.step(10.0)
        for m in models.values():
            m.step(10.0)
    assert banks["dishwasher"].number("cycle_count") > 5
    assert banks["scale-4ch"].number("ch1_gross") != 6200
