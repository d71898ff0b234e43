"""A fry ticket that fires starts the fryer: order in over MQTT, guarded Modbus writes out.

The whole path is real: the gateway (in process), a private Mosquitto, and a simulated fryer
(a pymodbus server laid out from the shipped profile). Only the write guard stands between a
ticket and the appliance, and the audit log records what was written.
"""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvloop

from gateway.app import Gateway
from gateway.devices.profile import load_profiles
from gateway.site_file import parse_site
from gateway.transport.mqtt import MqttClient
from simulators.appliances.server import SimulatedAppliance

if TYPE_CHECKING:
    from gateway.transport.broker import MosquittoProcess

pytestmark = pytest.mark.integration

SITE = Path(__file__).with_name("fast-site.toml")


def _site(broker_url: str, state: Path, fryer_port: int) -> dict[str, object]:
    data = tomllib.loads(SITE.read_text(encoding="utf-8"))
    data["mqtt"] = {"url": broker_url}
    data["state"] = {"dir": str(state), "durability": "normal"}
    data["devices"] = [
        {
            "id": "fryer-1",
            "profile": "fryer-2vat",
            "host": "127.0.0.1",
            "port": fryer_port,
            "station": "fry",
        },
    ]
    data["appliance_actions"] = [
        # In file order: the cook time first, then the timer starts.
        {
            "station": "fry",
            "group": "fried",
            "device": "fryer-1",
            "point": "vat1_cook_time",
            "value": 180,
        },
        {
            "station": "fry",
            "items": ["fries"],
            "device": "fryer-1",
            "point": "vat1_timer_start",
            "value": True,
        },
    ]
    return data


def test_a_fired_fry_ticket_sets_and_starts_the_fryer_once(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    profile = load_profiles()["fryer-2vat"]

    async def scenario() -> None:
        async with SimulatedAppliance(profile, device_id="fryer-1", physics=False) as fryer:
            cfg = parse_site(_site(broker.url, tmp_path / "state", fryer.port))
            async with Gateway(cfg) as gw, MqttClient(broker.url, "test-tablet") as tablet:
                order = {
                    "order_id": str(uuid.uuid4()),
                    "table": "T3",
                    "placed_at": "2026-11-25T19:00:00+00:00",
                    "items": [{"line_id": "1", "item": "fries", "qty": 2}],
                }
                payload = json.dumps(order).encode()
                tablet.publish("rst/itest/tablet/tab-1/orders", payload)
                # The same order again: it must not start the fryer a second time.
                tablet.publish("rst/itest/tablet/tab-1/orders", payload)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    written = [p for p, _ in fryer.bank.writes]
                    if "vat1_timer_start" in written:
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # room for a wrong second write to show up
                assert [p for p, _ in fryer.bank.writes] == ["vat1_cook_time", "vat1_timer_start"]
                assert fryer.bank.get("vat1_cook_time") == 180
                assert gw.stats.orders_duplicate == 1

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
    audit = [
        json.loads(line) for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()
    ]
    written = [(r["point"], r["outcome"]) for r in audit if r["outcome"] == "written"]
    assert written == [("vat1_cook_time", "written"), ("vat1_timer_start", "written")]
    assert all(r["source"].startswith("action:") for r in audit)
