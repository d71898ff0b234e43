"""Trusting the wall clock: steps detected, the kernel's NTP state, what records say."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.clock import ManualClock
from gateway.clockwatch import (
    ClockWatch,
    KernelSync,
    StepDetector,
    check_start_time,
    kernel_sync,
    newest_mtime,
    read_state,
)
from gateway.devices.audit import AuditLog
from gateway.devices.guard import WriteRequest

if TYPE_CHECKING:
    from pathlib import Path

T0 = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)


# --- StepDetector (pure) ----------------------------------------------------------------------


@given(
    st.lists(st.floats(min_value=0.1, max_value=60), min_size=1, max_size=50),
    st.floats(min_value=-0.0005, max_value=0.0005),
)
def test_time_passing_and_ntp_slewing_are_not_steps(gaps: list[float], slew: float) -> None:
    # NTP slews by at most 500 ppm: over any gap that is far below the threshold.
    d = StepDetector(threshold_s=2.0)
    mono, wall = 100.0, T0
    assert d.observe(wall, mono) is None
    for gap in gaps:
        mono += gap
        wall += timedelta(seconds=gap * (1 + slew))
        assert d.observe(wall, mono) is None


@given(st.floats(min_value=2.5, max_value=86_400) | st.floats(min_value=-86_400, max_value=-2.5))
def test_a_step_either_way_is_reported_once_with_its_size(size: float) -> None:
    d = StepDetector(threshold_s=2.0)
    d.observe(T0, 100.0)
    step = d.observe(T0 + timedelta(seconds=1 + size), 101.0)
    assert step is not None
    assert step.size_s == pytest.approx(size, abs=1e-3)
    # The new offset is the baseline now: the next look is quiet.
    assert d.observe(T0 + timedelta(seconds=2 + size), 102.0) is None


def test_the_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        StepDetector(0)


# --- the kernel -------------------------------------------------------------------------------


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="adjtimex is Linux's")
def test_the_kernel_answers_on_linux() -> None:
    state = kernel_sync()
    assert state.synchronised in (True, False)
    assert state.max_error_s is not None
    assert state.max_error_s >= 0


# --- ClockWatch (the service, on virtual time) -------------------------------------------------


class Alerts:
    def __init__(self) -> None:
        self.got: list[tuple[str, str, str]] = []

    def __call__(self, level: str, kind: str, text: str) -> None:
        self.got.append((level, kind, text))

    def kinds(self) -> list[str]:
        return [k for _, k, _ in self.got]


def test_a_step_mid_run_is_logged_counted_alerted_and_saved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.clockwatch")
    clock = ManualClock(T0)
    alerts = Alerts()
    synced = KernelSync(synchronised=True, max_error_s=0.01)
    watch = ClockWatch(clock, tmp_path / "clock.json", alerts, sync=lambda: synced)

    async def main() -> None:
        async with watch:
            assert not watch.uncertain()
            await clock.run(30)
            clock.step_wall(+7200)  # NTP reached a server at last
            await clock.run(5)
            clock.step_wall(-7200)  # an operator "corrects" it back
            await clock.run(5)

    asyncio.run(main())
    assert watch.steps == 2
    assert watch.last_step is not None
    assert watch.last_step.size_s == pytest.approx(-7200)
    assert alerts.kinds() == ["clock_step", "clock_step"]
    assert "forward by 7200 s" in alerts.got[0][2]
    assert "back by 7200 s" in alerts.got[1][2]
    steps_logged = [r for r in caplog.records if "jumped" in r.getMessage()]
    assert len(steps_logged) == 2  # one line per step, not one per look
    assert watch.uncertain()  # stamps from before a step may be wrong: said until restart
    saved = read_state(tmp_path / "clock.json")
    assert saved is not None
    assert (saved.synchronised, saved.steps, saved.last_step_s) == (True, 2, -7200.0)
    assert saved.since == T0


def test_losing_and_regaining_synchronisation_is_said_once_each(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    alerts = Alerts()
    synced = [True]
    watch = ClockWatch(
        clock, tmp_path / "clock.json", alerts, sync=lambda: KernelSync(synced[0], 0.01)
    )

    async def main() -> None:
        async with watch:
            await clock.run(10)
            synced[0] = False
            await clock.run(10)
            assert watch.uncertain()
            synced[0] = True
            await clock.run(10)

    asyncio.run(main())
    # The second clears the first: one alert, over when the clock is synchronised again.
    assert [(level, kind) for level, kind, _ in alerts.got] == [
        ("medium", "clock_unsynchronised"),
        ("clear", "clock_unsynchronised"),
    ]
    saved = read_state(tmp_path / "clock.json")
    assert saved is not None
    assert saved.synchronised is True
    assert saved.since == T0 + timedelta(seconds=21)  # the first look after it came back
    assert not watch.uncertain()


def test_a_clock_never_synchronised_is_alerted_at_start(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    alerts = Alerts()
    never = KernelSync(synchronised=False)
    watch = ClockWatch(clock, tmp_path / "clock.json", alerts, sync=lambda: never)

    async def main() -> None:
        async with watch:
            await clock.run(3)

    asyncio.run(main())
    assert alerts.kinds() == ["clock_unsynchronised"]
    assert watch.uncertain()
    assert json.loads((tmp_path / "clock.json").read_text())["synchronised"] is False


def test_a_clock_behind_the_newest_record_is_named_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.clockwatch")
    alerts = Alerts()
    newest = T0
    assert not check_start_time(T0 + timedelta(seconds=5), newest, alerts)
    assert not check_start_time(T0, None, alerts)
    assert check_start_time(datetime(1970, 1, 1, tzinfo=UTC), newest, alerts)
    assert alerts.kinds() == ["clock_behind_records"]
    assert "earlier than the newest record" in caplog.text


def test_newest_mtime_takes_the_newest_existing_file(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("x")
    b.write_text("y")
    os.utime(a, (1_000_000, 1_000_000))
    os.utime(b, (2_000_000, 2_000_000))
    assert newest_mtime(a, b, tmp_path / "missing") == datetime.fromtimestamp(2_000_000, UTC)
    assert newest_mtime(tmp_path / "missing") is None


def test_records_stamped_on_an_uncertain_clock_say_so(tmp_path: Path) -> None:
    uncertain = [False]
    with AuditLog(tmp_path / "audit.jsonl", time_uncertain=lambda: uncertain[0]) as audit:
        request = WriteRequest("fryer-1", "vat1_set_temp", 175, "test")
        audit.record(request, "refused", "first")
        uncertain[0] = True
        audit.record(request, "refused", "second")
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert "time_uncertain" not in lines[0]
    assert lines[1]["time_uncertain"] is True


def test_an_unreadable_state_file_reads_as_none(tmp_path: Path) -> None:
    bad = tmp_path / "clock.json"
    bad.write_text("{not json")
    assert read_state(bad) is None
    assert read_state(tmp_path / "missing.json") is None


# --- gateway status ---------------------------------------------------------------------------


def test_status_says_whether_the_clock_is_synchronised_and_since_when(tmp_path: Path) -> None:
    from gateway.cli import status_lines  # noqa: PLC0415
    from gateway.clockwatch import ClockState  # noqa: PLC0415

    hour = timedelta(hours=1)
    saved = ClockState(
        synchronised=True, since=T0, steps=1, last_step_s=-7200.0, last_step_at=T0 + hour,
        written_at=T0 + 2 * hour,
    )  # fmt: skip
    kernel = KernelSync(synchronised=True, max_error_s=0.016)
    lines = status_lines(tmp_path, kernel, saved, T0 + 2 * hour + timedelta(seconds=5))
    assert lines[0] == "system clock: synchronised (kernel, max error 0.016 s)"
    assert lines[1] == "gateway: has seen the clock synchronised since 2026-12-03T18:00:00+00:00"
    assert "1 step(s)" in lines[2]
    assert "-7200 s" in lines[2]
    assert "written 5 s ago" in lines[3]
    unsynced = status_lines(tmp_path, KernelSync(synchronised=False), None, T0)
    assert "NOT synchronised" in unsynced[0]
    assert "fix:" in unsynced[0]
    assert "has not run here yet" in unsynced[1]


def test_a_step_marks_its_place_in_the_audit_log(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    synced = KernelSync(synchronised=True, max_error_s=0.01)
    watch = ClockWatch(clock, tmp_path / "clock.json", Alerts(), sync=lambda: synced)
    with AuditLog(tmp_path / "audit.jsonl", now=clock.now, time_uncertain=watch.uncertain) as a:
        watch.on_step.append(lambda step: a.note_clock_step(step.size_s))
        request = WriteRequest("fryer-1", "vat1_set_temp", 175, "test")

        async def main() -> None:
            async with watch:
                a.record(request, "refused", "before the step")
                await clock.run(3)
                clock.step_wall(-7200)
                await clock.run(2)
                a.record(request, "refused", "after the step")

        asyncio.run(main())
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [x.get("detail") for x in lines][::2] == ["before the step", "after the step"]
    assert lines[1]["event"] == "clock_step"
    assert lines[1]["step_s"] == pytest.approx(-7200)
    # The record after the step is stamped earlier than the one before: the file's order,
    # and the marker between them, are what say which came first and which times to doubt.
    assert lines[2]["time"] < lines[0]["time"]
    assert lines[2]["time_uncertain"] is True
    assert "time_uncertain" not in lines[0]
