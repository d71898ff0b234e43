"""bench/polling: what Modbus polling costs the gateway, beside a bare pymodbus client loop.

Run: ``python bench/polling/run.py [--window 15] [--max-devices 4000]``. Starts simulated devices
(``servers.py``: one pymodbus server per device, 10 holding registers, on consecutive loopback
ports) in processes of their own, then measures each case in a fresh process of its own, so
that CPU is charged to the side that spends it:

1. 200 devices at 1 s: the gateway side's CPU share of one core (psutil process CPU times over
   the window) and poll-interval jitter p50/p99 (the device service's own measurement);
2. the ramp: 200, 500, 1000, ... devices at 1 s until a step misses (jitter p99 >= 50 ms, or
   fewer than 99 % of the expected polls), giving the most devices one core keeps at 1 s;
3. contiguous reads (1 request of 10 registers per poll) against one request per point (a
   profile with ``max_registers_per_read = 1``), at 1 s and flat out;
4. requests per CPU-second: the gateway flat out, and a bare pymodbus loop reading the same
   registers from the same devices flat out (one task per device: connect, then
   ``read_holding_registers`` in a loop); both also at 200 devices paced at 1 s.

The gateway side is ``DeviceService`` (pollers, availability, decoding, readings events) with an
outbox that only counts, i.e. without MQTT; ``--with-mqtt`` adds a row with the readings
published as telemetry to a private Mosquitto. Prints Markdown for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import uvloop

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
BASE_PORT = 16000  # below Linux's ephemeral range, so the gateway's own sockets never collide
PER_SERVER_PROCESS = 1000
RAMP = [200, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000]
JITTER_LIMIT_S = 0.050
LOG = Path(tempfile.gettempdir()) / "bench-polling-last-run.jsonl"  # each case as it is measured

PROFILE = """
[profile]
id = "{id}"
vendor = "bench"
model = "ten registers"
kind = "fridge"
protocol = "modbus"

[modbus]
poll_s = 1.0
timeout_s = 0.5
max_registers_per_read = {per_read}
""" + "".join(
    f'\n[[points]]\nid = "r{n}"\nname = "r{n}"\ntable = "holding"\naddress = {n}\n'
    + ("scale = 0.1\n" if n % 2 else "")
    for n in range(10)
)


# --- gateway side (its own process) ------------------------------------------------------------


class CountingOutbox:
    def __init__(self) -> None:
        self.readings = 0
        self.changes = 0

    def send(self, event: object) -> None:
        if type(event).__name__ == "DeviceReadings":
            self.readings += 1
        else:
            self.changes += 1


def site(devices: int, interval: float, profile: str, profiles: Path, state: Path):
    from gateway.site_file import parse_site  # noqa: PLC0415

    return parse_site(
        {
            "site": {"id": "bench", "name": "bench"},
            "state": {"dir": str(state), "durability": "normal"},
            "tables": {"count": 1},
            "stations": [{"id": "s", "name": "s"}],
            "groups": [{"id": "g", "names": {"en": "g"}}],
            "items": [{"id": "i", "group": "g", "names": {"en": "i"}, "price": 1, "prep_s": 1}],
            "routes": [{"group": "g", "station": "s"}],
            "devices_profiles": [str(profiles)],
            "devices": [
                {
                    "id": f"d{n}",
                    "profile": profile,
                    "host": HOST,
                    "port": BASE_PORT + n,
                    "poll_s": interval,
                }
                for n in range(devices)
            ],
        }
    )


def write_profiles(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "contiguous.toml").write_text(PROFILE.format(id="bench-10", per_read=60))
    (directory / "per-point.toml").write_text(PROFILE.format(id="bench-10-per-point", per_read=1))
    return directory


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def gateway_side(args: argparse.Namespace) -> dict:
    from gateway.clock import SystemClock  # noqa: PLC0415
    from gateway.devices.audit import AuditLog  # noqa: PLC0415
    from gateway.devices.connection import modbus_connection  # noqa: PLC0415
    from gateway.devices.guard import WriteGuard  # noqa: PLC0415
    from gateway.devices.profile import load_profiles  # noqa: PLC0415
    from gateway.devices.service import DeviceService, Tuning  # noqa: PLC0415

    tmp = Path(tempfile.mkdtemp(prefix="bench-polling-"))
    cfg = site(args.devices, args.interval, args.profile, write_profiles(tmp / "p"), tmp / "s")
    profiles = load_profiles(cfg.devices_profiles)
    outbox, mqtt = CountingOutbox(), None
    if args.with_mqtt:
        from gateway.devices.bridge import DeviceBridge  # noqa: PLC0415
        from gateway.transport.mqtt import MqttClient  # noqa: PLC0415

        mqtt = MqttClient(args.with_mqtt, "bench-gateway")
        await mqtt.__aenter__()
        outbox = DeviceBridge("bench", mqtt, cfg.devices, profiles)
    svc = DeviceService(
        cfg,
        profiles,
        outbox,
        WriteGuard(profiles, cfg.devices),
        AuditLog(tmp / "audit.jsonl"),
        SystemClock(),
        connect=modbus_connection,
        tuning=Tuning(poll_tick_s=args.tick),
    )
    proc = psutil.Process()
    pauses: list[float] = []
    started: list[float] = []

    def gc_timer(phase: str, _info: dict) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses.append(time.perf_counter() - started[0])

    gc.callbacks.append(gc_timer)
    async with svc:
        await asyncio.sleep(args.warmup)
        if not args.no_gc_freeze:
            gc.freeze()  # as gateway.app.Gateway does once everything has started
        pauses.clear()
        for s in svc.poll_stats().values():
            s.jitter_s.clear()
        before = {d: (s.polls, s.failed, s.busy_s) for d, s in svc.poll_stats().items()}
        c0, t0 = proc.cpu_times(), time.monotonic()
        await asyncio.sleep(args.window)
        c1, t1 = proc.cpu_times(), time.monotonic()
        after = {d: (s.polls, s.failed, s.busy_s) for d, s in svc.poll_stats().items()}
        jitter = [abs(x) for x in svc.jitter_s()]
        online = sum(svc.availability(d.id).value == "online" for d in cfg.devices)
    if mqtt is not None:
        await mqtt.__aexit__(None, None, None)
    polls = sum(after[d][0] - before[d][0] for d in after)
    failed = sum(after[d][1] - before[d][1] for d in after)
    busy = sum(after[d][2] - before[d][2] for d in after)
    wall = t1 - t0
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    blocks = 1 if args.profile == "bench-10" else 10
    return {
        "devices": args.devices,
        "interval": args.interval,
        "profile": args.profile,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_share": cpu / wall,
        "user_s": c1.user - c0.user,
        "system_s": c1.system - c0.system,
        "polls": polls,
        "failed": failed,
        "requests": polls * blocks,
        "expected_polls": args.devices * wall / args.interval if args.interval >= 0.1 else None,
        "jitter_p50_ms": pct(jitter, 0.50) * 1000,
        "jitter_p99_ms": pct(jitter, 0.99) * 1000,
        "jitter_samples": len(jitter),
        "poll_ms": busy / polls * 1000 if polls else None,
        "online": online,
        "rss_mib": proc.memory_info().rss / 2**20,
        "gc_runs": len(pauses),
        "gc_max_ms": max(pauses, default=0.0) * 1000,
    }


# --- bare pymodbus loop (its own process) ------------------------------------------------------


async def bare_side(args: argparse.Namespace) -> dict:
    from pymodbus.client import AsyncModbusTcpClient  # noqa: PLC0415
    from pymodbus.exceptions import ModbusException  # noqa: PLC0415

    clients = [
        AsyncModbusTcpClient(HOST, port=BASE_PORT + n, reconnect_delay=0, retries=0, timeout=5)
        for n in range(args.devices)
    ]
    await asyncio.gather(*(c.connect() for c in clients))
    assert all(c.connected for c in clients)
    counts = [0] * len(clients)
    jitter: list[float] = []
    measuring = False
    loop = asyncio.get_running_loop()

    errors = [0]

    async def read(i: int, c: AsyncModbusTcpClient) -> None:
        try:
            await c.read_holding_registers(0, count=10, device_id=1)
        except ModbusException:
            errors[0] += 1  # a timeout when the servers saturate: count it, keep going
        else:
            counts[i] += 1

    running = True  # a flag, not cancel(): Python 3.11's wait_for inside pymodbus can drop one

    async def flat(i: int, c: AsyncModbusTcpClient) -> None:
        while running:
            await read(i, c)

    async def paced(i: int, c: AsyncModbusTcpClient) -> None:
        import random  # noqa: PLC0415

        due = epoch + random.random() * args.interval
        if args.quantum:
            due = epoch + round((due - epoch) / args.quantum) * args.quantum
        last = None
        while running:
            await asyncio.sleep(max(0.0, due - loop.time()))
            start = loop.time()
            if last is not None and measuring:
                jitter.append(abs(start - last - args.interval))
            last = start
            await read(i, c)
            due += args.interval

    body = flat if args.mode == "flat" else paced
    epoch = loop.time()
    tasks = [asyncio.create_task(body(i, c)) for i, c in enumerate(clients)]
    proc = psutil.Process()
    await asyncio.sleep(args.warmup)
    measuring = True
    n0, c0, t0 = sum(counts), proc.cpu_times(), time.monotonic()
    await asyncio.sleep(args.window)
    n1, c1, t1 = sum(counts), proc.cpu_times(), time.monotonic()
    running = False
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in clients:
        c.close()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {
        "devices": args.devices,
        "mode": args.mode,
        "wall_s": t1 - t0,
        "cpu_s": cpu,
        "user_s": c1.user - c0.user,
        "system_s": c1.system - c0.system,
        "cpu_share": cpu / (t1 - t0),
        "requests": n1 - n0,
        "errors": errors[0],
        "jitter_p99_ms": pct(jitter, 0.99) * 1000 if jitter else None,
    }


# --- orchestration -----------------------------------------------------------------------------


def start_servers(count: int) -> list[subprocess.Popen[str]]:
    procs = []
    for first in range(0, count, PER_SERVER_PROCESS):
        n = min(PER_SERVER_PROCESS, count - first)
        procs.append(subprocess.Popen(
            [sys.executable, str(HERE / "servers.py"), str(BASE_PORT + first), str(n)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        ))  # fmt: skip
    for p in procs:
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            stop_servers(procs)
            raise RuntimeError("a device server process did not start (see its error above)")
    return procs


def stop_servers(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.close()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def measure(kind: str, **kw: object) -> dict:
    argv = [sys.executable, __file__, kind]
    for k, v in kw.items():
        if v is True:
            argv.append(f"--{k.replace('_', '-')}")
        elif v not in (None, False):
            argv += [f"--{k.replace('_', '-')}", str(v)]
    timeout = 120 + 3 * float(kw.get("window", 15)) + float(kw.get("warmup", 5))
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if out.returncode:
        raise RuntimeError(f"{kind} {kw} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    with LOG.open("a") as f:  # every case as it comes, should a later fail
        f.write(json.dumps({"case": kind, "args": kw, "result": result}) + "\n")
    print(f"  {kind} {kw}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def keeps_up(r: dict) -> bool:
    return r["jitter_p99_ms"] < JITTER_LIMIT_S * 1000 and r["polls"] >= 0.99 * r["expected_polls"]


def orchestrate(args: argparse.Namespace) -> None:
    w, wu = args.window, args.warmup
    LOG.unlink(missing_ok=True)
    servers = start_servers(args.max_devices)
    broker = None
    r: dict[str, object] = {}
    try:
        r["base"] = measure("gateway", devices=200, interval=1.0, window=w, warmup=wu)
        ramp = []
        for n in [x for x in RAMP if x <= args.max_devices]:
            step = measure("gateway", devices=n, interval=1.0, window=w, warmup=wu)
            ramp.append(step)
            if not keeps_up(step):
                break
        r["ramp"] = ramp
        r["no_freeze"] = measure("gateway", devices=2000, interval=1.0, window=w, warmup=wu,
                                 no_gc_freeze=True)  # fmt: skip
        r["no_tick"] = measure("gateway", devices=200, interval=1.0, window=w, warmup=wu,
                               tick=0)  # fmt: skip
        r["per_point"] = measure("gateway", devices=200, interval=1.0, window=w, warmup=wu,
                                 profile="bench-10-per-point")  # fmt: skip
        r["flat"] = measure("gateway", devices=200, interval=0.001, window=w, warmup=wu)
        r["flat_pp"] = measure("gateway", devices=200, interval=0.001, window=w, warmup=wu,
                               profile="bench-10-per-point")  # fmt: skip
        r["bare_flat"] = measure("bare", devices=200, mode="flat", window=w, warmup=wu)
        r["bare_paced"] = measure("bare", devices=200, mode="paced", window=w, warmup=wu)
        r["gw_20hz"] = measure("gateway", devices=200, interval=0.05, window=w, warmup=wu)
        r["bare_20hz"] = measure("bare", devices=200, mode="paced", interval=0.05, window=w,
                                 warmup=wu)  # fmt: skip
        r["bare_20hz_grid"] = measure("bare", devices=200, mode="paced", interval=0.05,
                                      window=w, warmup=wu, quantum=0.05)  # fmt: skip
        r["bare_grid"] = measure("bare", devices=200, mode="paced", window=w, warmup=wu,
                                 quantum=0.05)  # fmt: skip
        if args.with_mqtt:
            from gateway.transport.broker import MosquittoProcess  # noqa: PLC0415

            broker = MosquittoProcess()
            broker.start()
            r["mqtt"] = measure("gateway", devices=200, interval=1.0, window=w, warmup=wu,
                                with_mqtt=broker.url)  # fmt: skip
    finally:
        stop_servers(servers)
        if broker is not None:
            broker.kill()
            broker.close()
    report(args, r)


def _us(r: dict) -> float:
    return r["cpu_s"] / r["polls"] * 1e6 if r["polls"] else float("nan")


def _rps(r: dict) -> float:
    return r["requests"] / r["cpu_s"]


def report(args: argparse.Namespace, r: dict) -> None:
    ramp = r["ramp"]
    kept = [x["devices"] for x in ramp if keeps_up(x)]
    best = max(kept) if kept else 0
    base, per_point, flat, flat_pp = r["base"], r["per_point"], r["flat"], r["flat_pp"]
    bare_flat, bare_paced, bare_grid = r["bare_flat"], r["bare_paced"], r["bare_grid"]
    gw20, bare20, bare20g = r["gw_20hz"], r["bare_20hz"], r["bare_20hz_grid"]
    print(f"## bench/polling — {datetime.now(UTC):%Y-%m-%d}\n")
    print(
        f"Machine: {platform.node()}, {platform.machine()}, {psutil.cpu_count()} cores, Python "
        f"{platform.python_version()}, uvloop {uvloop.__version__}; load average at the end "
        f"{os.getloadavg()[0]:.2f}. Devices: pymodbus servers (one per port, 10 holding "
        f"registers) in {-(-args.max_devices // PER_SERVER_PROCESS)} processes of their own; "
        f"each case in a fresh process, measured over {args.window:g} s after {args.warmup:g} s "
        "of warm-up. Gateway side = `DeviceService` (pollers, availability, decoding, readings "
        "events) with a counting outbox, no MQTT unless said; `gc.freeze()` after start-up "
        "and a 50 ms poll tick, as in the gateway, unless said. Jitter = |start-to-start "
        "interval - 1 s| per device; uvloop's clock has 1 ms resolution.\n"
    )
    print(
        "| case | devices | CPU (share of one core) | CPU per poll (us) | jitter p50 / p99 (ms) "
        "| polls done / expected | mean poll (ms) |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = [("1 s, contiguous", base), ("1 s, one request per point", per_point),
            ("1 s, no tick (phases at random)", r["no_tick"])]  # fmt: skip
    if "mqtt" in r:
        rows.append(("1 s, telemetry published to Mosquitto", r["mqtt"]))
    rows += [(f"ramp {x['devices']}", x) for x in ramp]
    rows.append(("2000 without gc.freeze()", r["no_freeze"]))
    for name, x in rows:
        print(
            f"| {name} | {x['devices']} | {x['cpu_share'] * 100:.1f} % | {_us(x):.0f} | "
            f"{x['jitter_p50_ms']:.0f} / {x['jitter_p99_ms']:.0f} | "
            f"{x['polls']} / {x['expected_polls']:.0f} | {x['poll_ms']:.2f} |"
        )
    print()
    print("| 200 devices | requests/s | CPU share | requests per CPU-second |")
    print("|---|---|---|---|")
    for name, x in [("gateway flat out, contiguous", flat),
                    ("gateway flat out, one request per point", flat_pp),
                    ("bare pymodbus loop flat out", bare_flat),
                    ("gateway at 1 s", base),
                    ("bare loop at 1 s, phases at random", bare_paced),
                    ("bare loop at 1 s, phases on a 50 ms grid", bare_grid),
                    ("gateway at 20 Hz (4,000 requests/s)", gw20),
                    ("bare loop at 20 Hz, phases at random", bare20),
                    ("bare loop at 20 Hz, phases on a 50 ms grid", bare20g)]:  # fmt: skip
        print(
            f"| {name} | {x['requests'] / x['wall_s']:.0f} | {x['cpu_share'] * 100:.1f} % | "
            f"{_rps(x):.0f} |"
        )
    print()
    print(
        f"- 200 devices at 1 s: {base['cpu_share'] * 100:.1f} % of one core (target < 5 %), "
        f"jitter p99 {base['jitter_p99_ms']:.0f} ms."
    )
    print(
        f"- Most devices kept at 1 s with jitter p99 < 50 ms and >= 99 % of polls: {best} "
        f"(target >= 2,000; the ramp ended at {ramp[-1]['devices']}"
        f"{' because the run stopped there' if keeps_up(ramp[-1]) else ', which missed'})."
    )
    print(
        f"- Contiguous reads vs one request per point: {_us(per_point) / _us(base):.1f}x less "
        f"CPU per poll at 1 s, {per_point['poll_ms'] / base['poll_ms']:.1f}x shorter polls, "
        f"{flat['polls'] / flat_pp['polls']:.1f}x more device polls per second flat out."
    )
    print(
        f"- Requests per CPU-second, flat out: gateway {_rps(flat):.0f}, bare loop "
        f"{_rps(bare_flat):.0f}: {_rps(flat) / _rps(bare_flat) * 100:.0f} % (target >= 50 %). "
        f"At 1 s with 200 devices: gateway {_rps(base):.0f}, bare loop {_rps(bare_paced):.0f} "
        f"({_rps(base) / _rps(bare_paced) * 100:.0f} %) or {_rps(bare_grid):.0f} on the same "
        f"50 ms grid ({_rps(base) / _rps(bare_grid) * 100:.0f} %). At the same 4,000 "
        f"requests/s (200 devices at 20 Hz): gateway {_rps(gw20):.0f}, bare loop "
        f"{_rps(bare20):.0f} ({_rps(gw20) / _rps(bare20) * 100:.0f} %) or {_rps(bare20g):.0f} on "
        f"the grid ({_rps(gw20) / _rps(bare20g) * 100:.0f} %)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="kind")
    for kind in ("gateway", "bare"):
        p = sub.add_parser(kind)
        p.add_argument("--devices", type=int, required=True)
        p.add_argument("--window", type=float, default=15.0)
        p.add_argument("--warmup", type=float, default=5.0)
        p.add_argument("--interval", type=float, default=1.0)
        p.add_argument("--profile", default="bench-10")
        p.add_argument("--mode", default="flat")
        p.add_argument("--with-mqtt", default=None)
        p.add_argument("--quantum", type=float, default=0.0)
        p.add_argument("--no-gc-freeze", action="store_true")
        p.add_argument("--tick", type=float, default=0.05)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--max-devices", type=int, default=4000)
    parser.add_argument("--with-mqtt", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # a device going down is the bench's own doing
    if args.kind == "gateway":
        print(json.dumps(uvloop.run(gateway_side(args))))
    elif args.kind == "bare":
        print(json.dumps(uvloop.run(bare_side(args))))
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
