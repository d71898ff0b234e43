"""bench/routing: orders/s and order-to-ticket latency of the gateway beside a null router.

Run: ``python bench/routing/run.py [--duration 10] [--durability full] [--repeat 1]
[--mqtt-paths auto|fast|paho|both] [--rates 50,200,1000,max] [--no-restart]``. For the gateway
and for the null router in turn, each on a private Mosquitto of its own: fixed rates (50, 200
and 1,000 orders/s) and a flat-out run (window of 500 unanswered orders), each measured by
``loadgen.py`` in its own process. Then kill -9 of the gateway with unacknowledged tickets and
the time from restart to the first resent ticket. ``--repeat N`` does all of it N times,
alternating which router goes first, and reports medians and ranges. Prints a Markdown table for
bench/RESULTS.md.

``--mqtt-paths`` sets the gateway's ``GATEWAY_MQTT_PATHS`` (gateway/transport/paths.py): its
MQTT client on the fast paths, on paho's own, or ``both``: each repetition then runs the gateway
once per mode beside one null router run, rotating the order, and prints a table per mode and
one comparing them. The load generator and the null router always take their default (fast)
paths, so only the router under test changes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil
import uvloop

from gateway.transport.broker import MosquittoProcess
from gateway.transport.mqtt import InboundMessage, MqttClient

HERE = Path(__file__).resolve().parent
SITE_FILE = HERE / "site.toml"
RATES = [50, 200, 1000, 0]
PATHS_ENV = "GATEWAY_MQTT_PATHS"


def _env(paths: str = "auto") -> dict[str, str]:
    """This environment with the MQTT paths set (auto: the client's own choice)."""
    env = {k: v for k, v in os.environ.items() if k != PATHS_ENV}
    if paths != "auto":
        env[PATHS_ENV] = paths
    return env


def start_gateway(url: str, state: Path, durability: str, paths: str = "auto") -> subprocess.Popen[str]:
    env = dict(_env(paths), GATEWAY_BENCH_DURABILITY=durability)
    site = state / "site.toml"
    site.write_text(SITE_FILE.read_text().replace('durability = "full"', f'durability = "{durability}"'))
    log = state / "gateway.log"
    # A file, not a pipe: a pipe nobody reads would stall the gateway once it fills.
    with log.open("a") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(site), "--mqtt-url", url,
             "--state-dir", str(state)],
            stderr=err, text=True, env=env,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if log.read_text().count("ready on") > proc_starts(log):
            _STARTS[log] = proc_starts(log) + 1
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise RuntimeError(f"gateway did not start: {log.read_text()[-2000:]}")


_STARTS: dict[Path, int] = {}


def proc_starts(log: Path) -> int:
    """How many starts this log had before the current one."""
    return _STARTS.get(log, 0)


def start_null(url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(HERE / "null_router.py"), "--url", url],
                            stdout=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def load(url: str, rate: float, duration: float) -> dict:
    out = subprocess.run(
        [sys.executable, str(HERE / "loadgen.py"), "--url", url, "--rate", str(rate),
         "--duration", str(duration)],
        capture_output=True, text=True, check=True, env=_env(),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(url: str, proc: subprocess.Popen[str], duration: float) -> tuple[list[dict], float]:
    results = []
    ps = psutil.Process(proc.pid)
    peak_rss = 0.0
    for rate in RATES:
        c0 = sum(ps.cpu_times()[:2])
        res = load(url, rate, duration)
        # CPU per order is steadier than wall-clock rates on a shared machine.
        res["cpu_us_per_order"] = round(1e6 * (sum(ps.cpu_times()[:2]) - c0) / max(res["replies"], 1))
        peak_rss = max(peak_rss, ps.memory_info().rss / 2**20)
        results.append(res)
        time.sleep(1.0)
    return results, peak_rss


async def _first_resend(url: str, spawn):
    got = asyncio.Event()
    client = MqttClient(url, f"bench-watch-{uuid.uuid4().hex[:6]}", clean_start=True, session_expiry_s=0)

    def on_message(msg: InboundMessage) -> None:
        got.set()
        client.ack(msg)

    async with client:
        client.set_handler(on_message)
        client.subscribe("rst/bench/kds/+/tickets")
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        proc = spawn()
        await asyncio.wait_for(got.wait(), 30)
        dt = time.monotonic() - t0
    return dt, proc


def restart_time(url: str, durability: str, paths: str = "auto") -> float:
    """Orders whose tickets nobody acks, kill -9, restart: seconds to the first resent ticket."""
    state = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    gw = start_gateway(url, state, durability, paths)
    client_code = f"""
import json, uuid, paho.mqtt.publish as p
from datetime import datetime, UTC
msgs = [dict(topic="rst/bench/tablet/tab-1/orders", qos=1, payload=json.dumps({{
  "order_id": str(uuid.uuid4()), "table": "T1", "placed_at": datetime.now(UTC).isoformat(),
  "items": [{{"line_id": "1", "item": "calamari", "qty": 1}}]}})) for _ in range(50)]
p.multiple(msgs, hostname="127.0.0.1", port={url.rsplit(':', 1)[1]})
"""
    subprocess.run([sys.executable, "-c", client_code], check=True)
    time.sleep(1.0)
    gw.send_signal(signal.SIGKILL)
    gw.wait()
    dt, gw2 = uvloop.run(_first_resend(url, lambda: start_gateway(url, state, durability, paths)))
    gw2.terminate()
    gw2.wait()
    return dt


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _run_router(start, duration: float) -> tuple[list[dict], float]:
    """One router against a broker of its own: the fixed rates, then flat out."""
    # A fresh broker per router: on a shared one the gateway's persistent session has the null
    # router's whole phase queued for it, which slowed the null router by up to ~25 %
    # (RESULTS.md, session 4) and would weigh on the gateway's next start.
    with MosquittoProcess() as broker:
        proc = start(broker.url)
        try:
            return measure(broker.url, proc, duration)
        finally:
            proc.terminate()
            proc.wait()


def _rates(text: str) -> list[float]:
    return [0.0 if r.strip() == "max" else float(r) for r in text.split(",")]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--durability", default="full", choices=["full", "normal"])
    p.add_argument(
        "--repeat", type=int, default=1,
        help="run the gateway and the null router this many times each, alternating; the table "
        "shows medians and ranges (a shared VM's speed moves by tens of percent between minutes)",
    )
    p.add_argument(
        "--mqtt-paths", default="auto", choices=["auto", "fast", "paho", "both"],
        help="the gateway's MQTT paths (GATEWAY_MQTT_PATHS); both: each repetition runs the "
        "gateway once per mode",
    )
    p.add_argument("--rates", type=_rates, default=RATES,
                   help="comma-separated orders/s, 'max' for flat out (default 50,200,1000,max)")
    p.add_argument("--no-restart", action="store_true", help="skip the kill -9 restart timing")
    a = p.parse_args()
    RATES[:] = a.rates
    modes = ["fast", "paho"] if a.mqtt_paths == "both" else [a.mqtt_paths]

    def gateway(paths: str):
        def start(url: str) -> subprocess.Popen[str]:
            return start_gateway(url, Path(tempfile.mkdtemp(prefix="bench-gw-")), a.durability,
                                 paths)
        start.__name__ = f"gateway:{paths}"
        return start

    routers = [(m, gateway(m)) for m in modes] + [("null", start_null)]
    got: dict[str, list[list[dict]]] = {name: [] for name, _ in routers}
    rss: dict[str, list[float]] = {m: [] for m in modes}
    restarts: dict[str, list[float]] = {m: [] for m in modes}
    for n in range(a.repeat):
        # Rotate which goes first, so a slow minute of the machine falls on each in turn.
        k = n % len(routers)
        for name, start in routers[k:] + routers[:k]:
            res, peak = _run_router(start, a.duration)
            got[name].append(res)
            if name != "null":
                rss[name].append(peak)
        if not a.no_restart:
            for m in modes:
                with MosquittoProcess() as broker:
                    restarts[m].append(restart_time(broker.url, a.durability, m))
    for m in modes:
        pairs = list(zip(got[m], got["null"], strict=True))
        _report(a, pairs, rss[m], restarts[m], paths=m)
    if len(modes) == 2:
        _compare(got["fast"], got["paho"])


def _compare(fast: list[list[dict]], paho: list[list[dict]]) -> None:
    """The gateway on paho's own paths against the fast ones, per repetition, then the median."""
    print("\n### gateway: paho's own MQTT paths against the fast ones (per repetition, median)\n")
    print("| target orders/s | fast orders/s | paho orders/s | paho/fast rate | fast CPU us/order "
          "| paho CPU us/order | paho/fast CPU | fast ticket p99 ms | paho ticket p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    def ratio(f: list[dict], p: list[dict], key: str) -> str:
        vals = [q[key] / r[key] for r, q in zip(f, p, strict=True) if r[key] and q[key]]
        return f"{_median(vals):.2f}" if vals else "-"

    def med(rows: list[dict], key: str) -> str:
        vals = [r[key] for r in rows if r[key] is not None]
        return f"{_median(vals):g}" if vals else "-"

    for k, rate in enumerate(RATES):
        f = [run[k] for run in fast]
        p = [run[k] for run in paho]
        label = "max" if rate == 0 else f"{rate:.0f}"
        print(f"| {label} | {med(f, 'orders_per_s')} | {med(p, 'orders_per_s')} "
              f"| {ratio(f, p, 'orders_per_s')} | {med(f, 'cpu_us_per_order')} "
              f"| {med(p, 'cpu_us_per_order')} | {ratio(f, p, 'cpu_us_per_order')} "
              f"| {med(f, 'ticket_ms_p99')} | {med(p, 'ticket_ms_p99')} |")


def _report(a: argparse.Namespace, pairs: list[tuple[list[dict], list[dict]]], rss: list[float],
            restarts: list[float], paths: str = "auto") -> None:
    def med(rows: list[dict], key: str) -> str:
        vals = [r[key] for r in rows if r[key] is not None]
        if not vals:
            return "-"
        if len(vals) == 1:
            return f"{vals[0]:g}"
        return f"{_median(vals):g} ({min(vals):g}-{max(vals):g})"

    print(f"## bench/routing, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, durability={a.durability}, "
          f"gateway MQTT paths: {paths}")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {a.duration:.0f} s per rate, "
          f"{len(pairs)} alternating run(s) of each router: median (min-max)\n")
    print("| target orders/s | gateway orders/s | null orders/s | ratio | gw ticket p50 ms "
          "| gw ticket p99 ms | null ticket p99 ms | added p99 ms | gw lost "
          "| gw CPU us/order | null CPU us/order |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for k, rate in enumerate(RATES):
        gw = [g[k] for g, _ in pairs]
        null = [n[k] for _, n in pairs]
        # Per pair, then the median: the two routers of a pair ran minutes apart, not hours.
        ratios = [{"v": round(g["orders_per_s"] / n["orders_per_s"], 2) if n["orders_per_s"]
                   else 0.0} for g, n in zip(gw, null, strict=True)]
        added = [{"v": round((g["ticket_ms_p99"] or 0) - (n["ticket_ms_p99"] or 0), 2)}
                 for g, n in zip(gw, null, strict=True)]
        label = "max" if rate == 0 else f"{rate:.0f}"
        lost = sum(g["lost"] for g in gw)
        print(f"| {label} | {med(gw, 'orders_per_s')} | {med(null, 'orders_per_s')} "
              f"| {med(ratios, 'v')} | {med(gw, 'ticket_ms_p50')} | {med(gw, 'ticket_ms_p99')} "
              f"| {med(null, 'ticket_ms_p99')} | {med(added, 'v')} | {lost} "
              f"| {med(gw, 'cpu_us_per_order')} | {med(null, 'cpu_us_per_order')} |")
    rss_rows = [{"v": round(r, 1)} for r in rss]
    restart_rows = [{"v": round(r * 1000)} for r in restarts]
    print(f"\ngateway peak RSS MiB: {med(rss_rows, 'v')}; restart after kill -9 to first resent "
          f"ticket, ms (process start included): {med(restart_rows, 'v') if restarts else 'not run'}")
    print("\nraw:", json.dumps({"pairs": [{"gateway": g, "null": n} for g, n in pairs],
                                "rss_mib": rss, "restart_s": restarts}))


if __name__ == "__main__":
    main()
