"""CSV traces for the backtest: the query command's CSV as it is, and every bad row named."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.devices.profile import BUILTIN_PROFILES, load_profile
from gateway.telemetry.trace import TraceError, parse_trace, point_kinds

FRIDGE = point_kinds(load_profile(BUILTIN_PROFILES / "walkin-fridge.toml"))
T0 = datetime(2026, 12, 3, 22, 0, tzinfo=UTC)


def test_the_profile_says_each_points_type() -> None:
    assert FRIDGE["cabinet_temp"] == "float"  # i16 x 0.1
    assert FRIDGE["door_open"] == "bool"
    assert FRIDGE["alarm_delay_min"] == "int"
    probe = point_kinds(load_profile(BUILTIN_PROFILES / "fridge-probe-node.toml"))
    assert probe == {
        "temp_c": "float", "door_open": "bool", "battery_v": "float", "rssi_dbm": "int"
    }  # fmt: skip


def test_the_query_csv_is_read_as_it_is() -> None:
    text = (
        "time,point,value,unit,food_safety\n"
        "2026-12-03T23:00:05.000+01:00,cabinet_temp,3.5,°C,yes\n"
        "2026-12-03T23:00:05.000+01:00,door_open,false,,\n"
        "2026-12-03T23:00:00.000+01:00,cabinet_temp,3.4,°C,yes\n"
    )
    readings = parse_trace(text, "fridge-1", FRIDGE)
    assert [(r.at, r.values) for r in readings] == [
        (T0, {"cabinet_temp": 3.4}),
        (T0 + timedelta(seconds=5), {"cabinet_temp": 3.5, "door_open": False}),
    ]


def test_epoch_seconds_and_a_device_column() -> None:
    text = (
        "device,time,point,value\n"
        f"fridge-1,{T0.timestamp()},cabinet_temp,4\n"
        f"fridge-2,{T0.timestamp()},cabinet_temp,9\n"
    )
    assert [(r.at, r.values) for r in parse_trace(text, "fridge-1", FRIDGE)] == [
        (T0, {"cabinet_temp": 4.0})
    ]


def test_every_bad_row_is_named_and_nothing_is_used() -> None:
    text = (
        "time,point,value\n"
        "2026-12-03T22:00:00+00:00,cabinet_temp,3.4\n"
        "2026-12-03T22:00:05,cabinet_temp,3.4\n"  # no offset
        "2026-12-03T22:00:10+00:00,cabnet_temp,3.4\n"  # a typo
        "2026-12-03T22:00:15+00:00,cabinet_temp,warm\n"
        "2026-12-03T22:00:20+00:00,door_open,maybe\n"
        "yesterday,cabinet_temp,3.4\n"
        "2026-12-03T22:00:30+00:00,alarm_delay_min,2.5\n"
        "2026-12-03T22:00:35+00:00,cabinet_temp\n"
    )
    with pytest.raises(TraceError) as err:
        parse_trace(text, "fridge-1", FRIDGE)
    assert [p.split(":", 1)[0] for p in err.value.problems] == [f"row {n}" for n in range(3, 10)]
    assert "no UTC offset" in err.value.problems[0]
    assert "'cabnet_temp' is not in the device's profile" in err.value.problems[1]


def test_a_file_without_the_columns_says_which() -> None:
    with pytest.raises(TraceError, match="no point, value column"):
        parse_trace("time,temp\n1,2\n", "fridge-1", FRIDGE)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.sampled_from(["cabinet_temp", "door_open", "alarm_delay_min"]),
            st.integers(-300, 300),
        ),
        max_size=40,
    )
)
def test_what_the_query_writes_reads_back(rows: list[tuple[int, str, int]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time", "point", "value", "unit", "food_safety"])
    expected: dict[datetime, dict[str, object]] = {}
    for offset_ms, point, n in rows:
        at = T0 + timedelta(milliseconds=offset_ms)
        value: object = {"cabinet_temp": n / 10, "door_open": n % 2 == 0,
                         "alarm_delay_min": n}[point]  # fmt: skip
        text = {"cabinet_temp": str(value), "door_open": "true" if value else "false"}.get(
            point, str(value)
        )
        writer.writerow([at.astimezone().isoformat(timespec="milliseconds"), point, text, "", ""])
        expected.setdefault(at, {})[point] = value
    got = parse_trace(out.getvalue(), "fridge-1", FRIDGE)
    assert [(r.at, r.values) for r in got] == sorted(expected.items())
