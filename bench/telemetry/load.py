"""What bench/telemetry sends: synthetic readings, the same points as lines, the demo's rate.

Synthetic readings (``Synth``): ``devices`` devices of one measurement (``bench``, tags
``device`` and ``site``), 5 fields each: three floats, an int, a bool. Reading number ``k``
(0, 1, 2, ... in the order taken) belongs to device ``k % devices`` and is stamped
``base + k`` milliseconds, so

* every series' timestamps are distinct (and at least ``devices`` ms apart), which
  VictoriaMetrics' ``-dedup.minScrapeInterval=1ms`` needs to keep every point;
* a line's timestamp alone says which reading it is: that is how a write is mapped back to
  the ``take()`` of each reading it carries (``k = ts_ms - base_ms``);
* the int field is ``k``, so the sum of the exported ``bench_count`` samples checks the
  content, not only the count.

The raw writer sends ``Synth.line(k)``: the text the pipeline itself would send for reading
``k`` (the gateway's own ``SeriesPrefix``, as the history's ``lines()`` joins it).

The demo's rate (``demo_rate``) is computed from ``examples/demo-site.toml`` and its profiles
with the device service's rule for a point's interval (``gateway.devices.service._interval``,
restated here): the device's ``poll_s``, else the profile's ``[modbus] poll_s``; a point with a
``poll_s`` of its own is polled at that interval (not faster than the device's own ``poll_s``
when the site sets one). The device service reads each interval group as one poll, so each
group is one reading per interval; a reading with food-safety and other points is two rows
in the history (two lines to the database). Approximations: every point is read at every poll
of its group (no refusals, no failed polls), and the first poll of a slow group (3,600 s) is
averaged over its interval like any other.
"""

from __future__ import annotations

import json
import random
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.devices.events import DeviceReadings
from gateway.devices.profile import PointType, load_profiles
from gateway.site_file import load_site
from gateway.telemetry.lineproto import SeriesPrefix
from gateway.telemetry.schema import DeviceSchema, schemas_for_site

REPO = Path(__file__).resolve().parents[2]
DEMO_SITE = REPO / "examples" / "demo-site.toml"
FIELDS = 5  # a "point" here is one line of 5 fields, as MEASURED.md counts them
_EXPORT_END_S = 253_402_300_799  # 9999-12-31: VictoriaMetrics' export stops at `end`
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Synth:
    """Synthetic readings and their lines (see the module docstring)."""

    def __init__(self, devices: int, base_ms: int, seed: int = 1) -> None:
        rnd = random.Random(seed)
        self.devices = [f"d{i:05d}" for i in range(devices)]
        self.base_ms = base_ms
        self._base = datetime.fromtimestamp(base_ms / 1000, UTC)
        self._floats = [round(rnd.uniform(-25.0, 250.0), 2) for _ in range(1024)]
        self._n = devices

    def schemas(self) -> dict[str, DeviceSchema]:
        return {
            d: DeviceSchema(d, "bench", (("device", d), ("site", "bench")), frozenset(), {})
            for d in self.devices
        }

    def values(self, k: int) -> dict[str, float | int | bool]:
        f = self._floats
        return {"temp": f[k & 1023], "hum": f[(k >> 3) & 1023], "power": f[(k >> 6) & 1023],
                "count": k, "on": bool(k & 1)}  # fmt: skip

    def reading(self, k: int) -> DeviceReadings:
        return DeviceReadings(
            self.devices[k % self._n], self._base + timedelta(milliseconds=k), self.values(k)
        )

    def lines(self, first: int, count: int) -> list[str]:
        prefixes = [SeriesPrefix("bench", {"device": d, "site": "bench"}) for d in self.devices]
        out = []
        for k in range(first, first + count):
            p = prefixes[k % self._n]
            out.append(f"{p.text} {p.fields(self.values(k))} {(self.base_ms + k) * 1_000_000}")
        return out


@dataclass(frozen=True)
class DemoRate:
    readings_s: float
    rows_s: float
    values_s: float
    per_device: list[tuple[str, float, float, float]]

    @property
    def points_s(self) -> float:
        """The demo's field values per second in 5-field points (MEASURED.md's unit)."""
        return self.values_s / FIELDS


@dataclass(frozen=True)
class PollGroup:
    device: str
    interval: float
    points: tuple  # ModbusPoint


def demo_groups() -> tuple[list[PollGroup], dict[str, DeviceSchema]]:
    cfg = load_site(DEMO_SITE)
    profiles = load_profiles(cfg.devices_profiles)
    groups = []
    for d in cfg.devices:
        p = profiles[d.profile]
        base = d.poll_s or p.settings.poll_s
        by: dict[float, list] = defaultdict(list)
        for pt in p.points:
            own = pt.poll_s
            iv = base if own is None else (max(own, d.poll_s) if d.poll_s else own)
            by[iv].append(pt)
        groups += [PollGroup(d.id, iv, tuple(pts)) for iv, pts in sorted(by.items())]
    return groups, schemas_for_site(cfg, profiles)


def demo_rate() -> DemoRate:
    groups, schemas = demo_groups()
    per: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for g in groups:
        safe = schemas[g.device].food_safety
        kinds = {p.id in safe for p in g.points}
        acc = per[g.device]
        acc[0] += 1 / g.interval
        acc[1] += len(kinds) / g.interval
        acc[2] += len(g.points) / g.interval
    rows = [(d, *v) for d, v in per.items()]
    return DemoRate(sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows),
                    rows)  # fmt: skip


def demo_value(point, rnd: random.Random) -> object:
    """A value of the type the register codec gives this point (``decode_point``)."""
    if point.table.is_bits or point.type is PointType.BIT:
        return rnd.random() < 0.2
    if point.type is PointType.STRING:
        return "FW-2.14.7"
    if point.type in (PointType.F32, PointType.F64):
        return rnd.uniform(0, 250)
    raw = rnd.randrange(0, 3000)
    if point.scale == 1 and point.offset == 0:
        return raw
    return raw * point.scale + point.offset


def export_counts(url: str) -> dict[str, tuple[int, int]]:
    """Per metric name: (samples, sum of the values as ints), streamed from /api/v1/export."""
    query = urllib.parse.urlencode({"match[]": '{__name__=~".+"}', "end": str(_EXPORT_END_S)})
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    with _OPENER.open(f"{url}/api/v1/export?{query}", timeout=900) as resp:
        for raw in resp:
            if not raw.strip():
                continue
            item = json.loads(raw)
            acc = out[item["metric"]["__name__"]]
            acc[0] += len(item["timestamps"])
            acc[1] += sum(int(v) for v in item["values"])
    return {k: (v[0], v[1]) for k, v in out.items()}
