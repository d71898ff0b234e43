"""Shelf scale and bulk tank physics."""

from __future__ import annotations

import pytest

from gateway.devices.profile import load_profiles
from simulators.appliances.registers import RegisterBank
from simulators.appliances.scale import ScaleModel
from simulators.appliances.tank import TankModel

PROFILES = load_profiles()


def scale() -> tuple[ScaleModel, RegisterBank]:
    bank = RegisterBank(PROFILES["scale-4ch"])
    return ScaleModel(bank), bank


def test_starts_settled_with_pans_and_tares() -> None:
    _, bank = scale()
    assert bank.get("ch1_gross") == 6200
    assert bank.get("ch1_tare") == 1200
    assert bank.get("ch1_net") == 5000
    assert all(bank.get(f"ch{n}_stable") for n in range(1, 5))


def test_cooking_takes_weight_off_and_the_reading_settles() -> None:
    model, bank = scale()
    model.cook({1: 150.0, 2: 120.0}, portions=2)
    model.step(0.2)
    assert bank.get("ch1_stable") is False
    assert bank.get("ch3_stable") is True  # untouched
    model.step(2.0)
    assert bank.get("ch1_stable") is True
    assert bank.get("ch1_gross") == 6200 - 300
    assert bank.get("ch2_net") == 3500 - 240


def test_a_tare_written_by_the_gateway_changes_net_only() -> None:
    model, bank = scale()
    bank.set("ch4_tare", 800)
    model.place(4, 2_000.0)
    model.step(3)
    assert bank.get("ch4_gross") == 2000
    assert bank.get("ch4_net") == 1200


def test_overload_and_never_below_zero() -> None:
    model, bank = scale()
    model.set_load(3, 31_000.0)
    model.take(2, 1e6)
    model.step(3)
    assert bank.get("ch3_overload") is True
    assert bank.get("ch2_gross") == 0
    with pytest.raises(ValueError, match=r"channel must be 1\.\.4"):
        model.place(5, 1.0)


def test_tank_drains_alarms_low_and_refills() -> None:
    bank = RegisterBank(PROFILES["tank-level"])
    model = TankModel(bank, draw_l_per_h=100.0, level_pct=20.0)
    assert bank.number("volume_l") == pytest.approx(200.0)
    assert bank.get("low_level") is False
    model.step(3600)
    assert bank.number("level_pct") == pytest.approx(10.0, abs=0.01)
    assert bank.get("low_level") is True
    model.refill()
    model.step(1)
    assert bank.number("level_pct") == pytest.approx(100.0, abs=0.01)
    assert bank.get("low_level") is False
    assert bank.number("temperature") == pytest.approx(18.0)
