r"""The food-safety (HACCP) record: what an inspector is given, and the proof nobody changed it.

Pure: no I/O, and every time is handed in (STYLE.md 12). :mod:`gateway.telemetry.haccp_store`
keeps the records in files, :mod:`gateway.telemetry.haccp_service` feeds this core and
:mod:`gateway.telemetry.haccp_report` renders it for people.

**What is recorded**, per food-safety unit (a device whose profile marks points
``food_safety = true``):

* ``interval``: one record per interval mark (:00, :15, ... for 15 min) with, per food-safety
  point, the reading *nearest the mark* (what a paper log says: "08:15, 3.4 °C") and the lowest
  and highest reading of the interval around it (mark +/- half an interval), so that nothing
  between two marks is hidden. The windows tile time: every reading is in exactly one. ``from``
  and ``to`` say which part of the window was watched (a start, a stop or an outage cuts it).
* ``excursion_start`` / ``excursion_end``: a food-safety rule's Signal opened, then cleared:
  start (the Signal's ``since``), end, duration, peak (the extreme reading past the limit, with
  its time) and limit. A gateway stop ends an open excursion as ``ended = "gateway_stopped"``.
* ``action``: a corrective action (an alert acknowledgement's note), with who and when.
* ``gap_start`` / ``gap``: time without readings, never filled in: the gateway stopped (scope
  ``gateway``), a device offline, or a device that said nothing for a whole interval (scope: the
  device). ``gap`` carries ``since``, ``until`` and ``seconds``; ``gap_start`` marks one that
  began, so a report made while it lasts (or after a crash) still shows it. The gateway's own
  gap also says whether the last run ended ``clean`` (with its own stop record) or not.
* ``gateway_start`` (units, interval, keep_days), ``retired`` (a segment retired by age),
  ``repair`` (a record torn by a power cut, set aside).

**Format (version 1).** A record is a JSON object on one line. Every record has ``v`` (1),
``seq`` (1, 2, 3... with no hole, across all files), ``prev`` (the ``hash`` of the record before;
64 zeros for seq 1), ``kind``, ``at`` (ISO 8601 UTC with microseconds,
``2026-12-04T18:15:00.000000+00:00``), optionally ``time_uncertain: true`` (the clock was not
trusted), the kind's own fields, and ``hash``.

The canonical encoding is JSON with keys sorted by code point, no whitespace (separators ``,``
and ``:``), only ASCII (anything else as ``\uXXXX``, lower-case hex, surrogate pairs beyond the
BMP), strings escaped as Python's ``json.dumps`` does (``\"``, ``\\``, ``\n``, ``\r``,
``\t``, ``\b``, ``\f``, other controls as ``\u00XX``), integers in decimal, and **no floats**:
measured values are decimal text (``"3.6"``, ``"nan"``), so no float printer takes part. That is
``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)``. ``hash`` is the
lower-case hex SHA-256 of the canonical encoding of the record without ``hash``; the line on disk
is the canonical encoding of the whole record, then ``\n``. A verifier re-encodes each record and
insists on the same bytes, so every change of a byte is caught: by the hash, the chain, or the
encoding.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.devices.codec import Value
    from gateway.devices.events import DeviceReadings
    from gateway.telemetry.signals import Signal

__all__ = [
    "FORMAT",
    "GENESIS",
    "Chain",
    "ChainCheck",
    "Draft",
    "Excursions",
    "HaccpCore",
    "Head",
    "Json",
    "Problem",
    "Sampler",
    "Sealed",
    "canonical",
    "stamp",
]

Json: TypeAlias = str | int | bool | list["Json"] | dict[str, "Json"] | None
FORMAT = 1
GENESIS = "0" * 64
GATEWAY = "gateway"  # the scope of a gap that concerns every unit
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_HEX = frozenset("0123456789abcdef")
_COMMON = ("v", "seq", "prev", "kind", "at", "hash")


def stamp(at: datetime) -> str:
    """A time as records write it: ISO 8601, UTC, microseconds."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def text(value: Value) -> str:
    """A measured value as records write it: decimal text, never a JSON float."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def canonical(fields: Mapping[str, Json]) -> bytes:
    """The canonical encoding (see the module docstring)."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("ascii")


def _seconds(since: datetime, until: datetime) -> int | None:
    # None when the clock was set back in between: a negative length would be a lie.
    span = (until - since).total_seconds()
    return round(span) if span >= 0 else None


def _number(value: Value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


# --- records and the chain -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Draft:
    """A record not yet in the chain: its kind, the time it is about, its own fields."""

    kind: str
    at: datetime
    fields: dict[str, Json] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sealed:
    """A record in the chain, as it goes to disk (``line`` ends with a newline)."""

    seq: int
    at: datetime
    kind: str
    hash: str
    line: bytes


@dataclass(frozen=True, slots=True)
class Head:
    """The newest record of a chain on disk: where the next one continues from.

    Attributes:
        seq: its seq (0 for an empty chain).
        hash: its hash (``GENESIS`` for an empty chain).
        at: its time, None for an empty chain.
        clean: whether it is the gateway's own stop (else the last run ended unexpectedly).
        torn: bytes of a torn last line set aside when the file was opened.
        torn_to: where they were put.
    """

    seq: int = 0
    hash: str = GENESIS
    at: datetime | None = None
    clean: bool = True
    torn: int = 0
    torn_to: str = ""


class Chain:
    """Numbers and links records: each carries the hash of the one before."""

    def __init__(self, seq: int = 0, prev: str = GENESIS, newest: datetime | None = None) -> None:
        """Continue after the record ``seq`` whose hash is ``prev``."""
        self.seq = seq
        self.prev = prev
        #: The latest ``at`` sealed (retention measures age from it, not from a clock reading).
        self.newest = newest

    def seal(self, draft: Draft, *, time_uncertain: bool = False) -> Sealed:
        """The next record of the chain."""
        record: dict[str, Json] = dict(draft.fields)
        record.update(v=FORMAT, seq=self.seq + 1, prev=self.prev, kind=draft.kind,
                      at=stamp(draft.at))  # fmt: skip
        if time_uncertain:
            record["time_uncertain"] = True
        digest = hashlib.sha256(canonical(record)).hexdigest()
        record["hash"] = digest
        self.seq += 1
        self.prev = digest
        if self.newest is None or draft.at > self.newest:
            self.newest = draft.at
        return Sealed(self.seq, draft.at, draft.kind, digest, canonical(record) + b"\n")


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a line is not the record the chain expects, in words."""

    what: str


def _no_float(token: str) -> float:
    msg = f"the number {token} has a fraction or exponent (records write values as text)"
    raise ValueError(msg)


def _parse(line: bytes) -> dict[str, Json] | Problem:
    try:
        record = json.loads(line, parse_float=_no_float, parse_constant=_no_float)
    except ValueError as err:
        return Problem(f"not a record: {err}")
    if not isinstance(record, dict):
        return Problem("not a record: not a JSON object")
    missing = [key for key in _COMMON if key not in record]
    if missing:
        return Problem(f"not a record: it has no {missing[0]!r}")
    return _typed(record)


def _typed(record: dict[str, Json]) -> dict[str, Json] | Problem:
    seq, prev, digest = record["seq"], record["prev"], record["hash"]
    if not isinstance(seq, int) or isinstance(seq, bool) or record["v"] != FORMAT:
        return Problem("not a record of format 1 (v and seq must be the integers 1 and n)")
    for name, value in (("prev", prev), ("hash", digest)):
        if not isinstance(value, str) or len(value) != 64 or not _HEX.issuperset(value):
            return Problem(f"its {name} is not a SHA-256 in lower-case hex")
    if not isinstance(record["kind"], str) or not isinstance(record["at"], str):
        return Problem("its kind and at must be text")
    try:
        datetime.fromisoformat(record["at"])
    except ValueError:
        return Problem(f"its at {record['at']!r} is not a time")
    return record


class ChainCheck:
    """Checks records one line at a time, in order; stops believing at the first bad one."""

    def __init__(self, seq: int = 0, prev: str = GENESIS) -> None:
        """Expect the record after ``seq``, linked to ``prev``."""
        self.seq = seq
        self.prev = prev
        self.checked = 0

    def feed(self, line: bytes) -> dict[str, Json] | Problem:
        """The record on ``line`` (without its newline) if it is the next one, else why not."""
        record = _parse(line)
        if isinstance(record, Problem):
            return record
        if canonical(record) != line:
            return Problem("not in canonical form: its bytes were changed (re-encoding it gives "
                           "different bytes)")  # fmt: skip
        body = {k: v for k, v in record.items() if k != "hash"}
        if hashlib.sha256(canonical(body)).hexdigest() != record["hash"]:
            return Problem("its hash does not match its content: the record was changed after "
                           "it was written")  # fmt: skip
        seq, expected = record["seq"], self.seq + 1
        if seq != expected:
            if isinstance(seq, int) and seq > expected:
                why = f"records {expected}..{seq - 1} are missing (removed), or out of order"
            else:
                why = "seq repeats or goes back: a record was inserted, or records were reordered"
            return Problem(f"seq {seq} where {expected} was expected: {why}")
        if record["prev"] != self.prev:
            return Problem("its prev is not the hash of the record before it: a record was "
                           "removed, inserted or moved, or the one before was changed")  # fmt: skip
        self.seq = expected
        self.prev = str(record["hash"])
        self.checked += 1
        return record


# --- readings to interval records ------------------------------------------------------------


@dataclass(slots=True)
class _Point:
    value: Value
    read_at: datetime
    off: timedelta  # distance from the mark
    low: float | None = None
    high: float | None = None
    n: int = 0

    def add(self, value: Value, at: datetime, off: timedelta) -> None:
        if off < self.off:  # the earlier one wins a tie
            self.value, self.read_at, self.off = value, at, off
        self.n += 1
        number = _number(value)
        if number is not None:
            self.low = number if self.low is None else min(self.low, number)
            self.high = number if self.high is None else max(self.high, number)


@dataclass(slots=True)
class _Window:
    mark: datetime
    start: datetime  # watched from (a start or an outage's end cuts the window)
    end: datetime  # the window's own end
    whole: bool  # watched from its own start: if it ends empty, the unit said nothing for it
    points: dict[str, _Point] = field(default_factory=dict)


@dataclass(slots=True)
class _Unit:
    units: Mapping[str, str]  # food-safety point -> its unit
    window: _Window | None = None
    gap: tuple[str, datetime] | None = None  # (why, since) while no readings come
    known: datetime | None = None  # its last reading, or when watching it (re)began


class Sampler:
    """Turns readings into one ``interval`` record per unit and mark, and silence into gaps.

    The window of mark M is [M - interval/2, M + interval/2). It is closed by the first reading
    past it, or by :meth:`tick` once ``grace`` has passed its end (readings may come a little
    late). A window watched from its start that ends with no reading at all is not a record of
    nothing: the unit is then in a ``no reading`` gap, from its last reading (or since it was
    watched) until the next. A reading older than the open window cannot be placed any more: it
    is counted in ``late`` and left out.
    """

    def __init__(
        self,
        interval: timedelta,
        units: Mapping[str, Mapping[str, str]],
        *,
        grace: timedelta = timedelta(seconds=90),
    ) -> None:
        """``units``: device -> {food-safety point -> unit}; ``interval`` divides the day."""
        self._step = interval // _US
        self._half = interval / 2
        self._grace = grace
        self._units = {d: _Unit(p) for d, p in units.items() if p}
        self.late = 0

    def window_of(self, at: datetime) -> tuple[datetime, datetime, datetime]:
        """(mark, start, end) of the window holding ``at``."""
        k = ((at - _EPOCH) // _US + self._step // 2) // self._step
        mark = _EPOCH + k * self._step * _US
        return mark, mark - self._half, mark + self._half

    def _open(self, at: datetime, *, whole: bool = False) -> _Window:
        mark, start, end = self.window_of(at)
        return _Window(mark, start if whole else at, end, whole or at == start)

    def start(self, at: datetime) -> None:
        """Watching starts at ``at`` (the gateway's start): every unit's first window opens."""
        for unit in self._units.values():
            unit.window, unit.gap, unit.known = self._open(at), None, at

    def reading(self, readings: DeviceReadings) -> list[Draft]:
        """Take one reading; the records it completes."""
        unit = self._units.get(readings.device)
        if unit is None:
            return []
        values = {p: v for p, v in readings.values.items() if p in unit.units}
        if not values:
            return []
        at, out = readings.at, []
        if unit.gap is not None:
            out.append(self._gap(readings.device, unit, at))
            unit.window = self._open(at)
        window = unit.window
        if window is None:  # before start(): watching begins with this reading
            window = unit.window = self._open(at)
        if at < window.start:
            self.late += 1
            return out
        if at >= window.end:
            out += self._close(readings.device, window, window.end)
            mark, _, _ = self.window_of(at)
            skipped = mark - window.mark > self._step * _US  # whole windows, all empty
            if skipped or (window.whole and not window.points):
                # A window went by without a reading, and no tick saw it.
                since = unit.known or window.start
                out.append(Draft("gap", at, self._gap_fields(readings.device, "no reading",
                                                             since, at)))  # fmt: skip
            window = unit.window = self._open(at, whole=True)
        off = abs(at - window.mark)
        for point, value in values.items():
            found = window.points.get(point)
            if found is None:
                found = window.points[point] = _Point(value, at, off)
            found.add(value, at, off)
        unit.known = at
        return out

    def tick(self, at: datetime) -> list[Draft]:
        """Close the windows that ended more than ``grace`` before ``at``."""
        out: list[Draft] = []
        for device, unit in self._units.items():
            window = unit.window
            while window is not None and at >= window.end + self._grace:
                if window.points:
                    out += self._close(device, window, window.end)
                elif window.whole:
                    since = unit.known or window.start
                    unit.window, unit.gap = None, ("no reading", since)
                    out.append(Draft("gap_start", since, {"scope": device,
                                                          "reason": "no reading"}))  # fmt: skip
                    break
                window = unit.window = self._open(window.end, whole=True)
        return out

    def availability(
        self, device: str, at: datetime, *, online: bool, reason: str = ""
    ) -> list[Draft]:
        """A unit went offline (a gap begins) or answers again (an offline gap ends)."""
        unit = self._units.get(device)
        if unit is None:
            return []
        out: list[Draft] = []
        if not online:
            if unit.gap is not None and unit.gap[0] != "no reading":
                return []  # offline already
            if unit.gap is not None:
                out.append(self._gap(device, unit, at))
            elif unit.window is not None:
                out += self._close(device, unit.window, at)
            why = f"offline: {reason}" if reason else "offline"
            unit.window, unit.gap = None, (why, at)
            out.append(Draft("gap_start", at, {"scope": device, "reason": why}))
        elif unit.gap is not None and unit.gap[0] != "no reading":
            out.append(self._gap(device, unit, at))
            unit.window = self._open(at)
        return out

    def stop(self, at: datetime) -> list[Draft]:
        """Watching ends at ``at``: each unit's part window, or its gap up to now."""
        out: list[Draft] = []
        for device, unit in self._units.items():
            if unit.gap is not None:
                out.append(self._gap(device, unit, at, " (until the gateway stopped)"))
            elif unit.window is not None:
                out += self._close(device, unit.window, at)
            unit.window = None
        return out

    def _close(self, device: str, window: _Window, until: datetime) -> list[Draft]:
        if not window.points:
            return []
        points: dict[str, Json] = {}
        units = self._units[device].units
        for point, p in sorted(window.points.items()):
            entry: dict[str, Json] = {"value": text(p.value), "read_at": stamp(p.read_at),
                                      "n": p.n, "unit": units.get(point, "")}  # fmt: skip
            if p.low is not None and p.high is not None:
                entry["min"], entry["max"] = text(p.low), text(p.high)
            points[point] = entry
        end = min(until, window.end)
        fields: dict[str, Json] = {"device": device, "from": stamp(window.start),
                                   "to": stamp(end), "points": points}  # fmt: skip
        return [Draft("interval", window.mark, fields)]

    def _gap(self, device: str, unit: _Unit, until: datetime, more: str = "") -> Draft:
        assert unit.gap is not None
        why, since = unit.gap
        unit.gap, unit.known = None, until
        return Draft("gap", until, self._gap_fields(device, why + more, since, until))

    @staticmethod
    def _gap_fields(scope: str, why: str, since: datetime, until: datetime) -> dict[str, Json]:
        return {"scope": scope, "reason": why, "since": stamp(since), "until": stamp(until),
                "seconds": _seconds(since, until)}  # fmt: skip


# --- signals to excursions -------------------------------------------------------------------


@dataclass(slots=True)
class _Minute:
    minute: int
    low: float
    low_at: datetime
    high: float
    high_at: datetime


@dataclass(slots=True)
class _Excursion:
    signal: Signal
    start: datetime
    direction: str | None  # "above" / "below" the limit, None when the Signal cannot say
    peak: float | None = None
    peak_at: datetime | None = None

    def offer(self, value: float, at: datetime) -> None:
        peak = self.peak
        if peak is None or (value < peak if self.direction == "below" else value > peak):
            self.peak, self.peak_at = value, at


class Excursions:
    """Food-safety Signals to excursions with start, end, duration and peak.

    The peak is the most extreme reading of the point from the excursion's start (the Signal's
    ``since``, which may be well before the detector decided) to its end. Readings are kept per
    minute (lowest and highest, with their times) for ``lookback``, so that a start up to that
    far back is covered.
    """

    def __init__(self, lookback: timedelta = timedelta(hours=6)) -> None:
        """Keep ``lookback`` of per-minute extremes per point."""
        self._lookback = lookback
        self._recent: dict[tuple[str, str], deque[_Minute]] = {}
        self._open: dict[str, _Excursion] = {}

    def reading(self, device: str, at: datetime, values: Mapping[str, Value]) -> None:
        """Take the food-safety values of one reading."""
        for point, value in values.items():
            number = _number(value)
            if number is None:
                continue
            minutes = self._recent.setdefault((device, point), deque())
            minute = (at - _EPOCH) // timedelta(minutes=1)
            last = minutes[-1] if minutes else None
            if last is not None and last.minute == minute:
                if number < last.low:
                    last.low, last.low_at = number, at
                if number > last.high:
                    last.high, last.high_at = number, at
            else:
                minutes.append(_Minute(minute, number, at, number, at))
                oldest = minute - self._lookback // timedelta(minutes=1)
                while minutes and minutes[0].minute < oldest:
                    minutes.popleft()
            for exc in self._open.values():
                if exc.signal.device == device and exc.signal.point == point:
                    exc.offer(number, at)

    def signal(self, sig: Signal) -> list[Draft]:
        """An excursion starts (``open``) or ends (``clear``); other Signals make no record."""
        if not sig.food_safety:
            return []
        if sig.kind == "open":
            found = self._open.get(sig.alert_id)
            if found is not None:  # already open: the first start stands; its value counts
                value = None if sig.value is None else _number(sig.value)
                if value is not None:
                    found.offer(value, sig.at)
                return []
            exc = self._begin(sig)
            self._open[sig.alert_id] = exc
            fields = self._about(sig) | {"since": stamp(exc.start), "direction": exc.direction,
                                         "value": self._text(sig.value)}  # fmt: skip
            return [Draft("excursion_start", sig.at, fields)]
        found = self._open.pop(sig.alert_id, None)
        if found is None:
            # Opened before this run of the gateway: its start is the Signal's own, if it says.
            # A clear's value is back inside the limit: it says nothing of the direction.
            start = sig.since
            exc = _Excursion(sig, sig.since or sig.at, None)
            note = "its start was not seen by this run of the gateway"
        else:
            exc, start, note = found, found.start, ""
        return [self._end(exc, start, sig.at, ended="cleared", note=note)]

    def stop(self, at: datetime) -> list[Draft]:
        """The gateway stops: open excursions end here, marked so (their real end is unseen)."""
        out = [self._end(e, e.start, at, ended="gateway_stopped", note="its real end was not "
                         "seen") for e in self._open.values()]  # fmt: skip
        self._open.clear()
        return out

    def _begin(self, sig: Signal) -> _Excursion:
        start = sig.since if sig.since is not None and sig.since <= sig.at else sig.at
        exc = _Excursion(sig, start, self._direction(sig))
        first = (start - _EPOCH) // timedelta(minutes=1)
        below = exc.direction == "below"
        for m in self._recent.get((sig.device, sig.point or ""), ()):
            if m.minute >= first:
                exc.offer(*((m.low, m.low_at) if below else (m.high, m.high_at)))
        value = None if sig.value is None else _number(sig.value)
        if value is not None:
            exc.offer(value, sig.at)
        return exc

    def _end(
        self, exc: _Excursion, start: datetime | None, end: datetime, *, ended: str, note: str
    ) -> Draft:
        fields = self._about(exc.signal) | {
            "start": None if start is None else stamp(start), "end": stamp(end),
            "seconds": None if start is None else _seconds(start, end),
            "peak": None if exc.peak is None else text(exc.peak),
            "peak_at": None if exc.peak_at is None else stamp(exc.peak_at),
            "direction": exc.direction, "ended": ended, "note": note,
        }  # fmt: skip
        return Draft("excursion_end", end, fields)

    @staticmethod
    def _direction(sig: Signal) -> str | None:
        if sig.value is None or sig.limit is None or sig.value == sig.limit:
            return None
        return "above" if sig.value > sig.limit else "below"

    @staticmethod
    def _text(value: float | None) -> str | None:
        return None if value is None else text(value)

    def _about(self, sig: Signal) -> dict[str, Json]:
        return {"device": sig.device, "rule": sig.rule, "point": sig.point,
                "alert_id": sig.alert_id, "priority": str(sig.priority),
                "limit": self._text(sig.limit), "text": sig.text}  # fmt: skip


# --- the whole record, and its retention -----------------------------------------------------


class HaccpCore:
    """Everything that becomes a record, in one place: the service's whole logic, without I/O."""

    def __init__(
        self, site: str, interval: timedelta, keep_days: int,
        units: Mapping[str, Mapping[str, str]],
    ) -> None:  # fmt: skip
        """``units``: device -> {food-safety point -> unit}; devices without any are ignored."""
        self._site = site
        self._interval = interval
        self._keep_days = keep_days
        self.units = {d: dict(p) for d, p in units.items() if p}
        self.sampler = Sampler(interval, self.units)
        self.excursions = Excursions()

    def start(self, at: datetime, head: Head) -> list[Draft]:
        """The gateway starts at ``at``; ``head`` is the chain as the last run left it."""
        out: list[Draft] = []
        if head.torn:
            out.append(Draft("repair", at, {"bytes": head.torn, "moved_to": head.torn_to,
                                            "reason": "the last record was torn (a write cut "
                                            "by a power loss) and was set aside"}))  # fmt: skip
        if head.at is not None:
            why = ("gateway stopped" if head.clean else "the gateway ended without a clean "
                   "stop (crash, power cut or kill) after its last record")  # fmt: skip
            out.append(Draft("gap", at, {"scope": GATEWAY, "reason": why, "since": stamp(head.at),
                                         "until": stamp(at), "seconds": _seconds(head.at, at),
                                         "clean": head.clean}))  # fmt: skip
        units: dict[str, Json] = {d: dict(p) for d, p in sorted(self.units.items())}
        out.append(Draft("gateway_start", at, {
            "site": self._site, "interval_s": int(self._interval.total_seconds()),
            "keep_days": self._keep_days, "units": units,
        }))  # fmt: skip
        self.sampler.start(at)
        return out

    def reading(self, readings: DeviceReadings) -> list[Draft]:
        """One reading of any device (only food-safety points of food-safety units count)."""
        points = self.units.get(readings.device)
        if points is None:
            return []
        safe = {p: v for p, v in readings.values.items() if p in points}
        if safe:
            self.excursions.reading(readings.device, readings.at, safe)
        return self.sampler.reading(readings)

    def signal(self, sig: Signal) -> list[Draft]:
        """A detector's Signal (only food-safety ones are kept)."""
        return self.excursions.signal(sig)

    @staticmethod
    def action(alert_id: str, device: str, by: str, note: str, at: datetime) -> list[Draft]:
        """A corrective action: who did what about which alert."""
        fields: dict[str, Json] = {"alert_id": alert_id, "device": device, "by": by,
                                   "note": note}  # fmt: skip
        return [Draft("action", at, fields)]

    def availability(
        self, device: str, at: datetime, *, online: bool, reason: str = ""
    ) -> list[Draft]:
        """A device's availability changed."""
        return self.sampler.availability(device, at, online=online, reason=reason)

    def tick(self, at: datetime) -> list[Draft]:
        """Time passed (closes windows no reading closed)."""
        return self.sampler.tick(at)

    def stop(self, at: datetime) -> list[Draft]:
        """The gateway stops at ``at``: what is open is written, then the gateway's gap begins."""
        out = self.sampler.stop(at) + self.excursions.stop(at)
        out.append(Draft("gap_start", at, {"scope": GATEWAY, "reason": "gateway stopped"}))
        return out

    @staticmethod
    def lost(count: int, since: datetime, until: datetime, why: str) -> Draft:
        """Records that could not be kept (the disk did not take them): a gap, said as such."""
        return Draft("gap", until, {
            "scope": GATEWAY, "reason": f"{count} records could not be kept: {why}",
            "since": stamp(since), "until": stamp(until), "seconds": _seconds(since, until),
        })  # fmt: skip
