"""A fleet of simulated order tablets (``tablet-01`` ...), each its own MQTT client.

Orders follow a :data:`~simulators.arrivals.Schedule` (a dinner rush, a fixed rate or a burst).
Each tablet waits for the one final reply per order and resends the same bytes if none came within
``reply_timeout_s``: the end-to-end retry that lets orders survive a broker killed with ``-9``.
Knobs add the trouble a real floor produces: duplicate sends, malformed orders, voids and course
firing, MQTT 5 request/response. Run alone with ``python -m simulators.tablets --help``.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from gateway.clock import SystemClock
from gateway.contract import CommandReply, OrderReply, ReplyStatus, Topics
from gateway.lifecycle import Service
from simulators.arrivals import Burst, arrival_times
from simulators.device import ClientOptions, device_client, say_offline, subscribed
from simulators.orders import MALFORMED_KINDS, OrderFactory
from simulators.records import CommandRecord, EvenFraction, SentOrder, TabletResult
from simulators.timers import Timers

if TYPE_CHECKING:
    from collections.abc import Iterator
    from uuid import UUID

    from gateway.clock import Clock
    from gateway.config import SiteConfig
    from gateway.transport.mqtt import InboundMessage, MqttClient
    from simulators.arrivals import Schedule
    from simulators.orders import GeneratedOrder

__all__ = ["TabletFleet"]

_Action = Literal["retry_order", "resend", "command", "retry_command"]


class TabletFleet(Service):
    """``tablets`` simulated tablets sending orders on a schedule and checking the replies.

    Example::

        async with TabletFleet(cfg, broker.url, schedule=Burst(100), seed=1) as fleet:
            await fleet.run()
            assert await fleet.wait_settled(10)
        assert not fleet.result.unanswered()

    Args:
        cfg: the site (menu, tables, courses, limits).
        url: broker URL.
        schedule: when orders are sent.
        tablets: how many tablets (device ids ``tablet-01`` ...); orders go round-robin.
        seed: seeds every random choice (orders, ids, arrival times).
        clock: kitchen clock for ``placed_at`` and presence times (the gateway's, in the demo).
        speed: kitchen seconds per real second, for ``fire_after_s`` and ``void_after_s``.
        reply_timeout_s: real seconds without a reply before an order (or command) is resent.
        resend_fraction: share of orders deliberately sent twice (same id, same bytes).
        malformed_fraction: share of orders that are malformed (every kind in turn).
        void_fraction: share of accepted orders that get a ``void_line`` for one line.
        fire_courses: send ``fire_course`` for later courses (always for courses without
            ``auto_fire_after_s``, for 30 % of the others, earlier than the automatic fire).
        fire_after_s: kitchen seconds between an order's acceptance and firing its next course.
        void_after_s: kitchen seconds between an order's acceptance and its void.
        response_topic_fraction: share of valid orders sent with an MQTT 5 Response Topic
            (``rst/{site}/tablet/{device}/{response_leaf}``) and Correlation Data (MQTT 5 only).
        response_leaf: last topic level of that Response Topic.
        protocol: 5, or 4 for MQTT 3.1.1 brokers (no request/response then).
        username: broker user name, if the broker wants one.
        password: broker password.
        client_prefix: client ids are ``{client_prefix}-{site}-{device}``.
        record_all: keep every order (tests); otherwise the last ``max_records``.
        max_records: bound on kept orders and commands when not ``record_all``.
    """

    name = "tablets"

    def __init__(
        self,
        cfg: SiteConfig,
        url: str,
        *,
        schedule: Schedule,
        tablets: int = 4,
        seed: int | None = None,
        clock: Clock | None = None,
        speed: float = 1.0,
        reply_timeout_s: float = 5.0,
        resend_fraction: float = 0.0,
        malformed_fraction: float = 0.0,
        void_fraction: float = 0.0,
        fire_courses: bool = True,
        fire_after_s: float = 600.0,
        void_after_s: float = 120.0,
        response_topic_fraction: float = 0.0,
        response_leaf: str = "rpc",
        protocol: Literal[4, 5] = 5,
        username: str | None = None,
        password: str | None = None,
        client_prefix: str = "sim",
        record_all: bool = False,
        max_records: int = 5000,
    ) -> None:
        """Prepare the fleet; nothing connects until ``async with``."""
        if tablets < 1 or speed <= 0 or reply_timeout_s <= 0:
            raise ValueError("tablets, speed and reply_timeout_s must be positive")
        self._cfg, self._url, self._schedule = cfg, url, schedule
        self._rng = random.Random(seed)
        self._clock: Clock = clock or SystemClock()
        self._factory = OrderFactory(cfg, self._rng, self._clock)
        self._topics = Topics(cfg.site.id)
        self._speed, self._timeout = speed, reply_timeout_s
        self._resend = EvenFraction(resend_fraction)
        self._malformed = EvenFraction(malformed_fraction)
        self._void = EvenFraction(void_fraction)
        self._rt = EvenFraction(response_topic_fraction if protocol == 5 else 0.0)
        self._kinds = itertools.cycle(MALFORMED_KINDS)
        self._fire, self._fire_after, self._void_after = fire_courses, fire_after_s, void_after_s
        self._auto_fire = {c.number: c.auto_fire_after_s is not None for c in cfg.courses}
        self._leaf = response_leaf
        self._client_opts = ClientOptions(client_prefix, protocol, username, password)
        self._record_all, self._max_records = record_all, max_records
        self.devices = [f"tablet-{n:02d}" for n in range(1, tablets + 1)]
        self.clients: dict[str, MqttClient] = {}
        self._echo = {d: asyncio.Event() for d in self.devices}
        self.result = TabletResult()
        self._open_orders: set[UUID] = set()
        self._open_commands: set[UUID] = set()
        self._resends_due = 0
        self._generated_all = False
        self._progress = asyncio.Event()
        self._timers: Timers[tuple[_Action, UUID]] = Timers()
        self._stack = AsyncExitStack()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect every tablet, subscribe to its replies and start the resend timers."""
        async with AsyncExitStack() as stack:
            for device in self.devices:
                client = device_client(
                    self._url,
                    self._topics,
                    device,
                    "tablet",
                    opts=self._client_opts,
                    clock=self._clock,
                )
                await stack.enter_async_context(client)
                self.clients[device] = client
                client.set_handler(functools.partial(self._on_message, device))
                for leaf in ("replies", "command_replies", self._leaf):
                    client.subscribe(self._topics.tablet(device, leaf), qos=1)
                # Ready means subscribed: a ticket or reply sent from now on reaches us.
                await subscribed(client, self._topics.device_status(device), self._echo[device])
            stack.push_async_callback(self._goodbye)
            self._stack = stack.pop_all()
        self.spawn(self._timers.run(self._on_timer), "timers")

    async def stop(self) -> None:
        """Say ``offline`` and disconnect every tablet (the timers have stopped)."""
        stack, self._stack = self._stack, AsyncExitStack()
        await stack.aclose()

    async def _goodbye(self) -> None:
        for device, client in self.clients.items():
            await say_offline(client, self._topics, device, "tablet", self._clock)

    # --- public API --------------------------------------------------------------------------

    async def run(self) -> TabletResult:
        """Send every order of the schedule (forever for an endless one); returns the result."""
        orders: Iterator[GeneratedOrder] = (self._next_order() for _ in itertools.count())
        if isinstance(self._schedule, Burst):
            # A burst measures the transport, not the order generator: build every order first.
            orders = iter([self._next_order() for _ in range(self._schedule.count)])
        start = self.result.sending_started = time.monotonic()
        for n, offset in enumerate(arrival_times(self._schedule, self._rng)):
            delay = start + offset - time.monotonic()
            if delay > 0.001:  # uvloop busy-waits on shorter sleeps (MEASURED.md)
                await asyncio.sleep(delay)
            elif n % 64 == 0:
                await asyncio.sleep(0)  # a burst must still let the loop read replies
            await self._send_new(next(orders), self.devices[n % len(self.devices)])
        self.result.sending_done = time.monotonic()
        self._generated_all = True
        self._progress.set()
        return self.result

    def _next_order(self) -> GeneratedOrder:
        return self._factory.make(next(self._kinds) if self._malformed.take() else "valid")

    async def wait_settled(self, timeout_s: float) -> bool:
        """Wait until the schedule is done and every order and command has its reply.

        Orders whose reply cannot name them (broken JSON, oversize) are not waited for.

        Returns:
            True when settled, False when ``timeout_s`` passed first.
        """
        try:
            async with asyncio.timeout(timeout_s):
                while not self.settled:
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    @property
    def settled(self) -> bool:
        """Whether nothing is left to send or to wait for."""
        return (
            self._generated_all
            and not self._open_orders
            and not self._open_commands
            and not self._resends_due
        )

    def placed_mono(self, order_id: UUID) -> float | None:
        """``time.monotonic()`` of an order's first send (None if unknown or forgotten)."""
        sent = self.result.orders.get(order_id)
        return sent.first_sent if sent is not None else None

    # --- sending -----------------------------------------------------------------------------

    async def _send_new(self, order: GeneratedOrder, device: str) -> None:
        c = self.result.counters
        c.orders += 1
        rec = SentOrder(order, device, datetime.now(UTC), time.monotonic())
        if order.valid:
            c.valid += 1
            if self._rt.take():
                rec.response_topic = self._topics.tablet(device, self._leaf)
                rec.correlation_data = order.order_id.bytes
        else:
            c.malformed[order.kind] += 1
        if order.answerable:
            # Like a real tablet, which cannot know its order is bad: resend until answered.
            self._open_orders.add(order.order_id)
            self._timers.after(self._timeout, ("retry_order", order.order_id))
        self.result.orders[order.order_id] = rec
        if not self._record_all:
            self.result.trim(self._max_records)
        await self._publish_order(rec)
        if self._resend.take():
            self._resends_due += 1
            delay = self._rng.uniform(0.0, min(0.5, self._timeout / 2))
            self._timers.after(delay, ("resend", order.order_id))

    async def _publish_order(self, rec: SentOrder) -> None:
        client = self.clients[rec.device]
        topic = self._topics.tablet(rec.device, "orders")
        payload = rec.order.payload
        while not client.publish(
            topic,
            payload,
            qos=1,
            response_topic=rec.response_topic,
            correlation_data=rec.correlation_data,
        ):
            self.result.counters.publish_waits += 1
            await client.wait_publish_room()
        self.result.counters.publishes += 1

    async def _send_command(self, cmd: CommandRecord) -> None:
        client = self.clients[cmd.device]
        while not client.publish(self._topics.tablet(cmd.device, "commands"), cmd.payload, qos=1):
            self.result.counters.publish_waits += 1
            await client.wait_publish_room()
        cmd.sends += 1

    # --- timers ------------------------------------------------------------------------------

    async def _on_timer(self, timer: tuple[_Action, UUID]) -> None:
        action, key = timer
        if action in ("resend", "retry_order"):
            await self._order_timer(action, key)
        else:
            await self._command_timer(action, key)

    async def _order_timer(self, action: _Action, key: UUID) -> None:
        c = self.result.counters
        if action == "resend":
            self._resends_due -= 1
            self._progress.set()
            rec = self.result.orders.get(key)
            if rec is not None:
                c.resends += 1
                rec.sends += 1
                await self._publish_order(rec)
            return
        if action == "retry_order":
            rec = self.result.orders.get(key)
            if rec is None or key in self.result.replies:
                return
            self._timers.after(self._timeout, ("retry_order", key))
            if self.clients[rec.device].connected:
                # (While disconnected the client resends its queued publish itself.)
                c.retries += 1
                rec.sends += 1
                await self._publish_order(rec)

    async def _command_timer(self, action: _Action, key: UUID) -> None:
        c = self.result.counters
        cmd = self.result.commands.get(key)
        if cmd is None or cmd.reply is not None:
            return
        self._timers.after(self._timeout, ("retry_command", key))
        if action == "retry_command":
            if not self.clients[cmd.device].connected:
                return
            c.command_retries += 1
        else:
            c.commands += 1
            order = self.result.orders.get(cmd.order_id)
            if order is not None and cmd.line_id is not None:
                order.voided.add(cmd.line_id)
            if order is not None and cmd.course is not None:
                order.fired.add(cmd.course)
        await self._send_command(cmd)

    # --- replies -----------------------------------------------------------------------------

    def _on_message(self, device: str, msg: InboundMessage) -> None:
        client = self.clients.get(device)
        try:
            parsed = self._topics.parse(msg.topic)
            leaf = parsed[2] if parsed is not None else ""
            if leaf == "status":  # our own presence: proves we are subscribed
                self._echo[device].set()
            elif leaf == "command_replies":
                self._on_command_reply(msg)
            else:
                self._on_reply(msg)
        finally:
            if client is not None:
                client.ack(msg)
        self._progress.set()

    def _on_reply(self, msg: InboundMessage) -> None:
        try:
            reply = OrderReply.model_validate_json(msg.payload)
        except ValidationError:
            self.result.counters.bad_payloads += 1
            return
        first = self.result.note_reply(reply, msg.topic, msg.correlation_data, msg.received_at)
        if first is None:
            return
        self._open_orders.discard(first.order.order_id)
        if reply.status is ReplyStatus.ACCEPTED and first.order.valid:
            self._plan_commands(first)

    def _on_command_reply(self, msg: InboundMessage) -> None:
        try:
            reply = CommandReply.model_validate_json(msg.payload)
        except ValidationError:
            self.result.counters.bad_payloads += 1
            return
        if self.result.note_command_reply(reply) and reply.command_id is not None:
            self._open_commands.discard(reply.command_id)

    def _plan_commands(self, rec: SentOrder) -> None:
        """After an order is accepted: fire its later courses and maybe void a line, later."""
        order = rec.order
        if self._fire:
            for rank, course in enumerate(order.courses[1:], start=1):
                if self._auto_fire.get(course, False) and self._rng.random() >= 0.3:
                    continue
                command_id, payload = self._factory.fire_course(order.order_id, course)
                cmd = CommandRecord(
                    command_id, order.order_id, "fire_course", rec.device, payload, course=course
                )
                self._add_command(cmd, self._fire_after * rank / self._speed)
        if self._void.take():
            line = self._rng.choice(order.lines)
            command_id, payload = self._factory.void_line(order.order_id, line.line_id)
            cmd = CommandRecord(
                command_id, order.order_id, "void_line", rec.device, payload, line_id=line.line_id
            )
            self._add_command(cmd, self._void_after / self._speed)

    def _add_command(self, cmd: CommandRecord, delay_s: float) -> None:
        self.result.commands[cmd.command_id] = cmd
        self._open_commands.add(cmd.command_id)
        self._timers.after(delay_s, ("command", cmd.command_id))


if __name__ == "__main__":
    import sys

    from simulators.cli import tablets_main

    sys.exit(tablets_main(sys.argv[1:]))
