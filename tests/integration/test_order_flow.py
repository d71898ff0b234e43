"""Orders from simulated tablets to simulated screens through the real gateway and Mosquitto.

The gateway runs as its own process (so it can be killed with SIGKILL), the broker is a private
Mosquitto (so it can be killed and restarted on the same port), and the tablets and screens are
the simulators: tablets resend an order that got no reply, screens dedupe ``(ticket_id,
version)``. What a kitchen relies on is asserted from what the screens showed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import pytest
import uvloop

from gateway.contract import Alert
from gateway.site_file import load_site
from gateway.transport.mqtt import InboundMessage, MqttClient
from simulators.arrivals import Burst, FixedRate
from simulators.kds import KitchenScreens
from simulators.tablets import TabletFleet
from tests.support.gateway_process import GatewayProcess

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.transport.broker import MosquittoProcess

pytestmark = pytest.mark.integration

SITE = Path(__file__).with_name("fast-site.toml")
CFG = load_site(SITE)
EXPO = "expo"
# Orders/s in the bursts: the tablets and screens share one Python process with the test, and
# that process, not the gateway, is the limit (bench/routing measures the gateway alone).
RATE = 200


def run(coro: Awaitable[None]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)  # type: ignore[arg-type]


async def _until(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.1)
    return cond()


def _latest_tickets(screens: KitchenScreens) -> dict[tuple[UUID, str], dict[UUID, object]]:
    """Per (order, station): ticket_id -> the newest version that station's screen showed."""
    latest: dict[tuple[UUID, str], dict[UUID, object]] = defaultdict(dict)
    for station, shown in screens.records.items():
        for s in shown:
            t = s.ticket
            per = latest[t.order_id, station]
            cur = per.get(t.ticket_id)
            if cur is None or cur.version < t.version:  # type: ignore[attr-defined]
                per[t.ticket_id] = t
    return latest


def _missing_lines(fleet: TabletFleet, screens: KitchenScreens) -> list[str]:
    """Every expected (order, line, station) that no screen shows, as readable strings."""
    latest = _latest_tickets(screens)
    missing = []
    for sent in fleet.result.valid_orders():
        oid = sent.order.order_id
        for line in sent.order.lines:
            for station in (line.station, *line.also, EXPO):
                tickets = latest.get((oid, station), {}).values()
                if not any(
                    i.line_id == line.line_id
                    for t in tickets
                    for i in t.items  # type: ignore[attr-defined]
                ):
                    missing.append(f"{oid}/{line.line_id}@{station}")
    return missing


def _assert_exactly_once(
    fleet: TabletFleet, screens: KitchenScreens, *, every_malformed_answered: bool = True
) -> None:
    results = fleet.result
    valid = results.valid_orders()
    assert valid, "the fleet sent no valid orders"
    # Every order got one final reply: accepted if valid, rejected if not, the same every time.
    assert not results.unanswered(), f"{len(results.unanswered())} valid orders got no reply"
    for oid, sent in results.orders.items():
        reply = results.replies.get(oid)
        if sent.order.kind in ("broken_json", "oversize"):
            continue  # the gateway cannot read the id: the reply carries none
        if reply is None and not sent.order.valid and not every_malformed_answered:
            # The simulated tablets retry only valid orders; a broker killed with a rejection
            # queued loses that reply for good (valid orders are covered by the retry).
            continue
        assert reply is not None, f"order {oid} ({sent.order.kind}) got no reply"
        assert reply.accepted == sent.order.valid, (oid, sent.order.kind, reply.reply)
        assert reply.consistent, f"order {oid} got different replies"
    assert results.counters.rejected >= 1
    # Lost = 0: every line of every valid order is on its station's screen and on the expo.
    missing = _missing_lines(fleet, screens)
    assert not missing, f"{len(missing)} lines never shown, e.g. {missing[:5]}"
    # Duplicates = 0: one ticket per (order, station, course), each line on exactly one prep
    # station (plus copies a route asks for), and no screen showed a (ticket_id, version) twice.
    latest = _latest_tickets(screens)
    for (oid, station), tickets in latest.items():
        courses = [t.course for t in tickets.values()]  # type: ignore[attr-defined]
        assert len(courses) == len(set(courses)), f"order {oid} has two tickets at {station}"
    for sent in results.valid_orders():
        for line in sent.order.lines:
            on = {
                station
                for (oid, station), tickets in latest.items()
                if oid == sent.order.order_id and station != EXPO
                for t in tickets.values()
                for i in t.items  # type: ignore[attr-defined]
                if i.line_id == line.line_id and not i.voided
            }
            assert on == {line.station, *line.also}, (sent.order.order_id, line, on)
    for station, shown in screens.records.items():
        keys = [s.key for s in shown]
        assert len(keys) == len(set(keys)), f"screen {station} showed a ticket version twice"


async def _burst(
    broker: MosquittoProcess,
    gateway: GatewayProcess,
    count: int,
    per_s: float,
    chaos: Callable[[], Awaitable[None]] | None = None,
    *,
    every_malformed_answered: bool = True,
) -> None:
    async with (
        KitchenScreens(
            CFG, broker.url, speed=1.0, heartbeat_s=0.5, expo_bump_after_s=1.0, record_all=True
        ) as screens,
        TabletFleet(
            CFG,
            broker.url,
            schedule=FixedRate(per_s=per_s, count=count),
            tablets=8,
            seed=7,
            reply_timeout_s=3.0,
            resend_fraction=0.02,
            malformed_fraction=0.02,
            fire_courses=False,
            record_all=True,
        ) as fleet,
    ):
        sender = asyncio.create_task(fleet.run())
        if chaos is not None:
            await chaos()
        await sender
        assert await fleet.wait_settled(60), "tablets still waiting for replies"
        await _until(lambda: not _missing_lines(fleet, screens), 30)
        _assert_exactly_once(fleet, screens, every_malformed_answered=every_malformed_answered)
        c = fleet.result.counters
        print(
            f"\n{count} orders: accepted={c.accepted} rejected={c.rejected} "
            f"duplicate replies={c.duplicate_replies}; gateway starts={gateway.starts}"
        )


def test_burst_of_5000_orders_reaches_each_station_exactly_once(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    with GatewayProcess(SITE, broker.url, tmp_path / "state") as gateway:
        run(_burst(broker, gateway, 5000, RATE))


def test_gateway_killed_twice_mid_burst_loses_and_duplicates_nothing(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    gateway = GatewayProcess(SITE, broker.url, tmp_path / "state")

    async def chaos() -> None:
        for _ in range(2):
            await asyncio.sleep(3.0)
            gateway.kill()
            await asyncio.sleep(0.5)
            await asyncio.to_thread(gateway.start)

    with gateway:
        run(_burst(broker, gateway, 5000, RATE, chaos))
    assert gateway.starts == 3


def test_broker_killed_mid_burst_loses_and_duplicates_nothing(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    gateway = GatewayProcess(SITE, broker.url, tmp_path / "state")

    async def chaos() -> None:
        await asyncio.sleep(4.0)
        broker.kill()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(broker.restart)

    with gateway:
        run(_burst(broker, gateway, 5000, RATE, chaos, every_malformed_answered=False))


def test_silent_screen_redirects_tickets_to_backup_and_alerts(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    alerts: list[Alert] = []

    async def scenario() -> None:
        watcher = MqttClient(broker.url, "test-alert-watcher", clean_start=True)

        def on_alert(msg: InboundMessage) -> None:
            alerts.append(Alert.model_validate_json(msg.payload))
            watcher.ack(msg)

        async with (
            watcher,
            KitchenScreens(
                CFG, broker.url, heartbeat_s=0.5, bump=False, record_all=True
            ) as screens,
        ):
            watcher.set_handler(on_alert)
            watcher.subscribe(f"rst/{CFG.site.id}/alerts")
            screens.silence("grill")
            # The gateway's silence timeout is 10 s: wait for the alert, then order.
            assert await _until(lambda: any(a.rule == "kds_silent" for a in alerts), 25)
            async with TabletFleet(
                CFG, broker.url, schedule=Burst(30), seed=3, record_all=True, fire_courses=False
            ) as fleet:
                await fleet.run()
                assert await fleet.wait_settled(20)
            grill_orders = {
                s.order.order_id
                for s in fleet.result.valid_orders()
                if any(line.station == "grill" for line in s.order.lines)
            }
            assert grill_orders, "no order had a grill item"

            def redirected() -> set[UUID]:
                return {
                    s.ticket.order_id
                    for s in screens.records["fry"]
                    if s.ticket.redirected_from == "grill"
                }

            assert await _until(lambda: grill_orders <= redirected(), 20)
            assert not any(s.ticket.order_id in grill_orders for s in screens.records["grill"])

    with GatewayProcess(SITE, broker.url, tmp_path / "state"):
        run(scenario())
    silent = [a for a in alerts if a.rule == "kds_silent" and a.subject == "grill"]
    assert len(silent) == 1, alerts
    assert (silent[0].event, silent[0].priority) == ("opened", "high")  # fry takes its tickets
    assert "fry" in silent[0].message


def test_malformed_orders_get_a_rejected_reply_naming_the_problem(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    replies: list[dict[str, object]] = []
    topic = f"rst/{CFG.site.id}/tablet/tab-x"

    async def scenario() -> None:
        client = MqttClient(broker.url, "test-raw-tablet", clean_start=True)

        def on_reply(msg: InboundMessage) -> None:
            replies.append(json.loads(msg.payload))
            client.ack(msg)

        async with client:
            client.set_handler(on_reply)
            client.subscribe(f"{topic}/replies")
            await asyncio.sleep(0.2)
            good_line = {"line_id": "1", "item": "burger", "qty": 1}
            base = {"table": "T1", "placed_at": "2026-11-25T19:00:00+01:00"}
            bad = [
                b"{not json",
                json.dumps(
                    {
                        **base,
                        "order_id": "9d4c1f49-7a39-4e34-8d8c-3c1f1e8f0a01",
                        "items": [{**good_line, "price": 1}],
                    }
                ).encode(),
                json.dumps(
                    {
                        **base,
                        "order_id": "9d4c1f49-7a39-4e34-8d8c-3c1f1e8f0a02",
                        "items": [{**good_line, "qty": 100000}],
                    }
                ).encode(),
                json.dumps(
                    {
                        **base,
                        "order_id": "9d4c1f49-7a39-4e34-8d8c-3c1f1e8f0a03",
                        "items": [{**good_line, "item": "caviar"}],
                    }
                ).encode(),
                b"{" + b" " * 70_000 + b"}",
            ]
            for payload in bad:
                client.publish(f"{topic}/orders", payload)
            assert await _until(lambda: len(replies) == len(bad), 10)

    with GatewayProcess(SITE, broker.url, tmp_path / "state"):
        run(scenario())
    by_id = {r["order_id"]: r for r in replies}
    assert all(r["status"] == "rejected" for r in replies)
    paths = {
        oid: [e["path"] for e in r["errors"]]  # type: ignore[attr-defined]
        for oid, r in by_id.items()
    }
    assert paths["9d4c1f49-7a39-4e34-8d8c-3c1f1e8f0a01"] == ["items[0].price"]
    assert paths["9d4c1f49-7a39-4e34-8d8c-3c1f1e8f0a02"] == ["items[0].qty"]
    assert paths["9d4c1f49-7a39-4e34-8d8c-3c1f1e8f0a03"] == ["items[0].item"]
    assert sum(1 for r in replies if r["order_id"] is None) == 2  # not JSON, too large


def test_a_bump_lost_in_a_broker_crash_is_sent_again_and_the_table_goes_out(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    """The broker acked the cook's bump, then died before the gateway had it: not lost."""
    gateway = GatewayProcess(SITE, broker.url, tmp_path / "state")
    order = {
        "order_id": "6f1c2a0e-8d3b-4c5a-9e7f-1a2b3c4d5e6f",
        "table": "T1",
        "placed_at": "2026-01-01T18:00:00Z",
        "items": [{"line_id": "1", "item": "fries", "qty": 1}],  # the fry screen and the expo
    }

    async def scenario() -> None:
        tablet = MqttClient(broker.url, "test-tablet", clean_start=True)
        async with (
            tablet,
            KitchenScreens(
                CFG, broker.url, speed=1.0, heartbeat_s=0.5, expo_bump_after_s=0.2,
                record_all=True,
            ) as screens,
        ):  # fmt: skip
            tablet.publish(f"rst/{CFG.site.id}/tablet/tab-1/orders", json.dumps(order).encode())
            assert await _until(lambda: bool(screens.records["fry"]), 10)
            # Away cleanly: its session keeps its subscriptions, so the broker queues the bump.
            assert await asyncio.to_thread(gateway.stop) == 0
            assert await _until(lambda: screens.counters["fry"].bumps == 1, 10)
            await asyncio.sleep(0.3)
            broker.kill()  # the queued bump was never written to disk
            await asyncio.to_thread(broker.restart)
            await asyncio.to_thread(gateway.start)
            # The expo bumps only a ticket the gateway made "ready", on the fry bump alone.
            assert await _until(lambda: screens.counters["expo"].bumps == 1, 20), screens.counters
            assert screens.counters["fry"].sent_again >= 1
            assert screens.counters["fry"].bumps == 1  # sent once by the cook, once again

    with gateway:
        run(scenario())


def test_the_gateway_says_online_again_after_the_broker_lost_its_status(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    """A broker restarted without its retained messages must not show the gateway as unknown."""
    seen: list[str] = []

    async def scenario() -> None:
        broker.kill()  # never saved: the retained "online" is gone with it
        await asyncio.to_thread(broker.restart)
        watcher = MqttClient(broker.url, "test-status-watcher", clean_start=True)

        def on_status(msg: InboundMessage) -> None:
            seen.append(json.loads(msg.payload)["state"])
            watcher.ack(msg)

        async with watcher:
            watcher.set_handler(on_status)
            # Subscribed after the restart: the retained status, or the gateway's own publish
            # if it reconnects after us; without it, nothing.
            watcher.subscribe(f"rst/{CFG.site.id}/device/{CFG.client_id}/status")
            assert await _until(lambda: "online" in seen, 15), seen

    with GatewayProcess(SITE, broker.url, tmp_path / "state"):
        run(scenario())


def _reply_committed(db: Path, order_id: UUID) -> bool:
    """Whether the state file holds the reply to ``order_id`` (read as another process would)."""
    if not db.exists():
        return False
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT 1 FROM replies WHERE order_id = ?", (order_id.bytes,))
        return row.fetchone() is not None
    except sqlite3.Error:
        return False  # not created yet
    finally:
        conn.close()


def test_a_reply_lost_to_a_kill_just_after_its_commit_comes_after_the_restart(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    """A tablet that never resends still gets its reply: a restart sends recent replies again."""
    state = tmp_path / "state"
    gateway = GatewayProcess(SITE, broker.url, state)
    order_id = UUID("3b8e6f7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b")
    order = {
        "order_id": str(order_id),
        "table": "T1",
        "placed_at": "2026-01-01T18:00:00Z",
        "items": [{"line_id": "1", "item": "fries", "qty": 1}],
    }
    topic = f"rst/{CFG.site.id}/tablet/tab-k"
    replies: list[dict[str, object]] = []

    async def scenario() -> None:
        # Sent by a client that is not subscribed to the replies: whatever the first life
        # published is heard by nobody, as if it had died between the commit and the publish.
        sender = MqttClient(broker.url, "test-tablet-k-sender", clean_start=True)
        async with sender:
            sender.publish(f"{topic}/orders", json.dumps(order).encode())
            assert await _until(lambda: _reply_committed(state / "gateway.db", order_id), 10)
        gateway.kill()
        tablet = MqttClient(broker.url, "test-tablet-k", clean_start=True)

        def on_reply(msg: InboundMessage) -> None:
            replies.append(json.loads(msg.payload))
            tablet.ack(msg)

        async with tablet:
            tablet.set_handler(on_reply)
            tablet.subscribe(f"{topic}/replies")
            await asyncio.sleep(0.2)  # subscribed before the gateway is back
            # The tablet never publishes the order again: only the restart can answer it.
            await asyncio.to_thread(gateway.start)
            assert await _until(lambda: bool(replies), 10), gateway.log()[-2000:]

    with gateway:
        run(scenario())
    assert [(r["order_id"], r["status"]) for r in replies] == [(str(order_id), "accepted")]
    assert "1 recent replies sent again" in gateway.log()
