"""A fault through the whole gateway: a walk-in warms, the rule opens an alert, maintenance
acknowledges it over MQTT, the HACCP record keeps the excursion and the corrective action, and a
backtest of the exported readings raises the same alerts at the same reading times.

The walk-in is a pymodbus server with the walk-in profile's register map whose cabinet
temperature the test sets (an injected fault); the gateway is the real process on a real
Mosquitto. The cold-holding rule is shortened by the site file's override (held 1.1 s instead
of 30 minutes), as a site would tune it, so the run takes seconds.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

import pytest
from pymodbus.server import ModbusTcpServer

from gateway.devices.profile import BUILTIN_PROFILES, load_profile
from gateway.transport.broker import free_ports
from simulators.appliances.field import Quirks, sparse_device
from tests.support.gateway_process import GatewayProcess

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.transport.broker import MosquittoProcess

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
FRIDGE = load_profile(BUILTIN_PROFILES / "walkin-fridge.toml")
OTHER_RULES = ("warming", "compressor_not_starting", "door_recovery", "door_left_open",
               "compressor_fault", "probe_stuck", "silent")  # fmt: skip


class Cabinet(Quirks):
    """Answers reads of the cabinet temperature (input register 0) with what the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.temp_c = 3.0

    async def action(self, function_code: int, _start_address: int, address: int, count: int,
                     _registers: list[int], values: Any) -> Any:  # fmt: skip
        if function_code == 4 and values is None and address == 0 and count >= 1:
            _registers[0] = round(self.temp_c * 10) & 0xFFFF  # i16 x 0.1
        return await super().action(function_code, _start_address, address, count,
                                    _registers, values)  # fmt: skip


class WalkIn:
    """The walk-in's controller, served from a thread of its own."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cabinet = Cabinet()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="walk-in")
        self._server: ModbusTcpServer | None = None

    def __enter__(self) -> Self:
        self._thread.start()

        async def start() -> None:
            device = sparse_device(FRIDGE, quirks=self.cabinet)
            self._server = ModbusTcpServer([device], address=(HOST, self.port))
            await self._server.serve_forever(background=True)

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._server is not None:
                await self._server.shutdown()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def site_file(tmp_path: Path, port: int) -> Path:
    disabled = "".join(f"\n[devices.rules.{r}]\nenabled = false\n" for r in OTHER_RULES)
    path = tmp_path / "site.toml"
    path.write_text(f"""
[site]
id = "faults"
name = "faults"
[state]
durability = "normal"
[haccp]
interval_min = 1
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
[[devices]]
id = "fridge-1"
profile = "walkin-fridge"
station = "cold"
host = "{HOST}"
port = {port}
poll_s = 0.2
[devices.rules.cold_holding]
hold_s = 1.1
clear_s = 0.5
{disabled}
""")
    return path


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def to_ms(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def live_events(state: Path, alert_id: str) -> list[tuple[str, datetime]]:
    """(event, time to the millisecond) of one alert, from the gateway's alert history.

    Milliseconds: what the query command's CSV keeps of a reading's time.
    """
    out = []
    for line in (state / "alerts.jsonl").read_text().splitlines():
        ev = json.loads(line)
        if ev["alert"]["alert_id"] == alert_id and ev["event"] in ("opened", "cleared"):
            out.append((ev["event"], to_ms(ev["at"])))
    return out


def wait_for(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def test_a_warming_walk_in_is_alerted_acknowledged_recorded_and_backtested_alike(
    tmp_path: Path, broker: MosquittoProcess
) -> None:
    [port] = free_ports(1)
    site = site_file(tmp_path, port)
    state = tmp_path / "state"
    gw = GatewayProcess(site, broker.url, state)
    alert_id = "fridge-1:cold_holding"
    common = ["--config", str(site), "--state-dir", str(state)]
    with WalkIn(port) as walk_in:
        gw.start()
        try:
            time.sleep(2.0)
            walk_in.cabinet.temp_c = 8.0  # the compressor has failed
            wait_for(lambda: (state / "alerts.jsonl").exists()
                     and live_events(state, alert_id), 15, "the cold-holding alert")  # fmt: skip
            listed = gateway("alerts", "list", *common)
            assert alert_id in listed.stdout, listed.stdout + listed.stderr
            ack = gateway("alerts", "ack", alert_id, "--by", "ben", "--note",
                          "stock moved to the reach-in", "--config", str(site),
                          "--mqtt-url", broker.url)  # fmt: skip
            assert ack.returncode == 0, ack.stdout + ack.stderr
            again = gateway("alerts", "ack", alert_id, "--by", "ben", "--note", "again",
                            "--config", str(site), "--mqtt-url", broker.url)  # fmt: skip
            assert again.returncode == 0, again.stdout  # the same ack again: already done
            time.sleep(1.0)
            walk_in.cabinet.temp_c = 3.0  # repaired
            wait_for(lambda: [e for e, _ in live_events(state, alert_id)] == ["opened", "cleared"],
                     15, "the alert to clear")  # fmt: skip
            time.sleep(1.0)
        finally:
            gw.stop()

    live = live_events(state, alert_id)
    # The food-safety record: the excursion, the corrective action, a chain that verifies.
    verify = gateway("haccp", "verify", *common)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    day = live[0][1].astimezone().date().isoformat()
    report = gateway("haccp", "report", "--from", day, "--to", day, "--format", "csv", *common)
    assert report.returncode == 0, report.stderr
    assert "stock moved to the reach-in" in report.stdout
    assert "excursion" in report.stdout.lower()

    # The same readings, exported and backtested: the same alert at the same reading times.
    csv_out = gateway("telemetry", "query", "fridge-1", "--since", "1h", "--format", "csv",
                      *common)  # fmt: skip
    assert csv_out.returncode == 0, csv_out.stderr
    trace = tmp_path / "trace.csv"
    trace.write_text(csv_out.stdout)
    back = gateway("alerts", "backtest", "--device", "fridge-1", "--trace", str(trace),
                   "--format", "json", *common)  # fmt: skip
    assert back.returncode == 0, back.stderr
    events = [(e["event"], to_ms(e["at"])) for e in json.loads(back.stdout)["events"]
              if e["alert_id"] == alert_id and e["event"] in ("opened", "cleared")]  # fmt: skip
    assert events == live
