"""bench/telemetry: the telemetry pipeline end to end, beside a raw influxdb-client writer.

Run by hand: ``python bench/telemetry/run.py [--repeat N] [--quick]`` (``--quick``: a short
smoke size). Each case runs in a fresh process of its own with a fresh VictoriaMetrics
(``cases.py``); the passes alternate the order of the cases (forward, then backward), and the
load average is recorded at the start of each case. Prints Markdown for bench/RESULTS.md;
every case's full result goes to ``/tmp/bench-telemetry-last-run.jsonl`` as it is measured.

Cases, per pass (a point is one line of 5 fields; synthetic readings come from 1,000 devices,
20 in a case ending ``_d20``):

* ``raw_batch``, ``raw_sync``, ``raw_sync_gzip``: (a), influxdb-client straight to the
  database (batching write API with line-protocol strings; synchronous writes of 5,000-line
  bodies, without and with gzip, the pipeline's setting);
* ``flat_normal``, ``flat_full``, ``flat_normal_d20``: (b) flat out, history durability
  ``normal`` / ``full``: ``--offer`` readings/s (default 75,000, 1.5x the target) for a warm-up
  and a 25 s window; the rate is the sink's ``stats.written`` delta over the window;
* ``sustain_normal``, ``sustain_full``, ``sustain_normal_d20``: paced steps of 20 s from
  20,000 points/s up, 5,000 at a time: the fastest step at which the sink keeps up (input =
  output, nothing refused, nothing piling up): what the pipeline sustains for good;
* ``demo_synth``: synthetic readings at the demo's rate in 5-field points (its field values
  per second / 5), 60 s: latency and CPU;
* ``demo_shaped``: the demo site's own seven devices (their points, intervals, value types
  and food-safety split), 20 s idle then 60 s: latency and CPU;
* ``x100``: synthetic readings at 100x ``demo_synth``'s rate: latency and CPU;
* ``outage``: 10 minutes of readings at the x100 rate taken with the sink not started
  (faster than real time), then the sink started while live readings keep coming at that
  rate: drain rate and live latency during the drain.

Also: ``--profile CASE`` records one case's measurement window with py-spy (``pip install
py-spy``), first the threads holding the GIL, then all active threads, and sorts the samples
into the pipeline's stages (``where.py``); ``stages.py`` times each stage alone;
``BENCH_TELEMETRY_WHATIF=...`` measures with some changes patched into the bench's process
(``whatif.py``; ``gateway/`` is never changed).

Latency, CPU, durability and what each figure counts: see ``cases.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import cases
import influxdb_client
import uvloop
import where
from load import demo_rate

HERE = Path(__file__).resolve().parent
LOG = Path(tempfile.gettempdir()) / "bench-telemetry-last-run.jsonl"
CASES = ["raw_batch", "raw_sync", "raw_sync_gzip", "flat_normal", "flat_full", "flat_normal_d20",
         "sustain_normal", "sustain_full", "sustain_normal_d20", "demo_synth", "demo_shaped", "x100",
         "outage"]  # fmt: skip
FLAT = ["flat_normal", "flat_full", "flat_normal_d20"]
SUSTAIN = ["sustain_normal", "sustain_full", "sustain_normal_d20"]
RAMP = [20_000, 25_000, 30_000, 35_000, 40_000, 45_000, 50_000, 55_000, 60_000, 70_000]
DEVICES = 1000  # synthetic devices; a case ending in _d20 has 20


def sizes(quick: bool) -> dict:
    if quick:
        return {"raw_points": 50_000, "flat_warm": 2, "flat_s": 5, "demo_warm": 2, "demo_s": 8,
                "x100_s": 5, "outage_s": 20, "after_s": 2, "ramp": [5_000, 20_000, 60_000],
                "step_s": 4, "idle_s": 3}  # fmt: skip
    return {"raw_points": 1_000_000, "flat_warm": 5, "flat_s": 25, "demo_warm": 5, "demo_s": 60,
            "x100_s": 30, "outage_s": 600, "after_s": 10, "ramp": RAMP, "step_s": 20, "idle_s": 20}  # fmt: skip


def child(case: str, p: dict) -> dict:
    demo = demo_rate()
    r1 = demo.points_s
    if case == "raw_batch":
        return cases.raw_case("batch", p["raw_points"], 1000, gzip=False)
    if case == "raw_sync":
        return cases.raw_case("sync", p["raw_points"], 1000, gzip=False)
    if case == "raw_sync_gzip":
        return cases.raw_case("sync", p["raw_points"], 1000, gzip=True)
    devices = 20 if case.endswith("_d20") else DEVICES
    durability = "full" if "_full" in case else "normal"
    if case.startswith("flat_"):
        coro = cases.flat_case(durability, p["offer"], p["flat_warm"], p["flat_s"], devices)
    elif case.startswith("sustain_"):
        coro = cases.sustain_case(durability, p["ramp"], p["step_s"], devices)
    elif case.startswith("paced:"):  # paced:RATE:DURABILITY, for --profile
        _, rate, durability = case.split(":")
        coro = cases.paced_case(durability, float(rate), p["flat_warm"], p["flat_s"], 1000)
    elif case == "demo_synth":
        coro = cases.paced_case("full", r1, p["demo_warm"], p["demo_s"], 12)
    elif case == "demo_shaped":
        coro = cases.demo_case("full", p["demo_warm"], p["demo_s"], p["idle_s"])
    elif case == "x100":
        coro = cases.paced_case("full", 100 * r1, p["demo_warm"], p["x100_s"], 1000)
    elif case == "outage":
        coro = cases.outage_case("full", 100 * r1, p["outage_s"], p["after_s"], 1000)
    else:
        raise SystemExit(f"unknown case {case}")
    return uvloop.run(coro)


def run_case(case: str, p: dict, pass_no: int) -> dict:
    load = os.getloadavg()
    started = datetime.now(UTC).strftime("%H:%M:%S")
    argv = [sys.executable, str(HERE / "run.py"), "--child", case, "--params", json.dumps(p)]
    t0 = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=3600)
    err_log = Path(tempfile.gettempdir()) / f"bench-telemetry-{case}-{pass_no}.stderr"
    err_log.write_text(out.stderr)
    try:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"failed": out.returncode, "stderr": out.stderr[-2000:]}
    result |= {"load1": load[0], "started": started, "case_s": round(time.monotonic() - t0)}
    with LOG.open("a") as f:
        f.write(json.dumps({"pass": pass_no, "case": case, "result": result}) + "\n")
    short = {k: v for k, v in result.items() if k != "series"}
    print(f"  pass {pass_no} {case}: {json.dumps(short)}", file=sys.stderr, flush=True)
    return result


def profile(case: str, p: dict) -> None:
    """Record the case's measurement window with py-spy, GIL holders then all active threads."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    seconds = max(3, min(p["flat_s"] - 2, 15))
    for mode in ("gil", "active"):
        mark = Path(tempfile.gettempdir()) / f"bench-telemetry-mark-{os.getpid()}"
        mark.unlink(missing_ok=True)
        argv = [sys.executable, str(HERE / "run.py"), "--child", case, "--params", json.dumps(p)]
        env = os.environ | {"BENCH_TELEMETRY_MARK": str(mark)}
        err_path = Path(tempfile.gettempdir()) / "bench-telemetry-profile.stderr"
        with err_path.open("w") as err:
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
            deadline = time.monotonic() + 300
            while not (mark.exists() and mark.read_text() == "start"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{case} ended before its window (see {err.name})")
                time.sleep(0.05)
            out = Path(tempfile.gettempdir()) / f"bench-telemetry-profile-{case}-{mode}.txt"
            spy_argv = [
                spy,
                "record",
                "--pid",
                str(proc.pid),
                "--duration",
                str(seconds),
                "--rate",
                "200",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(out),
            ]
            if mode == "gil":
                spy_argv.append("--gil")
            subprocess.run(spy_argv, check=True, capture_output=True)
            stdout, _ = proc.communicate()
        mark.unlink(missing_ok=True)
        result = json.loads(stdout.strip().splitlines()[-1])
        short = {k: v for k, v in result.items() if k not in ("series", "steps")}
        print(f"### {case}, {mode} ({seconds} s of the window, py-spy {out})\n")
        print(f"Case result: {json.dumps(short)}\n")
        print(where.summarize(str(out)) + "\n")


def versions() -> str:
    vm = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "victoria-metrics"],
                        capture_output=True, text=True, check=False).stdout  # fmt: skip
    return (f"Python {platform.python_version()}, influxdb-client {influxdb_client.__version__}, "
            f"uvloop {uvloop.__version__}, SQLite {sqlite3.sqlite_version}, victoria-metrics {vm}")  # fmt: skip


def fmt(x: object) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.1f}" if abs(x) >= 10 else f"{x:.2f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def stages_at(result: dict, stage_us) -> str:
    st = [w for w in result["steps"] if w["keeps_up"]][-1]["stages"]
    keys = ("recorder: readings -> rows", "recorder: History.append", "sink: HistoryReader.lines",
            "sink: InfluxWriter.write (incl. gzip)")  # fmt: skip
    gz = stage_us(st, "sink:   of which gzip.compress")
    return " / ".join(stage_us(st, k) for k in keys) + f" ({gz})"


def report(runs: list[dict[str, dict]]) -> None:
    demo = demo_rate()

    def row(label: str, get) -> str:
        cells = []
        for r in runs:
            try:
                cells.append(get(r))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("failed")
        return f"| {label} | " + " | ".join(cells) + " |"

    def f(case: str, key: str):
        return lambda r: fmt(r[case][key])

    def share(case: str, raw: str):
        def get(r: dict) -> str:
            mine = r[case].get("points_s", r[case].get("sustained_s"))
            return f"{mine / r[raw]['points_s']:.2f}"

        return get

    lines = [
        (f"Demo site: {demo.readings_s:.2f} readings/s, {demo.rows_s:.2f} rows (lines) /s, "
         f"{demo.values_s:.1f} field values/s = {demo.points_s:.2f} five-field points/s; "
         f"x100 = {100 * demo.points_s:,.0f} points/s."),
        "",
        "| figure | " + " | ".join(f"pass {i + 1}" for i in range(len(runs))) + " |",
        "|---|" + "---|" * len(runs),
        row("raw: batching API, points/s (CPU us/pt)",
            lambda r: f"{fmt(r['raw_batch']['points_s'])} ({fmt(r['raw_batch']['cpu_us_pt'])})"),
        row("raw: sync 5,000-line bodies, points/s (CPU us/pt)",
            lambda r: f"{fmt(r['raw_sync']['points_s'])} ({fmt(r['raw_sync']['cpu_us_pt'])})"),
        row("raw: sync 5,000-line bodies + gzip, points/s (CPU us/pt)",
            lambda r: f"{fmt(r['raw_sync_gzip']['points_s'])} "
                      f"({fmt(r['raw_sync_gzip']['cpu_us_pt'])})"),
    ]  # fmt: skip

    def label(c: str) -> str:
        d = "full" if "_full" in c else "normal"
        return f"{d}, {20 if c.endswith('_d20') else DEVICES} devices"

    def stage_us(st: dict, key: str) -> str:
        return fmt(st[key][0]) if key in st else "-"

    for c in FLAT:
        lines += [
            row(f"flat out ({label(c)}): points/s to the database (per-second min-max)",
                lambda r, c=c: f"{fmt(r[c]['points_s'])} ({fmt(r[c]['per_s_min'])}-"
                               f"{fmt(r[c]['per_s_max'])})"),
            row("  CPU us/pt; process % of a core; VM % of a core; GC % of a core",
                lambda r, c=c: f"{fmt(r[c]['cpu_us_pt'])}; {fmt(r[c]['cpu_core_pct'])}; "
                               f"{fmt(r[c]['vm_cpu_core_pct'])}; {fmt(sum(r[c]['gc_core_pct']))}"),
            row("  share of raw sync / of raw sync + gzip",
                lambda r, c=c: f"{share(c, 'raw_sync')(r)} / {share(c, 'raw_sync_gzip')(r)}"),
            row("  offered/s; committed to the history/s; refused",
                lambda r, c=c: f"{fmt(r[c]['offered_s'])}; {fmt(r[c]['committed_s'])}; "
                               f"{fmt(r[c]['refused'])}"),
            row("  recorder queue min-max (end), bound 100,000",
                lambda r, c=c: f"{fmt(r[c]['queue_min'])}-{fmt(r[c]['queue_max'])} "
                               f"({fmt(r[c]['queue_end'])})"),
            row("  history backlog at window start -> end, rows",
                lambda r, c=c: f"{fmt(r[c]['pending_start'])} -> {fmt(r[c]['pending_end'])}"),
            row("  sink's wall % in lines / write / save_cursor",
                lambda r, c=c: " / ".join(fmt(r[c]["stages"][k][2]) for k in (
                    "sink: HistoryReader.lines", "sink: InfluxWriter.write (incl. gzip)",
                    "sink: save_cursor"))),
        ]  # fmt: skip
    for c in SUSTAIN:
        lines += [
            row(f"sustained ({label(c)}): fastest paced step kept up with, points/s",
                lambda r, c=c: f"{fmt(r[c]['sustained_s'])}"),
            row("  at it: CPU us/pt; process % of a core; share of raw sync",
                lambda r, c=c: f"{fmt(r[c]['cpu_us_pt'])}; {fmt(r[c]['cpu_core_pct'])}; "
                               f"{share(c, 'raw_sync')(r)}"),
            row("  at it, CPU us/pt: rows / append / lines / write (gzip)",
                lambda r, c=c: stages_at(r[c], stage_us)),
            row("  first step missed: offered -> to the database, points/s",
                lambda r, c=c: (f"{fmt(r[c]['first_miss']['rate'])} -> "
                                f"{fmt(r[c]['first_miss']['points_s'])}")
                if r[c]["first_miss"] else "none missed"),
        ]  # fmt: skip
    lines += [
        row("demo rate (synthetic): p50 / p99 / max latency, ms",
            lambda r: f"{fmt(r['demo_synth']['lat_p50_ms'])} / {fmt(r['demo_synth']['lat_p99_ms'])}"
                      f" / {fmt(r['demo_synth']['lat_max_ms'])}"),
        row("demo rate (synthetic): CPU % of a core (VM %)",
            lambda r: f"{r['demo_synth']['cpu_core_pct']:.2f} ({r['demo_synth']['vm_cpu_core_pct']:.2f})"),
        row("demo site's own devices: p50 / p99 latency, ms",
            lambda r: f"{fmt(r['demo_shaped']['lat_p50_ms'])} / {fmt(r['demo_shaped']['lat_p99_ms'])}"),
        row("demo site's own devices: CPU % of a core (VM %); idle before it",
            lambda r: f"{r['demo_shaped']['cpu_core_pct']:.2f} ({r['demo_shaped']['vm_cpu_core_pct']:.2f}); "
                      f"{r['demo_shaped']['idle_core_pct']:.2f}"),
        row("x100: p50 / p99 / max latency, ms",
            lambda r: f"{fmt(r['x100']['lat_p50_ms'])} / {fmt(r['x100']['lat_p99_ms'])} / "
                      f"{fmt(r['x100']['lat_max_ms'])}"),
        row("x100: CPU % of a core (VM %)",
            lambda r: f"{r['x100']['cpu_core_pct']:.2f} ({r['x100']['vm_cpu_core_pct']:.2f})"),
        row("outage: backlog rows; built at rows/s", lambda r: f"{fmt(r['outage']['backlog_rows'])}; "
            f"{fmt(r['outage']['build_rows_s'])}"),
        row("outage: drain s; rows/s; x live rate",
            lambda r: f"{fmt(r['outage']['drain_s'])}; {fmt(r['outage']['drain_rows_s'])}; "
                      f"{fmt(r['outage']['drain_ratio'])}x"),
        row("outage: live p50 / p99 / max during the drain, ms (n)",
            lambda r: f"{fmt(r['outage']['live_p50_ms_during'])} / "
                      f"{fmt(r['outage']['live_p99_ms_during'])} / "
                      f"{fmt(r['outage']['live_max_ms_during'])} ({fmt(r['outage']['live_n_during'])})"),
        row("outage: live p99 after the drain, ms; CPU % during the drain (VM %)",
            lambda r: f"{fmt(r['outage']['live_p99_ms_after'])}; "
                      f"{fmt(r['outage']['cpu_core_pct_during'])} "
                      f"({fmt(r['outage']['vm_cpu_core_pct_during'])})"),
        row("peak RSS MiB: flat normal / flat full / demo site / x100 / outage",
            lambda r: " / ".join(fmt(r[c]["peak_rss_mib"]) for c in
                                 ("flat_normal", "flat_full", "demo_shaped", "x100", "outage"))),
        row("database holds exactly the points sent (cases that did)",
            lambda r: f"{sum(bool(r[c]['verify']['exact']) for c in r)}/{len(r)}"),
        row("load average (1 min) at each case's start, in CASES order",
            lambda r: " ".join(f"{r[c]['load1']:.2f}" for c in CASES if c in r)),
    ]  # fmt: skip
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--offer", type=float, default=75_000.0)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument(
        "--profile",
        metavar="CASE",
        help="py-spy the window of one case (flat_normal, paced:30000:normal, ...)",
    )
    ap.add_argument("--child")
    ap.add_argument("--params")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, json.loads(args.params))))
        return
    p = sizes(args.quick) | {"offer": args.offer}
    if args.profile:
        profile(args.profile, p)
        return
    chosen = [c for c in args.cases.split(",") if c]
    LOG.write_text("")
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {versions()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()}", file=sys.stderr)  # fmt: skip
    runs = []
    for i in range(args.repeat):
        order = chosen if i % 2 == 0 else list(reversed(chosen))
        runs.append({c: run_case(c, p, i + 1) for c in order})
    report(runs)


if __name__ == "__main__":
    sys.exit(main())
