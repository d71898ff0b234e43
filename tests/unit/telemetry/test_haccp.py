"""The HACCP core: the chain and its check, the sampler's interval records and gaps, excursions."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.devices.events import DeviceReadings
from gateway.telemetry.haccp import (
    GENESIS,
    Chain,
    ChainCheck,
    Draft,
    Excursions,
    HaccpCore,
    Head,
    Problem,
    Sampler,
    canonical,
)
from gateway.telemetry.signals import Priority, Signal

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
FIFTEEN = timedelta(minutes=15)
UNITS = {"fridge-1": {"cabinet_temp": "°C"}, "oven-1": {"cabinet_temp": "°C", "core_temp": "°C"}}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def reading(minutes: float, value: float, device: str = "fridge-1", **more: Any) -> DeviceReadings:
    return DeviceReadings(device, at(minutes), {"cabinet_temp": value, "door_open": False, **more})


def fields(drafts: list[Draft], kind: str) -> list[dict[str, Any]]:
    return [d.fields | {"at": d.at} for d in drafts if d.kind == kind]


def fridge(drafts: list[Draft]) -> list[Draft]:
    """Only what concerns fridge-1 (the oven, silent in these tests, has gaps of its own)."""
    return [d for d in drafts if "fridge-1" in (d.fields.get("device"), d.fields.get("scope"))]


def lines(drafts: list[Draft]) -> list[bytes]:
    chain = Chain()
    return [chain.seal(d).line.rstrip(b"\n") for d in drafts]


# --- the chain ------------------------------------------------------------------------------


def test_a_record_is_its_canonical_json_and_its_hash_is_sha256_of_it_without_the_hash() -> None:
    chain = Chain()
    first = chain.seal(Draft("action", T0, {"note": "Kühlraum geprüft", "by": "anna"}))
    second = chain.seal(Draft("action", at(1), {"note": "ok", "by": "ben"}))
    record = json.loads(first.line)
    assert first.line.endswith(b"\n")
    assert first.line.count(b"\n") == 1
    assert first.line.isascii()  # non-ASCII as \u escapes
    assert b"K\\u00fchlraum" in first.line
    assert list(record) == sorted(record)
    assert (record["v"], record["seq"], record["prev"]) == (1, 1, GENESIS)
    assert record["at"] == "2026-12-04T10:00:00.000000+00:00"
    body = {k: v for k, v in record.items() if k != "hash"}
    spelled = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert record["hash"] == hashlib.sha256(spelled.encode("ascii")).hexdigest() == first.hash
    assert first.line == canonical(record) + b"\n"
    assert json.loads(second.line)["prev"] == first.hash
    assert (second.seq, chain.seq, chain.prev) == (2, 2, second.hash)


def test_a_chain_continues_from_a_head() -> None:
    chain = Chain(41, "a" * 64)
    sealed = chain.seal(Draft("gateway_start", T0))
    assert json.loads(sealed.line)["seq"] == 42
    check = ChainCheck(41, "a" * 64)
    assert not isinstance(check.feed(sealed.line.rstrip(b"\n")), Problem)


def test_measured_values_are_text_so_a_float_in_a_record_is_refused() -> None:
    sealed = Chain().seal(Draft("interval", T0, {"value": "3.6"}))
    line = sealed.line.rstrip(b"\n")
    assert b'"value":"3.6"' in line
    forged = line.replace(b'"value":"3.6"', b'"value":3.6')
    problem = ChainCheck().feed(forged)
    assert isinstance(problem, Problem)
    assert "fraction or exponent" in problem.what


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)  # fmt: skip
drafts = st.builds(
    Draft,
    st.sampled_from(["interval", "gap", "action", "excursion_end", "x"]),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1),  # noqa: DTZ001
                 timezones=st.just(UTC)),
    st.dictionaries(st.text(max_size=8).filter(lambda k: k not in {"v", "seq", "prev", "kind",
                                                                   "at", "hash"}),
                    json_values, max_size=4),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(drafts, min_size=1, max_size=8))
def test_any_sequence_of_records_verifies(records: list[Draft]) -> None:
    check = ChainCheck()
    for n, line in enumerate(lines(records), 1):
        assert not isinstance(check.feed(line), Problem), n
    assert check.checked == len(records)


@settings(max_examples=150, deadline=None)
@given(st.lists(drafts, min_size=1, max_size=5), st.data())
def test_any_single_byte_change_in_any_record_is_caught_on_that_record(
    records: list[Draft], data: st.DataObject
) -> None:
    sealed = lines(records)
    k = data.draw(st.integers(0, len(sealed) - 1), label="record")
    i = data.draw(st.integers(0, len(sealed[k]) - 1), label="byte")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != sealed[k][i]), label="value")
    changed = bytearray(sealed[k])
    changed[i] = new
    sealed[k] = bytes(changed)
    check = ChainCheck()
    for n, line in enumerate(sealed):
        result = check.feed(line)
        if n < k:
            assert not isinstance(result, Problem)
        else:
            assert isinstance(result, Problem), "a changed byte went unnoticed"
            return


def test_the_check_says_what_is_wrong() -> None:
    a, b, c = lines([Draft("x", T0), Draft("y", at(1)), Draft("z", at(2))])
    assert "hash does not match" in str(ChainCheck().feed(a.replace(b'"x"', b'"w"')))
    spaced = a.replace(b'","', b'", "', 1)
    assert "canonical" in str(ChainCheck().feed(spaced))
    assert "not a record" in str(ChainCheck().feed(b"{torn"))
    check = ChainCheck()
    check.feed(a)
    assert "records 2..2 are missing" in str(check.feed(c))
    check = ChainCheck()
    check.feed(a)
    check.feed(b)
    assert "seq repeats or goes back" in str(check.feed(b))


# --- the sampler ----------------------------------------------------------------------------


def sampler(start: float = -1.0, interval: timedelta = FIFTEEN) -> Sampler:
    s = Sampler(interval, UNITS)
    s.start(at(start))
    return s


def test_one_record_per_mark_with_the_reading_nearest_it_and_the_windows_min_and_max() -> None:
    s = sampler()
    out: list[Draft] = []
    values = {m: 3.0 + (m % 7) / 10 for m in range(46)}  # a reading a minute, 10:00 to 10:45
    values[20] = 6.2  # a short peak between two marks, not an excursion
    for m, v in values.items():
        out += s.reading(reading(m, v))
    records = fields(out, "interval")
    assert [r["at"] for r in records] == [at(0), at(15), at(30)]  # 10:45's window is still open
    first, second = (r["points"]["cabinet_temp"] for r in records[:2])
    # 10:00's window is 09:52:30-10:07:30, watched from the start at 09:59: readings 0..7.
    assert records[0]["from"] == "2026-12-04T09:59:00.000000+00:00"
    assert records[0]["to"] == "2026-12-04T10:07:30.000000+00:00"
    assert first == {"value": "3.0", "read_at": "2026-12-04T10:00:00.000000+00:00", "n": 8,
                     "min": "3.0", "max": "3.6", "unit": "°C"}  # fmt: skip
    # 10:15: readings 8..22 (10:07:30-10:22:30), the nearest is 10:15 itself; the peak shows.
    assert second["value"] == str(values[15])
    assert (second["n"], second["max"]) == (15, "6.2")
    assert records[1]["from"] == "2026-12-04T10:07:30.000000+00:00"
    assert s.reading(reading(7.5, 3.3)) == []  # late for 10:00's window: counted, not placed
    assert s.late == 1


def test_the_nearest_reading_wins_and_a_tie_goes_to_the_earlier() -> None:
    s = sampler()
    for minutes in (13.0, 17.0, 29.0):
        drafts = s.reading(reading(minutes, minutes))
    point = fields(drafts, "interval")[0]["points"]["cabinet_temp"]
    assert (point["value"], point["n"]) == ("13.0", 2)


def test_several_food_safety_points_in_one_record_and_other_points_left_out() -> None:
    s = sampler()
    s.reading(DeviceReadings("oven-1", at(1), {"cabinet_temp": 80.0, "core_temp": 71.5,
                                               "fan": 3}))  # fmt: skip
    s.reading(DeviceReadings("oven-1", at(2), {"fan": 4}))  # no food-safety value: not a reading
    out = s.reading(DeviceReadings("oven-1", at(9), {"core_temp": 72.0}))
    (record,) = fields(out, "interval")
    assert set(record["points"]) == {"cabinet_temp", "core_temp"}
    assert record["points"]["core_temp"]["n"] == 1
    assert s.reading(DeviceReadings("fryer-1", at(20), {"oil": 180.0})) == []


def test_silence_is_a_gap_from_the_last_reading_to_the_next_never_filled_in() -> None:
    s = sampler()
    out: list[Draft] = []
    for m in range(7):
        out += s.reading(reading(m, 3.0))
    out += s.tick(at(9))  # 10:00's window ended at 10:07:30 and the grace (90 s) has passed
    out += s.tick(at(30))  # 10:15's window has passed with nothing in it
    out += s.tick(at(60))
    out += s.reading(reading(62, 3.1))
    out += s.tick(at(80))
    out = fridge(out)
    assert [d.kind for d in out] == ["interval", "gap_start", "gap", "interval"]
    assert fields(out, "gap_start")[0] == {"scope": "fridge-1", "reason": "no reading",
                                           "at": at(6)}  # fmt: skip
    gap = fields(out, "gap")[0]
    assert (gap["since"], gap["until"], gap["seconds"]) == (
        "2026-12-04T10:06:00.000000+00:00", "2026-12-04T11:02:00.000000+00:00", 56 * 60)
    marks = [r["at"] for r in fields(out, "interval")]
    assert marks == [at(0), at(60)]  # nothing for 10:15, 10:30, 10:45: the gap says why


def test_a_window_skipped_without_a_tick_is_still_a_gap() -> None:
    s = sampler()
    s.reading(reading(1, 3.0))
    out = s.reading(reading(40, 3.2))
    assert [d.kind for d in out] == ["interval", "gap"]
    assert fields(out, "gap")[0]["seconds"] == 39 * 60


def test_offline_cuts_the_window_and_is_a_gap_with_its_length_until_online() -> None:
    s = sampler()
    out: list[Draft] = []
    for m in range(4):
        out += s.reading(reading(m, 3.0))
    why = "3 polls failed: no answer within 0.5 s"
    out += s.availability("fridge-1", at(4), online=False, reason=why)
    out += s.tick(at(50))
    out += s.availability("fridge-1", at(51), online=False, reason="still")  # said once
    out += s.availability("fridge-1", at(52), online=True)
    out += s.reading(reading(53, 3.4))
    out += s.reading(reading(69, 3.5))
    out = fridge(out)
    assert [d.kind for d in out] == ["interval", "gap_start", "gap", "interval"]
    assert fields(out, "interval")[0]["to"] == "2026-12-04T10:04:00.000000+00:00"
    gap = fields(out, "gap")[0]
    assert gap["reason"] == "offline: 3 polls failed: no answer within 0.5 s"
    assert (gap["seconds"], gap["until"]) == (48 * 60, "2026-12-04T10:52:00.000000+00:00")
    # Online at 10:52 is inside 10:45's window (to 10:52:30), which ends empty: that is no gap
    # of its own (it was watched for 30 s); 11:00's window is then watched whole.
    after = fields(out, "interval")[1]
    assert (after["at"], after["from"]) == (at(60), "2026-12-04T10:52:30.000000+00:00")


def test_a_reading_while_offline_ends_the_gap() -> None:
    s = sampler()
    s.availability("fridge-1", at(2), online=False)
    out = s.reading(reading(10, 3.0))
    assert [d.kind for d in out] == ["gap"]
    assert s.availability("fridge-1", at(11), online=True) == []


def test_the_stop_writes_the_part_window_and_ends_open_gaps() -> None:
    s = sampler()
    s.reading(reading(16, 3.0))
    s.reading(reading(17, 3.2))
    s.availability("oven-1", at(5), online=False)
    out = s.stop(at(18))
    interval = fields(out, "interval")[0]
    assert (interval["at"], interval["to"]) == (at(15), "2026-12-04T10:18:00.000000+00:00")
    gap = fields(out, "gap")[0]
    assert gap["scope"] == "oven-1"
    assert gap["reason"] == "offline (until the gateway stopped)"
    assert s.stop(at(19)) == []


def test_marks_follow_the_interval() -> None:
    s = sampler(interval=timedelta(minutes=10))
    assert s.window_of(at(4.9))[0] == at(0)
    assert s.window_of(at(5))[0] == at(10)  # the half-open window [M-5, M+5)
    assert s.window_of(at(-5.1))[0] == at(-10)


# --- excursions -----------------------------------------------------------------------------


def signal(kind: str, minutes: float, value: float, rule: str = "cold_holding",
           **more: Any) -> Signal:  # fmt: skip
    defaults: dict[str, Any] = {"point": "cabinet_temp", "limit": 5.0, "food_safety": True}
    return Signal(kind, "fridge-1", rule, Priority.HIGH, at(minutes),  # type: ignore[arg-type]
                  value=value, **(defaults | more))  # fmt: skip


def test_an_excursion_has_its_start_end_duration_and_peak() -> None:
    exc = Excursions()
    temps = {m: 4.0 + m / 10 for m in range(31)}  # over 5 from minute 11
    temps[24] = 9.4
    for m, v in temps.items():
        exc.reading("fridge-1", at(120 + m), {"cabinet_temp": v})
    (start,) = exc.signal(signal("open", 150, 7.0, since=at(131)))
    for m in range(31, 90):
        exc.reading("fridge-1", at(120 + m), {"cabinet_temp": 7.0 - m / 30})
    (end,) = exc.signal(signal("clear", 220, 4.0))
    assert start.kind == "excursion_start"
    assert start.fields["since"] == "2026-12-04T12:11:00.000000+00:00"
    assert (start.fields["direction"], start.fields["limit"]) == ("above", "5.0")
    assert end.kind == "excursion_end"
    assert end.fields["start"] == "2026-12-04T12:11:00.000000+00:00"
    assert end.fields["end"] == "2026-12-04T13:40:00.000000+00:00"
    assert end.fields["seconds"] == 89 * 60
    # The peak came before the detector decided: it is found in the minutes kept.
    assert end.fields["peak"] == "9.4"
    assert end.fields["peak_at"] == "2026-12-04T12:24:00.000000+00:00"
    assert (end.fields["ended"], end.fields["alert_id"]) == ("cleared", "fridge-1:cold_holding")


def test_a_low_excursion_peaks_at_its_lowest() -> None:
    exc = Excursions()
    exc.signal(signal("open", 0, 55.0, limit=57.0, since=at(0), rule="hot_holding"))
    for m, v in enumerate([55.0, 53.5, 54.0, 58.0]):
        exc.reading("fridge-1", at(m + 1), {"cabinet_temp": v})
    (end,) = exc.signal(signal("clear", 10, 58.0, limit=57.0, rule="hot_holding"))
    assert (end.fields["direction"], end.fields["peak"]) == ("below", "53.5")


def test_only_food_safety_signals_count_and_a_second_open_only_adds_its_value() -> None:
    exc = Excursions()
    assert exc.signal(signal("open", 0, 7.0, food_safety=False)) == []
    assert len(exc.signal(signal("open", 0, 7.0))) == 1
    assert exc.signal(signal("open", 5, 8.0)) == []
    (end,) = exc.signal(signal("clear", 20, 4.0))
    assert (end.fields["start"], end.fields["peak"]) == ("2026-12-04T10:00:00.000000+00:00", "8.0")


def test_a_clear_whose_open_was_not_seen_says_so() -> None:
    (end,) = Excursions().signal(signal("clear", 20, 4.0, since=at(-30)))
    assert end.fields["start"] == "2026-12-04T09:30:00.000000+00:00"
    assert end.fields["note"] == "its start was not seen by this run of the gateway"
    assert (end.fields["peak"], end.fields["direction"]) == (None, None)


def test_a_stop_ends_open_excursions_as_such() -> None:
    exc = Excursions()
    exc.signal(signal("open", 0, 7.0, since=at(-10)))
    (end,) = exc.stop(at(30))
    assert (end.fields["ended"], end.fields["seconds"]) == ("gateway_stopped", 40 * 60)
    assert exc.stop(at(31)) == []


# --- the whole core -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clean", "reason"),
    [(True, "gateway stopped"), (False, ("the gateway ended without a clean stop (crash, power "
                                         "cut or kill) after its last record"))],
)  # fmt: skip
def test_a_start_records_the_gateways_own_gap_with_its_length(clean: bool, reason: str) -> None:
    core = HaccpCore("trattoria", FIFTEEN, 90, UNITS | {"fryer-1": {}})
    out = core.start(at(30), Head(7, "b" * 64, at(0), clean))
    assert [d.kind for d in out] == ["gap", "gateway_start"]
    assert out[0].fields == {"scope": "gateway", "reason": reason, "since": stamp_(at(0)),
                             "until": stamp_(at(30)), "seconds": 1800, "clean": clean}  # fmt: skip
    assert out[1].fields["units"] == UNITS  # a unit without food-safety points is no unit
    assert out[1].fields["interval_s"] == 900


def test_a_first_start_has_no_gap_a_torn_line_is_said_and_a_clock_set_back_has_no_length() -> None:
    core = HaccpCore("s", FIFTEEN, 90, UNITS)
    assert [d.kind for d in core.start(T0, Head())] == ["gateway_start"]
    out = core.start(at(-60), Head(3, "c" * 64, T0, clean=True, torn=17, torn_to="x.torn"))
    assert [d.kind for d in out] == ["repair", "gap", "gateway_start"]
    assert out[0].fields["bytes"] == 17
    assert out[1].fields["seconds"] is None  # the clock is behind the last record


def test_the_core_stop_ends_with_the_gateways_gap() -> None:
    core = HaccpCore("s", FIFTEEN, 90, UNITS)
    core.start(T0, Head())
    core.reading(reading(3, 3.0))
    core.signal(signal("open", 4, 7.0))
    kinds = [d.kind for d in core.stop(at(5))]
    assert kinds == ["interval", "excursion_end", "gap_start"]


def stamp_(when: datetime) -> str:
    return when.isoformat(timespec="microseconds")
