"""The audit log (gateway.devices.audit): whole JSON lines, private file, rotation, concurrency."""

# ruff: noqa: FBT003 - booleans are values under test here, not flags

from __future__ import annotations

import json
import math
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from gateway.devices.audit import AuditError, AuditLog
from gateway.devices.guard import WriteRequest

if TYPE_CHECKING:
    from pathlib import Path

AT = datetime(2026, 1, 1, 18, 0, tzinfo=UTC)


def req(value: Any = 90, device: str = "fryer1", source: str = "cli") -> WriteRequest:
    return WriteRequest(device, "vat1_cook_time", value, source)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def all_records(path: Path, keep: int) -> list[dict[str, Any]]:
    """Oldest first, across the rotated files."""
    out: list[dict[str, Any]] = []
    for n in range(keep, 0, -1):
        old = path.with_name(f"{path.name}.{n}")
        if old.exists():
            out += lines(old)
    return out + (lines(path) if path.exists() else [])


def test_one_json_line_per_record(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit.jsonl"  # the directory is created on first use
    with AuditLog(path, now=lambda: AT) as audit:
        audit.record(req(), "refused", "out of range 10..900")
        audit.record(req(True, source="action:2"), "written", "read back true")
        assert audit.records == 2
    assert lines(path) == [
        {
            "time": "2026-01-01T18:00:00.000000+00:00",
            "device": "fryer1",
            "point": "vat1_cook_time",
            "value": 90,
            "source": "cli",
            "outcome": "refused",
            "detail": "out of range 10..900",
        },
        {
            "time": "2026-01-01T18:00:00.000000+00:00",
            "device": "fryer1",
            "point": "vat1_cook_time",
            "value": True,
            "source": "action:2",
            "outcome": "written",
            "detail": "read back true",
        },
    ]


def test_time_is_utc_whatever_the_clock_zone(tmp_path: Path) -> None:
    paris = timezone(timedelta(hours=1))
    with AuditLog(tmp_path / "a.jsonl", now=lambda: datetime(2026, 1, 1, 19, tzinfo=paris)) as a:
        a.record(req(), "refused")
    assert lines(tmp_path / "a.jsonl")[0]["time"] == "2026-01-01T18:00:00.000000+00:00"


def test_flushed_before_record_returns(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    audit.record(req(), "refused")
    # Read while the log is still open: nothing may sit in a user-space buffer.
    assert len(lines(path)) == 1
    audit.close()


def test_fsync_is_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    with AuditLog(tmp_path / "a.jsonl") as a:
        a.record(req(), "refused")
    assert synced == []
    with AuditLog(tmp_path / "b.jsonl", fsync=True) as b:
        b.record(req(), "refused")
        b.record(req(), "refused")
    assert len(synced) == 2


def test_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    old_umask = os.umask(0)  # even a permissive umask must not widen it
    try:
        with AuditLog(path) as audit:
            audit.record(req(), "refused")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.with_name("audit.jsonl.lock").stat().st_mode) == 0o600


def test_existing_wider_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    path.chmod(0o644)
    with AuditLog(path) as audit:
        audit.record(req(), "refused")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("value", "recorded"),
    [
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (None, "None"),
        ([1, 2], "[1, 2]"),
        (175.5, 175.5),
        (10**30, 10**30),
        ("line\nbreak", "line\nbreak"),
    ],
)
def test_any_value_is_recorded_on_one_line(tmp_path: Path, value: Any, recorded: Any) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as audit:
        audit.record(req(value, device="fryer1\n{fake}"), "refused", "detail\nwith a newline")
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") == 1
    record = lines(path)[0]
    assert record["value"] == recorded
    assert record["device"] == "fryer1\n{fake}"


def test_rotation_keeps_n_files_and_the_newest_records(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, max_bytes=1000, keep=2) as audit:
        for n in range(200):
            audit.record(req(n), "refused")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2", "audit.jsonl.lock"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 1000
    kept = [r["value"] for r in all_records(path, 2)]
    assert kept == list(range(200 - len(kept), 200))  # the newest, in order, none torn
    assert len(kept) > 10


def test_rotation_with_keep_zero(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, max_bytes=500, keep=0) as audit:
        for n in range(50):
            audit.record(req(n), "refused")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.jsonl", "audit.jsonl.lock"]
    assert lines(path)[-1]["value"] == 49


def test_a_record_bigger_than_the_limit_still_gets_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, max_bytes=50, keep=1) as audit:
        audit.record(req(), "refused", "x" * 200)
        audit.record(req(), "refused", "y" * 200)
    assert lines(path)[0]["detail"] == "y" * 200
    assert lines(path.with_name("audit.jsonl.1"))[0]["detail"] == "x" * 200


def test_bad_arguments() -> None:
    from pathlib import Path  # noqa: PLC0415

    with pytest.raises(ValueError, match="max_bytes"):
        AuditLog(Path("x"), max_bytes=0)
    with pytest.raises(ValueError, match="keep"):
        AuditLog(Path("x"), keep=-1)


def test_unwritable_log_raises_audit_error(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    audit = AuditLog(blocker / "audit.jsonl")
    with pytest.raises(AuditError) as caught:
        audit.record(req(), "refused")
    assert caught.value.path == blocker / "audit.jsonl"
    assert "appliance writes are refused" in str(caught.value)
    assert audit.records == 0
    audit.close()


# --- concurrency and crashes ------------------------------------------------------------------


@pytest.mark.parametrize("max_bytes", [10 * 1024 * 1024, 4096])
def test_concurrent_writers_in_one_process(tmp_path: Path, max_bytes: int) -> None:
    path = tmp_path / "audit.jsonl"
    keep = 1000  # enough to keep everything, so every record can be found
    threads_n, per_thread = 8, 300
    # Two logs on one file stand in for the gateway and a `gateway device write` at once.
    logs = [AuditLog(path, max_bytes=max_bytes, keep=keep) for _ in range(2)]
    start = threading.Barrier(threads_n)

    def writer(t: int) -> None:
        start.wait()
        for n in range(per_thread):
            logs[t % 2].record(req(n, device=f"d{t}"), "refused", "x" * (n % 50))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(threads_n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for log in logs:
        log.close()
    records = all_records(path, keep)
    assert len(records) == threads_n * per_thread
    seen = {(r["device"], r["value"]) for r in records}
    assert seen == {(f"d{t}", n) for t in range(threads_n) for n in range(per_thread)}
    for t in range(threads_n):  # each writer's own records stay in its order
        mine = [r["value"] for r in records if r["device"] == f"d{t}"]
        assert mine == list(range(per_thread))


def test_follows_a_rotation_made_by_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    a = AuditLog(path, max_bytes=300, keep=3)
    b = AuditLog(path, max_bytes=300, keep=3)
    b.record(req("b-first"), "refused")  # b holds the file open
    while not path.with_name("audit.jsonl.1").exists():
        a.record(req("a"), "refused")  # a rotates it away from under b
    b.record(req("b-after"), "refused")
    a.close()
    b.close()
    assert lines(path)[-1]["value"] == "b-after"  # b followed the path, not the old file


def test_a_torn_last_line_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"time":"2026-01-01T18:00:00Z","device":"fry')  # a power cut mid-line
    with AuditLog(path) as audit:
        audit.record(req(), "refused")
    raw = path.read_text(encoding="utf-8").splitlines()
    assert len(raw) == 2
    assert json.loads(raw[1])["outcome"] == "refused"


_WRITER = """
import sys
from pathlib import Path
from gateway.devices.audit import AuditLog
from gateway.devices.guard import WriteRequest
audit = AuditLog(Path(sys.argv[1]), max_bytes=64 * 1024, keep=50)
n = 0
while True:
    audit.record(WriteRequest("fryer1", "vat1_cook_time", n, "cli"), "refused", "z" * (n % 300))
    n += 1
"""


def test_kill_9_tears_at_most_the_record_being_written(tmp_path: Path) -> None:
    """``kill -9`` mid-record loses at most that record; the next writer starts a fresh line.

    Linux may stop a write short at a page boundary when the writer is killed, so the last line
    can be torn (seen about once in eight CI runs, with lines of up to ~450 bytes).
    """
    path = tmp_path / "audit.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not path.with_name("audit.jsonl.2").exists():
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with AuditLog(path, max_bytes=64 * 1024, keep=50) as audit:
        audit.record(req("after"), "refused")
    raw: list[bytes] = []
    for n in range(50, 0, -1):
        old = path.with_name(f"{path.name}.{n}")
        if old.exists():
            raw += old.read_bytes().splitlines()
    raw += path.read_bytes().splitlines()
    values: list[Any] = []
    torn: list[int] = []
    for n, line in enumerate(raw):
        try:
            values.append(json.loads(line)["value"])
        except ValueError:
            torn.append(n)
    assert torn in ([], [len(raw) - 2])  # if any, the killed record, just before "after"
    assert values[-1] == "after"
    assert len(values) > 100
    assert values[:-1] == list(range(len(values) - 1))  # every whole record, none missing
