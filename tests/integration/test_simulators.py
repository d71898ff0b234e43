"""The simulators against a real Mosquitto, with a tiny stand-in gateway where one is needed."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Self
from uuid import UUID, uuid4

import pytest

from gateway.app import Gateway
from gateway.clock import ScaledClock
from gateway.codec import DecodeFailure, decode_command, decode_order, encode
from gateway.config import DeviceInstance, SiteConfig
from gateway.contract import (
    CommandReply,
    DeviceState,
    DeviceStatus,
    FieldError,
    Heartbeat,
    KdsAction,
    KdsEvent,
    OrderReply,
    OrderRequest,
    ReplyStatus,
    Ticket,
    TicketItem,
    TicketStatus,
    Topics,
)
from gateway.demo import probe_broker
from gateway.demo_appliances import DemoAppliances
from gateway.devices.profile import load_profiles
from gateway.routing.rules import Resolution, RouteTable
from gateway.site_file import load_site
from gateway.transport.broker import free_port
from gateway.transport.mqtt import InboundMessage, MqttClient
from simulators.arrivals import Burst, FixedRate
from simulators.kds import KitchenScreens
from simulators.orders import MALFORMED_KINDS
from simulators.tablets import TabletFleet

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CFG = load_site(ROOT / "examples" / "demo-site.toml")
TOPICS = Topics(CFG.site.id)


# --- helpers --------------------------------------------------------------------------------


class Recorder:
    """A raw subscriber: keeps every message on its filters, acks at once."""

    def __init__(self, url: str, name: str, *filters: str) -> None:
        self.client = MqttClient(url, name, clean_start=True)
        self.filters = filters
        self.messages: list[InboundMessage] = []
        self.changed = asyncio.Event()

    async def __aenter__(self) -> Self:
        await self.client.__aenter__()
        self.client.set_handler(self._on)
        for f in self.filters:
            self.client.subscribe(f)
        # A round trip through the broker proves the subscriptions are in place.
        probe = self.filters[0].replace("+", "probe").replace("#", "probe")
        self.client.publish(probe, b"probe")
        await self.wait_for(lambda: any(m.payload == b"probe" for m in self.messages))
        self.messages.clear()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.__aexit__(None, None, None)

    def _on(self, msg: InboundMessage) -> None:
        self.messages.append(msg)
        self.client.ack(msg)
        self.changed.set()

    async def wait_for(self, cond, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not cond():
                self.changed.clear()
                await self.changed.wait()

    def on(self, suffix: str) -> list[InboundMessage]:
        return [m for m in self.messages if m.topic.endswith(suffix)]


async def eventually(cond, timeout_s: float = 10.0) -> None:
    """Wait for a condition on simulator state (which has no event of its own to wait on)."""
    async with asyncio.timeout(timeout_s):
        while not cond():
            await asyncio.sleep(0.02)


def business_errors(cfg: SiteConfig, order: OrderRequest) -> list[FieldError]:
    """What the real gateway refuses although the schema allows it."""
    errors = []
    for n, line in enumerate(order.items):
        if cfg.item(line.item) is None:
            errors.append(FieldError(path=f"items[{n}].item", message="unknown item"))
        if not 1 <= line.qty <= cfg.delivery.max_qty:
            errors.append(FieldError(path=f"items[{n}].qty", message="absurd qty"))
    return errors


class FakeGateway:
    """Just enough gateway: one reply per order id (repeated on resends), optional tickets."""

    def __init__(self, url: str, *, drop_first: bool = False, tickets: bool = False) -> None:
        self.client = MqttClient(url, "fake-gateway", clean_start=True)
        self.drop_first = drop_first
        self.tickets = tickets
        self.replies: dict[UUID, OrderReply] = {}
        self.dropped: set[UUID] = set()
        self.routes = RouteTable(CFG)
        self.tickets_sent: list[Ticket] = []

    async def __aenter__(self) -> Self:
        await self.client.__aenter__()
        self.client.set_handler(self._on)
        self.client.subscribe(f"rst/{CFG.site.id}/tablet/+/orders")
        self.client.subscribe(f"rst/{CFG.site.id}/tablet/+/commands")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.__aexit__(None, None, None)

    def _on(self, msg: InboundMessage) -> None:
        parsed = TOPICS.parse(msg.topic)
        assert parsed is not None
        _, device, leaf = parsed
        if leaf == "orders":
            self._order(device, msg)
        else:
            cmd = decode_command(msg.payload, CFG.delivery.max_payload_bytes)
            cid = cmd.id if isinstance(cmd, DecodeFailure) else cmd.command_id
            reply = CommandReply(command_id=cid, status=ReplyStatus.ACCEPTED)
            self.client.publish(TOPICS.tablet(device, "command_replies"), encode(reply))
        self.client.ack(msg)

    def _order(self, device: str, msg: InboundMessage) -> None:
        decoded = decode_order(msg.payload, CFG.delivery.max_payload_bytes)
        if isinstance(decoded, DecodeFailure):
            reply = OrderReply(
                order_id=decoded.id, status=ReplyStatus.REJECTED, errors=list(decoded.errors)
            )
        else:
            if self.drop_first and decoded.order_id not in self.dropped:
                self.dropped.add(decoded.order_id)
                return
            known = self.replies.get(decoded.order_id)
            if known is None:
                errors = business_errors(CFG, decoded)
                status = ReplyStatus.REJECTED if errors else ReplyStatus.ACCEPTED
                known = OrderReply(order_id=decoded.order_id, status=status, errors=errors)
                self.replies[decoded.order_id] = known
                if self.tickets and not errors:
                    self._send_tickets(decoded)
            reply = known
        topic = msg.response_topic or TOPICS.tablet(device, "replies")
        self.client.publish(topic, encode(reply), correlation_data=msg.correlation_data)

    def _send_tickets(self, order: OrderRequest) -> None:
        now = datetime.now(UTC)
        by_station: dict[str, list[TicketItem]] = {}
        for line in order.items:
            res = self.routes.resolve(line.item, line.modifiers, order.dining)
            assert isinstance(res, Resolution)
            by_station.setdefault(res.station, []).append(
                TicketItem(
                    line_id=line.line_id,
                    item=line.item,
                    name=line.item,
                    qty=line.qty,
                    modifiers=line.modifiers,
                    course=1,
                    station=res.station,
                    fire_at=now,
                )
            )
        for station, items in by_station.items():
            ticket = Ticket(
                ticket_id=uuid4(),
                version=1,
                order_id=order.order_id,
                table=order.table,
                station=station,
                course=1,
                dining=order.dining,
                items=items,
                fire_at=now,
                status=TicketStatus.FIRED,
                sent_at=now,
            )
            self.tickets_sent.append(ticket)
            self.client.publish(TOPICS.kds(station, "tickets"), encode(ticket))


def is_valid_order(payload: bytes) -> bool:
    decoded = decode_order(payload, CFG.delivery.max_payload_bytes)
    return not isinstance(decoded, DecodeFailure) and not business_errors(CFG, decoded)


def ticket(
    version: int = 1,
    *,
    ticket_id: UUID | None = None,
    item: str = "water",
    status: TicketStatus = TicketStatus.FIRED,
    station: str = "bar",
) -> Ticket:
    now = datetime.now(UTC)
    line = TicketItem(
        line_id="L1",
        item=item,
        name=item,
        qty=1,
        modifiers=[],
        course=1,
        station=station,
        fire_at=now,
    )
    return Ticket(
        ticket_id=ticket_id or uuid4(),
        version=version,
        order_id=uuid4(),
        table="T1",
        station=station,
        course=1,
        dining="dine_in",
        items=[line],
        fire_at=now,
        status=status,
        sent_at=now,
    )


def events(recorder: Recorder, station: str) -> list[KdsEvent]:
    return [KdsEvent.model_validate_json(m.payload) for m in recorder.on(f"/kds/{station}/events")]


# --- tablets --------------------------------------------------------------------------------


def test_tablets_send_valid_and_malformed_orders(broker) -> None:
    async def main() -> None:
        async with (
            Recorder(broker.url, "raw-orders", f"rst/{CFG.site.id}/tablet/+/orders") as raw,
            FakeGateway(broker.url),
            TabletFleet(
                CFG,
                broker.url,
                schedule=Burst(60),
                tablets=3,
                seed=7,
                malformed_fraction=0.25,
                resend_fraction=0.1,
                response_topic_fraction=0.2,
                fire_courses=False,
                record_all=True,
            ) as fleet,
        ):
            await fleet.run()
            assert await fleet.wait_settled(10)
            await raw.wait_for(lambda: len(raw.messages) >= fleet.result.counters.publishes)
        res, c = fleet.result, fleet.result.counters
        distinct = {m.payload for m in raw.messages}
        assert len(raw.messages) == c.publishes == 60 + c.resends
        assert c.resends == 6
        assert len(distinct) == 60
        assert sum(is_valid_order(p) for p in distinct) == 45 == c.valid
        assert sum(c.malformed.values()) == 15
        assert set(c.malformed) == set(MALFORMED_KINDS)
        assert {m.topic.split("/")[3] for m in raw.messages} == {
            "tablet-01",
            "tablet-02",
            "tablet-03",
        }
        assert not res.unanswered()
        assert c.unexpected_status == 0
        assert c.accepted == 45
        assert c.inconsistent_replies == 0
        # Every resent valid order was answered again, with the same reply.
        assert all(
            r.count == res.orders[k].sends
            for k, r in res.replies.items()
            if res.orders[k].order.valid
        )
        rt_orders = [o for o in res.valid_orders() if o.response_topic is not None]
        assert len(rt_orders) == 9
        assert c.response_topic_bad == 0
        assert all(res.replies[o.order.order_id].response_topic_ok for o in rt_orders)
        # Valid orders use the real menu and tables, and some span several courses.
        for o in res.valid_orders():
            req = OrderRequest.model_validate_json(o.order.payload)
            assert req.table in CFG.tables.all_ids()
            assert [line.line_id for line in req.items] == [e.line_id for e in o.order.lines]
        assert any(len(o.order.courses) > 1 for o in res.valid_orders())

    asyncio.run(main())


def test_tablets_retry_until_answered(broker) -> None:
    async def main() -> None:
        async with (
            FakeGateway(broker.url, drop_first=True) as gw,
            TabletFleet(
                CFG,
                broker.url,
                schedule=Burst(20),
                seed=3,
                reply_timeout_s=0.3,
                fire_courses=False,
                record_all=True,
            ) as fleet,
        ):
            await fleet.run()
            assert await fleet.wait_settled(10)
        assert not fleet.result.unanswered()
        assert fleet.result.counters.retries >= 20
        assert len(gw.dropped) == 20
        assert all(o.sends >= 2 for o in fleet.result.valid_orders())

    asyncio.run(main())


def test_orders_survive_a_broker_kill(broker) -> None:
    async def main() -> None:
        async with (
            FakeGateway(broker.url),
            TabletFleet(
                CFG,
                broker.url,
                schedule=FixedRate(100, count=60),
                seed=5,
                reply_timeout_s=0.5,
                fire_courses=False,
                record_all=True,
            ) as fleet,
            asyncio.TaskGroup() as tg,
        ):
            sender = tg.create_task(fleet.run())
            await asyncio.sleep(0.25)  # mid-flow: some orders answered, some in flight
            broker.kill()
            await asyncio.sleep(0.3)
            broker.start()
            await sender
            assert await fleet.wait_settled(30), fleet.result.unanswered()
        c = fleet.result.counters
        assert c.accepted == 60
        assert c.unexpected_status == 0
        assert c.inconsistent_replies == 0

    asyncio.run(main())


def test_commands_are_sent_and_answered(broker) -> None:
    async def main() -> None:
        async with (
            FakeGateway(broker.url),
            TabletFleet(
                CFG,
                broker.url,
                schedule=Burst(40),
                seed=11,
                speed=6000.0,
                void_fraction=0.5,
                record_all=True,
            ) as fleet,
        ):
            await fleet.run()
            assert await fleet.wait_settled(10)
        res = fleet.result
        kinds = Counter(cmd.kind for cmd in res.commands.values())
        assert kinds["void_line"] == 20
        assert kinds["fire_course"] > 0
        assert all(cmd.reply is not None for cmd in res.commands.values())
        assert len({cmd.command_id for cmd in res.commands.values()}) == len(res.commands)
        voided = sum(len(o.voided) for o in res.valid_orders())
        assert voided == 20

    asyncio.run(main())


# --- screens --------------------------------------------------------------------------------


def test_screen_dedupes_reacks_replaces_and_ignores_stale(broker) -> None:
    async def main() -> None:
        async with (
            Recorder(broker.url, "raw-events", f"rst/{CFG.site.id}/kds/+/events") as raw,
            KitchenScreens(
                CFG, broker.url, stations=["bar"], bump=False, record_all=True
            ) as screens,
        ):
            pub = raw.client
            topic = TOPICS.kds("bar", "tickets")
            v1 = ticket(1)
            v2 = ticket(2, ticket_id=v1.ticket_id)
            for t in (v1, v1, v2, v1):
                pub.publish(topic, encode(t))
            pub.publish(topic, b"{not json")
            pub.publish(topic, b'{"v": 1, "ticket_id": "nope"}')
            await raw.wait_for(lambda: len(raw.messages) >= 3)
            # The stale v1 and the garbage came after: once v2's ack is in, give them a moment.
            await asyncio.sleep(0.2)
        c = screens.counters["bar"]
        assert (c.shown, c.duplicates_suppressed, c.updates, c.stale_ignored) == (1, 1, 1, 1)
        assert c.malformed == 2
        acks = [(e.version, e.action) for e in events(raw, "bar")]
        assert acks == [(1, KdsAction.ACK), (1, KdsAction.ACK), (2, KdsAction.ACK)]
        shown = screens.records["bar"]
        assert [s.key for s in shown] == [(v1.ticket_id, 1), (v1.ticket_id, 2)]
        assert [s.replaced for s in shown] == [False, True]
        assert screens.boards["bar"].open[v1.ticket_id].version == 2

    asyncio.run(main())


def test_screen_bumps_after_scaled_prep_time(broker) -> None:
    async def main() -> None:
        async with (
            Recorder(broker.url, "raw-events", f"rst/{CFG.site.id}/kds/+/events") as raw,
            KitchenScreens(
                CFG, broker.url, stations=["bar"], speed=100.0, item_done=True, record_all=True
            ) as screens,
        ):
            t = ticket(1, item="spritz")  # 120 s of kitchen time: 1.2 s here
            start = time.monotonic()
            raw.client.publish(TOPICS.kds("bar", "tickets"), encode(t))
            await raw.wait_for(lambda: any(e.action is KdsAction.BUMP for e in events(raw, "bar")))
            took = time.monotonic() - start
        assert 1.0 < took < 5.0
        assert [e.action for e in events(raw, "bar")] == [
            KdsAction.ACK,
            KdsAction.ITEM_DONE,
            KdsAction.BUMP,
        ]
        assert screens.open_count("bar") == 0
        assert screens.counters["bar"].bumps == 1

    asyncio.run(main())


def test_heartbeats_stop_when_silenced(broker) -> None:
    async def main() -> None:
        async with (
            Recorder(
                broker.url,
                "raw-hb",
                f"rst/{CFG.site.id}/kds/+/heartbeat",
                f"rst/{CFG.site.id}/kds/+/events",
            ) as raw,
            KitchenScreens(
                CFG, broker.url, stations=["grill", "fry"], heartbeat_s=0.1, bump=False
            ) as screens,
        ):
            await asyncio.sleep(0.5)
            assert len(raw.on("/kds/grill/heartbeat")) >= 3
            screens.silence("grill")
            await asyncio.sleep(0.2)
            before = len(raw.on("/kds/grill/heartbeat"))
            fry_before = len(raw.on("/kds/fry/heartbeat"))
            raw.client.publish(TOPICS.kds("grill", "tickets"), encode(ticket(station="grill")))
            await asyncio.sleep(0.5)
            assert len(raw.on("/kds/grill/heartbeat")) == before
            assert len(raw.on("/kds/fry/heartbeat")) >= fry_before + 3
            assert events(raw, "grill") == []
            assert screens.counters["grill"].ignored_while_silent == 1
            screens.resume("grill")
            await asyncio.sleep(0.3)
            assert len(raw.on("/kds/grill/heartbeat")) > before
        beat = Heartbeat.model_validate_json(raw.on("/kds/fry/heartbeat")[0].payload)
        assert beat.device == "kds-fry"

    asyncio.run(main())


# --- presence -------------------------------------------------------------------------------


def _status(rec: Recorder, device: str) -> list[DeviceState]:
    return [
        DeviceStatus.model_validate_json(m.payload).state
        for m in rec.on(f"/device/{device}/status")
    ]


@pytest.mark.parametrize(
    ("module", "device", "args"),
    [
        ("simulators.kds", "kds-grill", ["--stations", "grill", "--heartbeat", "1"]),
        ("simulators.tablets", "tablet-01", ["--tablets", "1", "--fixed-rate", "0.5"]),
    ],
)
def test_last_will_fires_when_a_simulator_is_killed(broker, tmp_path, module, device, args) -> None:
    async def main() -> None:
        async with Recorder(broker.url, "raw-status", f"rst/{CFG.site.id}/device/+/status") as raw:
            with (tmp_path / "stderr.log").open("wb") as log:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    module,
                    "--url",
                    broker.url,
                    "--config",
                    str(ROOT / "examples" / "demo-site.toml"),
                    "--prefix",
                    "lwt",
                    *args,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            try:
                await raw.wait_for(lambda: DeviceState.ONLINE in _status(raw, device), 15)
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGKILL)
                await proc.wait()
            assert proc.returncode == -signal.SIGKILL, (tmp_path / "stderr.log").read_text()
            await raw.wait_for(lambda: _status(raw, device)[-1:] == [DeviceState.OFFLINE], 10)

    asyncio.run(main())


def test_clean_exit_says_offline_and_screens_measure_latency(broker) -> None:
    async def main() -> None:
        async with Recorder(broker.url, "raw-status", f"rst/{CFG.site.id}/device/+/status") as raw:
            async with (
                FakeGateway(broker.url, tickets=True) as gw,
                TabletFleet(
                    CFG, broker.url, schedule=Burst(10), seed=2, fire_courses=False, record_all=True
                ) as fleet,
                KitchenScreens(
                    CFG, broker.url, bump=False, record_all=True, placed_mono=fleet.placed_mono
                ) as screens,
            ):
                await fleet.run()
                assert await fleet.wait_settled(10)
                await eventually(
                    lambda: sum(c.shown for c in screens.counters.values()) >= len(gw.tickets_sent)
                )
            await raw.wait_for(lambda: _status(raw, "kds-grill")[-1:] == [DeviceState.OFFLINE])
            await raw.wait_for(lambda: _status(raw, "tablet-04")[-1:] == [DeviceState.OFFLINE])
        assert screens.latency.count == 10
        p99 = screens.latency.percentile(99)
        assert p99 is not None
        assert 0 < p99 < 2.0
        shown = {s.key for recs in screens.records.values() for s in recs}
        assert shown == {(t.ticket_id, 1) for t in gw.tickets_sent}

    asyncio.run(main())


# --- through the real gateway ---------------------------------------------------------------


def test_every_line_reaches_exactly_its_stations_through_the_real_gateway(broker, tmp_path):
    speed = 600.0  # a 15-minute auto-fire takes 1.5 s
    cfg = CFG.with_overrides(mqtt_url=broker.url, state_dir=tmp_path)
    prep = {s.id for s in CFG.stations if s.kind == "prep"}

    async def main() -> None:
        clock = ScaledClock(speed)
        async with (
            Gateway(cfg, clock=clock),
            TabletFleet(
                cfg,
                broker.url,
                schedule=Burst(40),
                seed=13,
                clock=clock,
                speed=speed,
                fire_after_s=120.0,
                malformed_fraction=0.1,
                resend_fraction=0.1,
                void_fraction=0.2,
                response_topic_fraction=0.2,
                record_all=True,
            ) as fleet,
            KitchenScreens(
                cfg,
                broker.url,
                speed=speed,
                clock=clock,
                record_all=True,
                placed_mono=fleet.placed_mono,
            ) as screens,
        ):
            await fleet.run()
            assert await fleet.wait_settled(20), fleet.result.unanswered()
            # Every fired course reaches its screens and gets bumped; the expo then sends out.
            await eventually(lambda: all(screens.open_count(s) == 0 for s in screens.stations), 30)
        c = fleet.result.counters
        assert (c.valid, c.accepted, c.unexpected_status, c.inconsistent_replies) == (36, 36, 0, 0)
        assert c.rejected + c.replies_without_id >= 4
        assert c.response_topic_bad == 0
        assert c.response_topic_ok > 0
        commands = list(fleet.result.commands.values())
        assert commands
        assert all(cmd.reply is not None for cmd in commands)
        # A command may lose the race with the kitchen (the order closed first); nothing else.
        refused = [cmd.reply for cmd in commands if cmd.reply and cmd.reply.status != "accepted"]
        assert all(e.path == "order_id" for r in refused for e in r.errors), refused
        assert len(refused) <= len(commands) // 4
        for station, shown in screens.records.items():
            keys = [s.key for s in shown]
            assert len(keys) == len(set(keys)), f"{station} showed a ticket version twice"
        where: dict[tuple[UUID, str], set[str]] = {}
        for station in prep:
            for s in screens.records[station]:
                for line in s.ticket.items:
                    where.setdefault((s.ticket.order_id, line.line_id), set()).add(station)
        for sent in fleet.result.valid_orders():
            for line in sent.order.lines:
                seen = where.get((sent.order.order_id, line.line_id), set())
                if line.line_id in sent.voided:  # voided before its course fired: never shown
                    assert seen <= {line.station, *line.also}, line
                else:
                    assert seen == {line.station, *line.also}, (line, sent.voided)
        assert screens.latency.count == 36
        assert all(sc.malformed == 0 for sc in screens.counters.values())

    asyncio.run(main())


# --- the demo -------------------------------------------------------------------------------


def test_probe_finds_a_broker_and_nothing_where_there_is_none(broker) -> None:
    assert asyncio.run(probe_broker(broker.url))
    assert not asyncio.run(probe_broker(f"mqtt://127.0.0.1:{free_port()}", timeout_s=0.5))


def test_demo_runs_and_stops_cleanly_on_sigint(broker, tmp_path) -> None:
    n = len(CFG.devices)
    everything_online = re.compile(
        rf"devices {n}/{n} online \(fridge-1 -?\d+\.\d °C, fryer-1 vat 1 oil \d+\.\d °C\)"
    )

    async def main() -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "demo",
            "--no-ui",
            "--mqtt-url",
            broker.url,
            "--rate",
            "600",
            "--speed",
            "60",
            "--state-dir",
            str(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        lines = []
        # Every appliance online, with readings: within one poll of the slowest (10 s, the tank).
        async with asyncio.timeout(30):
            while not everything_online.search(line := (await proc.stdout.readline()).decode()):
                lines.append(line)
                assert line, "the demo exited early"
            proc.send_signal(signal.SIGINT)
            rest, _ = await proc.communicate()
        return proc.returncode or 0, "".join(lines) + line + rest.decode()

    code, out = asyncio.run(main())
    assert code == 0, out
    assert f"the broker at {broker.url}" in out
    assert "demo stopped" in out
    assert "accepted 0," not in out.splitlines()[-1]
    assert everything_online.search(out.splitlines()[-1]), out
    assert (tmp_path / "gateway.db").exists()


def test_demo_appliances_move_off_taken_ports_and_real_addresses() -> None:
    profiles = load_profiles()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    devices = (
        DeviceInstance(id="fridge-1", profile="walkin-fridge", host="127.0.0.1", port=port),
        DeviceInstance(id="fryer-1", profile="fryer-2vat", host="10.0.20.31", station="fry"),
        DeviceInstance(id="scale-1", profile="scale-4ch", host="127.0.0.1", port=free_port()),
    )
    cfg = CFG.model_copy(update={"devices": devices, "appliance_actions": ()})

    async def main() -> None:
        async with DemoAppliances(cfg, profiles, speed=60, seed=1) as sims:
            fridge, fryer, _ = sims.appliances
            assert [(m.device, m.wanted, m.port, m.reason) for m in sims.moved] == [
                ("fridge-1", f"127.0.0.1:{port}", fridge.port, "is taken"),
                ("fryer-1", "10.0.20.31:502", fryer.port, "is not on this machine"),
            ]
            served = {a.device_id: (a.host, a.port) for a in sims.appliances}
            assert {d.id: (d.host, d.port) for d in sims.cfg.devices} == served
            assert served["scale-1"] == ("127.0.0.1", devices[2].port)
            for host, p in served.values():  # every one answers where the gateway is pointed
                _, writer = await asyncio.open_connection(host, p)
                writer.close()
                await writer.wait_closed()

    try:
        asyncio.run(main())
    finally:
        taken.close()
