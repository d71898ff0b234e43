"""``gateway alerts backtest``: what the rules would have raised on a trace, or on last week.

It runs the very detectors the live gateway runs (``gateway.telemetry.detectors.detectors_for``,
the profile's rules with the site's overrides) and the same alert book
(``gateway.telemetry.alerts``, escalations included) on a virtual clock driven by the readings'
own timestamps: ``mono`` is a reading's time in seconds, and between two readings time is
ticked every ``tick_s`` as the live watch ticks (``gateway.telemetry.watch``), so a silence or a
hold that ends between readings is judged as it would be live. Nothing sleeps.

Pure but for :func:`backtest_command`, which reads the trace or the history and prints.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from gateway.errors import ConfigError, StoreError
from gateway.telemetry.alerts import AlertBook, Timing
from gateway.telemetry.trace import TraceError, TraceReading, parse_trace, point_kinds, readings_of

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from gateway.config import SiteConfig
    from gateway.telemetry.alerts import AlertEvent
    from gateway.telemetry.detectors import DeviceDetectors
    from gateway.telemetry.signals import Signal

__all__ = ["BacktestEvent", "BacktestResult", "backtest_command", "run_backtest"]

TICK_S = 5.0  # as the live watch
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class BacktestEvent:
    """One alert event the rules would have made.

    Attributes:
        at: when (the reading's time, or the tick's between readings).
        event: opened, escalated, renotified or cleared.
        alert_id: ``device:rule``.
        rule: the rule.
        priority: the alert's priority after the event.
        point: the point the rule watches, if any.
        value: the value that decided, if any.
        limit: the limit, if any.
        crossed_at: for a food-safety limit, when the limit itself was first crossed.
        message: the alert's words.
    """

    at: datetime
    event: str
    alert_id: str
    rule: str
    priority: str
    point: str | None
    value: float | None
    limit: float | None
    crossed_at: datetime | None
    message: str

    def as_json(self) -> dict[str, object]:
        """The event as the JSON output gives it (README, "Backtesting a rule")."""
        return {
            "at": self.at.isoformat(),
            "event": self.event,
            "alert_id": self.alert_id,
            "rule": self.rule,
            "priority": self.priority,
            "point": self.point,
            "value": self.value,
            "limit": self.limit,
            "crossed_at": self.crossed_at.isoformat() if self.crossed_at else None,
            "message": self.message,
        }


@dataclass
class BacktestResult:
    """Everything a backtest found.

    Attributes:
        device: the device.
        readings: readings replayed.
        first: the first reading's time (None for an empty trace).
        last: the last one's.
        events: every alert event, in time order.
    """

    device: str
    readings: int = 0
    first: datetime | None = None
    last: datetime | None = None
    events: list[BacktestEvent] = field(default_factory=list)

    def summary(self) -> dict[str, Counter[str]]:
        """Per rule: how many of each event."""
        out: dict[str, Counter[str]] = {}
        for e in self.events:
            out.setdefault(e.rule, Counter())[e.event] += 1
        return out


def _at(mono: float) -> datetime:
    return datetime.fromtimestamp(mono, tz=UTC)


def run_backtest(
    detectors: DeviceDetectors,
    readings: Sequence[TraceReading],
    timing: Timing,
    *,
    tick_s: float = TICK_S,
) -> BacktestResult:
    """Replay ``readings`` (time order) through ``detectors`` and an alert book.

    Args:
        detectors: the device's detectors, fresh (``detectors_for``).
        readings: what the device read, oldest first.
        timing: the alert book's escalation times (the site's ``[alerts]``).
        tick_s: how often time alone is judged between readings.
    """
    result = BacktestResult(detectors.device, readings=len(readings))
    if not readings:
        return result
    result.first, result.last = readings[0].at, readings[-1].at
    book = AlertBook(timing, mono=readings[0].at.timestamp())
    crossed: dict[str, datetime | None] = {}

    def take(signals: list[Signal], events: list[AlertEvent]) -> None:
        for s in signals:
            if s.kind == "open" and s.food_safety:
                crossed[s.alert_id] = s.since
            events += book.apply(s, s.at.timestamp(), s.at)
        for e in events:
            a = e.alert
            result.events.append(
                BacktestEvent(
                    at=e.at, event=e.event, alert_id=a.alert_id, rule=a.rule,
                    priority=a.priority.value, point=a.point, value=a.value, limit=a.limit,
                    crossed_at=crossed.get(a.alert_id) if a.food_safety else None,
                    message=e.message,
                )
            )  # fmt: skip

    clock = readings[0].at.timestamp()
    for r in readings:
        mono = r.at.timestamp()
        # Time passes between readings as it does live: a tick every tick_s.
        while clock + tick_s < mono:
            clock += tick_s
            at = _at(clock)
            take(detectors.tick(clock, at), book.tick(clock, at))
        clock = max(clock, mono)
        take(detectors.reading(mono, r.at, r.values), book.tick(mono, r.at))
    return result


# --- the command ---------------------------------------------------------------------------


def backtest_command(
    cfg: SiteConfig,
    device: str,
    *,
    trace: Path | None,
    since: datetime | None,
    until: datetime | None,
    fmt: str,
    out: TextIO | None = None,
) -> int:
    """Backtest ``device``'s rules on a trace file or on the local history; print the result.

    Returns:
        0; 2 with one line per bad row (or a usage problem) on stderr; 1 when the history
        cannot be read.
    """
    from gateway.devices.profile import load_profiles  # noqa: PLC0415
    from gateway.telemetry.detectors import detectors_for  # noqa: PLC0415

    out = out or sys.stdout
    instance = next((d for d in cfg.devices if d.id == device), None)
    if instance is None:
        names = ", ".join(d.id for d in cfg.devices) or "none"
        sys.stderr.write(f"no device {device!r} in the site file (devices: {names})\n")
        return EXIT_USAGE
    profile = load_profiles(cfg.devices_profiles)[instance.profile]
    try:
        detectors = detectors_for(instance, profile)
    except ConfigError as err:
        for problem in err.problems:
            sys.stderr.write(f"{problem}\n")
        return EXIT_USAGE
    kinds = point_kinds(profile)
    if trace is not None:
        try:
            with trace.open(encoding="utf-8", newline="") as lines:
                readings = parse_trace(lines, device, kinds)
        except OSError as err:
            sys.stderr.write(f"cannot read {trace}: {err.strerror}\n")
            return EXIT_USAGE
        except TraceError as err:
            for bad_row in err.problems:
                sys.stderr.write(f"{trace}: {bad_row}\n")
            return EXIT_USAGE
    else:
        assert since is not None
        assert until is not None
        try:
            readings = _from_history(cfg, device, since, until)
        except StoreError as err:
            sys.stderr.write(f"cannot read the history: {err}\n")
            return EXIT_ERROR
    result = run_backtest(detectors, readings, Timing.from_config(cfg.alerts))
    (_print_json if fmt == "json" else _print_table)(result, out)
    return EXIT_OK


def _from_history(
    cfg: SiteConfig, device: str, since: datetime, until: datetime
) -> list[TraceReading]:
    from gateway.telemetry.history import HistoryReader  # noqa: PLC0415
    from gateway.telemetry.lineproto import parse_field_set  # noqa: PLC0415
    from gateway.telemetry.notes import NOTE_FIELDS  # noqa: PLC0415

    path = cfg.state.dir / "telemetry.db"
    if not path.exists():
        raise StoreError(f"no telemetry history at {path} (check --config or --state-dir)")
    rows = []
    with HistoryReader(path, readonly=True) as h:
        lo, hi = int(since.timestamp()) * _NS, int(until.timestamp()) * _NS
        for at_ns, _safety, fields in h.query(device, lo, hi, leave_out=NOTE_FIELDS):
            at = datetime.fromtimestamp(at_ns / _NS, tz=UTC)
            rows += [(at, k, v) for k, v in parse_field_set(fields).items()]
    return readings_of(rows)


def _when(at: datetime | None) -> str:
    return at.astimezone().isoformat(timespec="seconds") if at else "-"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def _print_table(result: BacktestResult, out: TextIO) -> None:
    span = f"{_when(result.first)} to {_when(result.last)}" if result.first else "no readings"
    out.write(f"{result.device}: {result.readings} readings, {span}\n")
    for e in result.events:
        crossed = f" (limit crossed {_when(e.crossed_at)})" if e.crossed_at else ""
        out.write(
            f"{_when(e.at)}  {e.event:<11} {e.alert_id:<32} {e.priority:<8} "
            f"{e.point or '-'} {_num(e.value)} / limit {_num(e.limit)}{crossed}\n"
        )
    summary = result.summary()
    out.write("summary:" + ("" if summary else " no alert") + "\n")
    for rule, counts in sorted(summary.items()):
        said = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        out.write(f"  {rule}: {said}\n")


def _print_json(result: BacktestResult, out: TextIO) -> None:
    doc = {
        "device": result.device,
        "readings": result.readings,
        "first": result.first.isoformat() if result.first else None,
        "last": result.last.isoformat() if result.last else None,
        "events": [e.as_json() for e in result.events],
        "summary": {rule: dict(c) for rule, c in sorted(result.summary().items())},
    }
    out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
