"""Walk-in fridge and freezer physics, driven in simulated time."""

from __future__ import annotations

import pytest

from gateway.devices.profile import load_profiles
from simulators.appliances.cold_room import ColdRoomModel
from simulators.appliances.registers import RegisterBank

PROFILES = load_profiles()


def fridge(profile: str = "walkin-fridge") -> tuple[ColdRoomModel, RegisterBank]:
    bank = RegisterBank(PROFILES[profile])
    model = ColdRoomModel(bank)
    model.step(2 * 3600)  # settle into the thermostat's cycle
    return model, bank


@pytest.mark.parametrize(
    ("profile", "low", "high"), [("walkin-fridge", 2.4, 4.6), ("freezer", -20.5, -18.4)]
)
def test_holds_its_set_point_with_the_door_shut(profile: str, low: float, high: float) -> None:
    model, bank = fridge(profile)
    temps = []
    for _ in range(120):
        model.step(30)
        temps.append(bank.number("cabinet_temp"))
    assert low <= min(temps)
    assert max(temps) <= high
    assert 0.02 < model.compressor_s / model.elapsed_s < 0.5  # it cycles, neither idle nor flat out


def test_warms_with_the_door_open_and_recovers_when_shut() -> None:
    model, bank = fridge()
    before = bank.number("cabinet_temp")
    model.open_door()
    model.step(600)
    assert bank.get("door_open") is True
    assert bank.number("cabinet_temp") > before + 2.0
    assert bank.get("door_alarm") is True  # open longer than 3 minutes
    model.close_door()
    model.step(3600)
    assert bank.get("door_open") is False
    assert bank.number("cabinet_temp") < 5.0
    assert bank.get("door_alarm") is False


def test_high_alarm_waits_for_the_delay() -> None:
    model, bank = fridge()
    bank.set("alarm_delay_min", 30)
    model.fail_compressor()
    for _ in range(4 * 60):  # up to four hours
        model.step(60)
        if bank.number("cabinet_temp") > 8.0:
            break
    assert bank.get("high_temp_alarm") is False  # just above the limit: not yet
    model.step(31 * 60)
    assert bank.get("high_temp_alarm") is True


def test_compressor_failure_drifts_up_and_is_reported() -> None:
    model, bank = fridge()
    start = bank.number("cabinet_temp")
    model.fail_compressor()
    model.step(3600)
    assert bank.get("compressor_fault") is True
    assert bank.get("compressor_running") is False
    assert bank.number("cabinet_temp") > start + 2.5
    model.repair_compressor()
    model.step(2 * 3600)
    assert bank.get("compressor_fault") is False
    assert bank.number("cabinet_temp") < 5.0


def test_defrost_comes_on_schedule_and_is_no_alarm() -> None:
    bank = RegisterBank(PROFILES["walkin-fridge"])
    bank.set("defrost_interval_h", 4)
    model = ColdRoomModel(bank)
    seen_defrost = False
    for _ in range(5 * 60):
        model.step(60)
        seen_defrost |= bank.get("defrost_active") is True
        assert bank.get("high_temp_alarm") is False
    assert seen_defrost
    assert bank.get("defrost_active") is False  # 20 minutes, long over


def test_a_new_set_point_written_by_the_gateway_is_followed() -> None:
    model, bank = fridge()
    bank.set("setpoint", 1.0)
    model.step(3 * 3600)
    temps = []
    for _ in range(60):
        model.step(60)
        temps.append(bank.number("cabinet_temp"))
    assert min(temps) >= 0.5
    assert max(temps) <= 2.6


def test_defaults_only_fill_registers_still_zero() -> None:
    bank = RegisterBank(PROFILES["freezer"])
    bank.set("setpoint", -23.0)
    ColdRoomModel(bank)
    assert bank.number("setpoint") == pytest.approx(-23.0)
    assert bank.number("high_alarm_limit") == pytest.approx(-15.0)


def test_time_only_moves_forward() -> None:
    model, _ = fridge()
    with pytest.raises(ValueError, match="forward"):
        model.step(-1)
