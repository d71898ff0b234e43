"""gateway alerts backtest: the live detectors and alert book on a trace's own time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gateway.cli import main
from gateway.telemetry.alerts import Timing
from gateway.telemetry.backtest import run_backtest
from gateway.telemetry.detectors import detectors_for
from gateway.telemetry.history import History, Row
from gateway.telemetry.lineproto import SeriesPrefix
from gateway.telemetry.signals import Priority
from gateway.telemetry.trace import TraceReading

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from gateway.config import SiteConfig

T0 = datetime(2026, 12, 3, 22, 0, tzinfo=UTC)
STEP = timedelta(seconds=10)


def site_toml(tmp_path: Path, overrides: str = "") -> Path:
    path = tmp_path / "site.toml"
    path.write_text(f"""
[site]
id = "bt"
name = "backtest"
[state]
dir = "state"
[alerts]
renotify_s = 600
[tables]
count = 1
[[stations]]
id = "cold"
name = "Cold"
[[groups]]
id = "g"
names = {{ en = "g" }}
[[items]]
id = "i"
group = "g"
names = {{ en = "i" }}
price = 1
prep_s = 1
[[routes]]
group = "g"
station = "cold"
[[devices]]
id = "fridge-1"
profile = "walkin-fridge"
host = "127.0.0.1"
{overrides}
""")
    return path


#: Only the cold-holding limit and the silence rule: the mechanics of the command, not tuning.
ONLY_LIMIT_AND_SILENCE = "\n".join(
    f"[devices.rules.{r}]\nenabled = false"
    for r in ("warming", "compressor_not_starting", "door_recovery", "door_left_open",
              "compressor_fault", "probe_stuck")
)  # fmt: skip


def cfg_of(path: Path) -> SiteConfig:
    from gateway.site_file import load_site  # noqa: PLC0415

    return load_site(path)


def warm_night() -> list[TraceReading]:
    """3.0 °C for an hour, then up 0.01 K per reading to 6.0 (crossing 5 °C), 40 min there, down."""
    out, t, temp = [], T0, 3.0
    for _ in range(360):
        out.append(TraceReading(t, {"cabinet_temp": 3.0, "door_open": False}))
        t += STEP
    while temp < 6.0:
        temp = round(temp + 0.01, 2)
        out.append(TraceReading(t, {"cabinet_temp": temp, "door_open": False}))
        t += STEP
    for _ in range(240):
        out.append(TraceReading(t, {"cabinet_temp": 6.0, "door_open": False}))
        t += STEP
    for _ in range(120):
        out.append(TraceReading(t, {"cabinet_temp": 3.0, "door_open": False}))
        t += STEP
    return out


def crossing(readings: list[TraceReading]) -> datetime:
    return next(r.at for r in readings if float(r.values["cabinet_temp"]) > 5.0)


def test_a_held_limit_opens_after_its_hold_says_when_it_was_crossed_and_clears(
    tmp_path: Path,
) -> None:
    cfg = cfg_of(site_toml(tmp_path, ONLY_LIMIT_AND_SILENCE))
    from gateway.devices.profile import load_profiles  # noqa: PLC0415

    profile = load_profiles(())["walkin-fridge"]
    trace = warm_night()
    result = run_backtest(detectors_for(cfg.devices[0], profile), trace,
                          Timing.from_config(cfg.alerts))  # fmt: skip
    crossed = crossing(trace)
    kinds = [(e.event, e.rule) for e in result.events]
    assert kinds[0] == ("opened", "cold_holding")
    opened = result.events[0]
    assert opened.crossed_at == crossed  # the food-safety limit itself was crossed then
    assert opened.at >= crossed + timedelta(minutes=30)  # held 30 minutes first
    assert opened.at - crossed < timedelta(minutes=31)
    assert opened.priority == Priority.CRITICAL.value
    assert opened.limit == 5.0
    assert ("renotified", "cold_holding") in kinds  # nobody acknowledged it in 10 minutes
    assert kinds[-1] == ("cleared", "cold_holding")
    assert result.events[-1].at > result.events[0].at
    assert result.summary()["cold_holding"]["opened"] == 1


def test_a_gap_longer_than_the_silence_rule_is_a_silent_device(tmp_path: Path) -> None:
    cfg = cfg_of(site_toml(tmp_path, ONLY_LIMIT_AND_SILENCE))
    from gateway.devices.profile import load_profiles  # noqa: PLC0415

    profile = load_profiles(())["walkin-fridge"]
    trace = [TraceReading(T0 + n * STEP, {"cabinet_temp": 3.0}) for n in range(30)]
    trace += [TraceReading(T0 + timedelta(minutes=20) + n * STEP, {"cabinet_temp": 3.0})
              for n in range(30)]  # fmt: skip
    result = run_backtest(detectors_for(cfg.devices[0], profile), trace,
                          Timing.from_config(cfg.alerts))  # fmt: skip
    silent = [e for e in result.events if e.rule == "silent"]
    assert [e.event for e in silent][:1] == ["opened"]
    last_before_gap = T0 + 29 * STEP
    assert timedelta(minutes=5) <= silent[0].at - last_before_gap < timedelta(minutes=5, seconds=10)
    assert "cleared" in [e.event for e in silent]  # readings again


def write_trace(path: Path, readings: list[TraceReading]) -> None:
    lines = ["time,point,value,unit,food_safety"]
    for r in readings:
        for k, v in r.values.items():
            text = ("true" if v else "false") if isinstance(v, bool) else str(v)
            lines.append(f"{r.at.astimezone().isoformat(timespec='milliseconds')},{k},{text},,")
    path.write_text("\n".join(lines) + "\n")


def test_the_command_prints_a_table_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = site_toml(tmp_path, ONLY_LIMIT_AND_SILENCE)
    trace = tmp_path / "night.csv"
    write_trace(trace, warm_night())
    code = main(["alerts", "backtest", "--config", str(site), "--device", "fridge-1",
                 "--trace", str(trace)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "fridge-1:cold_holding" in out
    assert "limit crossed" in out
    assert "summary:" in out
    code = main(["alerts", "backtest", "--config", str(site), "--device", "fridge-1",
                 "--trace", str(trace), "--format", "json"])  # fmt: skip
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert code == 0
    assert doc["device"] == "fridge-1"
    first = doc["events"][0]
    assert set(first) == {"at", "event", "alert_id", "rule", "priority", "point", "value",
                          "limit", "crossed_at", "message"}  # fmt: skip
    assert (first["event"], first["rule"], first["limit"]) == ("opened", "cold_holding", 5.0)
    assert doc["summary"]["cold_holding"]["opened"] == 1


def test_bad_rows_are_each_named_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = site_toml(tmp_path)
    trace = tmp_path / "bad.csv"
    trace.write_text("time,point,value\n2026-12-03T22:00:00,cabinet_temp,3\n"
                     "2026-12-03T22:00:10+00:00,cabinet,3\n")  # fmt: skip
    code = main(["alerts", "backtest", "--config", str(site), "--device", "fridge-1",
                 "--trace", str(trace)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "row 2: time" in err
    assert "row 3: point 'cabinet'" in err


def test_the_local_history_is_backtested_like_a_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = site_toml(tmp_path, ONLY_LIMIT_AND_SILENCE)
    readings = warm_night()
    prefix = SeriesPrefix("fridge", {"site": "bt", "device": "fridge-1"})
    series = ("fridge-1", "fridge", (("device", "fridge-1"), ("site", "bt")), prefix.text)
    with History(tmp_path / "state" / "telemetry.db", "normal") as h:
        h.append([
            Row(series, int(r.at.timestamp()) * 1_000_000_000, safety=False,
                fields=prefix.fields(r.values) or "")
            for r in readings
        ])  # fmt: skip
    write_trace(tmp_path / "night.csv", readings)
    args = ["alerts", "backtest", "--config", str(site), "--device", "fridge-1", "--format", "json"]
    assert main([*args, "--trace", str(tmp_path / "night.csv")]) == 0
    from_trace = json.loads(capsys.readouterr().out)
    assert main([*args, "--from", readings[0].at.isoformat(),
                 "--to", (readings[-1].at + STEP).isoformat()]) == 0  # fmt: skip
    from_history = json.loads(capsys.readouterr().out)
    assert from_history["events"] == from_trace["events"]
    assert from_history["readings"] == len(readings)
