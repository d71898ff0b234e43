"""The HACCP report (CSV, and a PDF that parses back) and ``gateway haccp report|verify``."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pypdf
import pytest

from gateway.cli import main
from gateway.devices.events import DeviceReadings
from gateway.telemetry.haccp import Chain, HaccpCore, Head
from gateway.telemetry.haccp_report import (
    build,
    length,
    parse_date,
    pdf_document,
    render_csv,
    render_pdf,
)
from gateway.telemetry.haccp_store import HaccpStore, read_records, verify
from gateway.telemetry.signals import Priority, Signal

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.telemetry.haccp import Draft

T0 = datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
FIFTEEN = timedelta(minutes=15)
ROW = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +reading ")  # a reading's line in the PDF
SITE = """
[site]
id = "trattoria"
name = "Trattoria"
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
id = "fridge-1"
profile = "walkin-fridge"
host = "127.0.0.1"
location = "Walk-in cold room"
"""


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def temperature(minute: int) -> float:
    """3.0-3.6 °C, but above 5 °C from 01:00 to 01:40 with a peak of 8.2 at 01:20."""
    if 60 <= minute < 100:
        return round(8.2 - abs(minute - 80) * 0.15, 2)
    return 3.0 + (minute % 7) / 10


def night(directory: Path, minutes: int = 180) -> None:
    """00:00-03:00 of a walk-in: an excursion with its corrective action, an outage, a stop."""
    core = HaccpCore("trattoria", FIFTEEN, 90, {"fridge-1": {"cabinet_temp": "°C"}})
    drafts: list[Draft] = core.start(T0, Head())

    def sig(kind: str, minute: int, value: float, since: datetime | None = None) -> Signal:
        return Signal(kind, "fridge-1", "cold_holding", Priority.HIGH, at(minute),  # type: ignore[arg-type]
                      point="cabinet_temp", value=value, limit=5.0, since=since,
                      food_safety=True, text="cabinet above 5 °C for 30 min")  # fmt: skip

    for minute in range(minutes):
        if minute == 90:
            drafts += core.signal(sig("open", 90, temperature(90), since=at(60)))
        if minute == 95:
            note = "door left open; closed it, moved stock to fridge-2"
            drafts += core.action("fridge-1:cold_holding", "fridge-1", "anna", note, at(95))
        if minute == 105:
            drafts += core.signal(sig("clear", 105, temperature(105)))
        if minute == 130:
            drafts += core.availability("fridge-1", at(130), online=False,
                                        reason="3 polls failed")  # fmt: skip
        if minute == 160:
            drafts += core.availability("fridge-1", at(160), online=True)
        if not 130 <= minute < 161:
            readings = {"cabinet_temp": temperature(minute), "door_open": False}
            drafts += core.reading(DeviceReadings("fridge-1", at(minute), readings))
        drafts += core.tick(at(minute))
    drafts += core.stop(at(minutes))
    with HaccpStore(directory, fsync=False) as store:
        chain = Chain()
        sealed = [chain.seal(d) for d in drafts]
        while sealed:
            del sealed[: store.append(sealed)]


def report_of(directory: Path, since: datetime = T0, until: datetime | None = None,
              **more: Any) -> Any:  # fmt: skip
    return build(read_records(directory), site="trattoria", since=since,
                 until=until or at(240), interval=FIFTEEN,
                 units={"fridge-1": "Walk-in cold room"}, verdict=["Record verified: test."],
                 generated=at(300), **more)  # fmt: skip


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_has_a_row_per_mark_and_the_excursion_action_and_gaps_beside_them(
    tmp_path: Path,
) -> None:
    night(tmp_path)
    table = rows(render_csv(report_of(tmp_path), UTC))
    readings = [r for r in table if r["kind"] == "reading"]
    times = [r["time"][11:16] for r in readings]
    # Every mark from 00:00 to 03:00 but 02:30, inside the outage (02:10-02:40): never filled
    # in. 02:15's window has the two readings before the outage began, and says so.
    expected = [f"{m // 60:02d}:{m % 60:02d}" for m in range(0, 181, 15) if m != 150]
    assert times == expected
    cut = next(r for r in readings if r["time"][11:16] == "02:15")
    assert cut["readings"] == "2"
    quarter = readings[1]
    assert quarter == quarter | {"device": "fridge-1", "location": "Walk-in cold room",
                                 "time": "2026-12-04T00:15:00+00:00", "point": "cabinet_temp",
                                 "value": "3.1", "unit": "°C", "min": "3", "max": "3.6",
                                 "readings": "15", "excursion": ""}  # fmt: skip
    in_excursion = [r["time"][11:16] for r in readings if r["excursion"] == "cold_holding"]
    assert in_excursion == ["01:00", "01:15", "01:30", "01:45"]
    assert [r["max"] for r in readings if r["time"][11:16] == "01:15"] == ["8.2"]
    (excursion,) = (r for r in table if r["kind"] == "excursion")
    assert excursion["time"] == "2026-12-04T01:00:00+00:00"
    assert excursion["until"] == "2026-12-04T01:45:00+00:00"
    assert (excursion["duration_s"], excursion["duration"]) == ("2700", "45 min")
    assert excursion["value"] == "8.2"
    assert "peak 8.2 at 01:20 UTC" in excursion["note"]
    assert "above 5" in excursion["note"]
    (action,) = (r for r in table if r["kind"] == "action")
    assert action["time"] == "2026-12-04T01:35:00+00:00"
    assert action["note"] == ("door left open; closed it, moved stock to fridge-2 (by anna, for "
                              "alert fridge-1:cold_holding)")  # fmt: skip
    gaps = [(g["time"][11:16], g["until"][11:16], g["duration"], g["note"])
            for g in table if g["kind"] == "gap"]  # fmt: skip
    assert gaps == [
        ("02:10", "02:40", "30 min", "offline: 3 polls failed"),
        ("03:00", "04:00", "unknown", "gateway stopped (still open)"),
    ]
    assert [r for r in table if r["kind"] == "no record"] == []  # everything is accounted for
    kinds = [r["kind"] for r in table]
    assert kinds.index("excursion") < kinds.index("action") < kinds.index("gap")


def test_marks_the_record_says_nothing_about_are_shown_with_their_length(tmp_path: Path) -> None:
    night(tmp_path)
    table = rows(render_csv(report_of(tmp_path, since=at(-120), until=at(60)), UTC))
    missing = [r for r in table if r["kind"] == "no record"]
    assert [(r["time"], r["until"], r["duration"]) for r in missing] == [
        ("2026-12-03T22:00:00+00:00", "2026-12-04T00:00:00+00:00", "2 h 00 min")]  # fmt: skip
    assert "nothing recorded for 8 interval(s)" in missing[0]["note"]


def test_only_one_device_and_a_unit_that_recorded_nothing(tmp_path: Path) -> None:
    night(tmp_path)
    report = report_of(tmp_path, device="fridge-9")
    (unit,) = report.units
    assert unit.device == "fridge-9"
    assert unit.recorded == 0
    assert {r.kind for r in unit.rows} == {"gap", "no record"}  # the gateway's gap counts too


def test_the_pdf_parses_back_with_every_row_and_its_page_numbers(tmp_path: Path) -> None:
    night(tmp_path, minutes=15 * 60)  # to 15:00: long enough for a second page
    report = report_of(tmp_path, since=at(-24 * 60), until=at(16 * 60))
    data = render_pdf(report, UTC)
    assert data.startswith(b"%PDF-1.4\n")
    reader = pypdf.PdfReader(io.BytesIO(data), strict=True)
    pages = [page.extract_text() for page in reader.pages]
    total = len(pages)
    assert total >= 2
    for n, text in enumerate(pages, 1):
        assert f"page {n} of {total}" in text
    text = "\n".join(pages)
    assert "HACCP food-safety record: site trattoria" in text
    assert "Unit fridge-1 (Walk-in cold room)" in text
    assert "Record verified: test." in text
    assert reader.metadata is not None
    title = "HACCP record trattoria 2026-12-03 00:00:00 to 2026-12-04 16:00:00"
    assert reader.metadata.title == title
    found = [line for line in text.splitlines() if ROW.match(line)]
    unit = report.units[0]
    wanted = [r for r in unit.rows if r.kind == "reading"]
    assert len(found) == len(wanted) == 60
    for line, row in zip(found, wanted, strict=True):
        assert line.split()[:6] == [f"{row.time:%Y-%m-%d}", f"{row.time:%H:%M:%S}", "reading",
                                    "cabinet_temp", row.value, "°C"]  # fmt: skip
    words = " ".join(text.split())  # a long note wraps onto the next lines
    assert "EXCURSION" in words
    assert "peak 8.2 at 01:20 UTC" in words
    assert "closed it, moved stock to fridge-2 (by anna, for alert fridge-1:cold_holding)" in words
    assert "offline: 3 polls failed" in words
    assert "NO RECORD" in words
    # The column heads start each continuation page of a unit's table.
    assert pages[1].splitlines()[1].split()[:3] == ["time", "kind", "point"]
    if shutil.which("pdftotext"):  # poppler, where it is installed, reads it the same way
        path = tmp_path / "r.pdf"
        path.write_bytes(data)
        out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                             check=True, text=True).stdout  # fmt: skip
        assert "peak 8.2 at 01:20 UTC" in out
        assert len([line for line in out.splitlines() if ROW.match(line)]) == 60


def test_the_pdf_writer_escapes_and_encodes_text() -> None:
    data = pdf_document([[("(a) \\ b: 3 °C, café", True), ("", False)], []], title="t",
                        created=T0)  # fmt: skip
    reader = pypdf.PdfReader(io.BytesIO(data), strict=True)
    assert len(reader.pages) == 2
    assert reader.pages[0].extract_text().strip() == "(a) \\ b: 3 °C, café"
    assert b"\\(a\\) \\\\ b: 3 \\260C, caf\\351" in data


def test_lengths_and_dates_for_people() -> None:
    assert [length(s) for s in (None, 45, 720, 3900, 200_000)] == [
        "unknown", "45 s", "12 min", "1 h 05 min", "2 d 07 h"]  # fmt: skip
    assert parse_date("2026-12-01T18:00+01:00") == datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
    day = parse_date("2026-12-01")
    assert (day.hour, day.minute, day.tzinfo is not None) == (0, 0, True)
    assert parse_date("2026-12-07", end=True) - parse_date("2026-12-07") in {
        timedelta(hours=h) for h in (23, 24, 25)}  # a whole local day  # fmt: skip
    with pytest.raises(ValueError, match="neither a date nor a time"):
        parse_date("last week")


# --- the commands ---------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE, encoding="utf-8")
    night(tmp_path / "state" / "haccp")
    return path


def test_verify_says_how_many_records_and_exits_0(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["haccp", "verify", "--config", str(site)]) == 0
    out = capsys.readouterr().out
    records = verify(site.parent / "state" / "haccp").records
    assert f"Record verified: {records} records in 1 file(s), hash chain intact" in out


def test_verify_names_the_first_bad_record_and_exits_1(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site.parent / "state" / "haccp" / "haccp-2026-12.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b'"max":"', b'"max":"1', 1)
    path.write_bytes(b"".join(lines))
    assert main(["haccp", "verify", "--config", str(site)]) == 1
    err = capsys.readouterr().err
    assert "RECORD NOT INTACT: haccp-2026-12.jsonl line 5: its hash does not match" in err
    assert "4 records before it are sound" in err


def test_report_writes_a_pdf_or_csv_and_exits_0(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = site.parent / "report.pdf"
    argv = ["haccp", "report", "--from", "2026-12-04T00:00+00:00", "--to",
            "2026-12-04T04:00+00:00", "--config", str(site)]  # fmt: skip
    assert main([*argv, "--format", "pdf", "--output", str(out)]) == 0
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(out).pages)
    assert "Unit fridge-1 (Walk-in cold room): 12 of 16 marks recorded, 1 excursion(s)" in text
    capsys.readouterr()
    assert main([*argv, "--device", "fridge-1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("device,location,time,kind,")
    assert "Record verified:" in captured.err


def test_report_exits_1_when_the_record_is_not_intact_and_says_so_in_it(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site.parent / "state" / "haccp" / "haccp-2026-12.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[3]
    path.write_bytes(b"".join(lines))
    out = site.parent / "report.pdf"
    argv = ["haccp", "report", "--from", "2026-12-04T00:00+00:00", "--to",
            "2026-12-04T04:00+00:00", "--config", str(site), "--format", "pdf",
            "--output", str(out)]  # fmt: skip
    assert main(argv) == 1
    text = pypdf.PdfReader(out).pages[0].extract_text()
    assert "RECORD NOT INTACT: haccp-2026-12.jsonl line 4" in text
    assert "RECORD NOT INTACT" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--from", "2026-12-05", "--to", "2026-12-04"], 2, "--to must be after --from"),
        (["--from", "soon", "--to", "2026-12-04"], 2, "'soon' is neither a date nor a time"),
    ],
)
def test_report_usage_errors_exit_2(
    site: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    assert main(["haccp", "report", *argv, "--config", str(site)]) == code
    assert message in capsys.readouterr().err


def test_no_record_yet_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE, encoding="utf-8")
    assert main(["haccp", "verify", "--config", str(path)]) == 1
    assert "no HACCP record at" in capsys.readouterr().err
    argv = ["haccp", "report", "--from", "2026-12-04", "--to", "2026-12-04", "--config", str(path)]
    assert main(argv) == 1


def test_after_a_crash_what_was_open_ends_where_the_record_ends(tmp_path: Path) -> None:
    core = HaccpCore("trattoria", FIFTEEN, 90, {"fridge-1": {"cabinet_temp": "°C"}})
    drafts = core.start(T0, Head())
    drafts += core.reading(DeviceReadings("fridge-1", at(1), {"cabinet_temp": 7.0}))
    opened = Signal("open", "fridge-1", "cold_holding", Priority.HIGH, at(2),
                    point="cabinet_temp", value=7.0, limit=5.0, food_safety=True)  # fmt: skip
    drafts += core.signal(opened)
    drafts += core.availability("fridge-1", at(3), online=False, reason="no answer")
    # The power goes; the next start finds its last record at 00:03.
    drafts += HaccpCore("trattoria", FIFTEEN, 90, {}).start(at(60), Head(9, "0" * 64, at(3),
                                                                         clean=False))  # fmt: skip
    chain = Chain()
    records = [json.loads(chain.seal(d).line) for d in drafts]
    report = build(records, site="trattoria", since=T0, until=at(90), interval=FIFTEEN,
                   units={}, generated=at(90))  # fmt: skip
    (unit,) = report.units
    by_kind = {r.kind: r for r in unit.rows if r.kind != "gap"}
    gaps = [r for r in unit.rows if r.kind == "gap"]
    assert by_kind["excursion"].until == at(3)
    assert "its end was not recorded: the gateway ended without a clean stop" in (
        by_kind["excursion"].note)
    assert [(g.time, g.until, g.note.split(" (")[0]) for g in gaps] == [
        (at(3), at(3), "offline: no answer"),
        (at(3), at(60), "the gateway ended without a clean stop"),
    ]  # fmt: skip
