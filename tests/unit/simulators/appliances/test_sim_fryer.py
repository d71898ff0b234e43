"""Fryer physics: preheat, thermostat, cook timer, oil wear, errors."""

from __future__ import annotations

import pytest

from gateway.devices.profile import Table, load_profiles
from simulators.appliances.fryer import FRESH_TPM, FryerMode, FryerModel
from simulators.appliances.registers import RegisterBank

PROFILE = load_profiles()["fryer-2vat"]


def fryer(*, hot: bool = True) -> tuple[FryerModel, RegisterBank]:
    bank = RegisterBank(PROFILE)
    return FryerModel(bank, hot=hot), bank


def test_a_cold_vat_melts_then_preheats_then_fries() -> None:
    model, bank = fryer(hot=False)
    assert bank.get("vat1_mode") == FryerMode.OFF
    model.power_on(1)
    modes = []
    for _ in range(180):
        model.step(10)
        mode = bank.get("vat1_mode")
        if not modes or modes[-1] != mode:
            modes.append(mode)
    assert modes == [FryerMode.MELT, FryerMode.PREHEAT, FryerMode.FRYING]
    assert bank.number("vat1_oil_temp") == pytest.approx(175.0, abs=1.5)
    assert bank.get("vat2_mode") == FryerMode.OFF  # the other vat was not switched on


def test_thermostat_holds_the_set_point() -> None:
    model, bank = fryer()
    temps = []
    for _ in range(300):
        model.step(2)
        temps.append(bank.number("vat2_oil_temp"))
    assert min(temps) >= 173.5
    assert max(temps) <= 175.5


def test_the_timer_coil_drops_the_basket_and_it_lifts_when_done() -> None:
    model, bank = fryer()
    bank.set("vat1_cook_time", 150)
    model.step(1)
    before = bank.number("vat1_oil_temp")
    assert bank.write(Table.COIL, 0, [1]).name == "OK"  # what the gateway's write does
    model.step(1)
    assert bank.get("vat1_timer_start") is False  # self-clearing
    assert bank.get("vat1_basket_lifted") is False
    assert bank.get("vat1_time_remaining") == 149
    assert bank.number("vat1_oil_temp") < before - 5  # the cold load
    model.step(149)
    assert bank.get("vat1_basket_lifted") is True
    assert bank.get("vat1_time_remaining") == 0
    assert bank.get("vat2_basket_lifted") is True


def test_a_new_set_point_is_followed() -> None:
    model, bank = fryer()
    bank.set("vat1_set_temp", 160.0)
    model.step(900)  # less than the idle time before standby
    assert bank.number("vat1_oil_temp") == pytest.approx(160.0, abs=1.5)


def test_oil_wears_with_frying_and_filtering_and_changing_help() -> None:
    model, bank = fryer()
    for _ in range(300):  # 300 baskets of 3 minutes: 15 h of frying
        model.start_timer(1)
        model.step(180)
    tpm = bank.number("vat1_oil_tpm")
    assert tpm > FRESH_TPM + 4
    assert bank.number("vat1_oil_hours") == pytest.approx(15.0, abs=0.05)
    assert bank.number("vat2_oil_tpm") < tpm  # idle hot oil wears far slower
    model.filter_oil(1)
    model.step(1)
    assert bank.get("vat1_mode") == FryerMode.FILTERING
    model.step(300)
    assert bank.number("vat1_oil_tpm") == pytest.approx(tpm - 0.5, abs=0.15)
    model.change_oil(1)
    model.step(1)
    assert bank.number("vat1_oil_tpm") == pytest.approx(FRESH_TPM)


def test_idle_vat_goes_to_standby_and_a_timer_wakes_it() -> None:
    model, bank = fryer()
    model.step(1300)
    assert bank.get("vat1_mode") == FryerMode.STANDBY
    model.step(1800)
    assert bank.number("vat1_oil_temp") < 140
    model.start_timer(1)
    model.step(1)
    assert bank.get("vat1_mode") == FryerMode.FRYING


def test_errors_keep_the_last_ten_newest_first() -> None:
    model, bank = fryer()
    for code in range(1, 13):
        model.raise_error(2, code)
    model.step(1)
    assert [bank.get(f"vat2_error_{i}") for i in range(1, 11)] == list(range(12, 2, -1))
    assert bank.get("vat2_mode") == FryerMode.ERROR
    model.start_timer(2)  # ignored while in error
    model.step(1)
    assert bank.get("vat2_basket_lifted") is True
    model.clear_error(2)
    model.step(1)
    assert bank.get("vat2_mode") == FryerMode.OFF
    assert bank.get("vat2_error_1") == 12


def test_firmware_string_and_bad_vat_numbers() -> None:
    model, bank = fryer()
    assert bank.get("firmware") == "v2.14"
    with pytest.raises(ValueError, match=r"vat must be 1\.\.2"):
        model.power_on(3)
