"""Readings from a CSV trace, for ``gateway alerts backtest --trace FILE``.

One reading per row: ``time`` (ISO 8601 with an offset, or epoch seconds), ``point`` (a point id
of the device's profile), ``value``; an optional ``device`` column filters to the device asked
for. Other columns are ignored, so the CSV that ``gateway telemetry query --format csv`` prints
(``time,point,value,unit,food_safety``) is accepted as it is.

Nothing is guessed: a time without an offset, a point the profile does not have, a value that
is not of the point's type is an error naming the row (rows are numbered as a spreadsheet
numbers them: the header is row 1). Rows with the same time make one reading, as the gateway
read them together; readings come out in time order.

Pure: it reads the text it is given.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.devices.profile import PointType
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from gateway.devices.codec import Value
    from gateway.devices.profile import Profile

__all__ = ["TraceError", "TraceReading", "parse_trace", "point_kinds"]

Kind = str  # "bool", "int", "float" or "str"


@dataclass(frozen=True, slots=True)
class TraceReading:
    """The values of one device read at one time."""

    at: datetime
    values: dict[str, Value]


class TraceError(GatewayError, ValueError):
    """A trace has bad rows; ``problems`` holds one line per row (row number, what is wrong)."""

    def __init__(self, problems: list[str]) -> None:
        """Keep every problem found."""
        super().__init__(f"{len(problems)} bad row(s): " + "; ".join(problems[:3]))
        self.problems = problems


def point_kinds(profile: Profile) -> dict[str, Kind]:
    """The type each point (or MQTT field) of a profile reads as."""
    if profile.fields:
        return {f.id: f.type for f in profile.fields}
    kinds: dict[str, Kind] = {}
    for p in profile.points:
        if p.table.is_bits or p.type is PointType.BIT:
            kinds[p.id] = "bool"
        elif p.type is PointType.STRING:
            kinds[p.id] = "str"
        elif p.type in (PointType.F32, PointType.F64) or p.scale != 1 or p.offset != 0:
            kinds[p.id] = "float"
        else:
            kinds[p.id] = "int"
    return kinds


def _time(text: str) -> datetime:
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"time {text!r} is not a number of seconds")
        return datetime.fromtimestamp(seconds, tz=UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"time {text!r} is neither ISO 8601 nor epoch seconds") from None
    if at.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset (write e.g. {text}+00:00)")
    return at


_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def _value(text: str, kind: Kind) -> Value:
    raw = text.strip()
    if kind == "bool":
        if raw.lower() not in _BOOLS:
            raise ValueError(f"value {text!r} is not true or false")
        return _BOOLS[raw.lower()]
    if kind == "str":
        return text
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"value {text!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"value {text!r} is not a finite number")
    if kind == "int":
        if not number.is_integer():
            raise ValueError(f"value {text!r} is not an integer (the point reads whole numbers)")
        return int(number)
    return number


def parse_trace(
    text: str | Iterable[str], device: str, kinds: Mapping[str, Kind]
) -> list[TraceReading]:
    """The readings of ``device`` in a CSV trace, in time order.

    Args:
        text: the CSV, with a header row (the text, or its lines: an open file is read as
            it goes, never whole).
        device: the device to keep (rows of another ``device``, when there is the column, are
            left out).
        kinds: point id -> type (:func:`point_kinds` of the device's profile).

    Raises:
        TraceError: with one line per bad row; nothing of the trace is used then.
    """
    rows = csv.reader(io.StringIO(text) if isinstance(text, str) else text)
    col, device_col, width = _columns(next(rows, None))
    problems: list[str] = []
    grouped: dict[datetime, dict[str, Value]] = {}
    t_col, p_col, v_col = col["time"], col["point"], col["value"]
    # The rows of one reading come together with the same time text (the query command writes
    # them so): it is parsed once, and its values dict found without hashing a datetime.
    last_text: str | None = None
    values: dict[str, Value] = {}
    for number, row in enumerate(rows, start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if len(row) < width:
            problems.append(f"row {number}: {len(row)} cells, the header has {width}")
            continue
        if device_col is not None and row[device_col].strip() != device:
            continue
        point = row[p_col].strip()
        kind = kinds.get(point)
        if kind is None:
            known = ", ".join(sorted(kinds))
            problems.append(
                f"row {number}: point {point!r} is not in the device's profile ({known})"
            )
            continue
        try:
            text = row[t_col]
            if text != last_text:
                at = _time(text)
                values = grouped.setdefault(at, {})
                last_text = text
            values[point] = _value(row[v_col], kind)
        except ValueError as err:
            last_text = None  # a bad time: the next row parses its own
            problems.append(f"row {number}: {err}")
            continue
    if problems:
        raise TraceError(problems)
    return [TraceReading(at, values) for at, values in sorted(grouped.items())]


def _columns(header: list[str] | None) -> tuple[dict[str, int], int | None, int]:
    """(the time, point and value columns, the device column if any, the width)."""
    if header is None:
        raise TraceError(["row 1: the file is empty; it needs a header: time,point,value"])
    names = [h.strip().lower() for h in header]
    missing = [c for c in ("time", "point", "value") if c not in names]
    if missing:
        raise TraceError([f"row 1: no {', '.join(missing)} column (the header says {header})"])
    col = {name: names.index(name) for name in ("time", "point", "value")}
    return col, (names.index("device") if "device" in names else None), len(names)


def readings_of(rows: Iterable[tuple[datetime, str, Value]]) -> list[TraceReading]:
    """Group ``(time, point, value)`` rows (the local history's) into readings, in time order."""
    grouped: dict[datetime, dict[str, Value]] = {}
    for at, point, value in rows:
        grouped.setdefault(at, {})[point] = value
    return [TraceReading(at, values) for at, values in sorted(grouped.items())]
