"""VictoriaMetrics against the real influxdb-client: names, dedup, kill -9, what writes answer.

The test names state what was measured; gateway/telemetry/victoria.py's docstring collects it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
import urllib.request
from typing import TYPE_CHECKING

import pytest
import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from gateway.errors import TsdbStartError
from gateway.telemetry.victoria import Series, VictoriaMetrics

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from influxdb_client.client.write_api import WriteApi

pytestmark = pytest.mark.integration

# 2026-01-01T00:00:00Z: a fixed time months in the past, kept only thanks to the long retention.
T0_NS = 1_767_225_600 * 10**9
T0_MS = T0_NS // 10**6
S_NS = 10**9
MS_NS = 10**6


@contextlib.contextmanager
def influx(tsdb: VictoriaMetrics) -> Iterator[WriteApi]:
    with (
        InfluxDBClient(url=tsdb.url, token="x", org="o", enable_gzip=True) as client,
        client.write_api(write_options=SYNCHRONOUS) as api,
    ):
        yield api


def write(api: WriteApi, lines: list[str]) -> None:
    api.write(bucket="b", record=lines, write_precision=WritePrecision.NS)


def by_name(series: list[Series]) -> dict[str, Series]:
    return {s.metric["__name__"]: s for s in series}


def test_points_come_back_value_by_value_as_measurement_field_with_tags_as_labels(
    victoria: VictoriaMetrics,
) -> None:
    with influx(victoria) as api:
        write(api, [
            f"fryer,site=a,unit=1 temp=180.5,oil=3i {T0_NS}",
            f"fryer,site=a,unit=1 temp=181.25,oil=4i {T0_NS + S_NS}",
            f"fryer,site=a,unit=2 temp=175 {T0_NS + 2 * S_NS}",
        ])  # fmt: skip
    victoria.force_flush()
    assert victoria.export() == [
        Series({"__name__": "fryer_oil", "site": "a", "unit": "1"}, (3.0, 4.0),
               (T0_MS, T0_MS + 1000)),
        Series({"__name__": "fryer_temp", "site": "a", "unit": "1"}, (180.5, 181.25),
               (T0_MS, T0_MS + 1000)),
        Series({"__name__": "fryer_temp", "site": "a", "unit": "2"}, (175.0,), (T0_MS + 2000,)),
    ]  # fmt: skip
    assert [s.metric["unit"] for s in victoria.export('{__name__="fryer_temp",unit="2"}')] == ["2"]


def test_fresh_points_are_exported_straight_after_force_flush(victoria: VictoriaMetrics) -> None:
    # Export's default `end` (the request time) hid points under a second old; export() passes
    # its own, so a point stamped "now" or a day ahead is there at once.
    now = time.time_ns()
    with influx(victoria) as api:
        write(api, [f"probe v=1 {now}", f"probe v=2 {now + 86_400 * S_NS}"])
    victoria.force_flush()
    assert victoria.export()[0].values == (1.0, 2.0)


def test_non_numeric_field_values_are_stored_as_numbers_not_refused(
    victoria: VictoriaMetrics,
) -> None:
    with influx(victoria) as api:
        write(api, [f'kds,t=a note="text",on=true,off=false,bad=abc {T0_NS}'])  # answered 204
    victoria.force_flush()
    got = {name: s.values for name, s in by_name(victoria.export()).items()}
    assert got == {"kds_note": (0.0,), "kds_on": (1.0,), "kds_off": (0.0,), "kds_bad": (0.0,)}


def test_a_point_written_twice_is_exported_once_without_a_merge(victoria: VictoriaMetrics) -> None:
    with influx(victoria) as api:
        write(api, [f"same_body v=1 {T0_NS}", f"same_body v=1 {T0_NS}"])
        write(api, [f"two_requests,t=a v=1 {T0_NS}"])
        write(api, [f"two_requests,t=a v=1 {T0_NS}"])
        write(api, [f"across_flush v=1 {T0_NS}"])
        victoria.force_flush()
        write(api, [f"across_flush v=1 {T0_NS}"])
        # Sub-millisecond timestamps: VictoriaMetrics keeps milliseconds, so this is a repeat.
        write(api, [f"sub_ms v=1 {T0_NS}", f"sub_ms v=1 {T0_NS + 1000}"])
    victoria.force_flush()
    names = ("same_body_v", "two_requests_v", "across_flush_v", "sub_ms_v")
    expected = dict.fromkeys(names, ((1.0,), (T0_MS,)))
    got = {name: (s.values, s.timestamps) for name, s in by_name(victoria.export()).items()}
    assert got == expected
    victoria.restart()
    got = {name: (s.values, s.timestamps) for name, s in by_name(victoria.export()).items()}
    assert got == expected


def test_differing_values_at_one_timestamp_keep_one_not_necessarily_the_last(
    victoria: VictoriaMetrics,
) -> None:
    # Measured, one request each: 2 then 1 kept 2; 3, 1, 2 kept 1; 5, 9, 7 kept 5. InfluxDB
    # keeps the last.
    with influx(victoria) as api:
        for value in (3, 1, 2):
            write(api, [f"oven v={value} {T0_NS}"])
    victoria.force_flush()
    [series] = victoria.export()
    assert series.timestamps == (T0_MS,)
    assert series.values[0] in {1.0, 2.0, 3.0}


def test_without_dedup_the_export_holds_both_copies() -> None:
    with VictoriaMetrics(dedup=False) as tsdb:
        with influx(tsdb) as api:
            write(api, [f"oven v=1 {T0_NS}"])
            write(api, [f"oven v=1 {T0_NS}"])
        tsdb.force_flush()
        [series] = tsdb.export()
        assert (series.values, series.timestamps) == ((1.0, 1.0), (T0_MS, T0_MS))


def test_kill_9_loses_writes_not_yet_on_disk_flushed_or_not(victoria: VictoriaMetrics) -> None:
    with influx(victoria) as api:
        write(api, [f"flushed v=1 {T0_NS}"])
        victoria.force_flush()
        assert [s.metric["__name__"] for s in victoria.export()] == ["flushed_v"]  # visible...
        write(api, [f"unflushed v=1 {T0_NS}"])
    victoria.kill()
    victoria.restart()
    assert victoria.export() == []  # ...but not durable


# VictoriaMetrics 1.79 writes a flushed part to disk 5.0 s after force_flush (measured; there
# is no flag for it before 1.85's -inmemoryDataFlushInterval). One second of margin.
ON_DISK_AFTER_FLUSH_S = 5.0 + 1.0


def test_kill_9_keeps_writes_flushed_5_s_before(victoria: VictoriaMetrics) -> None:
    with influx(victoria) as api:
        write(api, [f"fryer,site=a temp={180 + i} {T0_NS + i * MS_NS}" for i in range(100)])
    victoria.force_flush()
    time.sleep(ON_DISK_AFTER_FLUSH_S)
    victoria.kill()
    victoria.restart()
    [series] = victoria.export()
    assert series.values == tuple(float(180 + i) for i in range(100))


def test_snapshot_create_makes_writes_durable_at_once(victoria: VictoriaMetrics) -> None:
    with influx(victoria) as api:
        write(api, [f"kept v=1 {T0_NS}"])
    with urllib.request.urlopen(f"{victoria.url}/snapshot/create") as response:
        assert b'"status":"ok"' in response.read()
    victoria.kill()
    victoria.restart()
    assert [s.metric["__name__"] for s in victoria.export()] == ["kept_v"]


def test_stop_writes_everything_to_disk_and_restart_keeps_port_and_data(
    victoria: VictoriaMetrics,
) -> None:
    port, data_dir = victoria.port, victoria.data_dir
    with influx(victoria) as api:
        write(api, [f"kept v=1 {T0_NS}"])  # neither flushed nor old enough to be on disk
    victoria.stop()
    assert not victoria.running
    victoria.restart()
    assert (victoria.port, victoria.data_dir) == (port, data_dir)
    assert [s.metric["__name__"] for s in victoria.export()] == ["kept_v"]


def test_malformed_lines_are_answered_204_and_skipped_silently(victoria: VictoriaMetrics) -> None:
    tags = ",".join(f"t{i:02}=x" for i in range(40))
    with influx(victoria) as api:
        # No exception: every one of these is answered 204.
        write(api, [
            f"good1 v=1 {T0_NS}",
            "not a line at all",
            "bad_ts v=1 yesterday",
            f"ahead v=1 {time.time_ns() + 3 * 86_400 * S_NS}",  # over 2 days ahead: dropped
            f"labels,{tags} v=1 {T0_NS}",
            f"good2 v=2 {T0_NS}",
        ])  # fmt: skip
    victoria.force_flush()
    got = by_name(victoria.export())
    assert sorted(got) == ["good1_v", "good2_v", "labels_v"]
    assert len(got["labels_v"].metric) == 31  # __name__ and the first 30 tags; the rest dropped
    assert "cannot unmarshal InfluxDB line" in victoria.log_path.read_text()


def test_a_line_over_256_kib_is_api_exception_400_after_storing_the_lines_before_it(
    victoria: VictoriaMetrics,
) -> None:
    too_long = f"long,t={'a' * 300_000} v=1 {T0_NS}"
    with influx(victoria) as api, pytest.raises(ApiException) as caught:
        write(api, [f"before v=1 {T0_NS}", too_long, f"after v=1 {T0_NS}"])
    assert caught.value.status == 400
    assert "too long line: more than 262144 bytes" in caught.value.body
    victoria.force_flush()
    assert [s.metric["__name__"] for s in victoria.export()] == ["before_v"]


def test_a_write_to_a_stopped_server_raises_urllib3_new_connection_error(
    victoria: VictoriaMetrics,
) -> None:
    victoria.stop()
    with influx(victoria) as api, pytest.raises(urllib3.exceptions.NewConnectionError) as caught:
        write(api, [f"lost v=1 {T0_NS}"])
    assert not isinstance(caught.value, ApiException)
    assert isinstance(caught.value, urllib3.exceptions.HTTPError)
    assert "Connection refused" in str(caught.value)


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *_a, **_k: None)
    with pytest.raises(TsdbStartError, match=r"apt-get install victoria-metrics"):
        VictoriaMetrics()


def test_a_taken_port_is_a_clear_error(victoria: VictoriaMetrics) -> None:
    other = VictoriaMetrics(victoria.port)
    try:
        with pytest.raises(TsdbStartError, match="already in use"):
            other.start()
    finally:
        other.close()


def test_a_failed_start_shows_the_log_tail(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    tsdb = VictoriaMetrics(data_dir=not_a_dir)
    try:
        with pytest.raises(TsdbStartError, match=r"(?s)exited with code .*log ---\n.*not a dir"):
            tsdb.start()
    finally:
        tsdb.close()
    assert not tsdb.dir.exists()
    assert not_a_dir.exists()  # a data_dir given by the caller is the caller's


def test_close_deletes_its_own_directory_and_frees_the_port() -> None:
    tsdb = VictoriaMetrics()
    tsdb.start()
    tsdb.close()
    assert not tsdb.dir.exists()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", tsdb.port)) != 0
