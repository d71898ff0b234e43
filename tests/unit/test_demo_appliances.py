"""The demo's appliance helpers: where each is served, repointing the site, what the view shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from gateway.config import DeviceInstance
from gateway.contract import DeviceState
from gateway.demo_appliances import (
    Moved,
    devices_summary,
    devices_table,
    key_readings,
    repoint,
    simulated_address,
)
from gateway.devices.profile import load_profiles
from gateway.site_file import load_site

DEMO = load_site(Path(__file__).resolve().parents[2] / "examples" / "demo-site.toml")
PROFILES = load_profiles()


def device(host: str | None, port: int = 15020) -> DeviceInstance:
    return DeviceInstance(id="fryer-1", profile="fryer-2vat", host=host, port=port)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 15020)),
        ("127.0.0.9", ("127.0.0.9", 15020)),
        ("localhost", ("localhost", 15020)),
        ("::1", ("::1", 15020)),
        # Never pretend to be (or let the demo's gateway write to) a real appliance.
        ("10.0.20.31", ("127.0.0.1", 0)),
        ("fryer-1.kitchen.lan", ("127.0.0.1", 0)),
        (None, ("127.0.0.1", 0)),
    ],
)
def test_devices_are_simulated_on_loopback_only(
    host: str | None, expected: tuple[str, int]
) -> None:
    assert simulated_address(device(host)) == expected


def test_repoint_moves_only_the_moved_devices() -> None:
    moved = Moved("fridge-1", "127.0.0.1:15022", "127.0.0.1", 40123, "is taken")
    cfg = repoint(DEMO, [moved])
    by_id = {d.id: d for d in cfg.devices}
    assert (by_id["fridge-1"].host, by_id["fridge-1"].port) == ("127.0.0.1", 40123)
    assert by_id["fridge-1"].location == "Walk-in cold room"  # the rest of the entry stays
    assert [d for d in cfg.devices if d.id != "fridge-1"] == [
        d for d in DEMO.devices if d.id != "fridge-1"
    ]
    assert cfg.appliance_actions == DEMO.appliance_actions
    assert repoint(DEMO, []) is DEMO


def test_a_moved_device_says_where_and_why_in_one_line() -> None:
    moved = Moved("fridge-1", "127.0.0.1:15022", "127.0.0.1", 40123, "is taken")
    assert moved.line() == "fridge-1 simulated on 127.0.0.1:40123 (127.0.0.1:15022 is taken)"


def test_key_readings_pick_label_and_unit_from_the_profile() -> None:
    fryer = PROFILES["fryer-2vat"]
    values = {"vat1_oil_temp": 175.04, "vat2_oil_temp": 171.0, "vat1_mode": 3}
    assert key_readings(fryer, values) == "vat 1 oil 175.0 °C, vat 2 oil 171.0 °C"
    assert key_readings(fryer, values, limit=1) == "vat 1 oil 175.0 °C"
    assert key_readings(fryer, {"vat2_oil_temp": 171.0}) == "vat 2 oil 171.0 °C"
    assert key_readings(fryer, {}) == ""
    assert key_readings(PROFILES["walkin-fridge"], {"cabinet_temp": 3.25}) == "3.2 °C"
    assert key_readings(PROFILES["scale-4ch"], {"ch1_net": 5000}) == "pan 1 5000 g"
    assert key_readings(PROFILES["tank-level"], {"level_pct": 80.0}) == "80.0 %"
    # MQTT sensor nodes: units come from the profile's fields.
    assert key_readings(PROFILES["fridge-probe-node"], {"temp_c": 4.0}) == "4.0 °C"


def test_summary_counts_devices_online_and_shows_the_headline_readings() -> None:
    devices = DEMO.devices
    states = {d.id: DeviceState.ONLINE for d in devices}
    states["oil-tank"] = DeviceState.OFFLINE
    readings = {
        "fridge-1": {"cabinet_temp": 3.5, "door_open": False},
        "fryer-1": {"vat1_oil_temp": 174.96},
        "freezer-1": {"cabinet_temp": -19.0},
    }
    assert devices_summary(devices, PROFILES, states, readings) == (
        f"devices {len(devices) - 1}/{len(devices)} online "
        "(fridge-1 3.5 °C, fryer-1 vat 1 oil 175.0 °C)"
    )
    # Nothing heard yet: nothing online, no readings to show.
    assert devices_summary(devices, PROFILES, {}, {}) == f"devices 0/{len(devices)} online"


def test_the_table_has_a_row_per_device() -> None:
    states = {"fridge-1": DeviceState.ONLINE}
    table = devices_table(DEMO.devices, PROFILES, states, {"fridge-1": {"cabinet_temp": 3.0}})
    console = Console(width=120, record=True)
    console.print(table)
    text = console.export_text()
    assert f"Devices 1/{len(DEMO.devices)} online" in text
    assert "Walk-in cold room" in text
    assert "3.0 °C" in text
    assert all(d.id in text for d in DEMO.devices)
