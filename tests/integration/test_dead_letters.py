"""A message no attempt can handle becomes a dead letter: kept, alerted, acknowledged.

The gateway runs through ``tests.support.poisoned_kitchen``, whose kitchen raises for every
order of table T13 (a bug). That order must not hold a flow-control slot for good, nor stop
the kitchen: after a bounded number of attempts it is written to ``dead_letters.jsonl``, a
critical alert names it, it is acknowledged (a restart does not bring it back), and the other
tables' orders are served all along.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvloop

from gateway.site_file import load_site
from gateway.transport.mqtt import InboundMessage, MqttClient
from tests.support.gateway_process import GatewayProcess
from tests.support.tablet import order_payload, until

if TYPE_CHECKING:

    from gateway.transport.broker import MosquittoProcess

pytestmark = pytest.mark.integration

SITE = Path(__file__).with_name("fast-site.toml")
CFG = load_site(SITE)
TABLET = f"rst/{CFG.site.id}/tablet/tab-dl"


def test_an_order_no_attempt_can_handle_is_dead_lettered_and_the_rest_go_on(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    poisoned = GatewayProcess(
        SITE, broker.url, state, command=("tests.support.poisoned_kitchen", "T13")
    )
    bad, good, later = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    replies: dict[str, dict[str, object]] = {}
    alerts: list[dict[str, object]] = []
    letters = state / "dead_letters.jsonl"

    async def scenario() -> None:
        tablet = MqttClient(broker.url, "test-dl-tablet", clean_start=True)

        def on_message(msg: InboundMessage) -> None:
            body = json.loads(msg.payload)
            if msg.topic.endswith("/alerts"):
                alerts.append(body)
            else:
                replies[body["order_id"]] = body
            tablet.ack(msg)

        async with tablet:
            tablet.set_handler(on_message)
            tablet.subscribe(f"{TABLET}/replies")
            tablet.subscribe(f"rst/{CFG.site.id}/alerts")
            await asyncio.sleep(0.3)
            await asyncio.to_thread(poisoned.start)
            tablet.publish(f"{TABLET}/orders", order_payload(bad, "T13", "salad"))
            tablet.publish(f"{TABLET}/orders", order_payload(good, "T1", "salad"))
            assert await until(lambda: str(good) in replies, 10), "the kitchen stopped"
            assert await until(letters.exists, 10), poisoned.log()[-3000:]
            assert await until(lambda: any(a["rule"] == "dead_letter" for a in alerts), 10)
            assert str(bad) not in replies
            assert poisoned.stop() == 0
            # Acknowledged once kept: a restart without the bug does not get it again.
            healthy = GatewayProcess(SITE, broker.url, state)
            await asyncio.to_thread(healthy.start)
            try:
                tablet.publish(f"{TABLET}/orders", order_payload(later, "T2", "salad"))
                assert await until(lambda: str(later) in replies, 10)
                await asyncio.sleep(1.0)
                assert str(bad) not in replies
            finally:
                assert healthy.stop() == 0

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())

    (record,) = [json.loads(line) for line in letters.read_text().splitlines()]
    assert record["topic"] == f"{TABLET}/orders"
    assert record["owner"] == "orders"
    assert record["attempts"] == 3
    assert record["error"] == "RuntimeError: injected bug for table T13"
    assert json.loads(record["payload"])["order_id"] == str(bad)
    (alert,) = [a for a in alerts if a["rule"] == "dead_letter"]
    assert (alert["event"], alert["priority"]) == ("opened", "critical")
    assert "dead_letters.jsonl" in str(alert["message"])
    assert replies[str(good)]["status"] == "accepted"
    # The bug's traceback is in the log once, not once per attempt.
    assert poisoned.log().count("Traceback") == 1
