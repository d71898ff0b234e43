"""Simulated kitchen display screens: one per station (device ``kds-{station}``).

Each screen shows a ticket version at most once, acks every version it holds (again for a
duplicate: our earlier ack may have been lost), replaces a ticket on a higher version, ignores a
lower one, bumps when the cook is done (prep time scaled by ``speed``) and heartbeats every
``heartbeat_s``. Whenever a gateway says ``online`` it sends its recent bumps, recalls and
item_done reports once more: a broker that crashed may have lost them after acknowledging them
(docs/contract.md). ``silence(station)`` makes one screen go quiet (no heartbeats, no acks, no
bumps) so the gateway's redirect to the backup screen can be tested. A malformed ticket is
counted, never fatal. Run alone with ``python -m simulators.kds --help``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict, deque
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from gateway.config import StationKind
from gateway.contract import (
    DeviceState,
    DeviceStatus,
    Heartbeat,
    KdsAction,
    KdsEvent,
    Ticket,
    TicketStatus,
    Topics,
)
from gateway.lifecycle import Service
from simulators.device import ClientOptions, device_client, say_offline, subscribed
from simulators.records import ScreenCounters, ShownTicket
from simulators.screen_state import PrepTimes, RecentChanges, StationBoard, Verdict
from simulators.stats import LatencyWindow
from simulators.timers import Timers

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, MutableSequence
    from uuid import UUID

    from gateway.clock import Clock
    from gateway.config import SiteConfig
    from gateway.transport.mqtt import InboundMessage, MqttClient

__all__ = ["KitchenScreens"]

# (station, ticket id, version, action, line id)
_Work = tuple[str, "UUID", int, KdsAction, str | None]
_SEEN_ORDERS = 10_000  # orders remembered for "first ticket of this order" latency


class KitchenScreens(Service):
    """Screens for the stations of a site, each its own MQTT client with presence and a will.

    Example::

        async with KitchenScreens(cfg, broker.url, speed=60, record_all=True) as screens:
            ...
            screens.silence("grill")
        shown = screens.records["fry"]

    Args:
        cfg: the site (stations, prep times).
        url: broker URL.
        stations: the stations to simulate (default: all of the site's).
        speed: kitchen seconds per real second; prep times are divided by it.
        heartbeat_s: real seconds between heartbeats.
        bump: bump prep tickets when cooked (and expo tickets once ready).
        item_done: also report ``item_done`` for each line as it is cooked.
        expo_bump_after_s: kitchen seconds the expo takes to send out a ready table.
        clock: kitchen clock for heartbeat and presence times.
        protocol: 5, or 4 for MQTT 3.1.1 brokers.
        username: broker user name.
        password: broker password.
        client_prefix: client ids are ``{client_prefix}-{site}-kds-{station}``.
        record_all: keep every shown ticket (tests); otherwise the last ``max_records`` each.
        max_records: bound on kept shown tickets, on remembered closed tickets and on the
            changes sent again when a gateway comes online, per screen.
        replay_window_s: real seconds of changes sent again when a gateway comes online.
        placed_mono: looks up an order's first-send ``time.monotonic()`` (the tablets'
            ``placed_mono``) to measure order-to-screen latency into ``latency``.
    """

    name = "kds"

    def __init__(
        self,
        cfg: SiteConfig,
        url: str,
        *,
        stations: Iterable[str] | None = None,
        speed: float = 1.0,
        heartbeat_s: float = 5.0,
        bump: bool = True,
        item_done: bool = False,
        expo_bump_after_s: float = 60.0,
        clock: Clock | None = None,
        protocol: Literal[4, 5] = 5,
        username: str | None = None,
        password: str | None = None,
        client_prefix: str = "sim",
        record_all: bool = False,
        max_records: int = 800,
        replay_window_s: float = 3600.0,
        placed_mono: Callable[[UUID], float | None] | None = None,
    ) -> None:
        """Prepare the screens; nothing connects until ``async with``."""
        if speed <= 0 or heartbeat_s <= 0:
            raise ValueError("speed and heartbeat_s must be positive")
        known = {s.id: s.kind for s in cfg.stations}
        self.stations = list(stations) if stations is not None else list(known)
        unknown = set(self.stations) - set(known)
        if unknown:
            raise ValueError(f"unknown station(s): {sorted(unknown)}")
        self._url, self._topics, self._clock = url, Topics(cfg.site.id), clock
        self._kind = known
        self._prep = PrepTimes.from_site(cfg)
        self._speed, self._heartbeat_s = speed, heartbeat_s
        self._bump, self._item_done, self._expo_after = bump, item_done, expo_bump_after_s
        self._client_opts = ClientOptions(client_prefix, protocol, username, password)
        self._placed_mono = placed_mono
        self.clients: dict[str, MqttClient] = {}
        self.boards = {s: StationBoard(max_closed=max_records) for s in self.stations}
        self.counters = {s: ScreenCounters() for s in self.stations}
        self.records: dict[str, MutableSequence[ShownTicket]] = {
            s: [] if record_all else deque(maxlen=max_records) for s in self.stations
        }
        self._changes = {s: RecentChanges(max_records) for s in self.stations}
        self._replay_window_s = replay_window_s
        self.latency = LatencyWindow()
        self._seen_orders: OrderedDict[UUID, None] = OrderedDict()
        self._silent: set[str] = set()
        self._echo = {s: asyncio.Event() for s in self.stations}
        self._cooks: Timers[_Work] = Timers()
        self._stack = AsyncExitStack()

    @staticmethod
    def device(station: str) -> str:
        """The device id of a station's screen."""
        return f"kds-{station}"

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect every screen, subscribe to its tickets, start heartbeats and the cooks."""
        async with AsyncExitStack() as stack:
            for station in self.stations:
                client = device_client(
                    self._url,
                    self._topics,
                    self.device(station),
                    "kds",
                    opts=self._client_opts,
                    clock=self._clock,
                )
                await stack.enter_async_context(client)
                self.clients[station] = client
                client.set_handler(functools.partial(self._on_message, station))
                client.subscribe(self._topics.kds(station, "tickets"), qos=1)
                # Every client's presence: a gateway saying "online" gets our changes again.
                client.subscribe(self._topics.device_status("+"), qos=1)
                # Ready means subscribed: a ticket or reply sent from now on reaches us.
                status = self._topics.device_status(self.device(station))
                await subscribed(client, status, self._echo[station])
            stack.push_async_callback(self._goodbye)
            self._stack = stack.pop_all()
        self.spawn(self._heartbeats(), "heartbeats")
        self.spawn(self._cooks.run(self._do), "cooks")

    async def stop(self) -> None:
        """Say ``offline`` and disconnect every screen (heartbeats and cooks have stopped)."""
        stack, self._stack = self._stack, AsyncExitStack()
        await stack.aclose()

    async def _goodbye(self) -> None:
        for station, client in self.clients.items():
            await say_offline(client, self._topics, self.device(station), "kds", self._clock)

    # --- public API --------------------------------------------------------------------------

    def silence(self, station: str) -> None:
        """Make a screen go quiet: no heartbeats, no acks, no bumps (tickets are ignored)."""
        self._silent.add(station)

    def resume(self, station: str) -> None:
        """Bring a silenced screen back."""
        self._silent.discard(station)

    def stop_all(self) -> None:
        """Silence every screen (a kitchen-wide power cut, as the gateway sees it)."""
        self._silent.update(self.stations)

    def is_silent(self, station: str) -> bool:
        """Whether a screen is silenced."""
        return station in self._silent

    def open_count(self, station: str) -> int:
        """Tickets shown on a screen and not yet bumped or voided."""
        return len(self.boards[station].open)

    # --- inbound tickets ---------------------------------------------------------------------

    def _on_message(self, station: str, msg: InboundMessage) -> None:
        try:
            if msg.topic == self._topics.device_status(self.device(station)):
                self._echo[station].set()  # our own presence: proves we are subscribed
            elif msg.topic.endswith("/status"):
                self._on_presence(station, msg)
            else:
                self._on_ticket(station, msg)
        finally:
            self.clients[station].ack(msg)  # the MQTT ack; the screen's own ack is a KdsEvent

    def _on_presence(self, station: str, msg: InboundMessage) -> None:
        """A gateway (re)connected: send our recent changes again; it ignores repeats.

        A bump the broker acknowledged is ours no more: a broker that then crashes before
        handing it to the gateway (while the gateway was away, say) loses it, and the table
        would never be ready. The gateway says ``online`` after every connect, once it listens.
        """
        try:
            status = DeviceStatus.model_validate_json(msg.payload)
        except ValidationError:
            return  # someone else's business
        if status.role != "gateway" or status.state is not DeviceState.ONLINE:
            return
        if station in self._silent:
            return
        since = time.monotonic() - self._replay_window_s
        for ticket_id, version, action, line_id in self._changes[station].to_send_again(
            self.boards[station], since
        ):
            self._event(station, ticket_id, version, action, line_id, again=True)

    def _on_ticket(self, station: str, msg: InboundMessage) -> None:
        counters = self.counters[station]
        counters.received += 1
        if station in self._silent:
            counters.ignored_while_silent += 1
            return
        try:
            ticket = Ticket.model_validate_json(msg.payload)
        except ValidationError:
            counters.malformed += 1
            return
        verdict = self.boards[station].offer(ticket)
        if verdict is Verdict.STALE:
            counters.stale_ignored += 1
            return
        if verdict is Verdict.DUPLICATE:
            counters.duplicates_suppressed += 1
            self._event(station, ticket.ticket_id, ticket.version, KdsAction.ACK)
            return
        if verdict is Verdict.NEW:
            counters.shown += 1
            counters.redirected_in += ticket.redirected_from is not None
        else:
            counters.updates += 1
        self.records[station].append(
            ShownTicket(
                station,
                ticket,
                msg.received_at,
                datetime.now(UTC),
                replaced=verdict is Verdict.UPDATE,
            )
        )
        self._measure(ticket, msg.received_at)
        self._event(station, ticket.ticket_id, ticket.version, KdsAction.ACK)
        self._plan(station, ticket, msg.received_at)

    def _measure(self, ticket: Ticket, received: float) -> None:
        if self._placed_mono is None or ticket.order_id in self._seen_orders:
            return
        self._seen_orders[ticket.order_id] = None
        if len(self._seen_orders) > _SEEN_ORDERS:
            self._seen_orders.popitem(last=False)
        placed = self._placed_mono(ticket.order_id)
        if placed is not None:
            self.latency.add(received - placed)

    def _plan(self, station: str, ticket: Ticket, received: float) -> None:
        """Schedule the cook's work on a newly shown version (older plans lapse by version)."""
        if not self._bump:
            return
        if self._kind[station] is StationKind.EXPO:
            if ticket.status is TicketStatus.READY:
                self._at(received + self._expo_after / self._speed, station, ticket, KdsAction.BUMP)
            return
        if ticket.status is TicketStatus.READY:
            self.boards[station].close(ticket.ticket_id)  # the gateway says it is done already
            return
        if ticket.status is not TicketStatus.FIRED:
            return  # held: nothing to cook yet
        done = self._prep.line_done_after(ticket)
        if self._item_done:
            for line_id, after in done.items():
                self._at(
                    received + after / self._speed, station, ticket, KdsAction.ITEM_DONE, line_id
                )
        last = max(done.values(), default=0.0)
        self._at(received + last / self._speed, station, ticket, KdsAction.BUMP)

    def _at(
        self,
        due: float,
        station: str,
        ticket: Ticket,
        action: KdsAction,
        line_id: str | None = None,
    ) -> None:
        self._cooks.at(due, (station, ticket.ticket_id, ticket.version, action, line_id))

    # --- outbound ----------------------------------------------------------------------------

    def _event(
        self,
        station: str,
        ticket_id: UUID,
        version: int,
        action: KdsAction,
        line_id: str | None = None,
        *,
        again: bool = False,
    ) -> None:
        event = KdsEvent(
            ticket_id=ticket_id,
            version=version,
            action=action,
            line_id=line_id,
            device=self.device(station),
        )
        counters = self.counters[station]
        if action is not KdsAction.ACK and not again:
            # Kept even if the publish below is refused: sent again when a gateway says online.
            self._changes[station].note(ticket_id, version, action, line_id, time.monotonic())
        topic = self._topics.kds(station, "events")
        if not self.clients[station].publish(topic, event.model_dump_json().encode(), qos=1):
            # An ack is repaired by the gateway's resend of the ticket; a bump or item_done by
            # sending it again when a gateway says online.
            counters.publish_refused += 1
            return
        if again:
            counters.sent_again += 1
        elif action is KdsAction.ACK:
            counters.acks += 1
        elif action is KdsAction.BUMP:
            counters.bumps += 1
        elif action is KdsAction.ITEM_DONE:
            counters.items_done += 1

    async def _do(self, work: _Work) -> None:
        """Do a cook's due work on a ticket version, unless the ticket moved on since."""
        station, ticket_id, version, action, line_id = work
        shown = self.boards[station].open.get(ticket_id)
        if shown is None or shown.version != version:
            return  # bumped, voided or replaced since: the newer version has its own plan
        if station in self._silent:
            # A dead screen does nothing; try again once it may be back.
            self._cooks.after(self._heartbeat_s, work)
            return
        self._event(station, ticket_id, version, action, line_id)
        if action is KdsAction.BUMP:
            self.boards[station].close(ticket_id)

    async def _heartbeats(self) -> None:
        while True:
            for station in self.stations:
                if station in self._silent:
                    continue
                now = self._clock.now() if self._clock is not None else datetime.now(UTC)
                beat = Heartbeat(device=self.device(station), sent_at=now)
                topic = self._topics.kds(station, "heartbeat")
                if self.clients[station].publish(topic, beat.model_dump_json().encode(), qos=0):
                    self.counters[station].heartbeats += 1
            await asyncio.sleep(self._heartbeat_s)


if __name__ == "__main__":
    import sys

    from simulators.cli import kds_main

    sys.exit(kds_main(sys.argv[1:]))
