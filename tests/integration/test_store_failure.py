"""A store failing mid-commit: nothing acknowledged, exit 1 with one line, nothing lost after.

The gateway runs as its own process through ``tests.support.failing_store``, whose second
commit carrying an order's reply raises ``StoreError`` on the writer thread (a disk that went
away). A raw MQTT client plays the tablet: it sends each order once and never resends, so
whatever reply it gets after the restart came from the broker redelivering the order the
gateway never acknowledged.
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
TABLET = f"rst/{CFG.site.id}/tablet/tab-store"


def test_a_store_failure_mid_commit_acks_nothing_exits_1_and_a_restart_loses_nothing(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    ids = [uuid.uuid4() for _ in range(3)]
    replies: dict[str, list[dict[str, object]]] = {}
    tickets: dict[str, set[str]] = {}

    failing = GatewayProcess(
        SITE, broker.url, state, command=("tests.support.failing_store", "2")
    )

    async def scenario() -> None:
        tablet = MqttClient(broker.url, "test-store-tablet", clean_start=True)

        def on_message(msg: InboundMessage) -> None:
            body = json.loads(msg.payload)
            if msg.topic.endswith("/replies"):
                replies.setdefault(body["order_id"], []).append(body)
            else:  # a ticket on a screen's topic
                tickets.setdefault(body["order_id"], set()).add(body["ticket_id"])
            tablet.ack(msg)

        async with tablet:
            tablet.set_handler(on_message)
            tablet.subscribe(f"{TABLET}/replies")
            tablet.subscribe(f"rst/{CFG.site.id}/kds/+/tickets")
            await asyncio.sleep(0.3)
            await asyncio.to_thread(failing.start)
            tablet.publish(f"{TABLET}/orders", order_payload(ids[0], "T1"))
            assert await until(lambda: str(ids[0]) in replies, 10), "first order unanswered"
            # The second order's commit fails: the process must stop without answering it.
            tablet.publish(f"{TABLET}/orders", order_payload(ids[1], "T2"))
            code = await asyncio.to_thread(failing.wait, 20)
            assert code == 1
            assert str(ids[1]) not in replies
            assert str(ids[1]) not in tickets
            # A restart on the same state (the disk is back): the broker redelivers the
            # order that was never acknowledged; the third is new.
            restarted = GatewayProcess(SITE, broker.url, state)
            await asyncio.to_thread(restarted.start)
            try:
                tablet.publish(f"{TABLET}/orders", order_payload(ids[2], "T3"))
                # A resend of the first order: it gets the same reply.
                tablet.publish(f"{TABLET}/orders", order_payload(ids[0], "T1"))
                assert await until(
                    lambda: all(str(i) in replies for i in ids) and len(replies[str(ids[0])]) >= 2,
                    15,
                ), f"replies after the restart: {sorted(replies)}"
                assert await until(lambda: all(str(i) in tickets for i in ids), 10)
            finally:
                assert restarted.stop() == 0

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())

    log = failing.log()
    errors = [line for line in log.splitlines() if line.startswith("gateway: error:")]
    db = state / "gateway.db"
    expected = f"gateway: error: orders stopped: injected: the disk holding {db} went away"
    assert errors == [expected], log[-3000:]
    assert "Traceback" not in log
    # Every order accepted exactly once, the same answer every time it was asked.
    for i in ids:
        answers = replies[str(i)]
        assert {a["status"] for a in answers} == {"accepted"}
        assert len({json.dumps(a, sort_keys=True) for a in answers}) == 1
