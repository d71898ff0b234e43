"""The pipeline under test, wired as ``gateway/plugs/telemetry.py`` wires it, and its load.

``Harness`` builds a ``Recorder`` and a ``Sink`` on a fresh history and a fresh VictoriaMetrics,
with the sink's LineWriter wrapped (``TimedWriter``) to stamp each successful write, and makes
the synthetic load (``paced``: a fixed rate; ``backlog``: as fast as the recorder writes).
"""

from __future__ import annotations

import asyncio
import math
import shutil
import tempfile
import time
from array import array
from collections import Counter
from pathlib import Path

from load import Synth
from measure import GC, STAGES, base_ms, cpu_s, main_thread_cpu, verify_synth, vm_process

from gateway.clock import SystemClock
from gateway.config import InfluxConfig, TelemetryConfig
from gateway.telemetry.influx import InfluxWriter
from gateway.telemetry.recorder import Recorder
from gateway.telemetry.sink import Sink
from gateway.telemetry.victoria import VictoriaMetrics

DRAIN_TIMEOUT_S = 900.0


class TimedWriter:
    """The sink's LineWriter, stamping each successful write (on the sink's thread).

    ``mode``: ``count`` (stamp nothing), ``range`` (a body of synthetic readings is a run of
    consecutive ``k``: keep its first and last, and the whole body only when it is not),
    ``full`` (keep every body, parsed after the run).
    """

    def __init__(self, inner: InfluxWriter, mode: str, base_ms: int) -> None:
        self._inner = inner
        self.mode = mode
        self._base = base_ms
        self.ranges: list[tuple[float, int, int]] = []
        self.bodies: list[tuple[float, str]] = []

    def write(self, body: str) -> None:
        self._inner.write(body)
        t = time.monotonic()
        if self.mode == "count":
            return
        if self.mode == "full":
            self.bodies.append((t, body))
            return
        nl = body.find("\n")
        first = body if nl < 0 else body[:nl]
        last = body[body.rfind("\n") + 1 :]
        kf = int(first[first.rfind(" ") + 1 :]) // 1_000_000 - self._base
        kl = int(last[last.rfind(" ") + 1 :]) // 1_000_000 - self._base
        if kl - kf + 1 == body.count("\n") + 1:
            self.ranges.append((t, kf, kl))
        else:
            self.bodies.append((t, body))

    def close(self) -> None:
        self._inner.close()


class Harness:
    """A recorder and a sink on a fresh database, and the load that feeds them."""

    def __init__(self, durability: str, devices: int, writer_mode: str) -> None:
        self.base_ms = base_ms()
        self.synth = Synth(devices, self.base_ms)
        self.dir = Path(tempfile.mkdtemp(prefix="bench-telemetry-"))
        self.durability = durability
        self.writer_mode = writer_mode
        self.alerts: Counter[str] = Counter()
        self.t_take = array("d")  # index k: monotonic time of take(k)
        self.accepted = 0
        self.k_sum = 0
        self.writers: list[TimedWriter] = []
        self.vm = VictoriaMetrics()
        self.schemas = self.synth.schemas()

    def alert(self, level: str, kind: str, _text: str, _subject: str) -> None:
        self.alerts[f"{level}:{kind}"] += 1

    def build(self, schemas: dict | None = None) -> None:
        self.vm.start()
        self.vmp = vm_process()
        clock = SystemClock()
        influx = InfluxConfig(url=self.vm.url)
        cfg = TelemetryConfig(influx=influx)
        path = self.dir / "telemetry.db"

        def make_writer() -> TimedWriter:
            w = TimedWriter(InfluxWriter(influx), self.writer_mode, self.base_ms)
            self.writers.append(w)
            return w

        self.recorder = Recorder(cfg, path, self.durability, schemas or self.schemas, clock,
                                 alert=self.alert, cursors=lambda: [self.sink.cursor])  # fmt: skip
        self.sink = Sink("influx", path, make_writer, clock, batch_points=influx.batch_points,
                         flush_s=influx.flush_s, alert=self.alert)  # fmt: skip
        self.recorder.on_written(self.sink.notify)

    # --- load ---

    def take_next(self) -> None:
        rec = self.recorder
        k = len(self.t_take)
        r = self.synth.reading(k)
        before = rec.queued
        self.t_take.append(time.monotonic())
        rec.take(r)
        if rec.queued > before:
            self.accepted += 1
            self.k_sum += k

    async def paced(self, rate: float, seconds: float, tick: float = 0.005) -> None:
        """Take ``rate`` readings per second for ``seconds`` (catching up each tick)."""
        t0 = time.monotonic()
        sent = 0
        cap = max(1, int(rate * 0.05))  # per tick: a lagging generator does not stall the loop
        while (now := time.monotonic()) < t0 + seconds:
            due = min(cap, int((now - t0) * rate) - sent)
            for _ in range(due):
                self.take_next()
            sent += max(due, 0)
            # Sleep until the next reading is due (at least a tick: uvloop spins below 1 ms).
            await asyncio.sleep(max(tick, t0 + (sent + 1) / rate - time.monotonic()))

    async def backlog(self, count: int, keep: int = 40_000) -> None:
        """Take ``count`` readings as fast as the recorder writes them (queue under ``keep``)."""
        end = len(self.t_take) + count
        rec = self.recorder
        while len(self.t_take) < end:
            room = min(keep - rec.queued, end - len(self.t_take))
            for _ in range(max(room, 0)):
                self.take_next()
            await asyncio.sleep(0.005)

    # --- measures ---

    def refused(self) -> int:
        return sum(self.recorder.stats.refused.values())

    def snap(self) -> dict:
        rec, sink = self.recorder.stats, self.sink.stats
        return {"t": time.monotonic(), "cpu": time.process_time(), "vm_cpu": cpu_s(self.vmp),
                "gc": GC.snap(), "stages": STAGES.snap(), "main_cpu": main_thread_cpu(),
                "taken": rec.taken, "rec_written": rec.written, "rows": rec.rows,
                "queued": self.recorder.queued, "refused": self.refused(),
                "sink": sink.written, "pending": sink.pending}  # fmt: skip

    async def sample(self, out: list[dict], every: float = 1.0) -> None:
        while True:
            out.append(self.snap())
            await asyncio.sleep(every)

    async def drained(self, limit_s: float = DRAIN_TIMEOUT_S) -> float:
        """Wait until every accepted reading is in the database; seconds waited."""
        t0 = time.monotonic()
        rec = self.recorder
        while time.monotonic() - t0 < limit_s:
            s = rec.stats
            if (rec.queued == 0 and s.written + self.refused() == s.taken
                    and self.sink.stats.written >= s.rows):  # fmt: skip
                return time.monotonic() - t0
            await asyncio.sleep(0.05)
        return -1.0

    def done_times(self) -> array:
        """Index k: monotonic time its (first) write returned, NaN when never written."""
        done = array("d", [math.nan]) * len(self.t_take)
        base = self.base_ms
        for w in self.writers:
            for t, kf, kl in w.ranges:
                for k in range(kf, kl + 1):
                    if not done[k] <= t:
                        done[k] = t
            for t, body in w.bodies:
                for line in body.split("\n"):
                    k = int(line[line.rfind(" ") + 1 :]) // 1_000_000 - base
                    if not done[k] <= t:
                        done[k] = t
        return done

    def latencies(self, done: array, t_from: float, t_to: float, k_from: int = 0) -> list[float]:
        tt = self.t_take
        return [done[k] - tt[k] for k in range(k_from, len(tt))
                if t_from <= tt[k] < t_to and done[k] == done[k]]  # fmt: skip

    def verify(self) -> dict:
        return verify_synth(self.vm, self.recorder.stats.rows, self.k_sum)

    def close(self) -> None:
        self.vm.close()
        shutil.rmtree(self.dir, ignore_errors=True)
