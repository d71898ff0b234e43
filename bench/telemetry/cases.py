"""bench/telemetry's measurements, each run in a process of its own (``run.py`` starts them).

Every case starts a fresh VictoriaMetrics (the gateway's own wrapper,
``gateway.telemetry.victoria``: loopback, ``-dedup.minScrapeInterval=1ms``, a temporary
directory), measures, then checks that the database holds exactly the points sent (export
count per field, and the sum of the int field) and reports its process's peak RSS.

* ``raw``: influxdb-client alone, the lines ``load.Synth`` makes, straight to the database:
  the batching write API (lists of line-protocol strings, batch_size 5,000) or synchronous
  writes of 5,000-line bodies (with or without gzip). The lines are made before the clock
  starts; CPU is the whole process's (the batching API's threads included).
* ``pipeline``: ``Recorder`` -> history -> ``Sink`` -> ``InfluxWriter`` -> the database, under
  uvloop, wired as ``gateway/plugs/telemetry.py`` wires them (defaults of ``[telemetry]`` and
  ``[telemetry.influx]``: queue 100,000 readings, batches of 5,000 lines, flush 1 s, gzip).
  The LineWriter is wrapped (``TimedWriter``) to stamp each successful write; a reading's
  latency is that stamp minus the moment its ``take()`` was called. Phases: ``flat`` (offer a
  fixed rate above what it takes), ``paced`` (a fixed rate, latency and CPU), ``outage`` (a
  backlog of N readings written with the sink not started, then the sink started while live
  readings keep coming), ``sustain`` (paced steps of rising rate until the sink falls behind),
  ``demo`` (the demo site's own devices, points and intervals).

Each stage's CPU and wall time (``StageTimer``: the recorder's rows and SQLite append, the
sink's read, write and cursor save, gzip) and the garbage collector's time (``GcTimer``) are
recorded per window, so a result says where its time went.

CPU is ``time.process_time()`` of this process (every thread), which holds the load generator
too: its cost per reading is measured on its own (``gen_us``) and reported beside.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from datetime import UTC, datetime

from harness import DRAIN_TIMEOUT_S, Harness

# Imported before any clock starts: InfluxWriter imports influxdb-client when its first writer
# is made (~1 s), which a gateway that streams has long done when a database comes back.
from influxdb_client import InfluxDBClient, WriteOptions
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from load import FIELDS, Synth, demo_groups, demo_value, export_counts
from measure import (
    base_ms,
    cpu_s,
    gen_cost_us,
    mark,
    ms,
    pct,
    peak_rss_mib,
    verify_synth,
    vm_process,
    window,
)

from gateway.config import TelemetryConfig
from gateway.devices.events import DeviceReadings
from gateway.telemetry.lineproto import SeriesPrefix
from gateway.telemetry.victoria import VictoriaMetrics

BATCH = 5000
FIELD_NAMES = ("temp", "hum", "power", "count", "on")
STEP_WARM_S = 3.0

# --- (a) the raw writer ------------------------------------------------------------------------


def raw_case(mode: str, points: int, devices: int, gzip: bool) -> dict:
    synth = Synth(devices, base_ms())
    lines = synth.lines(0, points)
    chunks = [lines[i : i + BATCH] for i in range(0, points, BATCH)]
    bodies = ["\n".join(c) for c in chunks] if mode == "sync" else []
    k_sum = points * (points - 1) // 2
    with VictoriaMetrics() as vm:
        vmp = vm_process()
        client = InfluxDBClient(url=vm.url, token="-", org="kitchen", timeout=60_000,
                                enable_gzip=gzip)  # fmt: skip
        acked = [0]
        errors: list[str] = []
        if mode == "sync":
            api = client.write_api(write_options=SYNCHRONOUS)
            v0, c0, t0 = cpu_s(vmp), time.process_time(), time.perf_counter()
            for body in bodies:
                api.write(bucket="kitchen", org="kitchen", record=body,
                          write_precision=WritePrecision.NS)  # fmt: skip
                acked[0] += body.count("\n") + 1
            t1, c1, v1 = time.perf_counter(), time.process_time(), cpu_s(vmp)
        else:

            def ok(_conf: object, data: bytes | str) -> None:
                acked[0] += data.count(b"\n" if isinstance(data, bytes) else "\n") + 1

            def bad(_conf: object, _data: object, exc: BaseException) -> None:
                errors.append(repr(exc)[:200])

            opts = WriteOptions(batch_size=BATCH, flush_interval=1_000, jitter_interval=0,
                                max_retries=0)  # fmt: skip
            api = client.write_api(write_options=opts, success_callback=ok, error_callback=bad)
            v0, c0, t0 = cpu_s(vmp), time.process_time(), time.perf_counter()
            for chunk in chunks:
                api.write(bucket="kitchen", org="kitchen", record=chunk,
                          write_precision=WritePrecision.NS)  # fmt: skip
            api.close()  # waits for every batch to be answered
            t1, c1, v1 = time.perf_counter(), time.process_time(), cpu_s(vmp)
        client.close()
        check = verify_synth(vm, points, k_sum)
    wall = t1 - t0
    return {
        "points": points, "acked": acked[0], "errors": errors[:3], "wall_s": round(wall, 2),
        "points_s": round(points / wall), "cpu_us_pt": round((c1 - c0) / points * 1e6, 2),
        "vm_cpu_us_pt": round((v1 - v0) / points * 1e6, 2), "verify": check,
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }  # fmt: skip


async def flat_case(durability: str, offer: float, warm: float, seconds: float,
                    devices: int) -> dict:  # fmt: skip
    gen_us = gen_cost_us()
    h = Harness(durability, devices, "count")
    h.build()
    samples: list[dict] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(h.recorder)
            await stack.enter_async_context(h.sink)
            load = asyncio.create_task(h.paced(offer, warm + seconds), name="load")
            await asyncio.sleep(warm)
            mark("start")
            sampler = asyncio.create_task(h.sample(samples), name="sampler")
            await asyncio.sleep(seconds)
            sampler.cancel()
            end = h.snap()
            mark("end")
            await load
            drain_s = await h.drained()
            res = window(samples[0], end)
            qs = [s["queued"] for s in samples] + [end["queued"]]
            per_s = [(b["sink"] - a["sink"]) / (b["t"] - a["t"])
                     for a, b in itertools.pairwise(samples)]  # fmt: skip
            res |= {
                "queue_min": min(qs), "queue_max": max(qs), "queue_end": qs[-1],
                "queue_bound": TelemetryConfig().queue_readings,
                "per_s_min": round(min(per_s)) if per_s else None,
                "per_s_max": round(max(per_s)) if per_s else None,
                "drain_after_s": round(drain_s, 1), "gen_us": round(gen_us, 2),
                "sink_errors": dict(h.sink.stats.errors), "alerts": dict(h.alerts),
                "series": [{k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()}
                           for s in samples],
            }  # fmt: skip
        res["verify"] = h.verify()
    finally:
        h.close()
    res["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return res


async def sustain_case(durability: str, rates: list[float], step_s: float,
                       devices: int) -> dict:  # fmt: skip
    """Paced steps of rising rate: the fastest the sink keeps up with (input = output).

    Each step starts with the pipeline drained, offers its rate for ``STEP_WARM_S`` (so the
    sink's lag, up to ``flush_s``, is there at both ends of the window), then ``step_s`` more.
    It keeps up when nothing is refused and at its end at most 1.5 s of readings (or two
    batches) wait in the queue and the history together: a sink that falls behind piles up
    more than that within the 20 s. (The sink's own count over the window is not the test: it
    moves in 5,000-line batches.) The run stops after the first step that does not keep up.
    """
    h = Harness(durability, devices, "count")
    h.build()
    steps = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(h.recorder)
            await stack.enter_async_context(h.sink)
            for rate in rates:
                await h.drained(limit_s=120)
                await asyncio.sleep(1.0)
                load = asyncio.create_task(h.paced(rate, STEP_WARM_S + step_s), name="load")
                await asyncio.sleep(STEP_WARM_S)
                a = h.snap()
                await load
                b = h.snap()
                w = window(a, b)
                w["rate"] = rate
                waiting = b["pending"] + b["queued"]
                w["waiting_end"] = waiting
                w["keeps_up"] = w["refused"] == 0 and waiting <= max(2 * BATCH, 1.5 * rate)
                steps.append(w)
                if not w["keeps_up"]:
                    break
            drain_s = await h.drained()
        kept = [w for w in steps if w["keeps_up"]]
        best = kept[-1] if kept else None
        res = {
            "sustained_s": best["points_s"] if best else 0,
            "cpu_us_pt": best["cpu_us_pt"] if best else None,
            "cpu_core_pct": best["cpu_core_pct"] if best else None,
            "vm_cpu_core_pct": best["vm_cpu_core_pct"] if best else None,
            "first_miss": ({k: steps[-1][k] for k in ("rate", "points_s", "committed_s",
                            "pending_start", "pending_end", "refused")}
                           if not steps[-1]["keeps_up"] else None),
            "steps": steps, "drain_after_s": round(drain_s, 1),
        }  # fmt: skip
        res["verify"] = h.verify()
    finally:
        h.close()
    res["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return res


async def paced_case(durability: str, rate: float, warm: float, seconds: float,
                     devices: int) -> dict:  # fmt: skip
    h = Harness(durability, devices, "range")
    h.build()
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(h.recorder)
            await stack.enter_async_context(h.sink)
            load = asyncio.create_task(h.paced(rate, warm + seconds, tick=0.01), name="load")
            await asyncio.sleep(warm)
            a = h.snap()
            mark("start")
            await load
            b = h.snap()
            mark("end")
            drain_s = await h.drained()
        res = window(a, b)
        lat = h.latencies(h.done_times(), a["t"], b["t"])
        res |= {
            "readings": len(lat), "lat_p50_ms": ms(pct(lat, 50)), "lat_p99_ms": ms(pct(lat, 99)),
            "lat_max_ms": ms(max(lat) if lat else None), "drain_after_s": round(drain_s, 1),
            "batches": h.sink.stats.batches, "alerts": dict(h.alerts),
        }  # fmt: skip
        res["verify"] = h.verify()
    finally:
        h.close()
    res["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return res


async def outage_case(durability: str, rate: float, outage_s: float, after_s: float,
                      devices: int) -> dict:  # fmt: skip
    h = Harness(durability, devices, "range")
    h.build()
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(h.recorder)
            n = round(rate * outage_s)
            t0 = time.monotonic()
            await h.backlog(n)
            while h.recorder.stats.written < n:
                await asyncio.sleep(0.02)
            build_s = time.monotonic() - t0
            live = asyncio.create_task(h.paced(rate, 10 * 3600, tick=0.01), name="live")
            await asyncio.sleep(0.5)  # live readings flow before the sink comes back
            a = h.snap()
            await stack.enter_async_context(h.sink)
            t_start = time.monotonic()
            while not h.sink.stats.cursor.splitting and time.monotonic() - t_start < 10:
                await asyncio.sleep(0.001)
            c = h.sink.stats.cursor
            split_rows, split_at = c.split - c.done, c.split
            while h.sink.stats.cursor.splitting and time.monotonic() - t_start < DRAIN_TIMEOUT_S:
                await asyncio.sleep(0.02)
            t_join = time.monotonic()
            b = h.snap()
            await asyncio.sleep(after_s)
            c2 = h.snap()
            live.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await live
            drain_s = await h.drained()
        done = h.done_times()
        during = h.latencies(done, t_start, t_join, k_from=n)
        after = h.latencies(done, t_join, c2["t"], k_from=n)
        drain = t_join - t_start
        res = {
            "backlog_rows": split_rows, "split_at_seq": split_at, "build_s": round(build_s, 1),
            "build_rows_s": round(n / build_s), "drain_s": round(drain, 2),
            "drain_rows_s": round(split_rows / drain), "live_rate_s": round(rate, 1),
            "drain_ratio": round(split_rows / drain / rate, 1),
            "live_p50_ms_during": ms(pct(during, 50)), "live_p99_ms_during": ms(pct(during, 99)),
            "live_max_ms_during": ms(max(during) if during else None),
            "live_n_during": len(during),
            "live_p99_ms_after": ms(pct(after, 99)),
            "cpu_core_pct_during": round((b["cpu"] - a["cpu"]) / (b["t"] - a["t"]) * 100, 1),
            "vm_cpu_core_pct_during": round((b["vm_cpu"] - a["vm_cpu"]) / (b["t"] - a["t"]) * 100,
                                            1),
            "points_s_during": round((b["sink"] - a["sink"]) / (b["t"] - a["t"])),
            "drain_after_s": round(drain_s, 1), "alerts": dict(h.alerts),
        }  # fmt: skip
        res["verify"] = h.verify()
    finally:
        h.close()
    res["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return res


# --- the demo site's own readings --------------------------------------------------------------


async def demo_case(durability: str, warm: float, seconds: float, idle_s: float) -> dict:
    """The demo's seven devices, their points, intervals, value types and food-safety split."""
    groups, schemas = demo_groups()
    h = Harness(durability, 1, "full")
    h.build(schemas)
    prefixes = {SeriesPrefix(s.measurement, dict(s.tags)).text: d for d, s in schemas.items()}
    rnd = random.Random(7)
    taken: dict[tuple[str, int], float] = {}
    values_taken = [0]

    async def poll(seconds: float) -> None:
        t0 = time.monotonic()
        due = [t0 + rnd.uniform(0, min(g.interval, 10.0)) for g in groups]
        while (now := time.monotonic()) < t0 + seconds:
            for i, g in enumerate(groups):
                if due[i] <= now:
                    due[i] += g.interval
                    at = datetime.now(UTC)
                    values = {p.id: demo_value(p, rnd) for p in g.points}
                    taken[(g.device, round(at.timestamp() * 1_000_000) * 1000)] = time.monotonic()
                    values_taken[0] += len(values)
                    h.recorder.take(DeviceReadings(g.device, at, values))
            await asyncio.sleep(max(0.002, min(due) - time.monotonic()))

    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(h.recorder)
            await stack.enter_async_context(h.sink)
            i0 = h.snap()
            await asyncio.sleep(idle_s)  # nothing taken: what the pipeline costs idle
            i1 = h.snap()
            load = asyncio.create_task(poll(warm + seconds), name="poll")
            await asyncio.sleep(warm)
            a = h.snap()
            await load
            b = h.snap()
            drain_s = await h.drained()
        done: dict[tuple[str, int], float] = {}
        for w in h.writers:
            for t, body in w.bodies:
                for line in body.split("\n"):
                    prefix, _fields, ts = line.rsplit(" ", 2)
                    key = (prefixes[prefix], int(ts))
                    done[key] = max(done.get(key, 0.0), t)  # both rows of a split reading
        lat = [done[k] - t for k, t in taken.items() if a["t"] <= t < b["t"] and k in done]
        dt = b["t"] - a["t"]
        h.vm.force_flush()
        counts = export_counts(h.vm.url)
        samples = sum(n for n, _ in counts.values())
        res = {
            "wall_s": round(dt, 1), "readings_s": round((b["taken"] - a["taken"]) / dt, 2),
            "rows_s": round((b["rows"] - a["rows"]) / dt, 2),
            "cpu_core_pct": round((b["cpu"] - a["cpu"]) / dt * 100, 3),
            "idle_core_pct": round((i1["cpu"] - i0["cpu"]) / (i1["t"] - i0["t"]) * 100, 3),
            "vm_cpu_core_pct": round((b["vm_cpu"] - a["vm_cpu"]) / dt * 100, 2),
            "lat_p50_ms": ms(pct(lat, 50)), "lat_p99_ms": ms(pct(lat, 99)),
            "lat_max_ms": ms(max(lat) if lat else None), "readings": len(lat),
            "drain_after_s": round(drain_s, 1), "alerts": dict(h.alerts),
            "verify": {"expected": values_taken[0], "exported": samples,
                       "rows": h.recorder.stats.rows, "lines_sent": h.sink.stats.written,
                       "exact": samples == values_taken[0]
                       and h.sink.stats.written == h.recorder.stats.rows},
        }  # fmt: skip
    finally:
        h.close()
    res["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return res


__all__ = [
    "FIELDS",
    "demo_case",
    "flat_case",
    "outage_case",
    "paced_case",
    "raw_case",
    "sustain_case",
]
