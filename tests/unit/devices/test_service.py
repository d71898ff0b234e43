"""Device service planning (gateway.devices.service): which points are polled how often."""

from __future__ import annotations

from typing import Any

from gateway.config import DeviceInstance
from gateway.devices.profile import Profile
from gateway.devices.service import _jobs


def profile(**modbus: Any) -> Profile:
    return Profile.model_validate({
        "profile": {"id": "p", "vendor": "v", "model": "m", "kind": "oven", "protocol": "modbus"},
        "modbus": {"poll_s": 2.0, **modbus},
        "points": [
            {"id": "temp", "name": "t", "table": "input", "address": 0},
            {"id": "door", "name": "d", "table": "input", "address": 1, "poll_s": 0.5},
            {"id": "serial", "name": "s", "table": "input", "address": 2, "poll_s": 60},
        ],
    })  # fmt: skip


def intervals(device: DeviceInstance, p: Profile) -> dict[float, list[str]]:
    return {j.interval: [pt.id for b in j.blocks for pt in b.points] for j in _jobs(device, p)}


def test_points_are_grouped_by_interval_and_each_group_is_planned_on_its_own() -> None:
    d = DeviceInstance(id="oven1", profile="p", host="h")
    assert intervals(d, profile()) == {0.5: ["door"], 2.0: ["temp"], 60: ["serial"]}


def test_a_site_poll_s_replaces_the_default_and_is_the_fastest_a_point_gets() -> None:
    d = DeviceInstance(id="oven1", profile="p", host="h", poll_s=5.0)
    assert intervals(d, profile()) == {5.0: ["temp", "door"], 60: ["serial"]}


def test_jobs_carry_the_device_unit_and_the_profile_timeout() -> None:
    d = DeviceInstance(id="oven1", profile="p", host="h", unit=7)
    (job, *_) = _jobs(d, profile(timeout_s=0.3))
    assert (job.device, job.unit, job.timeout_s) == ("oven1", 7, 0.3)
