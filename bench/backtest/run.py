"""How long `gateway alerts backtest` takes on a week of one walk-in's readings at 10 s.

Run by hand (`python bench/backtest/run.py [--repeat 3] [--days 7]`), never in CI; results go
to bench/RESULTS.md. The issue's target: a week of one device's readings at 10 s (about 60,000
readings per point) in under 5 s on this machine.

The trace is the walk-in profile's points, written as `gateway telemetry query --format csv`
writes them (one row per point and reading): a cabinet that cycles with its compressor every
15 minutes, door openings at lunch and dinner, four defrosts a day, and a compressor that fails
on the last day. What is timed is the command itself, in process (`backtest_command`: reading
the CSV, building the detectors from the site, replaying, printing JSON to a null stream), and
apart from it the replay alone (`run_backtest` on readings already parsed).
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.devices.profile import load_profiles
from gateway.site_file import load_site
from gateway.telemetry.alerts import Timing
from gateway.telemetry.backtest import backtest_command, run_backtest
from gateway.telemetry.detectors import detectors_for
from gateway.telemetry.trace import parse_trace, point_kinds

STEP_S = 10
T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)

SITE = """
[site]
id = "bench"
name = "backtest bench"
[state]
dir = "{state}"
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
"""


def week(days: int, seed: int = 7) -> str:
    """The CSV trace, as the query command writes it."""
    rng = random.Random(seed)
    out = io.StringIO()
    out.write("time,point,value,unit,food_safety\n")
    temp, compressor, door_left, defrost_left = 3.0, False, 0, 0
    fail_at = (days - 1) * 86_400 + 10 * 3600
    hours = 0.0
    for n in range(days * 86_400 // STEP_S):
        t = n * STEP_S
        hour = (t % 86_400) / 3600
        failed = t >= fail_at
        if t % (6 * 3600) == 2 * 3600:
            defrost_left = 30 * 60
        busy = 11.5 <= hour < 14.5 or 18.5 <= hour < 22.5
        if door_left == 0 and rng.random() < (0.012 if busy else 0.001):
            door_left = rng.randint(2, 9) * STEP_S
        door = door_left > 0
        door_left = max(0, door_left - STEP_S)
        defrost = defrost_left > 0
        defrost_left = max(0, defrost_left - STEP_S)
        if defrost or failed:
            compressor = False
        elif temp > 4.0:
            compressor = True
        elif temp < 2.5:
            compressor = False
        # Per 10 s: 1.5 K up in ~10 min with the compressor off, down in ~5 min when on (a
        # 15-minute cycle); an open door adds 0.3 K a step.
        rate = (-0.05 if compressor else 0.025) + (0.3 if door else 0)
        if defrost:
            rate = 0.012  # a couple of degrees over the defrost
        if failed:
            rate = 0.012 + (0.3 if door else 0)  # stock holds it: ~4 K an hour, then slower
        temp += rate + rng.gauss(0, 0.02)
        if compressor:
            hours += STEP_S / 3600
        at = (T0 + timedelta(seconds=t)).isoformat(timespec="milliseconds")
        values = {
            "cabinet_temp": round(temp, 1), "evaporator_temp": round(temp - (9 if compressor else 2), 1),
            "door_open": door, "compressor_running": compressor, "defrost_active": defrost,
            "high_temp_alarm": temp > 8, "low_temp_alarm": False, "door_alarm": False,
            "compressor_fault": False, "setpoint": 3.0, "high_alarm_limit": 8.0,
            "defrost_interval_h": 6, "alarm_delay_min": 30,
        }
        if t % 60 == 0:
            values["compressor_hours"] = round(hours, 1)
        for point, value in values.items():
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            out.write(f"{at},{point},{text},,\n")
    return out.getvalue()


class Null(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--days", type=int, default=7)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "site.toml").write_text(SITE.format(state=root / "state"))
        cfg = load_site(root / "site.toml")
        text = week(args.days)  # a synthetic walk-in, for speed: bench/faults measures the rules
        trace = root / "week.csv"
        trace.write_text(text)
        rows = text.count("\n") - 1
        profile = load_profiles(())["walkin-fridge"]
        readings = parse_trace(text, "fridge-1", point_kinds(profile))
        print(f"trace: {args.days} days, {len(readings):,} readings, {rows:,} rows, "
              f"{len(text) / 1e6:.1f} MB")
        whole, replay, events = [], [], 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            code = backtest_command(cfg, "fridge-1", trace=trace, since=None, until=None,
                                    fmt="json", out=Null())
            whole.append(time.perf_counter() - t)
            assert code == 0
            t = time.perf_counter()
            result = run_backtest(detectors_for(cfg.devices[0], profile), readings,
                                  Timing.from_config(cfg.alerts))
            replay.append(time.perf_counter() - t)
            events = len(result.events)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"command (read CSV + replay + JSON): {min(whole):.2f} s best, "
              f"{statistics.median(whole):.2f} s median of {args.repeat}")
        print(f"replay alone: {min(replay):.2f} s best, {statistics.median(replay):.2f} s median; "
              f"{events} alert events; peak RSS {rss:.0f} MiB")
        summary = result.summary()
        for rule, counts in sorted(summary.items()):
            first = next(e for e in result.events if e.rule == rule)
            print(f"  {rule}: {dict(counts)}, first {first.event} at {first.at.isoformat()}")


if __name__ == "__main__":
    main()
