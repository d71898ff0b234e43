"""The simulators' register bank: layout from the profile, the gateway's codec, guarded writes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.devices.codec import encode_point
from gateway.devices.profile import PointType, Profile, Table, load_profiles
from simulators.appliances.registers import RegisterBank, WriteResult

PROFILES = load_profiles()
MODBUS = [p for p in PROFILES.values() if p.profile.protocol == "modbus"]
FRIDGE = PROFILES["walkin-fridge"]
FREEZER = PROFILES["freezer"]


@pytest.mark.parametrize("profile", MODBUS, ids=lambda p: p.profile.id)
def test_every_point_round_trips_through_the_bank(profile: Profile) -> None:
    bank = RegisterBank(profile)
    for p in profile.points:
        if p.type is PointType.STRING:
            value: object = "v1.2"[: 2 * p.length]
        elif p.type is PointType.BIT:
            value = True
        elif p.type in (PointType.F32, PointType.F64):
            value = -12.5
        else:
            value = 7 * p.scale + p.offset
        bank.set(p.id, value)  # type: ignore[arg-type]
        got = bank.get(p.id)
        if isinstance(value, float):
            assert math.isclose(float(got), value, abs_tol=1e-9), p.id
        else:
            assert got == value, p.id


def test_bits_of_one_register_do_not_disturb_each_other() -> None:
    bank = RegisterBank(FRIDGE)
    bank.set("high_temp_alarm", value=True)
    bank.set("compressor_fault", value=True)
    bank.set("high_temp_alarm", value=False)
    assert bank.words("high_temp_alarm") == [0b1000]
    assert bank.get("compressor_fault") is True


def test_bit_in_a_little_byte_order_register_lands_in_the_swapped_byte() -> None:
    tank = RegisterBank(PROFILES["tank-level"])
    tank.set("temperature", 18.0)  # i16 x 0.1, byte order little: raw 180 = 0x00B4 -> 0xB400
    assert tank.words("temperature") == [0xB400]


def test_f32_with_little_word_order_puts_the_low_word_first() -> None:
    bank = RegisterBank(FREEZER)
    bank.set("cabinet_temp", -20.0)  # 0xC1A00000
    assert bank.words("cabinet_temp") == [0x0000, 0xC1A0]


def test_values_beyond_the_raw_type_saturate_instead_of_failing() -> None:
    bank = RegisterBank(FRIDGE)
    bank.set("cabinet_temp", 10_000.0)  # i16 x 0.1 tops out at 3276.7
    assert bank.get("cabinet_temp") == pytest.approx(3276.7)
    bank.set("compressor_hours", -5.0)  # u32: no negatives
    assert bank.get("compressor_hours") == 0


def test_reads_cover_gaps_but_not_past_the_last_register() -> None:
    bank = RegisterBank(PROFILES["fryer-2vat"])
    assert bank.read(Table.HOLDING, 0, 12) is not None  # spans the unused registers 2..9
    assert bank.read(Table.HOLDING, 0, 13) is None
    assert bank.read(Table.INPUT, 150, 4) is not None
    assert bank.read(Table.INPUT, 154, 1) is None
    assert bank.read(Table.DISCRETE, 0, 1) is None  # the fryer has no discrete inputs


def test_a_write_in_range_lands_and_is_reported() -> None:
    bank = RegisterBank(FRIDGE)
    seen: list[tuple[str, object]] = []
    bank.on_write(lambda point, value: seen.append((point, value)))
    words = encode_point(FRIDGE.point("setpoint"), 4.5, FRIDGE.settings)  # type: ignore[arg-type]
    assert bank.write(Table.HOLDING, 0, words) is WriteResult.OK
    assert bank.get("setpoint") == pytest.approx(4.5)
    assert seen == [("setpoint", pytest.approx(4.5))]
    assert list(bank.writes) == seen


@pytest.mark.parametrize(
    ("table", "address", "values", "expected"),
    [
        (Table.HOLDING, 0, [60], WriteResult.ILLEGAL_VALUE),  # 6.0 °C: above the 1..5 range
        (Table.HOLDING, 0, [0xFFF6], WriteResult.ILLEGAL_VALUE),  # -1.0 °C
        (Table.HOLDING, 4, [1], WriteResult.ILLEGAL_ADDRESS),  # no point there
        (Table.INPUT, 0, [30], WriteResult.ILLEGAL_ADDRESS),  # input registers are read-only
        (Table.HOLDING, 0, [30, 200], WriteResult.ILLEGAL_VALUE),  # all or nothing
    ],
)
def test_refused_writes_change_nothing(
    table: Table, address: int, values: list[int], expected: WriteResult
) -> None:
    bank = RegisterBank(FRIDGE)
    bank.set("setpoint", 3.0)
    bank.set("high_alarm_limit", 8.0)
    assert bank.write(table, address, values) is expected
    assert bank.get("setpoint") == pytest.approx(3.0)
    assert bank.get("high_alarm_limit") == pytest.approx(8.0)
    assert not bank.writes


def test_half_of_a_two_register_value_is_refused() -> None:
    bank = RegisterBank(FREEZER)
    assert bank.write(Table.HOLDING, 1, [0xC1A0]) is WriteResult.ILLEGAL_ADDRESS
    words = encode_point(FREEZER.point("setpoint"), -19.0, FREEZER.settings)  # type: ignore[arg-type]
    assert bank.write(Table.HOLDING, 0, words) is WriteResult.OK
    assert bank.get("setpoint") == pytest.approx(-19.0)


def test_a_read_only_holding_register_is_not_writable() -> None:
    bank = RegisterBank(PROFILES["tank-level"])
    assert bank.write(Table.HOLDING, 1, [0, 0]) is WriteResult.ILLEGAL_ADDRESS  # capacity_l


def test_stuck_points_ignore_the_physics_but_not_reads() -> None:
    bank = RegisterBank(FRIDGE)
    bank.set("cabinet_temp", 3.0)
    bank.stick("cabinet_temp")
    bank.set("cabinet_temp", 9.0)
    assert bank.get("cabinet_temp") == pytest.approx(3.0)
    assert bank.stuck == {"cabinet_temp"}
    bank.unstick("cabinet_temp")
    bank.set("cabinet_temp", 9.0)
    assert bank.get("cabinet_temp") == pytest.approx(9.0)


def test_unknown_points_and_missing_requirements_are_named() -> None:
    bank = RegisterBank(FRIDGE)
    with pytest.raises(KeyError, match="no point 'nope'"):
        bank.get("nope")
    with pytest.raises(ValueError, match="needs points a, b"):
        bank.require(["setpoint", "b", "a"], "TestModel")
    with pytest.raises(ValueError, match="not a Modbus profile"):
        RegisterBank(PROFILES["scale-node"])


@given(st.floats(min_value=1.0, max_value=5.0))
def test_any_setpoint_inside_the_write_range_is_accepted(value: float) -> None:
    bank = RegisterBank(FRIDGE)
    words = encode_point(FRIDGE.point("setpoint"), value, FRIDGE.settings)  # type: ignore[arg-type]
    assert bank.write(Table.HOLDING, 0, words) is WriteResult.OK
    assert bank.get("setpoint") == pytest.approx(value, abs=0.05)


@given(st.floats(min_value=-25.0, max_value=-18.0))
def test_any_freezer_setpoint_inside_the_range_is_accepted(value: float) -> None:
    bank = RegisterBank(FREEZER)
    words = encode_point(FREEZER.point("setpoint"), value, FREEZER.settings)  # type: ignore[arg-type]
    assert bank.write(Table.HOLDING, 0, words) is WriteResult.OK


def test_a_sparse_bank_refuses_reads_that_touch_an_undefined_register() -> None:
    bank = RegisterBank(PROFILES["fryer-2vat"], sparse=True)
    assert bank.read(Table.HOLDING, 0, 2) == [0, 0]
    assert bank.read(Table.HOLDING, 10, 2) == [0, 0]
    assert bank.read(Table.HOLDING, 0, 12) is None  # 2..9 are nobody's: exception 2
    assert bank.read(Table.INPUT, 100, 17) is not None  # one vat's contiguous block
