"""``gateway telemetry query`` and ``gateway telemetry status``: the history, read by people.

Both read ``{state.dir}/telemetry.db`` through a read-only connection of their own, so they can
run beside the gateway at any time: they see what is committed, and write nothing.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TextIO

from gateway.errors import StoreError
from gateway.telemetry.history import HistoryReader
from gateway.telemetry.lanes import Cursor
from gateway.telemetry.lineproto import parse_field_set
from gateway.telemetry.notes import NOTE_FIELDS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from gateway.config import SiteConfig
    from gateway.devices.codec import Value
    from gateway.telemetry.history import SinkRecord

__all__ = ["parse_duration", "parse_time", "query", "status"]

EXIT_OK = 0
EXIT_ERROR = 1
_NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64 = 2**63 - 1  # SQLite's integers: a bound past year 2262 is clamped to the end of time
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``3d``, ``1w`` (or a sum: ``1h30m``) as a timedelta.

    Raises:
        ValueError: it is not such a duration (the message shows the form).
    """
    parts = re.fullmatch(r"(?:\d+(?:\.\d+)?[smhdw])+", text.strip())
    if not parts:
        raise ValueError(f"{text!r} is not a duration: write e.g. 90s, 15m, 2h, 3d or 1h30m")
    seconds = sum(
        float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text)
    )
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration: write e.g. 90s, 15m, 2h, 3d or "
                         "1h30m") from None  # fmt: skip


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``2026-12-04T18:00``, ``2026-12-04 18:00:00+01:00``); local if no offset.

    Raises:
        ValueError: it is not such a time.
    """
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a time: write e.g. 2026-12-04T18:00 or "
                         "2026-12-04T18:00:00+01:00") from None  # fmt: skip
    return at if at.tzinfo is not None else at.astimezone()


def _ns(at: datetime) -> int:
    # Exact, in integers: timestamp() is a float, 256 ns apart at today's dates, which put a
    # reading taken exactly at --from outside the window and one exactly at --to inside it.
    ns = (at if at.tzinfo is not None else at.astimezone()) - _EPOCH
    return max(-_INT64 - 1, min(ns // timedelta(microseconds=1) * 1000, _INT64))


def _when(ns: int) -> str:
    # Whole seconds and microseconds apart: ns / 1e9 as a float is ~0.2 us off at today's
    # dates, and .996000 read back as .995999 would print as .995.
    seconds, rest = divmod(ns, _NS)
    at = datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=rest // 1000)
    return at.astimezone().isoformat(timespec="milliseconds")


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def query(
    cfg: SiteConfig,
    device: str,
    *,
    since: datetime,
    until: datetime,
    point: str | None,
    fmt: str,
    out: TextIO | None = None,
) -> int:
    """Print one device's readings from ``since`` (included) to ``until`` (not), one value a line.

    Returns:
        The exit code: 0, or 1 with a line on stderr saying why (no history, unknown device).
    """
    out = out or sys.stdout
    path = cfg.state.dir / "telemetry.db"
    if not path.exists():
        sys.stderr.write(f"no telemetry history at {path}: the gateway writes it once it has "
                         "read a device (check --config, or --state-dir)\n")  # fmt: skip
        return EXIT_ERROR
    units = _units(cfg)
    known = {d.id for d in cfg.devices}
    try:
        with HistoryReader(path, readonly=True) as history:
            if device not in known and device not in history.devices():
                names = ", ".join(sorted(known | set(history.devices()))) or "none"
                sys.stderr.write(f"no device {device!r} in the history (devices: {names})\n")
                return EXIT_ERROR
            rows = _rows(history, device, since=since, until=until, point=point,
                         units=units.get(device, {}))  # fmt: skip
            _print(rows, fmt, out)
    except StoreError as err:
        sys.stderr.write(f"cannot read {path}: {err}\n")
        return EXIT_ERROR
    return EXIT_OK


def _units(cfg: SiteConfig) -> dict[str, Mapping[str, str]]:
    from gateway.devices.profile import load_profiles  # noqa: PLC0415
    from gateway.telemetry.schema import schemas_for_site  # noqa: PLC0415

    try:
        schemas = schemas_for_site(cfg, load_profiles(cfg.devices_profiles))
    except (KeyError, OSError, ValueError):
        return {}  # units are a courtesy: the readings are printed without them
    return {d: s.units for d, s in schemas.items()}


def _rows(
    history: HistoryReader,
    device: str,
    *,
    since: datetime,
    until: datetime,
    point: str | None,
    units: Mapping[str, str],
) -> Iterable[tuple[str, str, Value, str, bool]]:
    lo, hi = _ns(since), _ns(until)
    for at_ns, safety, fields in history.query(device, lo, hi, leave_out=NOTE_FIELDS):
        when = _when(at_ns)
        for name, value in parse_field_set(fields).items():
            if point is None or name == point:
                yield when, name, value, units.get(name, ""), safety


def _print(rows: Iterable[tuple[str, str, Value, str, bool]], fmt: str, out: TextIO) -> None:
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(["time", "point", "value", "unit", "food_safety"])
        for when, name, value, unit, safety in rows:
            writer.writerow([when, name, _text(value), unit, "yes" if safety else ""])
    elif fmt == "json":
        # The value as JSON types it: a number, true/false, or a string.
        for when, name, value, unit, safety in rows:
            record = {"time": when, "point": name, "value": value, "unit": unit,
                      "food_safety": safety}  # fmt: skip
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        count = 0
        for when, name, value, unit, safety in rows:
            mark = " *" if safety else ""
            out.write(f"{when}  {name:<24} {_text(value):>12} {unit}{mark}\n")
            count += 1
        out.write(f"({count} values; * = food-safety record)\n" if count else "(no readings)\n")


def status(cfg: SiteConfig, now: datetime, out: TextIO | None = None) -> int:
    """Print the history's size and, per sink, how far behind it is and what was dropped.

    Returns:
        The exit code: 0 when every sink is ok and nothing was dropped, 1 otherwise (so a
        monitoring script can act on it); 1 with a line on stderr when there is no history.
    """
    out = out or sys.stdout
    path = cfg.state.dir / "telemetry.db"
    if not path.exists():
        sys.stderr.write(f"no telemetry history at {path} yet: the gateway writes it once it has "
                         "read a device\n")  # fmt: skip
        return EXIT_ERROR
    t = cfg.telemetry
    healthy = True
    try:
        with HistoryReader(path, readonly=True) as history:
            rows, used = history.size()
            out.write(
                f"history {path}: {rows:,} rows, {used / 1e6:.1f} MB (cap {t.max_mb:g} MB, "
                f"food-safety cap {t.food_safety_cap_mb:g} MB), kept {t.history_days:g} days, "
                f"newest seq {history.head()}\n"
            )
            records = {r.sink: r for r in history.sinks()}
            names = (["influx"] if t.influx is not None else []) + sorted(
                set(records) - {"influx"}
            )
            if not names:
                out.write("sinks: none configured (set [telemetry.influx] or --influx-url)\n")
            for name in names:
                healthy &= _sink_line(history, name, records.get(name), now, out)
            drops = history.drops()
    except StoreError as err:
        sys.stderr.write(f"cannot read {path}: {err}\n")
        return EXIT_ERROR
    if drops:
        healthy = False
        out.write("dropped:\n")
        for device, reason, count, first, last in drops:
            out.write(f"  {device:<16} {count:>9,}  {reason} (first {_when(int(first * _NS))}, "
                      f"last {_when(int(last * _NS))})\n")  # fmt: skip
    else:
        out.write("dropped: nothing\n")
    return EXIT_OK if healthy else EXIT_ERROR


def _sink_line(
    history: HistoryReader, name: str, record: SinkRecord | None, now: datetime, out: TextIO
) -> bool:
    cursor = history.cursor(name)
    if cursor is None:
        pending, size = history.size()[0], None
        oldest = history.oldest_pending_ns(Cursor())  # a sink not started yet lacks them all
    else:
        pending, size = history.pending_rows(cursor)
        oldest = history.oldest_pending_ns(cursor)
    behind_s = 0.0 if oldest is None else max(0.0, now.timestamp() - oldest / _NS)
    state = record.state if record else "not started"
    since = f" since {_when(int(record.since * _NS))}" if record else ""
    detail = f": {record.detail}" if record and record.detail else ""
    spool = f", spool {size / 1e6:.2f} MB of fields" if size is not None else ""
    out.write(
        f"sink {name}: {state}{since}{detail}\n"
        f"  behind {pending:,} readings ({behind_s:,.1f} s){spool}"
        + (f"; written {record.written:,} since the gateway started" if record else "")
        + "\n"
    )
    return state == "ok" or (state == "starting" and pending == 0)
