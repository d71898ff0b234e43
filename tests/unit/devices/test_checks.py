"""Config checks of [[devices]] (gateway.devices.checks), through parse_site as at start-up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from gateway.config import SiteConfig
from gateway.devices.checks import check_devices, read_notes
from gateway.errors import ConfigError
from gateway.site_file import parse_site

if TYPE_CHECKING:
    from pathlib import Path

FRYER = """
[profile]
id = "test-fryer"
vendor = "v"
model = "m"
kind = "fryer"
protocol = "modbus"

[[points]]
id = "set_temp"
name = "set"
table = "holding"
address = 0
access = "rw"
write = { min = 120, max = 190 }

[[points]]
id = "oil"
name = "oil"
table = "input"
address = 0
"""


def site(devices: list[dict[str, Any]], profiles: Path | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "site": {"id": "s", "name": "s"},
        "tables": {"count": 1},
        "stations": [{"id": "fry", "name": "Fry"}],
        "groups": [{"id": "g", "names": {"en": "g"}}],
        "items": [{"id": "i", "group": "g", "names": {"en": "i"}, "price": 1, "prep_s": 1}],
        "routes": [{"group": "g", "station": "fry"}],
        "devices": devices,
    }
    if profiles is not None:
        data["devices_profiles"] = [str(profiles)]
    return data


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    (tmp_path / "fryer.toml").write_text(FRYER)
    return tmp_path


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_site(data)
    return {p.key: p.message for p in info.value.problems}


def test_a_good_device_list_loads(profiles: Path) -> None:
    cfg = parse_site(site([
        {"id": "fryer1", "profile": "test-fryer", "host": "10.0.0.5", "station": "fry",
         "writes": {"set_temp": {"min": 150, "max": 180}}},
        {"id": "fryer2", "profile": "test-fryer", "host": "10.0.0.5", "unit": 2},
    ], profiles))  # fmt: skip
    assert [d.id for d in cfg.devices] == ["fryer1", "fryer2"]


def test_every_device_problem_is_reported_at_once(profiles: Path) -> None:
    found = problems(site([
        {"id": "a", "profile": "no-such-profile", "host": "h"},
        {"id": "b", "profile": "test-fryer"},
        {"id": "c", "profile": "test-fryer", "host": "h", "station": "grill"},
        {"id": "c", "profile": "test-fryer", "host": "h", "unit": 2},
        {"id": "e", "profile": "test-fryer", "host": "h", "unit": 2},
        {"id": "f", "profile": "test-fryer", "host": "h2",
         "writes": {"set_temp": {"min": 100, "max": 180}, "oil": {"min": 0, "max": 1}}},
    ], profiles))  # fmt: skip
    assert "unknown profile 'no-such-profile'" in found["devices[0].profile"]
    assert "Modbus device" in found["devices[1].host"]
    assert "unknown station 'grill'" in found["devices[2].station"]
    assert "used 2 times" in found["devices"]
    assert "both unit 2" in found["devices[4].unit"]
    assert "wider than the profile's 120..190" in found["devices[5].writes.set_temp"]
    assert "read-only" in found["devices[5].writes.oil"]


def test_an_mqtt_node_has_no_host() -> None:
    found = problems(site([{"id": "p1", "profile": "fridge-probe-node", "host": "10.0.0.9"}]))
    assert "publishes by itself" in found["devices[0].host"]


def test_a_missing_profile_directory_and_a_broken_profile_file_are_problems(
    tmp_path: Path,
) -> None:
    (tmp_path / "broken.toml").write_text("[profile]\nid = 'x'\n")
    data = site([{"id": "a", "profile": "x", "host": "h"}], tmp_path)
    data["devices_profiles"].append(str(tmp_path / "missing"))
    found = problems(data)
    assert "no directory" in found["devices_profiles[1]"]
    assert "broken.toml" in found["devices_profiles"]


def test_no_devices_means_no_profile_loading() -> None:
    cfg = SiteConfig.model_validate(site([]))
    assert check_devices(cfg) == []


def test_the_site_check_notes_merged_reads_across_undefined_registers() -> None:
    cfg = parse_site(site([
        {"id": "fryer1", "profile": "fryer-2vat", "host": "10.0.0.5"},
        {"id": "fryer2", "profile": "fryer-2vat", "host": "10.0.0.5", "unit": 2},
        {"id": "tank", "profile": "tank-level", "host": "10.0.0.6"},
    ]))  # fmt: skip
    note = (
        "profile fryer-2vat: the read of holding 0..11 (every 1 s) spans 2..9, which no point "
        "defines; a device that refuses them is read around them (max_gap = 0 under [modbus] "
        "saves the first refusal)"
    )
    assert read_notes(cfg) == [note]
