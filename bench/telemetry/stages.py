"""Each stage of the telemetry pipeline alone, per row: where a point's CPU goes.

Run: ``python bench/telemetry/stages.py [--rows 100000]``. One thread, no contention: CPU
(``time.process_time``) and wall time per row of each stage the pipeline runs, on the same
synthetic 5-field readings as ``run.py``:

* ``make reading``: the bench's own load generator (a ``DeviceReadings``), for reference;
* ``Recorder._rows``: readings to history rows (line-protocol field sets), on the recorder's
  thread, holding the GIL throughout;
* ``History.append``: the rows into SQLite, ``normal`` and ``full`` (``sqlite3`` lets go of the
  GIL inside each step, so part of this runs beside other Python threads);
* ``HistoryReader.lines``: 5,000 rows back as lines, and ``"\\n".join`` of them;
* ``gzip.compress`` of a 5,000-line body at levels 9 (what influxdb-client's
  ``enable_gzip`` uses: ``gzip.compress``' default), 6 and 1, with the compression ratio
  (zlib lets go of the GIL while it compresses);
* ``InfluxWriter.write``: a 5,000-line body to a fresh VictoriaMetrics, gzip on (the
  gateway's default) and off.

Private methods are called directly (``Recorder._rows``): a bench may, the gateway does not.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import Synth
from measure import base_ms

from gateway.clock import SystemClock
from gateway.config import InfluxConfig, TelemetryConfig
from gateway.telemetry.history import History, HistoryReader
from gateway.telemetry.influx import InfluxWriter
from gateway.telemetry.recorder import Recorder
from gateway.telemetry.victoria import VictoriaMetrics

BATCH = 5000


def timed(label: str, rows: int, fn, results: list) -> object:
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    c1, t1 = time.process_time(), time.perf_counter()
    results.append((label, (c1 - c0) / rows * 1e6, (t1 - t0) / rows * 1e6))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    n = ap.parse_args().rows
    n -= n % BATCH
    res: list[tuple[str, float, float]] = []
    synth = Synth(1000, base_ms())
    readings = timed("make reading (bench load generator)", n,
                     lambda: [synth.reading(k) for k in range(n)], res)  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="bench-telemetry-stages-"))
    try:
        rec = Recorder(TelemetryConfig(), tmp / "x.db", "normal", synth.schemas(), SystemClock(),
                       alert=lambda *_: None)  # fmt: skip
        rows = timed("Recorder._rows (readings -> rows)", n,
                     lambda: rec._rows(readings), res)  # noqa: SLF001 -- the stage itself  # fmt: skip
        for durability in ("normal", "full"):
            path = tmp / f"{durability}.db"
            hist = History(path, durability)
            chunks = [rows[i : i + 20_000] for i in range(0, n, 20_000)]
            timed(f"History.append, {durability}, 20,000 rows per commit", n,
                  lambda hist=hist, chunks=chunks: [hist.append(c) for c in chunks], res)  # fmt: skip
            hist.close()
        reader = HistoryReader(tmp / "normal.db")
        batches = timed("HistoryReader.lines, 5,000 per call", n,
                        lambda: [reader.lines(i, i + BATCH, BATCH)[0] for i in range(0, n, BATCH)],
                        res)  # fmt: skip
        bodies = timed('"\\n".join of 5,000 lines', n, lambda: ["\n".join(b) for b in batches], res)
        raw = [b.encode() for b in bodies]
        for level in (9, 6, 1):
            packed = timed(f"gzip.compress level {level}", n,
                           lambda level=level: [gzip.compress(b, compresslevel=level) for b in raw],
                           res)  # fmt: skip
            ratio = sum(map(len, raw)) / sum(map(len, packed))
            res[-1] = (f"{res[-1][0]} (ratio {ratio:.1f}:1)", res[-1][1], res[-1][2])
        reader.close()
        for gz in (True, False):
            with VictoriaMetrics() as vm:
                w = InfluxWriter(InfluxConfig(url=vm.url, gzip=gz))
                w.write(bodies[0])  # connect, first request
                timed(f"InfluxWriter.write, gzip {'on' if gz else 'off'}", n - BATCH,
                      lambda w=w: [w.write(b) for b in bodies[1:]], res)  # fmt: skip
                w.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"| stage ({n:,} rows of 5 fields) | CPU us/row | wall us/row |")
    print("|---|---|---|")
    for label, cpu, wall in res:
        print(f"| {label} | {cpu:.2f} | {wall:.2f} |")


if __name__ == "__main__":
    main()
