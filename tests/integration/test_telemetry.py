"""Telemetry end to end: simulated appliances -> a real gateway process -> VictoriaMetrics.

The appliances count: each read of register 0 serves the next number, and the simulator keeps
what it served. So the test knows every value a device gave and can check, value by value,
that what the database holds is exactly what the gateway's history holds (every reading taken,
once, in order), and that the history holds only values the devices served.

The outage test stops the database, kills the gateway with SIGKILL while it is down, starts
both again and waits for the backlog. ``TELEMETRY_OUTAGE_S`` sets the outage (CI: 6 s; the
issue's size: ``TELEMETRY_OUTAGE_S=30``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gateway.codec import encode
from gateway.contract import Telemetry
from gateway.telemetry.history import HistoryReader
from gateway.telemetry.lineproto import parse_field_set
from gateway.telemetry.notes import NOTE_FIELDS
from gateway.transport.broker import free_ports
from tests.support.gateway_process import GatewayProcess

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.telemetry.victoria import VictoriaMetrics
    from gateway.transport.broker import MosquittoProcess

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
DEVICES = 3
POLL_S = 0.1
OUTAGE_S = float(os.environ.get("TELEMETRY_OUTAGE_S", "6"))

PROFILE = f"""
[profile]
id = "counting-fridge"
vendor = "test"
model = "counts its reads"
kind = "fridge"
protocol = "modbus"

[modbus]
poll_s = {POLL_S}
timeout_s = 0.3

[[points]]
id = "count"
name = "Reads served (stands in for the cabinet temperature)"
table = "holding"
address = 0
food_safety = true

[[points]]
id = "tenths"
name = "The count in tenths (a float field, not food-safety)"
table = "holding"
address = 1
scale = 0.1
"""


class CountingDevices:
    """Modbus servers in a thread of their own; register 0 counts the reads it answers."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.served: dict[int, list[int]] = defaultdict(list)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sims")
        self._servers: list[ModbusTcpServer] = []

    def _device(self, port: int) -> SimDevice:
        async def action(fc: int, _start: int, address: int, count: int,
                         registers: list[int], values: Any) -> None:  # fmt: skip
            if fc == 3 and values is None and address == 0 and count >= 2:
                n = len(self.served[port]) + 1
                registers[0], registers[1] = n, n  # what this read will answer
                self.served[port].append(n)

        hr = [SimData(0, values=[0, 0], datatype=DataType.REGISTERS)]
        bits = [SimData(0, count=1, values=False, datatype=DataType.BITS)]
        ir = [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]
        return SimDevice(id=1, simdata=(bits, bits, hr, ir), action=action)

    def __enter__(self) -> Self:
        self._thread.start()

        async def start() -> None:
            for port in self.ports:
                server = ModbusTcpServer([self._device(port)], address=(HOST, port))
                await server.serve_forever(background=True)
                self._servers.append(server)

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for server in self._servers:
                await server.shutdown()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def site_file(
    tmp_path: Path, ports: list[int], influx_url: str | None, extra_devices: str = ""
) -> Path:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "counting.toml").write_text(PROFILE)
    devices = "".join(
        f'\n[[devices]]\nid = "fridge-{n}"\nprofile = "counting-fridge"\nstation = "cold"\n'
        f'location = "Walk-in {n}"\nhost = "{HOST}"\nport = {port}\n'
        for n, port in enumerate(ports)
    ) + extra_devices
    influx = (
        f'[telemetry.influx]\nurl = "{influx_url}"\norg = "itest"\nbucket = "kitchen"\n'
        "batch_points = 200\nflush_s = 0.2\n"
        if influx_url
        else ""
    )
    path = tmp_path / "site.toml"
    path.write_text(f"""
devices_profiles = ["{profiles}"]

[site]
id = "itest"
name = "telemetry"

[state]
durability = "normal"

[telemetry]
history_days = 1

{influx}

[tables]
count = 1

[[stations]]
id = "cold"
name = "Cold"

[[groups]]
id = "g"
names = {{ en = "g" }}

[[items]]
id = "i"
group = "g"
names = {{ en = "i" }}
price = 1
prep_s = 1

[[routes]]
group = "g"
station = "cold"
{devices}
""")
    return path


def history_rows(state: Path) -> dict[str, list[tuple[int, int, float]]]:
    """Per device: (time in ms, count, tenths) of every reading in the history, in time order."""
    out: dict[str, list[tuple[int, int, float]]] = {}
    with HistoryReader(state / "telemetry.db", readonly=True) as h:
        for device in h.devices():
            merged: dict[int, dict[str, Any]] = defaultdict(dict)
            for at_ns, _safety, fields in h.query(device, 0, 2**62, leave_out=NOTE_FIELDS):
                merged[at_ns].update(parse_field_set(fields))
            if merged:  # the gateway's own notes (alerts about "gateway", say) are left out
                out[device] = [(ns // 1_000_000, v["count"], v["tenths"])
                               for ns, v in sorted(merged.items())]  # fmt: skip
    return out


def database_rows(tsdb: VictoriaMetrics) -> dict[str, list[tuple[int, int, float]]]:
    """The same, as exported by the database (fields are separate series there)."""
    tsdb.force_flush()
    by: dict[tuple[str, str], dict[int, float]] = {}
    for s in tsdb.export('{__name__=~"fridge_.*"}'):
        labels = s.metric
        assert labels["site"] == "itest"
        assert labels["station"] == "cold"
        assert labels["location"].startswith("Walk-in ")
        points = dict(zip(s.timestamps, s.values, strict=True))
        assert len(points) == len(s.timestamps), "a timestamp twice in one series"
        by[labels["device"], labels["__name__"]] = points
    out: dict[str, list[tuple[int, int, float]]] = {}
    for device in sorted({d for d, _ in by}):
        counts, tenths = by.get((device, "fridge_count"), {}), by.get((device, "fridge_tenths"), {})
        assert counts.keys() == tenths.keys(), "one field of a reading arrived without the other"
        out[device] = [(t, int(counts[t]), tenths[t]) for t in sorted(counts)]
    return out


def history_head(state: Path) -> int:
    if not (state / "telemetry.db").exists():
        return 0
    with HistoryReader(state / "telemetry.db", readonly=True) as h:
        return h.head()


def caught_up(state: Path) -> bool:
    with HistoryReader(state / "telemetry.db", readonly=True) as h:
        cursor = h.cursor("influx")
        return cursor is not None and not cursor.splitting and cursor.live >= h.head() > 0


def wait_for(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def test_an_outage_and_a_kill_lose_no_reading_and_duplicate_none(
    tmp_path: Path, broker: MosquittoProcess, victoria: VictoriaMetrics
) -> None:
    ports = free_ports(DEVICES)
    state = tmp_path / "state"
    gw = GatewayProcess(site_file(tmp_path, ports, victoria.url), broker.url, state)
    with CountingDevices(ports) as sims:
        gw.start()
        try:
            wait_for(lambda: caught_up(state), 15, "the first readings in the database")
            time.sleep(1.0)
            victoria.stop()  # the database goes away...
            time.sleep(OUTAGE_S / 2)
            gw.kill()  # ...and the gateway is killed while it is away
            gw.start()
            time.sleep(OUTAGE_S / 2)
            victoria.restart()
            time.sleep(1.0)
        finally:
            served_before_stop = {p: len(v) for p, v in sims.served.items()}
            # The devices stop answering: no new readings, so the backlog can be awaited.
    try:
        wait_for(lambda: caught_up(state), 30, "the backlog to drain")
    finally:
        gw.stop()

    # One line per gateway process for the outage, saying what to do; one when it is back.
    log = gw.log()
    assert 1 <= log.count("does not answer (Failed to establish a new connection") <= 2, log
    assert "fix: check that the database runs" in log
    assert log.count("telemetry sink influx works again") == 1, log
    kept = history_rows(state)
    stored = database_rows(victoria)
    assert set(kept) == {f"fridge-{n}" for n in range(DEVICES)}
    for n, port in enumerate(ports):
        device = f"fridge-{n}"
        counts = [c for _, c, _ in kept[device]]
        served = sims.served[port]
        # Every reading taken arrived once, in order, with its own timestamp and both fields
        # (VictoriaMetrics keeps 12 significant digits of a float: 0.30000000000000004 is 0.3).
        assert [(t, c) for t, c, _ in stored[device]] == [(t, c) for t, c, _ in kept[device]]
        assert [x for _, _, x in stored[device]] == pytest.approx([x for _, _, x in kept[device]])
        # What was taken is what the device served, in order, each value once...
        assert counts == sorted(set(counts)), device
        assert set(counts) <= set(served), device
        assert [t for _, _, t in kept[device]] == pytest.approx([c * 0.1 for c in counts])
        # ...and the run covered the outage: readings during it, across the kill, are there.
        assert len(counts) > (OUTAGE_S + 2) / POLL_S * 0.5, (device, len(counts))
        # Lost: only what was served to the killed process and not yet on its disk (a commit
        # waits 50 ms for more), and whatever was in flight when the devices stopped.
        missing = sorted(set(served[: served_before_stop[port]]) - set(counts))
        assert len(missing) <= 6, (device, missing)


def gateway_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def test_sensor_node_readings_land_in_the_same_history_and_are_queried(
    tmp_path: Path, broker: MosquittoProcess
) -> None:
    probe = '\n[[devices]]\nid = "probe-1"\nprofile = "fridge-probe-node"\nlocation = "Reach-in"\n'
    site = site_file(tmp_path, [], None, probe)
    state = tmp_path / "state"
    gw = GatewayProcess(site, broker.url, state)
    node = paho.Client(CallbackAPIVersion.VERSION2, client_id="probe-1")
    node.connect(HOST, broker.port)
    node.loop_start()
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    try:
        gw.start()
        for seq in range(1, 4):
            # The node's JSON says 4, not 4.0: the field is a float all the same.
            values = {"temp_c": 3 + seq, "door_open": seq == 2, "rssi_dbm": -60 - seq}
            body = encode(Telemetry(device="probe-1", at=at + timedelta(seconds=seq), seq=seq,
                                    values=values))  # fmt: skip
            node.publish("rst/itest/device/probe-1/telemetry", body, qos=0).wait_for_publish(5)
        wait_for(lambda: history_head(state) >= 6, 15, "the probe's readings in the history")
    finally:
        node.loop_stop()
        node.disconnect()
        gw.stop()

    out = gateway_command("telemetry", "query", "probe-1", "--since", "1h", "--format", "json",
                          "--config", str(site), "--state-dir", str(state))  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    temps = [r for r in rows if r["point"] == "temp_c"]
    assert all(isinstance(r["value"], float) for r in temps)
    assert [(r["value"], r["unit"], r["food_safety"]) for r in temps] == [
        (4.0, "°C", True), (5.0, "°C", True), (6.0, "°C", True)
    ]
    assert temps[0]["time"].startswith((at + timedelta(seconds=1)).astimezone().isoformat()[:19])
    rssi = [r["value"] for r in rows if r["point"] == "rssi_dbm"]
    assert rssi == [-61, -62, -63]  # an int field stays an int
    status = gateway_command(
        "telemetry", "status", "--config", str(site), "--state-dir", str(state)
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert "sinks: none configured" in status.stdout
    assert "dropped: nothing" in status.stdout
