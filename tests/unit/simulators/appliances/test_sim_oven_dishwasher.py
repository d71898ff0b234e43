"""Combi oven and dishwasher physics."""

from __future__ import annotations

import pytest

from gateway.devices.codec import encode_point
from gateway.devices.profile import Table, load_profiles
from simulators.appliances.dishwasher import CycleState, DishwasherModel
from simulators.appliances.oven import ERROR_PROBE, OvenMode, OvenModel
from simulators.appliances.registers import RegisterBank

PROFILES = load_profiles()
OVEN = PROFILES["combi-oven"]


def oven() -> tuple[OvenModel, RegisterBank]:
    bank = RegisterBank(OVEN)
    return OvenModel(bank), bank


def test_writing_a_timed_program_runs_it_and_stops() -> None:
    model, bank = oven()
    words = encode_point(OVEN.point("program"), 3, OVEN.settings)  # type: ignore[arg-type]
    assert bank.write(Table.HOLDING, 5, words).name == "OK"
    model.step(1)
    assert bank.get("mode") == OvenMode.HOT_AIR
    assert bank.number("cabinet_set_temp") == pytest.approx(170.0)
    model.step(600)
    assert bank.number("cabinet_temp") == pytest.approx(170.0, abs=2.5)
    assert bank.number("humidity") < 15
    assert bank.get("program_remaining") == 1500 - 601
    model.step(900)
    assert bank.get("mode") in (OvenMode.COOL_DOWN, OvenMode.OFF)
    assert bank.get("program") == 0


def test_a_core_probe_program_ends_at_the_core_target() -> None:
    model, bank = oven()
    model.insert_probe(food_c=4.0)
    model.start_program(1)  # roast to 72 °C core
    model.step(1)
    assert bank.get("core_probe_in") is True
    assert bank.get("mode") == OvenMode.COMBI
    for _ in range(4 * 60):
        model.step(60)
        if bank.get("mode") != OvenMode.COMBI:
            break
    assert bank.number("core_temp") >= 72.0
    assert bank.get("mode") == OvenMode.COOL_DOWN


def test_a_core_program_without_probe_is_an_error() -> None:
    model, bank = oven()
    model.start_program(4)
    model.step(1)
    assert bank.get("error_1") == ERROR_PROBE
    assert bank.get("mode") == OvenMode.OFF


def test_an_open_door_dumps_heat_and_steam() -> None:
    model, bank = oven()
    model.start_program(2)  # steam
    model.step(600)
    hot, wet = bank.number("cabinet_temp"), bank.number("humidity")
    assert wet > 95
    model.open_door()
    model.step(60)
    assert bank.get("door_open") is True
    assert bank.get("heating") is False
    assert bank.number("cabinet_temp") < hot - 20
    assert bank.number("humidity") < wet - 20


def dishwasher() -> tuple[DishwasherModel, RegisterBank]:
    bank = RegisterBank(PROFILES["dishwasher"])
    return DishwasherModel(bank), bank


def test_a_cycle_runs_through_its_phases_and_counts() -> None:
    model, bank = dishwasher()
    assert bank.write(Table.COIL, 0, [1]).name == "OK"
    states = []
    for _ in range(95):
        model.step(1)
        state = bank.get("cycle_state")
        if not states or states[-1] != state:
            states.append(state)
    assert states == [
        CycleState.FILLING, CycleState.WASHING, CycleState.RINSING, CycleState.DRAINING,
        CycleState.IDLE,
    ]  # fmt: skip
    assert bank.get("cycle_count") == 1
    assert bank.get("start_cycle") is False
    assert bank.number("last_rinse_temp") >= 82.0
    assert bank.get("rinse_too_cold") is False


def test_a_failed_booster_makes_rinses_too_cold() -> None:
    model, bank = dishwasher()
    model.fail_booster()
    for _ in range(4):
        assert model.start_cycle()
        model.step(100)
    assert bank.get("cycle_count") == 4
    assert bank.number("last_rinse_temp") < 82.0
    assert bank.get("rinse_too_cold") is True


def test_no_start_with_the_hood_up_and_a_cycle_pauses_when_lifted() -> None:
    model, bank = dishwasher()
    model.open_hood()
    assert not model.start_cycle()
    model.close_hood()
    assert model.start_cycle()
    model.step(20)
    left = bank.get("cycle_remaining")
    model.open_hood()
    model.step(30)
    assert bank.get("cycle_remaining") == left
    assert bank.get("hood_open") is True


def test_detergent_runs_low_and_refills() -> None:
    model, bank = dishwasher()
    model.detergent = 10.1
    model.start_cycle()
    model.step(100)
    assert bank.get("detergent_low") is True
    model.refill()
    model.step(1)
    assert bank.get("detergent_low") is False
    assert bank.get("detergent_level") == 100
