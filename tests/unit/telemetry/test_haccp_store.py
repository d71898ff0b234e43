"""The HACCP record's files: append, verify (each tamper named where it is), retention, repair."""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import StoreError
from gateway.telemetry.haccp import Chain, Draft, Sealed
from gateway.telemetry.haccp_store import (
    ANCHOR,
    HaccpStore,
    due_for_retirement,
    read_records,
    verify,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

JAN = datetime(2026, 1, 10, tzinfo=UTC)
SEG = ("haccp-2026-01.jsonl", "haccp-2026-02.jsonl", "haccp-2026-03.jsonl")


@contextlib.contextmanager
def opened(directory: Path) -> Iterator[tuple[HaccpStore, Chain]]:
    with HaccpStore(directory, fsync=False) as store:
        yield store, Chain(store.head.seq, store.head.hash, store.head.at)


def write(store: HaccpStore, sealed: list[Sealed]) -> None:
    while sealed:
        del sealed[: store.append(sealed)]


def fill(directory: Path, months: int = 3, per_month: int = 5) -> list[Sealed]:
    """``per_month`` records in each of ``months`` months from January 2026."""
    with opened(directory) as (store, chain):
        sealed = [chain.seal(Draft("interval", JAN + timedelta(days=30 * m, hours=n),
                                   {"device": "fridge-1", "n": n}))
                  for m in range(months) for n in range(per_month)]  # fmt: skip
        write(store, list(sealed))
    return sealed


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_records_go_into_monthly_segments_and_verify(tmp_path: Path) -> None:
    sealed = fill(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == list(SEG)
    assert [len(lines_of(tmp_path / s)) for s in SEG] == [5, 5, 5]
    verdict = verify(tmp_path)
    assert verdict.ok
    assert (verdict.records, verdict.segments, verdict.retired) == (15, SEG, 0)
    assert (verdict.head_seq, verdict.head_hash) == (15, sealed[-1].hash)
    assert [r["seq"] for r in read_records(tmp_path)] == list(range(1, 16))
    # The chain runs across files: February's first record carries January's last hash.
    first_feb = json.loads(lines_of(tmp_path / SEG[1])[0])
    assert first_feb["prev"] == json.loads(lines_of(tmp_path / SEG[0])[-1])["hash"]


def test_a_record_stamped_before_the_newest_segment_stays_in_it(tmp_path: Path) -> None:
    fill(tmp_path, months=2)
    with opened(tmp_path) as (store, chain):
        write(store, [chain.seal(Draft("gap", JAN - timedelta(days=400)))])  # clock set back
    assert len(lines_of(tmp_path / SEG[1])) == 6
    assert verify(tmp_path).ok


def test_the_chain_continues_across_opens(tmp_path: Path) -> None:
    fill(tmp_path, months=1)
    with opened(tmp_path) as (store, chain):
        assert (store.head.seq, store.head.at) == (5, JAN + timedelta(hours=4))
        assert not store.head.clean  # its last record is not the gateway's own stop
        write(store, [chain.seal(Draft("gap_start", JAN + timedelta(hours=5),
                                       {"scope": "gateway"}))])  # fmt: skip
    with opened(tmp_path) as (store, _):
        assert (store.head.seq, store.head.clean) == (6, True)
    assert verify(tmp_path).records == 6


# --- the four tampers, each named where it is -------------------------------------------------


def test_an_edited_record_is_named(tmp_path: Path) -> None:
    fill(tmp_path)
    path = tmp_path / SEG[1]
    lines = lines_of(path)
    lines[2] = lines[2].replace(b'"n":2', b'"n":7')
    path.write_bytes(b"".join(lines))
    verdict = verify(tmp_path)
    assert not verdict.ok
    assert (verdict.file, verdict.line) == (SEG[1], 3)
    assert "hash does not match its content" in str(verdict.problem)
    assert (verdict.records, verdict.head_seq) == (7, 7)  # what is sound before it


def test_an_edited_record_with_its_hash_made_again_is_named_by_the_next(tmp_path: Path) -> None:
    sealed = fill(tmp_path)
    path = tmp_path / SEG[1]
    lines = lines_of(path)
    forger = Chain(sealed[6].seq, sealed[6].hash)  # someone who knows the format
    lines[2] = forger.seal(Draft("interval", sealed[7].at, {"device": "fridge-1", "n": 7})).line
    path.write_bytes(b"".join(lines))
    verdict = verify(tmp_path)
    assert (verdict.file, verdict.line) == (SEG[1], 4)
    assert "prev is not the hash of the record before it" in str(verdict.problem)


def test_a_removed_record_is_named(tmp_path: Path) -> None:
    fill(tmp_path)
    path = tmp_path / SEG[1]
    lines = lines_of(path)
    del lines[1]  # seq 7
    path.write_bytes(b"".join(lines))
    verdict = verify(tmp_path)
    assert (verdict.file, verdict.line) == (SEG[1], 2)
    assert verdict.problem == ("seq 8 where 7 was expected: records 7..7 are missing (removed), "
                               "or out of order")  # fmt: skip


def test_an_inserted_record_is_named(tmp_path: Path) -> None:
    sealed = fill(tmp_path)
    path = tmp_path / SEG[1]
    lines = lines_of(path)
    # A well-formed record, made as the gateway would have, slipped in after seq 7.
    forger = Chain(sealed[6].seq, sealed[6].hash)
    forged = forger.seal(Draft("action", sealed[6].at, {"by": "someone", "note": "all fine"}))
    path.write_bytes(b"".join([*lines[:2], forged.line, *lines[2:]]))
    verdict = verify(tmp_path)
    # It links to seq 7 perfectly; the record it displaced is where the chain breaks.
    assert (verdict.file, verdict.line) == (SEG[1], 4)
    assert verdict.problem is not None
    assert verdict.problem.startswith("seq 8 where 9 was expected: seq repeats or goes back")
    # A copy of another record, slipped in, is named on its own line.
    path.write_bytes(b"".join([*lines[:2], lines[0], *lines[2:]]))
    assert (verify(tmp_path).file, verify(tmp_path).line) == (SEG[1], 3)


def test_a_reordered_pair_is_named(tmp_path: Path) -> None:
    fill(tmp_path)
    path = tmp_path / SEG[2]
    lines = lines_of(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"".join(lines))
    verdict = verify(tmp_path)
    assert (verdict.file, verdict.line) == (SEG[2], 2)
    assert str(verdict.problem).startswith("seq 13 where 12 was expected")


def test_a_removed_segment_is_named_at_the_next_segments_first_record(tmp_path: Path) -> None:
    fill(tmp_path)
    (tmp_path / SEG[1]).unlink()
    verdict = verify(tmp_path)
    assert (verdict.file, verdict.line) == (SEG[2], 1)
    assert "records 6..10 are missing" in str(verdict.problem)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_single_byte_change_in_any_file_is_caught(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        fill(directory, months=2, per_month=3)
        path = directory / data.draw(st.sampled_from(SEG[:2]), label="segment")
        content = bytearray(path.read_bytes())
        i = data.draw(st.integers(0, len(content) - 1), label="byte")
        content[i] = data.draw(st.integers(0, 255).filter(lambda b: b != content[i]))
        path.write_bytes(bytes(content))
        assert not verify(directory).ok


# --- retention --------------------------------------------------------------------------------


def retire_due(directory: Path, keep_days: int) -> list[str]:
    retired = []
    with opened(directory) as (store, chain):
        while (due := due_for_retirement(store.segments(), chain.newest or JAN, keep_days)):
            store.retire(due, chain.seal(due.retired(chain.newest or JAN, keep_days)))
            retired.append(due.name)
    return retired


def test_retention_drops_whole_old_segments_and_the_chain_still_verifies(tmp_path: Path) -> None:
    fill(tmp_path, months=6)  # January to June
    assert retire_due(tmp_path, keep_days=90) == ["haccp-2026-01.jsonl", "haccp-2026-02.jsonl"]
    assert not (tmp_path / SEG[0]).exists()
    assert not (tmp_path / SEG[1]).exists()
    anchor = json.loads((tmp_path / ANCHOR).read_text())["retired"]
    assert [(e["segment"], e["first_seq"], e["last_seq"]) for e in anchor] == [
        (SEG[0], 1, 5), (SEG[1], 6, 10)]  # fmt: skip
    verdict = verify(tmp_path)
    assert verdict.ok, verdict
    assert (verdict.retired, verdict.records, verdict.head_seq) == (10, 22, 32)
    # Each retirement is a record of the chain itself.
    retired = [r for r in read_records(tmp_path) if r["kind"] == "retired"]
    assert [(r["segment"], r["seq"]) for r in retired] == [(SEG[0], 31), (SEG[1], 32)]
    # The newest segment is never retired, whatever its age.
    assert due_for_retirement(HaccpStore(tmp_path, fsync=False).segments()[-1:],
                              JAN + timedelta(days=3650), 90) is None  # fmt: skip


def test_removing_old_segments_and_editing_the_anchor_to_hide_it_is_named(tmp_path: Path) -> None:
    fill(tmp_path, months=6)
    retire_due(tmp_path, keep_days=90)
    # Someone removes March too (not yet due) and adds it to the anchor by hand.
    march = lines_of(tmp_path / SEG[2])
    last = json.loads(march[-1])
    anchor = json.loads((tmp_path / ANCHOR).read_text())
    anchor["retired"].append({"segment": SEG[2], "first_seq": 11, "last_seq": 15,
                              "last_hash": last["hash"], "recorded_seq": 32})  # fmt: skip
    (tmp_path / ANCHOR).write_text(json.dumps(anchor))
    (tmp_path / SEG[2]).unlink()
    verdict = verify(tmp_path)
    assert (verdict.file, verdict.line) == (ANCHOR, None)
    assert "haccp-2026-03.jsonl is said to be retired by record 32" in str(verdict.problem)


def test_removing_the_oldest_segment_without_an_anchor_is_named(tmp_path: Path) -> None:
    fill(tmp_path)
    (tmp_path / SEG[0]).unlink()
    verdict = verify(tmp_path)
    assert (verdict.file, verdict.line) == (SEG[1], 1)
    assert "records 1..5 are missing" in str(verdict.problem)


def test_a_retirement_cut_short_after_the_anchor_is_finished_at_the_next_open(
    tmp_path: Path,
) -> None:
    fill(tmp_path, months=6)
    retire_due(tmp_path, keep_days=90)
    kept = tmp_path / SEG[1]
    kept.write_bytes(b"as if the delete never happened\n")  # the anchor already names it
    assert verify(tmp_path).ok  # a segment the anchor retired is not read
    with opened(tmp_path):
        pass
    assert not kept.exists()


# --- repair and refusal -------------------------------------------------------------------------


def test_a_torn_last_line_is_named_then_set_aside_at_the_next_open(tmp_path: Path) -> None:
    sealed = fill(tmp_path, months=1)
    path = tmp_path / SEG[0]
    torn = b'{"at":"2026-01-10T05:00:00.000000+00:00","dev'  # a power cut mid-write
    with path.open("ab") as f:
        f.write(torn)
    verdict = verify(tmp_path)
    assert (verdict.file, verdict.line) == (SEG[0], 6)
    assert "torn last line" in str(verdict.problem)
    with opened(tmp_path) as (store, chain):
        assert (store.head.seq, store.head.hash) == (5, sealed[-1].hash)
        assert (store.head.torn, store.head.torn_to) == (len(torn), f"{SEG[0]}.torn")
        write(store, [chain.seal(Draft("repair", JAN, {"bytes": len(torn)}))])
    assert (tmp_path / f"{SEG[0]}.torn").read_bytes() == torn + b"\n"
    assert verify(tmp_path).records == 6


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    with HaccpStore(tmp_path, fsync=True), pytest.raises(StoreError, match="another gateway"):
        HaccpStore(tmp_path, fsync=True).open()
    with HaccpStore(tmp_path, fsync=True):  # released on close
        pass


def test_a_write_the_disk_refuses_halfway_leaves_no_partial_line(tmp_path: Path) -> None:
    fill(tmp_path, months=1)
    path = tmp_path / SEG[0]
    size = path.stat().st_size
    with opened(tmp_path) as (store, chain):
        batch = [chain.seal(Draft("interval", JAN + timedelta(hours=6 + n), {"n": n}))
                 for n in range(3)]  # fmt: skip
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        try:  # the file may grow by 100 bytes only: the write stops inside a line
            resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))
            with pytest.raises(StoreError, match="cannot write the HACCP record"):
                store.append(batch)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous)
        assert path.stat().st_size == size
        write(store, batch)  # the same records, once the disk takes them
    assert verify(tmp_path).records == 8


def test_a_last_line_without_a_readable_time_is_passed_over_by_the_writer(
    tmp_path: Path,
) -> None:
    sealed = fill(tmp_path, months=1)
    path = tmp_path / SEG[0]
    with path.open("ab") as f:
        f.write(json.dumps({"seq": 6, "hash": "f" * 64, "at": "soon"}).encode() + b"\n")
    with opened(tmp_path) as (store, _):
        assert (store.head.seq, store.head.hash) == (5, sealed[-1].hash)
    verdict = verify(tmp_path)
    assert (verdict.file, verdict.line) == (SEG[0], 6)
