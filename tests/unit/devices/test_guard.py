"""The write guard (gateway.devices.guard): each refusal, site narrowing, rate limit, properties."""

# ruff: noqa: FBT003 - booleans are values under test here, not flags

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.clock import ManualClock
from gateway.config import DeviceInstance, WriteRange
from gateway.devices.codec import decode_point
from gateway.devices.guard import (
    WINDOW_S,
    Approved,
    Reason,
    Refused,
    WriteGuard,
    WriteRequest,
    check_device_writes,
    effective_range,
)
from gateway.devices.profile import ModbusPoint, PointType, Profile, Table


def rw(id_: str, address: int, low: float, high: float, **kw: Any) -> dict[str, Any]:
    """A writable point (a holding register unless ``table`` says otherwise)."""
    fields = {"table": "holding", "access": "rw", "write": {"min": low, "max": high}}
    return {"id": id_, "name": id_, "address": address, **fields, **kw}


def info(id_: str, kind: str, protocol: str) -> dict[str, str]:
    return {"id": id_, "vendor": "T", "model": "M", "kind": kind, "protocol": protocol}


POINTS: list[dict[str, Any]] = [
    rw("set_temp", 0, 120, 190, scale=0.1),
    rw("cook_time", 1, 10, 900),
    rw("offset_i16", 2, -30, 50, type="i16", scale=0.5, offset=-40),
    rw("big_u32", 3, 0, 4e9, type="u32"),
    rw("tare_i32", 5, -5000, 5000, type="i32"),
    rw("setpoint_f32", 7, -25, 0.1, type="f32"),
    rw("precise_f64", 9, -1, 1, type="f64"),
    # Whole units with a fractional limit: 199.5 rounds (half to even) to 200, over the limit.
    rw("half_limit", 13, 0, 199.5),
    # A range the register cannot hold: 100 / 0.001 = 100000 > 65535.
    rw("too_fine", 14, 0, 100, scale=0.001),
    rw("name", 15, 0, 1, type="string", length=2),
    rw("start", 0, 0, 1, table="coil", type="bit"),
    rw("only_set", 1, 1, 1, table="coil", type="bit"),
    {"id": "oil_temp", "name": "T", "table": "input", "address": 100, "type": "i16", "scale": 0.1},
    {"id": "mode", "name": "M", "table": "holding", "address": 20},
]
# Profiles refuse a writable bit inside a register now; the guard still refuses one that gets
# past (an older or hand-built profile), so this point is added without validation.
_COIL = ModbusPoint.model_validate(rw("flag_bit", 17, 0, 1, table="coil", type="bit"))
FLAG_BIT = _COIL.model_copy(update={"table": Table.HOLDING, "bit": 3})
PROFILE = Profile.model_validate(
    {
        "profile": info("test-fryer", "fryer", "modbus"),
        "modbus": {"writes_per_minute": 6000},
        "points": POINTS,
    }
)
PROFILE = PROFILE.model_copy(update={"points": (*PROFILE.points, FLAG_BIT)})


def with_limit(per_minute: int) -> Profile:
    settings = PROFILE.settings.model_copy(update={"writes_per_minute": per_minute})
    return PROFILE.model_copy(update={"modbus": settings})


MQTT = Profile.model_validate(
    {
        "profile": info("probe-node", "probe", "mqtt"),
        "fields": [{"id": "temp", "name": "Temperature"}],
    }
)
PROFILES = {"test-fryer": PROFILE, "slow": with_limit(3), "none": with_limit(0), "probe-node": MQTT}
WRITABLE = [p for p in PROFILE.points if p.write is not None]
NUMERIC = [p for p in WRITABLE if p.type not in (PointType.BIT, PointType.STRING)]


def device(
    id_: str = "fryer1", profile: str = "test-fryer", **writes: WriteRange
) -> DeviceInstance:
    return DeviceInstance(id=id_, profile=profile, host="127.0.0.1", writes=writes)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def guard(*devices: DeviceInstance, clock: FakeClock | None = None) -> WriteGuard:
    return WriteGuard(PROFILES, devices or (device(),), monotonic=clock or FakeClock())


def req(point: Any, value: Any, dev: Any = "fryer1") -> WriteRequest:
    return WriteRequest(dev, point, value, "test")


# --- approvals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "value", "words"),
    [
        ("set_temp", 175.0, [1750]),
        ("set_temp", 120, [1200]),  # both ends are inclusive
        ("set_temp", 190, [1900]),
        ("cook_time", 90, [90]),
        ("offset_i16", -30, [20]),  # (-30 - -40) / 0.5
        ("big_u32", 4_000_000_000, [0xEE6B, 0x2800]),
        ("tare_i32", -1, [0xFFFF, 0xFFFF]),
        ("half_limit", 199.4, [199]),
        ("start", True, [1]),
        ("start", 1, [1]),  # 0/1 are as good as true/false for a bit
        ("start", False, [0]),
        ("only_set", True, [1]),
    ],
)
def test_approves_writes_inside_the_range(point: str, value: Any, words: list[int]) -> None:
    g = guard()
    verdict = g.check(req(point, value))
    assert isinstance(verdict, Approved), verdict
    assert verdict.words == words
    assert verdict.point.id == point
    assert verdict.request == req(point, value)
    assert g.approved == 1
    assert not g.refused


# --- every refusal -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "kind", "text"),
    [
        (req("set_temp", 175, dev="fryer9"), Reason.UNKNOWN_DEVICE, "not in the site file"),
        (req("set_temp", 175, dev="lost"), Reason.UNKNOWN_DEVICE, "not a loaded Modbus"),
        (req("temp", 1.0, dev="probe1"), Reason.UNKNOWN_DEVICE, "not a loaded Modbus"),
        (req("set_temp", 175, dev=["fryer1"]), Reason.UNKNOWN_DEVICE, "not in the site file"),
        (req("set_tmp", 175), Reason.UNKNOWN_POINT, "'set_tmp' on fryer1"),
        (req({"a": 1}, 175), Reason.UNKNOWN_POINT, ""),
        (req("oil_temp", 20), Reason.NOT_WRITABLE, "read-only"),
        (req("mode", 1), Reason.NOT_WRITABLE, "read-only"),
        (req("flag_bit", True), Reason.NOT_WRITABLE, "read-modify-write"),
        (req("set_temp", True), Reason.WRONG_TYPE, "takes a number, got bool"),
        (req("set_temp", "175"), Reason.WRONG_TYPE, "got str"),
        (req("set_temp", None), Reason.WRONG_TYPE, "got NoneType"),
        (req("set_temp", [175]), Reason.WRONG_TYPE, "got list"),
        (req("set_temp", 175j), Reason.WRONG_TYPE, "got complex"),
        (req("start", 2), Reason.WRONG_TYPE, "true/false or 0/1"),
        (req("start", 1.0), Reason.WRONG_TYPE, "true/false or 0/1"),
        (req("start", "on"), Reason.WRONG_TYPE, "true/false or 0/1"),
        (req("name", "AB"), Reason.WRONG_TYPE, "text points cannot be written"),
        (req("set_temp", math.nan), Reason.NOT_A_NUMBER, "nan"),
        (req("set_temp", math.inf), Reason.NOT_A_NUMBER, "inf"),
        (req("setpoint_f32", -math.inf), Reason.NOT_A_NUMBER, "-inf"),
        (req("set_temp", 190.01), Reason.OUT_OF_RANGE, "out of range 120..190"),
        (req("set_temp", 119.99), Reason.OUT_OF_RANGE, "out of range 120..190"),
        (req("set_temp", -(10**400)), Reason.OUT_OF_RANGE, "120..190"),
        (req("big_u32", 10**400), Reason.OUT_OF_RANGE, "0..4000000000"),
        (req("only_set", False), Reason.OUT_OF_RANGE, "1..1"),
        (req("half_limit", 199.5), Reason.NOT_REPRESENTABLE, "stored as 200"),
        (req("too_fine", 70), Reason.NOT_REPRESENTABLE, "outside 0..65535"),
    ],
)
def test_refuses(request_: WriteRequest, kind: Reason, text: str) -> None:
    devices = (device(), device("lost", "no-such-profile"), device("probe1", "probe-node"))
    g = guard(*devices)
    verdict = g.check(request_)
    assert isinstance(verdict, Refused), verdict
    assert verdict.request is request_
    assert verdict.kind is kind
    assert verdict.reason.startswith(kind.value)
    assert text in verdict.reason
    assert g.refused == {kind.value: 1}
    assert g.approved == 0


def test_reasons_are_never_prefixes_of_each_other() -> None:
    for a in Reason:
        for b in Reason:
            assert a is b or not a.value.startswith(b.value)


def test_refusals_are_counted_by_reason() -> None:
    g = guard()
    for _ in range(3):
        g.check(req("set_temp", 500))
    g.check(req("nope", 1))
    g.check(req("set_temp", 150))
    assert g.refused == {"out of range": 3, "unknown point": 1}
    assert g.approved == 1


# --- site narrowing ------------------------------------------------------------------------------


def test_site_narrows_the_profile_range() -> None:
    g = guard(device(set_temp=WriteRange(min=160, max=180)))
    assert isinstance(g.check(req("set_temp", 170)), Approved)
    for value in (150, 185, 120, 190):  # inside the profile's range, outside the site's
        verdict = g.check(req("set_temp", value))
        assert isinstance(verdict, Refused)
        assert verdict.reason == "out of range 160..180"


def test_a_wider_site_range_cannot_widen() -> None:
    g = guard(device(set_temp=WriteRange(min=100, max=250)))
    verdict = g.check(req("set_temp", 200))
    assert isinstance(verdict, Refused)
    assert verdict.reason == "out of range 120..190"
    assert isinstance(g.check(req("set_temp", 190)), Approved)


def test_a_disjoint_site_range_allows_nothing() -> None:
    g = guard(device(set_temp=WriteRange(min=200, max=250)))
    verdict = g.check(req("set_temp", 150))
    assert isinstance(verdict, Refused)
    assert verdict.kind is Reason.OUT_OF_RANGE
    assert "allows no value" in verdict.reason


def test_narrowing_is_per_device() -> None:
    g = guard(device("a", set_temp=WriteRange(min=160, max=170)), device("b"))
    assert isinstance(g.check(req("set_temp", 185, dev="a")), Refused)
    assert isinstance(g.check(req("set_temp", 185, dev="b")), Approved)


def test_first_of_duplicate_device_ids_wins() -> None:
    g = guard(device(set_temp=WriteRange(min=160, max=170)), device())
    assert isinstance(g.check(req("set_temp", 185)), Refused)


def test_effective_range() -> None:
    p = PROFILE.point("set_temp")
    assert p is not None
    assert effective_range(p, None) == (120, 190)
    assert effective_range(p, WriteRange(min=0, max=150)) == (120, 150)
    assert effective_range(p, WriteRange(min=191, max=200)) is None
    read_only = PROFILE.point("oil_temp")
    assert read_only is not None
    assert effective_range(read_only, None) is None


# --- rate limit ----------------------------------------------------------------------------------


def test_rate_limit_is_a_sliding_window_per_device() -> None:
    clock = FakeClock()
    g = guard(device(profile="slow"), device("other", profile="slow"), clock=clock)
    for _ in range(3):
        assert isinstance(g.check(req("cook_time", 60)), Approved)
        clock.t += 1
    verdict = g.check(req("cook_time", 60))
    assert isinstance(verdict, Refused)
    assert verdict.reason == "rate limit (3 writes per minute)"
    assert isinstance(g.check(req("cook_time", 60, dev="other")), Approved)
    # The first write leaves the window exactly 60 s after it was made.
    clock.t = 1000.0 + WINDOW_S - 0.001
    assert isinstance(g.check(req("cook_time", 60)), Refused)
    clock.t = 1000.0 + WINDOW_S
    assert isinstance(g.check(req("cook_time", 60)), Approved)
    assert isinstance(g.check(req("cook_time", 60)), Refused)  # the 2nd still counts until 1061
    clock.t += 1
    assert isinstance(g.check(req("cook_time", 60)), Approved)
    assert g.refused == {"rate limit": 3}


@pytest.mark.parametrize("step_s", [-7200.0, 7200.0])
def test_a_wall_clock_step_neither_frees_nor_uses_up_the_budget(step_s: float) -> None:
    clock = ManualClock()
    g = WriteGuard(PROFILES, (device(profile="slow"),), monotonic=clock.monotonic)
    for _ in range(3):
        assert isinstance(g.check(req("cook_time", 60)), Approved)
    clock.step_wall(step_s)
    assert isinstance(g.check(req("cook_time", 60)), Refused)  # still inside the window
    clock.advance(WINDOW_S)
    assert isinstance(g.check(req("cook_time", 60)), Approved)  # 60 s later, whatever the wall


def test_refused_writes_do_not_use_up_the_budget() -> None:
    clock = FakeClock()
    g = guard(device(profile="slow"), clock=clock)
    for _ in range(100):
        g.check(req("cook_time", 5000))
        g.check(req("oil_temp", 1))
    for _ in range(3):
        assert isinstance(g.check(req("cook_time", 60)), Approved)
    assert g.refused == {"out of range": 100, "not writable": 100}


def test_zero_writes_per_minute_disables_writes() -> None:
    g = guard(device(profile="none"))
    verdict = g.check(req("cook_time", 60))
    assert isinstance(verdict, Refused)
    assert verdict.kind is Reason.RATE_LIMIT


# --- properties --------------------------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e10, max_value=1e10),
    st.integers(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
)


@st.composite
def narrowed(draw: st.DrawFn, p: ModbusPoint) -> WriteRange | None:
    """Sometimes no site range, sometimes a narrowing, sometimes a (wrong) wider one."""
    assert p.write is not None
    kind = draw(st.sampled_from(["none", "inside", "anything"]))
    if kind == "none":
        return None
    lo, hi = (p.write.min, p.write.max) if kind == "inside" else (-1e12, 1e12)
    a = draw(st.floats(min_value=lo, max_value=hi))
    b = draw(st.floats(min_value=lo, max_value=hi))
    return WriteRange(min=min(a, b), max=max(a, b))


def _within(p: ModbusPoint, x: float, low: float, high: float) -> bool:
    # Decoding is float arithmetic: an f32 keeps ~7 digits, float64 ~16. Anything beyond that
    # tolerance would be a real overshoot.
    rel = 1e-6 if p.type is PointType.F32 else 1e-12
    tol = rel * (max(abs(low), abs(high)) + abs(p.offset) + abs(p.scale))
    return low - tol <= x <= high + tol


@given(data=st.data(), p=st.sampled_from(WRITABLE))
def test_no_value_outside_the_effective_range_is_ever_approved(
    data: st.DataObject, p: ModbusPoint
) -> None:
    site = data.draw(narrowed(p))
    rng = effective_range(p, site)
    near: st.SearchStrategy[Any] = st.nothing()
    if rng is not None:
        # Most bugs live at the edges: rounding to the register's resolution can step over a
        # fractional limit (89.6 s becomes 90 s > 89.7 s).
        margin = 2 * abs(p.scale) + 1e-9
        near = st.floats(min_value=rng[0] - margin, max_value=rng[1] + margin)
        near |= st.sampled_from([rng[0], rng[1]])
    value = data.draw(ANY_VALUE | near)
    d = device(**({p.id: site} if site is not None else {}))
    verdict = guard(d).check(req(p.id, value))
    if not isinstance(verdict, Approved):
        return
    assert rng is not None
    low, high = rng
    assert not isinstance(value, str | None)
    assert low <= value <= high
    back = decode_point(p, verdict.words, PROFILE.settings)
    assert isinstance(back, int | float)
    assert _within(p, back, low, high)
    assert len(verdict.words) == p.registers
    assert all(0 <= w <= 0xFFFF for w in verdict.words)


@given(data=st.data(), p=st.sampled_from(NUMERIC))
def test_values_just_outside_the_range_are_refused(data: st.DataObject, p: ModbusPoint) -> None:
    site = data.draw(narrowed(p))
    rng = effective_range(p, site)
    assume(rng is not None)
    assert rng is not None
    low, high = rng
    below = data.draw(st.floats(max_value=low, exclude_max=True, allow_nan=False))
    above = data.draw(st.floats(min_value=high, exclude_min=True, allow_nan=False))
    d = device(**({p.id: site} if site is not None else {}))
    g = guard(d)
    for value in (below, above, math.nextafter(low, -math.inf), math.nextafter(high, math.inf)):
        verdict = g.check(req(p.id, value))
        assert isinstance(verdict, Refused)
        assert verdict.kind in {Reason.OUT_OF_RANGE, Reason.NOT_A_NUMBER}
    assert g.approved == 0


@given(
    device_id=st.one_of(st.text(max_size=8), st.none(), st.integers()),
    point_id=st.one_of(st.text(max_size=8), st.none(), st.integers()),
    value=ANY_VALUE,
    source=st.text(max_size=8),
)
def test_never_raises(device_id: Any, point_id: Any, value: Any, source: str) -> None:
    g = guard()
    verdict = g.check(WriteRequest(device_id, point_id, value, source))
    assert isinstance(verdict, Approved | Refused)
    assert g.approved + sum(g.refused.values()) == 1


@given(value=st.integers(min_value=10, max_value=900))
def test_every_in_range_integer_is_approved(value: int) -> None:
    verdict = guard().check(req("cook_time", value))
    assert isinstance(verdict, Approved)
    assert verdict.words == [value]


# --- config check --------------------------------------------------------------------------------


def test_config_check_accepts_narrowing() -> None:
    devices = [device(set_temp=WriteRange(min=150, max=190), start=WriteRange(min=1, max=1))]
    assert check_device_writes(PROFILES, devices) == []


def test_config_check_reports_every_problem() -> None:
    devices = [
        device("ok"),
        device(
            "bad",
            set_temp=WriteRange(min=100, max=180),
            cook_time=WriteRange(min=10, max=1000),
            oil_temp=WriteRange(min=0, max=1),
            nothing=WriteRange(min=0, max=1),
        ),
        device("probe1", "probe-node", temp=WriteRange(min=0, max=1)),
        device("lost", "no-such-profile", set_temp=WriteRange(min=0, max=1)),
    ]
    problems = {p.key: p for p in check_device_writes(PROFILES, devices)}
    assert set(problems) == {
        "devices[1].writes.set_temp",
        "devices[1].writes.cook_time",
        "devices[1].writes.oil_temp",
        "devices[1].writes.nothing",
        "devices[2].writes.temp",
    }
    wider = problems["devices[1].writes.set_temp"]
    assert "100..180 is wider than the profile's 120..190" in wider.message
    assert wider.fix == "use a range inside 120..190"
    assert "wider than the profile's 10..900" in problems["devices[1].writes.cook_time"].message
    assert "read-only" in problems["devices[1].writes.oil_temp"].message
    assert "set_temp" in problems["devices[1].writes.nothing"].fix
    assert "MQTT" in problems["devices[2].writes.temp"].message
