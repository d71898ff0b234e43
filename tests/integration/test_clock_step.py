"""A wall-clock step in a running gateway: seen end to end, in the log, on MQTT and in status.

The gateway runs through ``tests.support.stepping_clock``, whose wall clock jumps two hours
forward on SIGUSR1 (the machine's own clock is not touched).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvloop

from gateway.site_file import load_site
from gateway.transport.mqtt import InboundMessage, MqttClient
from tests.support.gateway_process import GatewayProcess

if TYPE_CHECKING:
    from gateway.transport.broker import MosquittoProcess

pytestmark = pytest.mark.integration

SITE = Path(__file__).with_name("fast-site.toml")
CFG = load_site(SITE)


def test_a_clock_step_is_logged_alerted_and_shown_by_status(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    gateway = GatewayProcess(SITE, broker.url, state, command=("tests.support.stepping_clock",))
    alerts: list[dict[str, object]] = []

    async def scenario() -> None:
        watcher = MqttClient(broker.url, "test-clock-watcher", clean_start=True)

        def on_alert(msg: InboundMessage) -> None:
            alerts.append(json.loads(msg.payload))
            watcher.ack(msg)

        async with watcher:
            watcher.set_handler(on_alert)
            watcher.subscribe(f"rst/{CFG.site.id}/alerts")
            await asyncio.sleep(0.3)
            await asyncio.to_thread(gateway.start)
            await asyncio.sleep(1.5)  # the watch has taken a few looks on the unstepped clock
            assert gateway.proc is not None
            gateway.proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                "jumped" in str(a["message"]) for a in alerts
            ):
                await asyncio.sleep(0.1)

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(scenario())
        status = subprocess.run(
            [sys.executable, "-m", "gateway", "status", "--config", str(SITE),
             "--state-dir", str(state)],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
    finally:
        assert gateway.stop() == 0
    steps = [a for a in alerts if a["rule"] == "clock_step"]
    assert len(steps) == 1, alerts
    assert "forward by 7200 s" in str(steps[0]["message"])
    assert (steps[0]["event"], steps[0]["priority"]) == ("opened", "medium")
    logged = [line for line in gateway.log().splitlines() if "jumped forward" in line]
    assert len(logged) == 1, gateway.log()[-2000:]
    assert "1 step(s)" in status.stdout
    assert "+7200 s" in status.stdout
