"""``gateway telemetry query`` and ``status`` on real history files, and their time arguments."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.cli import main
from gateway.site_file import parse_site
from gateway.telemetry import cli_commands as cmd
from gateway.telemetry.history import History, HistoryReader, Row, SinkRecord
from gateway.telemetry.lanes import Cursor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from gateway.config import SiteConfig

Series = tuple[str, str, tuple[tuple[str, str], ...], str]


def series(device: str) -> Series:
    """A walk-in's series, as the recorder makes it from the site's schema."""
    tags = (("device", device), ("site", "s"))
    return (device, "fridge", tags, f"fridge,device={device},site=s")


WALKIN = series("walkin-1")
OLD = series("old-fridge")  # gone from the site file since
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Microseconds that a float timestamp() cannot hold exactly in nanoseconds.
T0 = datetime(2025, 1, 15, 6, 30, 0, 123457, tzinfo=UTC)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def ns(at: datetime) -> int:
    """As the recorder stamps a reading (microseconds, exactly)."""
    return (at - EPOCH) // timedelta(microseconds=1) * 1000


def site_data(state_dir: str, *, influx: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "site": {"id": "s", "name": "cli"},
        "state": {"dir": state_dir, "durability": "normal"},
        "tables": {"count": 1},
        "stations": [{"id": "cold", "name": "Cold"}],
        "groups": [{"id": "g", "names": {"en": "g"}}],
        "items": [{"id": "i", "group": "g", "names": {"en": "i"}, "price": 1, "prep_s": 1}],
        "routes": [{"group": "g", "station": "cold"}],
        "devices": [
            {"id": "walkin-1", "profile": "walkin-fridge", "host": "127.0.0.1"},
            {"id": "walkin-2", "profile": "walkin-fridge", "host": "127.0.0.1", "unit": 2},
        ],
    }
    if influx:
        data["telemetry"] = {"influx": {"url": "http://127.0.0.1:8086"}}
    return data


def site(tmp_path: Path, *, influx: bool = False) -> SiteConfig:
    return parse_site(site_data(str(tmp_path / "state"), influx=influx))


def history(cfg: SiteConfig) -> History:
    return History(cfg.state.dir / "telemetry.db", "normal")


def reading(at: datetime, n: int = 0, of: Series = WALKIN) -> list[Row]:
    """One poll of a walk-in: its food-safety point in one row, the others in another."""
    door = "true" if n % 2 else "false"
    return [
        Row(of, ns(at), safety=True, fields=f"cabinet_temp={3 + n / 10}"),
        Row(of, ns(at), safety=False, fields=f"door_open={door},compressor_hours={1200 + n}i"),
    ]


@pytest.fixture
def local_zone() -> Iterator[Callable[[str], None]]:
    """Set the process's local time zone (a POSIX TZ string: no tz database needed)."""
    before = os.environ.get("TZ")

    def use(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    yield use
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def utc(local_zone: Callable[[str], None]) -> None:
    """Times print in UTC, so the expected output can be spelled out."""
    local_zone("UTC0")


def run_query(cfg: SiteConfig, device: str = "walkin-1", **options: Any) -> tuple[int, str]:
    args: dict[str, Any] = {"since": T0 - timedelta(hours=1), "until": T0 + timedelta(hours=1),
                            "point": None, "fmt": "table"}  # fmt: skip
    args.update(options)
    out = io.StringIO()
    code = cmd.query(cfg, device, out=out, **args)
    return code, out.getvalue()


def run_status(cfg: SiteConfig, now: datetime) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = cmd.status(cfg, now, out)
    return code, out.getvalue().splitlines()


# --- query ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("utc")
def test_query_prints_a_table_with_units_and_food_safety_marks(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    with history(cfg) as h:
        h.append([*reading(T0, 0), *reading(T0 + timedelta(seconds=5), 1)])
    code, text = run_query(cfg)
    assert code == 0
    assert [line.split() for line in text.splitlines()] == [
        ["2025-01-15T06:30:00.123+00:00", "cabinet_temp", "3.0", "°C", "*"],
        ["2025-01-15T06:30:00.123+00:00", "door_open", "false"],
        ["2025-01-15T06:30:00.123+00:00", "compressor_hours", "1200", "h"],
        ["2025-01-15T06:30:05.123+00:00", "cabinet_temp", "3.1", "°C", "*"],
        ["2025-01-15T06:30:05.123+00:00", "door_open", "true"],
        ["2025-01-15T06:30:05.123+00:00", "compressor_hours", "1201", "h"],
        ["(6", "values;", "*", "=", "food-safety", "record)"],
    ]


@pytest.mark.usefixtures("utc")
def test_query_as_csv(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    with history(cfg) as h:
        h.append(reading(T0, 1))
    code, text = run_query(cfg, fmt="csv")
    assert code == 0
    assert list(csv.reader(io.StringIO(text))) == [
        ["time", "point", "value", "unit", "food_safety"],
        ["2025-01-15T06:30:00.123+00:00", "cabinet_temp", "3.1", "°C", "yes"],
        ["2025-01-15T06:30:00.123+00:00", "door_open", "true", "", ""],
        ["2025-01-15T06:30:00.123+00:00", "compressor_hours", "1201", "h", ""],
    ]


@pytest.mark.usefixtures("utc")
def test_query_as_json_lines(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    with history(cfg) as h:
        h.append(reading(T0, 0))
    code, text = run_query(cfg, fmt="json")
    assert code == 0
    when = "2025-01-15T06:30:00.123+00:00"
    assert [json.loads(line) for line in text.splitlines()] == [
        {"time": when, "point": "cabinet_temp", "value": 3.0, "unit": "°C", "food_safety": True},
        {"time": when, "point": "door_open", "value": False, "unit": "", "food_safety": False},
        {"time": when, "point": "compressor_hours", "value": 1200, "unit": "h",
         "food_safety": False},
    ]  # fmt: skip


@pytest.mark.usefixtures("utc")
def test_query_of_one_point(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    with history(cfg) as h:
        h.append([*reading(T0, 0), *reading(T0 + timedelta(seconds=5), 1)])
    code, text = run_query(cfg, point="door_open", fmt="csv")
    assert code == 0
    assert [row[1:3] for row in csv.reader(io.StringIO(text))][1:] == [
        ["door_open", "false"],
        ["door_open", "true"],
    ]
    assert run_query(cfg, point="no_such_point") == (0, "(no readings)\n")


def test_query_window_includes_its_start_and_excludes_its_end(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    # Times a float timestamp() misses by up to 128 ns, each side.
    times = [T0 + timedelta(seconds=1.234567 * k) for k in range(12)]
    with history(cfg) as h:
        for k, at in enumerate(times):
            h.append(reading(at, k))
    for k, (start, end) in enumerate(pairwise(times)):
        code, text = run_query(cfg, since=start, until=end, point="compressor_hours", fmt="json")
        assert code == 0
        assert [json.loads(line)["value"] for line in text.splitlines()] == [1200 + k]
        assert run_query(cfg, since=start, until=start) == (0, "(no readings)\n")


def test_query_window_in_another_offset_is_the_same_instant(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    with history(cfg) as h:
        h.append(reading(T0))
    paris = timezone(timedelta(hours=1))
    _, text = run_query(cfg, since=T0.astimezone(paris), until=T0 + timedelta(microseconds=1),
                        point="cabinet_temp", fmt="csv")  # fmt: skip
    assert len(text.splitlines()) == 2  # the header and the reading


def test_query_bounds_past_the_nanosecond_range_are_the_whole_history(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    with history(cfg) as h:
        h.append(reading(T0))
    since = datetime(1, 1, 2, tzinfo=UTC)
    until = datetime(9999, 12, 31, tzinfo=UTC)
    code, text = run_query(cfg, since=since, until=until, point="cabinet_temp", fmt="csv")
    assert code == 0
    assert len(text.splitlines()) == 2


def test_query_of_a_device_with_no_readings_yet(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    with history(cfg) as h:
        h.append(reading(T0))
    assert run_query(cfg, "walkin-2") == (0, "(no readings)\n")


def test_query_of_a_device_gone_from_the_site_file_still_reads_its_history(
    tmp_path: Path,
) -> None:
    cfg = site(tmp_path)
    with history(cfg) as h:
        h.append(reading(T0, of=OLD))
    code, text = run_query(cfg, "old-fridge", fmt="csv")
    assert code == 0
    assert len(text.splitlines()) == 4


def test_query_of_an_unknown_device_lists_the_devices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = site(tmp_path)
    with history(cfg) as h:
        h.append(reading(T0, of=OLD))
    assert run_query(cfg, "walkin-9") == (1, "")
    assert capsys.readouterr().err == (
        "no device 'walkin-9' in the history (devices: old-fridge, walkin-1, walkin-2)\n"
    )


def test_query_without_a_history_says_how_to_fix_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = site(tmp_path)
    assert run_query(cfg) == (1, "")
    err = capsys.readouterr().err
    assert str(tmp_path / "state" / "telemetry.db") in err
    assert "check --config, or --state-dir" in err
    assert not (tmp_path / "state").exists()  # a command that reads creates nothing


def test_query_of_a_file_that_is_not_a_history_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = site(tmp_path)
    cfg.state.dir.mkdir()
    (cfg.state.dir / "telemetry.db").write_bytes(b"not a database at all" * 100)
    assert run_query(cfg) == (1, "")
    assert capsys.readouterr().err.startswith(f"cannot read {cfg.state.dir / 'telemetry.db'}: ")


def test_query_reads_beside_a_running_writer(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    with history(cfg) as h:
        h.append(reading(T0))
        assert run_query(cfg, point="cabinet_temp", fmt="csv")[1].count("\n") == 2
        h.append(reading(T0 + timedelta(seconds=1)))
        assert run_query(cfg, point="cabinet_temp", fmt="csv")[1].count("\n") == 3


# --- status -----------------------------------------------------------------------------------

NOW = T0 + timedelta(minutes=10)


def polls(h: History, count: int) -> None:
    """``count`` polls a second apart from T0: two rows each."""
    for k in range(count):
        h.append(reading(T0 + timedelta(seconds=k), k))


def test_status_without_sinks_shows_the_history_and_exits_0(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    with history(cfg) as h:
        polls(h, 3)
    code, lines = run_status(cfg, NOW)
    assert code == 0
    assert re.fullmatch(
        rf"history {re.escape(str(cfg.state.dir / 'telemetry.db'))}: 6 rows, \d+\.\d MB "
        r"\(cap 1024 MB, food-safety cap 4096 MB\), kept 14 days, newest seq 6",
        lines[0],
    ), lines[0]
    assert lines[1:] == [
        "sinks: none configured (set [telemetry.influx] or --influx-url)",
        "dropped: nothing",
    ]


@pytest.mark.usefixtures("utc")
def test_status_of_a_sink_behind_shows_readings_and_seconds(tmp_path: Path) -> None:
    cfg = site(tmp_path, influx=True)
    since = T0 + timedelta(minutes=2)
    with history(cfg) as h:
        polls(h, 5)  # seq 1-10
        h.save_cursor("influx", Cursor(4, 4, 4))  # it has the first two polls
        h.save_sink(SinkRecord("influx", "ok", "", since.timestamp(), 4))
    code, lines = run_status(cfg, NOW)
    assert code == 0  # behind, but ok
    behind = (NOW - (T0 + timedelta(seconds=2))).total_seconds()
    assert lines[1] == "sink influx: ok since 2025-01-15T06:32:00.123+00:00"
    assert re.fullmatch(
        rf"  behind 6 readings \({behind:,.1f} s\), spool 0\.00 MB of fields; "
        r"written 4 since the gateway started",
        lines[2],
    ), lines[2]
    assert lines[3] == "dropped: nothing"


def test_status_while_a_backlog_drains_beside_the_live_lane(tmp_path: Path) -> None:
    cfg = site(tmp_path, influx=True)
    with history(cfg) as h:
        polls(h, 6)  # seq 1-12
        h.save_cursor("influx", Cursor(2, 8, 10))  # lacks 3-8 (backlog) and 11-12 (live)
        h.save_sink(SinkRecord("influx", "ok", "", T0.timestamp(), 10))
    _, lines = run_status(cfg, NOW)
    behind = (NOW - (T0 + timedelta(seconds=1))).total_seconds()  # seq 3 is the second poll
    assert lines[2].startswith(f"  behind 8 readings ({behind:,.1f} s)")


def test_status_of_a_sink_that_never_started_counts_everything_as_behind(
    tmp_path: Path,
) -> None:
    cfg = site(tmp_path, influx=True)
    with history(cfg) as h:
        polls(h, 3)
    code, lines = run_status(cfg, NOW)
    assert code == 1
    assert lines[1] == "sink influx: not started"
    assert lines[2] == f"  behind 6 readings ({(NOW - T0).total_seconds():,.1f} s)"


def test_status_of_a_failing_sink_says_why_and_exits_1(tmp_path: Path) -> None:
    cfg = site(tmp_path, influx=True)
    detail = "http://127.0.0.1:8086 does not accept the token (401: unauthorized)"
    with history(cfg) as h:
        polls(h, 2)
        h.save_cursor("influx", Cursor(4, 4, 4))
        h.save_sink(SinkRecord("influx", "refused", detail, T0.timestamp(), 0))
    code, lines = run_status(cfg, NOW)
    assert code == 1
    assert lines[1].startswith("sink influx: refused since ")
    assert lines[1].endswith(f": {detail}")
    assert lines[2].startswith("  behind 0 readings (0.0 s)")


@pytest.mark.parametrize(
    ("state", "cursor", "code"),
    [
        ("ok", Cursor(4, 4, 4), 0),
        ("starting", Cursor(4, 4, 4), 0),  # nothing waits for it
        ("starting", Cursor(2, 2, 2), 1),
        ("unavailable", Cursor(4, 4, 4), 1),
    ],
)
def test_status_exit_code_follows_the_sink(
    tmp_path: Path, state: str, cursor: Cursor, code: int
) -> None:
    cfg = site(tmp_path, influx=True)
    with history(cfg) as h:
        polls(h, 2)
        h.save_cursor("influx", cursor)
        h.save_sink(SinkRecord("influx", state, "", T0.timestamp(), 0))
    assert run_status(cfg, NOW)[0] == code


@pytest.mark.usefixtures("utc")
def test_status_lists_drops_with_their_reason_and_exits_1(tmp_path: Path) -> None:
    cfg = site(tmp_path, influx=True)
    with history(cfg) as h:
        polls(h, 2)
        h.save_cursor("influx", Cursor(4, 4, 4))
        h.save_sink(SinkRecord("influx", "ok", "", T0.timestamp(), 4))
        first, last = T0.timestamp(), (T0 + timedelta(minutes=3)).timestamp()
        h.note_drops(Counter({("walkin-1", "history over max_mb"): 1200}), first)
        h.note_drops(Counter({("walkin-1", "history over max_mb"): 34}), last)
        h.note_drops(Counter({("walkin-2", "rejected by influx"): 1}), last)
    code, lines = run_status(cfg, NOW)
    assert code == 1  # every sink is ok, but readings were given up
    assert [line.split() for line in lines[3:]] == [
        ["dropped:"],
        ["walkin-1", "1,234", "history", "over", "max_mb", "(first",
         "2025-01-15T06:30:00.123+00:00,", "last", "2025-01-15T06:33:00.123+00:00)"],
        ["walkin-2", "1", "rejected", "by", "influx", "(first",
         "2025-01-15T06:33:00.123+00:00,", "last", "2025-01-15T06:33:00.123+00:00)"],
    ]  # fmt: skip


def test_status_without_a_history_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = site(tmp_path, influx=True)
    assert run_status(cfg, NOW) == (1, [])
    assert capsys.readouterr().err.startswith(
        f"no telemetry history at {cfg.state.dir / 'telemetry.db'} yet"
    )


def test_status_writes_nothing(tmp_path: Path) -> None:
    cfg = site(tmp_path, influx=True)
    with history(cfg) as h:
        polls(h, 2)
    path = cfg.state.dir / "telemetry.db"
    before = path.read_bytes()
    run_status(cfg, NOW)
    assert path.read_bytes() == before
    with HistoryReader(path) as r:
        assert r.cursor("influx") is None
        assert r.sinks() == []


# --- parse_duration and parse_time -------------------------------------------------------------


@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from("smhdw")), min_size=1,
                max_size=5))  # fmt: skip
def test_a_sum_of_units_is_their_sum(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum((timedelta(seconds=n * UNITS[unit]) for n, unit in parts), timedelta())
    assert cmd.parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("1.5h", 5400), ("0.25s", 0.25),
     (" 2d ", 172_800), ("1w1d", 691_200)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert cmd.parse_duration(text) == timedelta(seconds=seconds)


_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")


@given(st.text().filter(lambda t: not _DURATION.fullmatch(t.strip())))
def test_anything_else_is_refused_with_the_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"write e\.g\. 90s, 15m, 2h, 3d or 1h30m"):
        cmd.parse_duration(text)


@pytest.mark.parametrize(
    "text",
    ["", "15", "m", "15x", "-5m", "15M", "1h 30m", "1,5h", ".5h", "99999999999w", "9" * 400 + "s"],
)
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match=r"write e\.g\. 90s"):
        cmd.parse_duration(text)


@pytest.mark.parametrize(
    ("text", "offset_h"),
    [("2026-12-04T18:00:00+01:00", 1), ("2026-12-04 18:00:00-05:00", -5),
     ("2026-12-04T18:00Z", 0)],
)  # fmt: skip
def test_a_time_keeps_its_offset(
    text: str, offset_h: int, local_zone: Callable[[str], None]
) -> None:
    local_zone("<+0530>-5:30")  # not any of the above: it must not be applied
    at = cmd.parse_time(text)
    assert (at.hour, at.minute) == (18, 0)
    assert at.utcoffset() == timedelta(hours=offset_h)


@pytest.mark.parametrize(("text", "offset_h"), [("2026-12-04T18:00", 1), ("2026-07-04T18:00", 2)])
def test_a_time_without_offset_is_local_time(
    text: str, offset_h: int, local_zone: Callable[[str], None]
) -> None:
    local_zone("CET-1CEST,M3.5.0,M10.5.0/3")  # +01:00 in winter, +02:00 in summer
    at = cmd.parse_time(text)
    assert (at.hour, at.minute) == (18, 0)
    assert at.utcoffset() == timedelta(hours=offset_h)


@pytest.mark.parametrize("text", ["", "yesterday", "18:00", "2026-13-01T00:00", "2026-12-04T25:00"])
def test_bad_times(text: str) -> None:
    with pytest.raises(ValueError, match=r"write e\.g\. 2026-12-04T18:00"):
        cmd.parse_time(text)


# --- through `gateway telemetry` ----------------------------------------------------------------

SITE_TOML = """
[site]
id = "s"
name = "cli"

[state]
dir = "state"
durability = "normal"

[tables]
count = 1

[[stations]]
id = "cold"
name = "Cold"

[[groups]]
id = "g"
names = { en = "g" }

[[items]]
id = "i"
group = "g"
names = { en = "i" }
price = 1
prep_s = 1

[[routes]]
group = "g"
station = "cold"

[[devices]]
id = "walkin-1"
profile = "walkin-fridge"
host = "127.0.0.1"
"""


@pytest.fixture
def site_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site file whose state dir (relative to it) holds two polls a second apart at T0."""
    for name in ("GATEWAY_STATE_DIR", "GATEWAY_INFLUX_URL", "GATEWAY_MQTT_URL"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "etc" / "site.toml"
    path.parent.mkdir()
    path.write_text(SITE_TOML, encoding="utf-8")
    with History(path.parent / "state" / "telemetry.db", "normal") as h:
        h.append([*reading(T0, 0), *reading(T0 + timedelta(seconds=1), 1)])
    return path


@pytest.mark.usefixtures("utc")
def test_gateway_telemetry_query(site_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    window = ["--from", "2025-01-15T07:30:00.123457+01:00", "--to", "2025-01-15T06:30:01.123457Z"]
    code = main(["telemetry", "query", "walkin-1", "--config", str(site_file), *window,
                 "--point", "cabinet_temp", "--format", "csv"])  # fmt: skip
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "time,point,value,unit,food_safety",
        "2025-01-15T06:30:00.123+00:00,cabinet_temp,3.0,°C,yes",
    ]


def test_gateway_telemetry_query_of_the_last_hour_by_default(
    site_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["telemetry", "query", "walkin-1", "--config", str(site_file)])
    assert (code, capsys.readouterr().out) == (0, "(no readings)\n")  # T0 is not within it
    code = main(["telemetry", "query", "walkin-1", "--config", str(site_file),
                 "--to", "2025-01-15T07:00:00Z", "--since", "30m"])  # fmt: skip
    assert code == 0
    assert "(6 values; * = food-safety record)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--since", "1h", "--from", "2026-12-04T18:00"], "give --since or --from, not both"),
        (["--since", "15x"], "'15x' is not a duration"),
        (["--since", "99999999999w"], "too long a duration"),
        (["--since", "999999d"], "--since 999999d reaches back before year 1"),
        (["--from", "teatime"], "'teatime' is not a time"),
    ],
)
def test_gateway_telemetry_query_usage_errors_exit_2(
    site_file: Path, capsys: pytest.CaptureFixture[str], extra: list[str], said: str
) -> None:
    code = main(["telemetry", "query", "walkin-1", "--config", str(site_file), *extra])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith("gateway telemetry query: ")
    assert said in err
    assert err.count("\n") == 1


def test_gateway_telemetry_query_of_an_unknown_device_exits_1(
    site_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["telemetry", "query", "fryer-1", "--config", str(site_file)]) == 1
    assert capsys.readouterr().err == "no device 'fryer-1' in the history (devices: walkin-1)\n"


def test_gateway_telemetry_status(site_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["telemetry", "status", "--config", str(site_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    state = site_file.parent / "state" / "telemetry.db"  # the file's own directory, not the cwd
    assert lines[0].startswith(f"history {state}: 4 rows, ")
    assert lines[1:] == [
        "sinks: none configured (set [telemetry.influx] or --influx-url)",
        "dropped: nothing",
    ]


def test_gateway_telemetry_status_with_an_influx_from_the_environment(
    site_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_INFLUX_URL", "http://127.0.0.1:8086")
    assert main(["telemetry", "status", "--config", str(site_file)]) == 1  # not started
    assert capsys.readouterr().out.splitlines()[1] == "sink influx: not started"


def test_gateway_telemetry_with_another_state_dir(
    site_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "elsewhere"
    args = ["--config", str(site_file), "--state-dir", str(empty)]
    assert main(["telemetry", "status", *args]) == 1
    assert main(["telemetry", "query", "walkin-1", *args]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert all(line.startswith(f"no telemetry history at {empty / 'telemetry.db'}") for line in err)
