"""The HACCP report an inspector is given (CSV or PDF), and ``gateway haccp report|verify``.

What the report shows, per food-safety unit, in time order:

* ``reading``: one row per interval mark and food-safety point (one per interval for the usual
  one-probe unit): the reading nearest the mark, the lowest and highest of the interval around
  it and how many readings there were; ``excursion`` names the rule when the mark falls inside
  one;
* ``excursion``: a food-safety limit held past its rule, from start to end, with its length,
  peak (and when), limit, and how it ended;
* ``action``: a corrective action, who took it and what they wrote;
* ``gap``: no readings (the gateway stopped, the unit offline or silent, records lost), from
  when until when, with its length; never filled in;
* ``no record``: interval marks the record says nothing about at all (before it began, retired,
  or cut off), merged into one row with their length, so that even a hole nobody recorded shows.

The report first checks the whole chain (:func:`gateway.telemetry.haccp_store.verify`) and says
what it found at its top (the PDF) or on stderr (the CSV stays one plain table).

The PDF is written here, without a library: PDF 1.4, A4 landscape pages of Courier text (the
standard Type 1 fonts every reader has, WinAnsi encoding, so ``°C`` is one byte), a page number
on each page, uncompressed content streams and a classic cross-reference table.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import IO, TYPE_CHECKING

from gateway.errors import StoreError
from gateway.telemetry.cli_commands import parse_time
from gateway.telemetry.haccp import GATEWAY
from gateway.telemetry.haccp_store import read_records, verify

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import tzinfo
    from pathlib import Path

    from gateway.config import SiteConfig
    from gateway.telemetry.haccp import Json
    from gateway.telemetry.haccp_store import Verdict

__all__ = ["Report", "Row", "build", "pdf_document", "render_csv", "render_pdf"]

EXIT_OK = 0
EXIT_ERROR = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
CSV_COLUMNS = ("device", "location", "time", "kind", "point", "value", "unit", "min", "max",
               "readings", "until", "duration_s", "duration", "excursion", "note")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the report (see the module docstring for the kinds)."""

    device: str
    time: datetime
    kind: str
    point: str = ""
    value: str = ""
    unit: str = ""
    low: str = ""
    high: str = ""
    readings: int | None = None
    until: datetime | None = None
    seconds: int | None = None
    excursion: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Unit:
    """One unit's part of the report, with its counts."""

    device: str
    location: str
    rows: tuple[Row, ...]
    marks: int  # interval marks in the period
    recorded: int  # of them with a reading
    excursions: int
    gaps: int


@dataclass(frozen=True, slots=True)
class Report:
    """The whole report: the period, the units, what verification said."""

    site: str
    since: datetime
    until: datetime
    interval: timedelta
    units: tuple[Unit, ...]
    verdict: tuple[str, ...]
    generated: datetime


# --- from records to rows --------------------------------------------------------------------


def _t(record: Mapping[str, Json], key: str) -> datetime | None:
    value = record.get(key)
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _s(record: Mapping[str, Json], key: str) -> str:
    value = record.get(key)
    return "" if value is None else str(value)


def _i(record: Mapping[str, Json], key: str) -> int | None:
    value = record.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(slots=True)
class _Span:
    scope: str
    since: datetime
    until: datetime | None
    seconds: int | None
    reason: str


@dataclass(slots=True)
class _Excursion:
    record: Mapping[str, Json]
    start: datetime
    end: datetime | None
    note: str = ""


class _Reader:
    """Pairs what the record says across records (an excursion's start and end, gaps)."""

    def __init__(self) -> None:
        self.intervals: dict[str, list[Mapping[str, Json]]] = {}
        self.actions: list[Mapping[str, Json]] = []
        self.excursions: list[_Excursion] = []
        self.spans: list[_Span] = []
        self._open_exc: dict[str, _Excursion] = {}
        self._open_gaps: dict[str, _Span] = {}

    def take(self, r: Mapping[str, Json]) -> None:
        kind, at = r.get("kind"), _t(r, "at")
        if at is None:
            return
        if kind == "interval":
            self.intervals.setdefault(_s(r, "device"), []).append(r)
        elif kind == "action":
            self.actions.append(r)
        elif kind == "excursion_start":
            self._open_exc[_s(r, "alert_id")] = _Excursion(r, _t(r, "since") or at, None)
        elif kind == "excursion_end":
            self._open_exc.pop(_s(r, "alert_id"), None)
            start = _t(r, "start")
            self.excursions.append(_Excursion(r, start or at, _t(r, "end") or at))
        elif kind == "gap_start":
            scope = _s(r, "scope")
            self._open_gaps[scope] = _Span(scope, at, None, None, _s(r, "reason"))
        elif kind == "gap":
            scope, since = _s(r, "scope"), _t(r, "since") or at
            self._open_gaps.pop(scope, None)
            if scope == GATEWAY and r.get("clean") is False:
                self._cut_off(since)
            self.spans.append(_Span(scope, since, _t(r, "until") or at, _i(r, "seconds"),
                                    _s(r, "reason")))  # fmt: skip

    def _cut_off(self, at: datetime) -> None:
        # The gateway ended unexpectedly after its last record: what was open ended unseen.
        for span in self._open_gaps.values():
            span.until, span.reason = at, span.reason + " (its end was not recorded: the gateway "
            "ended without a clean stop)"  # fmt: skip
            self.spans.append(span)
        self._open_gaps.clear()
        for exc in self._open_exc.values():
            exc.end = at
            exc.note = "its end was not recorded: the gateway ended without a clean stop"
            self.excursions.append(exc)
        self._open_exc.clear()

    def finish(self) -> None:
        """What is still open at the end of the record stays open (until the period's end)."""
        self.spans += self._open_gaps.values()
        for exc in self._open_exc.values():
            exc.note = "still open at the end of the record"
            self.excursions.append(exc)


def _show(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        return value
    return f"{round(number, 2) + 0.0:.2f}".rstrip("0").rstrip(".")


def build(
    records: Iterable[Mapping[str, Json]],
    *,
    site: str,
    since: datetime,
    until: datetime,
    interval: timedelta,
    units: Mapping[str, str],
    device: str | None = None,
    verdict: Sequence[str] = (),
    generated: datetime,
) -> Report:
    """The report of ``since`` (included) to ``until`` (not).

    Args:
        records: the record, in order (:func:`~gateway.telemetry.haccp_store.read_records`).
        site: the site's id, for the title.
        since: the period's start.
        until: its end.
        interval: the site's interval (marks with no record at all are looked for on it).
        units: food-safety units to report even if they recorded nothing, id -> location.
        device: only this unit.
        verdict: what verification said, in lines.
        generated: when the report was made (its stamp).
    """
    reader = _Reader()
    for record in records:
        reader.take(record)
    reader.finish()
    seen = set(reader.intervals) | {_s(e.record, "device") for e in reader.excursions}
    seen |= {_s(a, "device") for a in reader.actions}
    seen |= {s.scope for s in reader.spans if s.scope != GATEWAY}
    names = sorted((set(units) | seen) - {""})
    if device is not None:
        names = [device]
    out = tuple(_unit(d, units.get(d, ""), reader, since, until, interval) for d in names)
    return Report(site, since, until, interval, out, tuple(verdict), generated)


def _marks(since: datetime, until: datetime, interval: timedelta) -> list[datetime]:
    step = interval // _US
    k = -(-((since - _EPOCH) // _US) // step)  # the first mark at or after since
    first = _EPOCH + k * step * _US
    return [first + n * interval for n in range(max(0, -(-(until - first) // interval)))]


def _unit(  # noqa: PLR0917
    device: str, location: str, reader: _Reader, since: datetime, until: datetime,
    interval: timedelta,
) -> Unit:  # fmt: skip
    spans = [s for s in reader.spans if s.scope in {device, GATEWAY}
             and s.since < until and (s.until or until) >= since]  # fmt: skip
    excursions = [e for e in reader.excursions if _s(e.record, "device") == device
                  and e.start < until and (e.end or until) >= since]  # fmt: skip
    rows, recorded = _readings(device, reader, excursions, since, until)
    rows += [_excursion_row(device, e) for e in excursions]
    for a in reader.actions:
        at = _t(a, "at")
        if _s(a, "device") == device and at is not None and since <= at < until:
            note = f"{_s(a, 'note')} (by {_s(a, 'by')}, for alert {_s(a, 'alert_id')})"
            rows.append(Row(device, at, "action", note=note))
    for s in spans:
        why = s.reason if s.until is not None else s.reason + " (still open)"
        rows.append(Row(device, s.since, "gap", until=s.until or until, note=why,
                        seconds=s.seconds if s.until is not None else None))  # fmt: skip
    marks = _marks(since, until, interval)
    rows += _missing(device, marks, recorded, spans, interval, until)
    order = {"gap": 0, "no record": 0, "excursion": 1, "reading": 2, "action": 3}
    rows.sort(key=lambda row: (row.time, order.get(row.kind, 4), row.point))
    return Unit(device, location, tuple(rows), len(marks), len(recorded & set(marks)),
                len(excursions), sum(1 for row in rows if row.kind == "gap"))  # fmt: skip


def _readings(
    device: str, reader: _Reader, excursions: Sequence[_Excursion], since: datetime,
    until: datetime,
) -> tuple[list[Row], set[datetime]]:  # fmt: skip
    rows: list[Row] = []
    recorded: set[datetime] = set()
    for r in reader.intervals.get(device, ()):
        mark = _t(r, "at")
        points = r.get("points")
        if mark is None or not since <= mark < until or not isinstance(points, dict):
            continue
        recorded.add(mark)
        inside = next((_s(e.record, "rule") for e in excursions
                       if e.start <= mark <= (e.end or until)), "")  # fmt: skip
        rows += [Row(device, mark, "reading", point, _show(_s(p, "value")), _s(p, "unit"),
                     _show(_s(p, "min")), _show(_s(p, "max")), _i(p, "n"), excursion=inside)
                 for point, p in sorted(points.items()) if isinstance(p, dict)]  # fmt: skip
    return rows, recorded


def _missing(  # noqa: PLR0917
    device: str, marks: Sequence[datetime], recorded: set[datetime], spans: Sequence[_Span],
    interval: timedelta, until: datetime,
) -> list[Row]:  # fmt: skip
    """Runs of marks with no reading and no gap near them, one row a run."""
    half = interval / 2
    rows: list[Row] = []
    run: list[datetime] = []
    for mark in [*marks, None]:
        explained = mark is None or mark in recorded or any(
            s.since < mark + half and (s.until or until) > mark - half for s in spans
        )
        if not explained and mark is not None:
            run.append(mark)
        elif run:
            note = (f"nothing recorded for {len(run)} interval(s): before the record began, "
                    "retired, or lost")  # fmt: skip
            seconds = round((len(run) * interval).total_seconds())
            rows.append(Row(device, run[0], "no record", until=run[-1] + interval,
                            seconds=seconds, note=note))  # fmt: skip
            run = []
    return rows


def _excursion_row(device: str, e: _Excursion) -> Row:
    r = e.record
    direction = _s(r, "direction")
    limit = _show(_s(r, "limit"))
    bound = f"{'above' if direction != 'below' else 'below'} {limit}" if limit else ""
    peak, peak_at = _show(_s(r, "peak")), _t(r, "peak_at")
    if peak and peak_at is not None:
        peak_text = f"peak {peak} at {peak_at.astimezone(UTC):%H:%M} UTC"
    else:
        peak_text = "peak not recorded"
    ended = {"cleared": "cleared", "gateway_stopped": "the gateway stopped while it was open"}
    how = e.note or _s(r, "note") or ended.get(_s(r, "ended"), _s(r, "ended"))
    note = "; ".join(x for x in (f"{_s(r, 'rule')}: {bound}".rstrip(": "), peak_text, how,
                                 _s(r, "text")) if x)  # fmt: skip
    seconds = _i(r, "seconds") if e.end is not None and not e.note else None
    return Row(device, e.start, "excursion", _s(r, "point"), peak, until=e.end,
               seconds=seconds, excursion=_s(r, "rule"), note=note)  # fmt: skip


# --- rendering ---------------------------------------------------------------------------------


def _when(at: datetime | None, tz: tzinfo | None) -> str:
    return "" if at is None else at.astimezone(tz).isoformat(timespec="seconds")


def _short(at: datetime | None, tz: tzinfo | None) -> str:
    return "" if at is None else f"{at.astimezone(tz):%Y-%m-%d %H:%M:%S}"


def length(seconds: int | None) -> str:
    """A length for people: ``45 s``, ``12 min``, ``1 h 05 min``, ``2 d 03 h``."""
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours = seconds // 60, seconds // 3600
    if hours == 0:
        return f"{minutes} min"
    if hours < 48:
        return f"{hours} h {minutes % 60:02d} min"
    return f"{hours // 24} d {hours % 24:02d} h"


def render_csv(report: Report, tz: tzinfo | None = None) -> str:
    """The report as one CSV table (``CSV_COLUMNS``), times in ISO 8601 with their offset."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for unit in report.units:
        for r in unit.rows:
            writer.writerow([
                r.device, unit.location, _when(r.time, tz), r.kind, r.point, r.value, r.unit,
                r.low, r.high, "" if r.readings is None else r.readings, _when(r.until, tz),
                "" if r.seconds is None else r.seconds,
                length(r.seconds) if r.kind in {"gap", "no record", "excursion"} else "",
                r.excursion, r.note,
            ])  # fmt: skip
    return out.getvalue()


_WIDTHS = (19, 9, 14, 10, 7, 7, 5, 19, 13)
_HEAD = ("time", "kind", "point", "value", "min", "max", "n", "until", "length", "note")
_COLUMNS = 158  # Courier 8 pt on A4 landscape with 36 pt margins: 4.8 pt a character
_LINES = 50


def _table_line(cells: Sequence[str]) -> list[str]:
    fixed = " ".join(c[:w].ljust(w) for c, w in zip(cells, _WIDTHS, strict=False))
    room = _COLUMNS - len(fixed) - 1
    note = cells[len(_WIDTHS)] if len(cells) > len(_WIDTHS) else ""
    parts = textwrap.wrap(note, room, break_on_hyphens=False) or [""]
    lines = [f"{fixed} {parts[0]}".rstrip()]
    lines += [" " * (len(fixed) + 1) + part for part in parts[1:]]
    return lines


def _text_lines(report: Report, tz: tzinfo | None) -> list[tuple[str, bool, str]]:
    """(text, bold, the unit it belongs to) lines of the PDF, before pagination."""
    period = f"{_short(report.since, tz)} to {_short(report.until, tz)}"
    zone = report.since.astimezone(tz).strftime("%Z %z")
    step = round(report.interval.total_seconds() / 60)
    lines = [
        (f"HACCP food-safety record: site {report.site}, {period} ({zone})", True, ""),
        ((f"Generated {_short(report.generated, tz)}. One row per {step} min mark and point: "
          "the reading nearest the mark, with the lowest and highest of"), False, ""),
        ((f"the {step} min around it and their number (n). Excursions: a food-safety limit "
          "held past its rule, start to end, peak. Gaps: no readings,"), False, ""),
        (("never filled in, with their length. 'no record': marks the record says nothing "
          "about."), False, ""),
        *((v, True, "") for v in report.verdict),
    ]  # fmt: skip
    for unit in report.units:
        lines.append(("", False, ""))
        where = f" ({unit.location})" if unit.location else ""
        title = (f"Unit {unit.device}{where}: {unit.recorded} of {unit.marks} marks recorded, "
                 f"{unit.excursions} excursion(s), {unit.gaps} gap(s)")  # fmt: skip
        lines.append((title, True, ""))
        lines += [(line, True, unit.device) for line in _table_line(_HEAD)]
        for r in unit.rows:
            value = f"{r.value} {r.unit}".strip() if r.kind == "reading" else r.value
            kind = r.kind.upper() if r.kind in {"excursion", "gap", "no record"} else r.kind
            note = r.note or (f"in excursion: {r.excursion}" if r.excursion else "")
            cells = (_short(r.time, tz), kind, r.point, value, r.low, r.high,
                     "" if r.readings is None else str(r.readings), _short(r.until, tz),
                     length(r.seconds) if r.kind not in {"reading", "action"} else "",
                     note)  # fmt: skip
            lines += [(line, False, unit.device) for line in _table_line(cells)]
    return lines


def render_pdf(report: Report, tz: tzinfo | None = None) -> bytes:
    """The report as a PDF: the same table, a unit's column heads again on each new page."""
    body = _LINES - 2  # a page's title and a blank line
    pages: list[list[tuple[str, bool]]] = []
    page: list[tuple[str, bool]] = []
    head = {u.device: [(line, True) for line in _table_line(_HEAD)] for u in report.units}
    for text, bold, device in _text_lines(report, tz):
        if len(page) >= body:
            pages.append(page)
            repeat = not bold and device
            page = list(head[device]) if repeat else []
        page.append((text, bold))
    pages.append(page)
    total = len(pages)
    title = f"HACCP record {report.site} {_short(report.since, tz)} to {_short(report.until, tz)}"
    numbered = [[(f"{title}  -  page {n} of {total}", True), ("", False), *p]
                for n, p in enumerate(pages, 1)]  # fmt: skip
    return pdf_document(numbered, title=title, created=report.generated)


def _pdf_text(text: str) -> bytes:
    out = bytearray()
    for byte in text.encode("cp1252", errors="replace"):
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif 32 <= byte < 127:
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    return b"(" + bytes(out) + b")"


def pdf_document(
    pages: Sequence[Sequence[tuple[str, bool]]],
    *,
    title: str,
    created: datetime,
    size: tuple[float, float] = (842.0, 595.0),
    font_size: float = 8.0,
    leading: float = 10.0,
    margin: float = 36.0,
) -> bytes:
    """A PDF 1.4 file of text pages: each line is (text, bold), set in Courier from the top.

    Objects: 1 the catalog, 2 the page tree, 3 Courier, 4 Courier-Bold, 5 the document's
    information, then each page and its content stream. Characters outside Windows-1252 are
    written as ``?``.
    """
    width, height = size
    pages = pages or [[]]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>",
        4: b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier-Bold /Encoding /WinAnsiEncoding >>",
        5: b"<< /Title " + _pdf_text(title) + b" /Producer (kitchen-gateway) /CreationDate "
        + _pdf_text(f"D:{created.astimezone(UTC):%Y%m%d%H%M%S}Z") + b" >>",
    }  # fmt: skip
    kids = []
    for n, lines in enumerate(pages):
        page_id = 6 + 2 * n
        kids.append(b"%d 0 R" % page_id)
        stream = bytearray(b"BT\n/F1 %.1f Tf\n%.1f TL\n%.1f %.1f Td\n" % (
            font_size, leading, margin, height - margin - font_size))  # fmt: skip
        bold_now = False
        for text, bold in lines:
            if bold != bold_now:
                stream += b"/F%d %.1f Tf\n" % (2 if bold else 1, font_size)
                bold_now = bold
            stream += _pdf_text(text) + b" Tj T*\n"
        stream += b"ET"
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.0f %.0f] /Resources << /Font << "
            b"/F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>" % (width, height, page_id + 1)
        )
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + (
            b"\nendstream")  # fmt: skip
    objects[2] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % len(kids)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number in range(1, len(objects) + 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)  # fmt: skip
    return bytes(out)


# --- the commands ------------------------------------------------------------------------------


def verdict_lines(verdict: Verdict, keep_days: int) -> list[str]:
    """What verification found, for people (the report's top, ``gateway haccp verify``)."""
    if not verdict.ok:
        where = f"{verdict.file} line {verdict.line}" if verdict.line else f"{verdict.file}"
        return [f"RECORD NOT INTACT: {where}: {verdict.problem}.",
                (f"{verdict.records} records before it are sound; what follows cannot be "
                 "trusted.")]  # fmt: skip
    lines = [(f"Record verified: {verdict.records} records in {len(verdict.segments)} "
              f"file(s), hash chain intact; newest seq {verdict.head_seq}, SHA-256 "
              f"{verdict.head_hash}.")]  # fmt: skip
    if verdict.retired:
        lines.append(f"{verdict.retired} older records were retired by age (kept {keep_days} "
                     "days or more; see anchor.json).")  # fmt: skip
    return lines


def _units(cfg: SiteConfig) -> dict[str, str]:
    from gateway.devices.profile import load_profiles  # noqa: PLC0415
    from gateway.telemetry.schema import schemas_for_site  # noqa: PLC0415

    location = {d.id: d.location for d in cfg.devices}
    try:
        schemas = schemas_for_site(cfg, load_profiles(cfg.devices_profiles))
    except (KeyError, OSError, ValueError):
        return {}  # the units that recorded something are still reported
    return {d: location.get(d, "") for d, s in schemas.items() if s.food_safety}


def parse_date(text: str, *, end: bool = False) -> datetime:
    """``2026-12-01`` (a whole day: with ``end``, the midnight after it) or an ISO 8601 time.

    Without an offset, local time.

    Raises:
        ValueError: neither (the message shows both forms).
    """
    value = text.strip()
    try:
        day = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        day = None
    if day is not None:
        day += timedelta(days=1 if end else 0)
        return datetime(day.year, day.month, day.day).astimezone()  # naive: local midnight
    try:
        return parse_time(value)
    except ValueError:
        raise ValueError(f"{text!r} is neither a date nor a time: write e.g. 2026-12-01 or "
                         "2026-12-01T18:00") from None  # fmt: skip


def report(
    cfg: SiteConfig,
    *,
    since: datetime,
    until: datetime,
    device: str | None,
    fmt: str,
    output: Path | None,
    now: datetime,
    tz: tzinfo | None = None,
) -> int:
    """Write the report to ``output`` (standard output when None).

    Returns:
        0; 1 when the record is not intact (the report says where, and so does stderr) or
        there is none.

    Raises:
        StoreError: the record could not be read, or the report not written.
    """
    directory = cfg.haccp.directory(cfg.state.dir)
    if not directory.is_dir():
        sys.stderr.write(f"no HACCP record at {directory}: the gateway writes it once it runs "
                         "(check --config, or --state-dir)\n")  # fmt: skip
        return EXIT_ERROR
    verdict = verify(directory)
    lines = verdict_lines(verdict, cfg.haccp.keep_days)
    built = build(read_records(directory), site=cfg.site.id, since=since, until=until,
                  interval=timedelta(minutes=cfg.haccp.interval_min), units=_units(cfg),
                  device=device, verdict=lines, generated=now)  # fmt: skip
    data = render_pdf(built, tz) if fmt == "pdf" else render_csv(built, tz).encode()
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        partial = output.with_name(output.name + ".partial")
        try:
            partial.write_bytes(data)
            partial.replace(output)
        except OSError as err:
            msg = f"cannot write the report to {output}: {err.strerror or err}"
            raise StoreError(msg) from None
    for line in lines if fmt == "csv" or not verdict.ok else ():
        sys.stderr.write(line + "\n")
    return EXIT_OK if verdict.ok else EXIT_ERROR


def verify_command(cfg: SiteConfig, out: IO[str]) -> int:
    """``gateway haccp verify``: 0 when every record is sound, 1 naming the first bad one."""
    directory: Path = cfg.haccp.directory(cfg.state.dir)
    if not directory.is_dir():
        sys.stderr.write(f"no HACCP record at {directory} (check --config, or --state-dir)\n")
        return EXIT_ERROR
    try:
        verdict = verify(directory)
    except StoreError as err:
        sys.stderr.write(f"cannot read {directory}: {err}\n")
        return EXIT_ERROR
    for line in verdict_lines(verdict, cfg.haccp.keep_days):
        (out if verdict.ok else sys.stderr).write(line + "\n")
    return EXIT_OK if verdict.ok else EXIT_ERROR
