"""Learnt device maps on disk (gateway.devices.maps_store): round trip, profile change, a corrupt
file ignored with one warning, atomic replacement."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import pytest

from gateway.devices.maps_store import load_maps, save_maps
from gateway.devices.profile import Table
from gateway.devices.sparse import DeviceMap

if TYPE_CHECKING:
    from pathlib import Path


def learnt() -> DeviceMap:
    m = DeviceMap()
    m.add_avoid(Table.HOLDING, range(2, 10))
    m.add_cut(Table.INPUT, 120)
    m.undefined["vat1_error_9"] = 2
    return m


def test_maps_survive_a_restart_for_devices_on_the_same_profile(tmp_path: Path) -> None:
    path = tmp_path / "state" / "device_maps.json"
    save_maps(path, {"fryer-1": ("fryer-2vat", learnt()), "empty": ("x", DeviceMap())})
    assert load_maps(path, {"fryer-1": "fryer-2vat", "empty": "x"}) == {"fryer-1": learnt()}
    assert load_maps(path, {"fryer-1": "another-profile"}) == {}  # moved: learnt afresh
    assert not list(path.parent.glob("*.tmp"))  # the temporary file became the file
    assert json.loads(path.read_text())["devices"]["fryer-1"]["avoid"] == {
        "holding": list(range(2, 10))
    }


def test_no_file_is_no_map(tmp_path: Path) -> None:
    assert load_maps(tmp_path / "device_maps.json", {"a": "p"}) == {}


BAD_TABLE = '{"v": 1, "devices": {"a": {"profile": "p", "avoid": {"nowhere": [1]}}}}'


@pytest.mark.parametrize(
    "text", ["{not json", "[]", '{"v": 1, "devices": {"a": {"profile": "p", "avoid": 3}}}',
             '{"v": 99, "devices": {}}', BAD_TABLE],
)  # fmt: skip
def test_a_corrupt_file_is_ignored_with_one_warning(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "device_maps.json"
    path.write_text(text)
    caplog.set_level(logging.WARNING, logger="gateway.devices.maps_store")
    assert load_maps(path, {"a": "p"}) == {}
    assert len(caplog.records) == 1
    assert "learnt again" in caplog.records[0].getMessage()


def test_a_file_that_is_not_utf8_is_ignored_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A damaged SD card: the gateway must still start, and learn the maps again.
    path = tmp_path / "device_maps.json"
    path.write_bytes(b'{"v": 1, "devices": {"a": \xff\xfe}}')
    caplog.set_level(logging.WARNING, logger="gateway.devices.maps_store")
    assert load_maps(path, {"a": "p"}) == {}
    assert len(caplog.records) == 1
