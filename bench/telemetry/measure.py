"""What bench/telemetry measures with: timers, process figures, the database check.

``StageTimer`` wraps each pipeline stage's method in the bench's process (after the what-if
changes of ``whatif.py``, if any, are in), ``GcTimer`` times the garbage collector, and
``verify_synth`` checks that the database holds exactly the synthetic points sent.
"""

from __future__ import annotations

import gc
import gzip
import math
import os
import resource
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import whatif
from load import Synth, export_counts

from gateway.telemetry.history import History, HistoryReader
from gateway.telemetry.influx import InfluxWriter
from gateway.telemetry.recorder import Recorder

if TYPE_CHECKING:
    from gateway.telemetry.victoria import VictoriaMetrics

FIELD_NAMES = ("temp", "hum", "power", "count", "on")


class GcTimer:
    """Time spent in the cyclic garbage collector, per generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._t = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            g = info["generation"]
            self.seconds[g] += time.perf_counter() - self._t
            self.count[g] += 1

    def snap(self) -> tuple[float, float, float, int]:
        return (*self.seconds, self.count[2])


GC = GcTimer()


class StageTimer:
    """CPU (``time.thread_time``) and wall time of each pipeline stage, per call, on its thread.

    The methods are wrapped here, in the bench's process only. They run once per batch (up to
    20,000 rows for the recorder, 5,000 for the sink), so the two clock reads per call cost
    nothing measurable. CPU counts C code that runs without the GIL (SQLite, zlib) too; wall
    minus CPU is time spent waiting: for the GIL, the disk or the database.
    """

    def __init__(self) -> None:
        self.acc: dict[str, list[float]] = {}

    def wrap(self, owner: object, name: str, label: str) -> None:
        fn = getattr(owner, name)
        acc = self.acc.setdefault(label, [0.0, 0.0, 0])

        def timed(*args: object, **kwargs: object) -> object:
            c0, t0 = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[0] += time.thread_time() - c0
                acc[1] += time.perf_counter() - t0
                acc[2] += 1

        setattr(owner, name, timed)

    def snap(self) -> dict[str, tuple[float, float, int]]:
        return {k: (v[0], v[1], int(v[2])) for k, v in self.acc.items()}


# What-if changes (whatif.py) go in before the stages are wrapped, so their time is counted.
WHATIF = whatif.apply(os.environ.get("BENCH_TELEMETRY_WHATIF", ""))
STAGES = StageTimer()
STAGES.wrap(Recorder, "_rows", "recorder: readings -> rows")
STAGES.wrap(History, "append", "recorder: History.append")
STAGES.wrap(HistoryReader, "lines", "sink: HistoryReader.lines")
STAGES.wrap(InfluxWriter, "write", "sink: InfluxWriter.write (incl. gzip)")
STAGES.wrap(gzip, "compress", "sink:   of which gzip.compress")
STAGES.wrap(HistoryReader, "save_cursor", "sink: save_cursor")
MAIN_TID = threading.get_native_id()


def main_thread_cpu() -> float:
    for t in psutil.Process().threads():
        if t.id == MAIN_TID:
            return t.user_time + t.system_time
    return math.nan


def mark(what: str) -> None:
    """Tell ``run.py --profile`` that the measurement window starts (or ends)."""
    path = os.environ.get("BENCH_TELEMETRY_MARK")
    if path:
        Path(path).write_text(what)


def base_ms() -> int:
    # A day back: every synthetic timestamp (1 ms per reading) stays in the past, well inside
    # the wrapper's 100-year retention and far from VictoriaMetrics' 2-days-ahead limit.
    return (int(time.time()) - 86_400) * 1000


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def vm_process() -> psutil.Process:
    kids = [p for p in psutil.Process().children() if "victoria" in p.name()]
    return kids[0]


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def verify_synth(vm: VictoriaMetrics, rows: int, k_sum: int) -> dict:
    vm.force_flush()
    t0 = time.monotonic()
    counts = export_counts(vm.url)
    got = {f: counts.get(f"bench_{f}", (0, 0))[0] for f in FIELD_NAMES}
    return {
        "expected": rows,
        "exported_min": min(got.values()),
        "exported_max": max(got.values()),
        "count_sum_ok": counts.get("bench_count", (0, 0))[1] == k_sum,
        "exact": all(v == rows for v in got.values())
        and counts.get("bench_count", (0, 0))[1] == k_sum
        and set(counts) == {f"bench_{f}" for f in FIELD_NAMES},
        "export_s": round(time.monotonic() - t0, 1),
    }


def gen_cost_us(n: int = 100_000) -> float:
    """CPU per synthetic reading made (no take), for reading the CPU figures."""
    s = Synth(1000, base_ms())
    c0 = time.process_time()
    for k in range(n):
        s.reading(k)
    return (time.process_time() - c0) / n * 1e6


def window(a: dict, b: dict) -> dict:
    dt = b["t"] - a["t"]
    pts = b["sink"] - a["sink"]
    return {
        "wall_s": round(dt, 2),
        "points_s": round(pts / dt),
        "committed_s": round((b["rows"] - a["rows"]) / dt),
        "offered_s": round((b["taken"] - a["taken"]) / dt),
        "refused": b["refused"] - a["refused"],
        "cpu_core_pct": round((b["cpu"] - a["cpu"]) / dt * 100, 2),
        "cpu_us_pt": round((b["cpu"] - a["cpu"]) / pts * 1e6, 2) if pts else None,
        "vm_cpu_core_pct": round((b["vm_cpu"] - a["vm_cpu"]) / dt * 100, 2),
        "pending_start": a["pending"], "pending_end": b["pending"],
        "gc_core_pct": [round((y - x) / dt * 100, 2) for x, y in zip(a["gc"][:3], b["gc"][:3],
                                                                   strict=True)],
        "gc_full_collections": b["gc"][3] - a["gc"][3],
        "main_thread_core_pct": round((b["main_cpu"] - a["main_cpu"]) / dt * 100, 1),
        # per stage: [CPU us per point written, CPU % of a core, wall % of the window, calls]
        "stages": {k: [round((v[0] - a["stages"][k][0]) / pts * 1e6, 2) if pts else None,
                       round((v[0] - a["stages"][k][0]) / dt * 100, 1),
                       round((v[1] - a["stages"][k][1]) / dt * 100, 1), v[2] - a["stages"][k][2]]
                   for k, v in b["stages"].items()},
    }  # fmt: skip


def ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 1)
