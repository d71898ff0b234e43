"""The order service: typed inbound events in, durable state, typed outbound events out.

Each batch of inbound events is handled in memory, committed to SQLite in one transaction, and
only then are the wire messages acknowledged and the replies and tickets handed to the outbox.
That order is the durability boundary: a crash before the commit loses nothing (the broker
redelivers what was not acknowledged, tablets resend what got no reply); a crash after it
resends from disk, and screens dedupe ``(ticket_id, version)``. Exceptions: a screen's ack of
a ticket version, and a screen's message that cannot be read, are acknowledged at once (an ack
is saved with the next commit; ``_on_kds`` says why losing it is harmless). Their PUBACKs can
so go out before those of messages received earlier, which MQTT asks clients not to do; brokers
match PUBACKs by packet id (Mosquitto does), and the bridge acks what it cannot route at once too.

Group commit: the commit runs on a writer thread (SQLite releases the GIL while it writes and
fsyncs), one at a time and in order. While it runs, the loop keeps reading the socket and
handles what arrives into the next batch, which is committed as soon as the writer is free. At
low rates every event is committed at once; under load batches grow by themselves, so the
number of commits (and fsyncs) per second stays bounded by the disk, not by the message rate.

Queues and their overflow policies:
- inbound QoS 1 events: bounded by MQTT flow control (Receive Maximum: the broker sends no more
  until we acknowledge), so ``_pending`` never grows past it;
- inbound QoS 0 heartbeats: dropped past ``MAX_PENDING`` and counted (``heartbeats_dropped``);
- tickets awaiting a screen's ack: bounded by the open orders; resent with capped backoff
  (:mod:`gateway.routing.resends`).

Time: every wait counts monotonic seconds. The ticker, resend backoff, a screen's silence and
the disk checks count the *link* clock's (real time: screens heartbeat in real seconds whatever
the kitchen's speed); the kitchen's clock is the demo's faster one, or the same. The kitchen
decides from datetimes (fire times, course gaps, ticket ages) and is fed *steady* time
(:mod:`gateway.routing.steady`): the wall time taken once at start plus the monotonic seconds
since, so a step of the wall clock mid-service changes no pending wait in real
seconds. The kitchen's records (tickets, status updates, alerts, the menu) are stamped with that
steady time too, so they stay in order; it differs from the wall clock by the steps since the
start, which the ticker detects (wall minus monotonic time jumping by more than
``gateway.clockwatch.STEP_THRESHOLD_S`` between two ticks) and counts (``clock_steps``,
``clock_offset_s``); the step's warning and alert are :class:`gateway.clockwatch.ClockWatch`'s,
once for the whole gateway. The store's stamps (commit time, for
retention and for the replies sent again after a restart) are wall time: they have to mean
something to the next process too.

Silent screens are watched by :mod:`gateway.routing.screens`; commands are applied by
:mod:`gateway.routing.commands`; the menu is built by :mod:`gateway.routing.menu`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.clockwatch import STEP_THRESHOLD_S, StepDetector
from gateway.codec import DecodeFailure, encode
from gateway.config import StationKind
from gateway.contract import (
    CommandReply,
    FieldError,
    KdsAction,
    OrderReply,
    ReplyStatus,
)
from gateway.errors import GatewayError
from gateway.events import (
    CommandIn,
    HeartbeatIn,
    InboundEvent,
    KdsEventIn,
    MenuOut,
    OrderIn,
    OutboundEvent,
    Outbox,
    ReplyOut,
    ReplyRoute,
    TicketOut,
)
from gateway.lifecycle import Service
from gateway.routing.commands import InvalidLine, apply_command
from gateway.routing.kitchen import Effect, Kitchen, KitchenError
from gateway.routing.menu import build_menu
from gateway.routing.orders import OrderValidator
from gateway.routing.outbound import alert, latest_status_only, outbound
from gateway.routing.render import accepted_reply
from gateway.routing.resends import UnackedTickets
from gateway.routing.rules import RouteTable
from gateway.routing.screens import ScreenWatch
from gateway.routing.steady import SteadyClock
from gateway.store.batch import Batch

if TYPE_CHECKING:
    from uuid import UUID

    from gateway.clock import Clock
    from gateway.config import SiteConfig
    from gateway.contract import Menu, OrderRequest
    from gateway.routing.storage import OrderStore

log = logging.getLogger(__name__)

MAX_PENDING = 50_000
_TICK_S = 0.2  # how often scheduled tickets, resends and silent screens are looked at
_REPLY_CACHE = 4096  # recent replies kept in memory: most resends come within seconds
_DISK_CHECK_S = 5.0
_PURGE_EVERY_S = 3600.0
_RETENTION_S = 30 * 24 * 3600.0
# At start, the replies committed this many seconds (of wall time) before are sent again: a
# crash can fall between a commit and the publish of its replies, and their tablets would then
# wait for their own retry timer. 30 s covers a supervisor's restart (systemd's RestartSec and
# our start-up); a tablet whose reply is older has retried since, and gets it from the store.
# A reply twice is harmless: it is the same bytes each time, and a tablet matches a reply to
# its order by order_id (one it already has changes nothing).
_RECENT_REPLIES_S = 30.0


@dataclass(slots=True)
class OrderStats:
    """Counters, exposed as data for the demo view, tests and health checks."""

    orders_accepted: int = 0
    orders_rejected: int = 0
    orders_duplicate: int = 0
    commands: int = 0
    tickets_sent: int = 0
    tickets_resent: int = 0
    kds_events: int = 0
    heartbeats_dropped: int = 0
    redirects: int = 0
    batches: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    bad_kds_messages: int = 0
    handler_failures: int = 0  # events whose handling raised a bug (``_handler_failed``)
    replies_resent: int = 0  # replies of orders committed just before the start, sent again
    clock_steps: int = 0  # steps of the wall clock seen while running
    clock_offset_s: float = 0.0  # wall minus steady time at the last tick: the steps' sum


@dataclass(slots=True)
class _Open:
    """The batch being filled while the previous one is committed."""

    batch: Batch = field(default_factory=Batch)
    outs: list[OutboundEvent] = field(default_factory=list)
    tokens: list[object] = field(default_factory=list)
    save: bool = False  # commit even with nothing above: the kitchen holds unsaved acks

    def __bool__(self) -> bool:
        return bool(self.tokens or self.outs or self.batch or self.save)


class OrderService(Service):
    """Orders to tickets, exactly once as the cook sees it.

    A :class:`~gateway.lifecycle.Service` (``async with``): entering loads the open orders and
    is ready to take events; its loops are ``orders:flusher``, ``orders:committer`` and
    ``orders:ticker``. A loop that fails (a ``StoreError`` from a commit) makes it leave with
    ``ServiceFailed``, with nothing of the failed batch acknowledged or sent.
    """

    name = "orders"

    def __init__(
        self,
        cfg: SiteConfig,
        store: OrderStore,
        clock: Clock,
        outbox: Outbox,
        *,
        link_clock: Clock | None = None,
    ) -> None:
        """Wire the service; nothing runs until ``async with``.

        Args:
            cfg: the site.
            store: durable state.
            clock: kitchen time: fire times, course gaps, stamps (the demo runs it faster).
            outbox: where replies, tickets and alerts go.
            link_clock: real time, for what waits on screens and the network: the tick, a
                screen's silence, ticket resends, disk checks (default: ``clock``). A screen
                heartbeats in real seconds whatever the kitchen's speed.
        """
        self._cfg = cfg
        self._store = store
        self._clock = clock
        self._link = link_clock or clock
        # What the kitchen and the records see (re-anchored at start): see the module docstring.
        self._steady = SteadyClock(clock)
        self._steps = StepDetector(STEP_THRESHOLD_S)
        self._outbox = outbox
        routes = RouteTable(cfg)
        self._validator = OrderValidator(cfg, routes)
        expo = next((s.id for s in cfg.stations if s.kind is StationKind.EXPO), None)
        self.kitchen = Kitchen(cfg.courses, expo)
        self.stats = OrderStats()
        self._pending: list[InboundEvent] = []
        self._wake = asyncio.Event()
        self._replies: OrderedDict[UUID, bytes] = OrderedDict()
        self._command_replies: OrderedDict[UUID, bytes] = OrderedDict()
        # Replies found in the store for the batch being handled (``_look_up_replies``).
        self._looked_up: set[UUID] = set()
        self._stored_replies: dict[UUID, bytes] = {}
        self._unacked = UnackedTickets(cfg, outbox, self.stats)
        self._screens = ScreenWatch(cfg, self.kitchen, self._steady, self.stats)
        self._disk_low = False
        self._logged: set[str] = set()
        self._open = _Open()
        # Replies not yet committed must stay findable (the reader sees only committed rows):
        # at most two batches' worth, the one on the writer and the one filling.
        self._reply_cap = max(_REPLY_CACHE, 2 * cfg.state.batch_max)
        self._commit_wanted = asyncio.Event()
        # Set by the committer whenever it has nothing left to write (``idle``).
        self._idle = asyncio.Event()
        self._committing = False
        self._writer: ThreadPoolExecutor | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load open orders from disk, queue their unacked tickets for resending, start loops."""
        self._steady.anchor()
        self._steps.observe(self._clock.now(), self._clock.monotonic())  # the reference
        store = self._store
        self.kitchen.restore(
            store.open_orders(), store.acks(), store.tickets(), next_seq=store.max_seq() + 1
        )
        # The last seconds of commits, whatever the wall clock says now (see recent_replies).
        recent = store.recent_replies(_RECENT_REPLIES_S)
        now = self._link.monotonic()
        for resend in self.kitchen.resends():
            # Due now: the first resend goes out on the first tick.
            self._unacked.track(
                TicketOut.sent(resend.ticket_id, resend.version, resend.station, resend.body), now
            )
        self._screens.start(now)
        # One thread: commits must reach the disk in the order their batches were made.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        # Before the first order: one refused for a full disk, or accepted onto one, is decided
        # on a fresh reading, and a long-stopped gateway's old rows go first.
        self._check_disk()
        await self._purge()
        self.spawn(self._flusher(), "flusher")
        self.spawn(self._committer(), "committer")
        self.spawn(self._ticker(), "ticker")
        self._outbox.send(MenuOut(self.menu()))
        # To each tablet's replies topic (an MQTT 5 response topic is not stored).
        for device, body in recent:
            self._outbox.send(ReplyOut(ReplyRoute(device), body))
        self.stats.replies_resent = len(recent)
        self.resend_now()
        log.info(
            "order service ready: %d open orders, %d tickets to resend, %d recent replies sent "
            "again",
            len(self.kitchen),
            len(self._unacked),
            len(recent),
        )

    async def stop(self) -> None:
        """Shut the writer thread down (the loops have ended).

        What was not committed is redelivered by the broker next time, except acks not saved
        yet (acknowledged before their commit): their ticket versions are resent after the
        restart, and the screens ack them again.
        """
        writer, self._writer = self._writer, None
        if writer is not None:
            # A commit already on the writer thread finishes (it is one transaction), so the
            # store can be closed after us; its batch is neither acked nor sent, which a
            # restart handles like a crash just after a commit. Waited for off the loop;
            # nothing queued behind it (a purge) starts.
            await asyncio.shield(asyncio.to_thread(writer.shutdown, wait=True, cancel_futures=True))

    # --- input --------------------------------------------------------------------------

    def submit(self, event: InboundEvent) -> None:
        """Queue an inbound event (called in the loop by the adapter; never blocks)."""
        if isinstance(event, HeartbeatIn):
            if len(self._pending) >= MAX_PENDING:
                self.stats.heartbeats_dropped += 1
                return
            try:
                self._screens.heard(event.station, self._link.monotonic())
            except GatewayError:
                raise
            except Exception as err:  # noqa: BLE001 - a bug, contained as in _fill
                self._handler_failed(event, err)
            return
        self._pending.append(event)
        self._wake.set()

    def resend_now(self) -> None:
        """Resend every unacknowledged ticket on the next tick (after a broker reconnect)."""
        self._unacked.all_due(self._link.monotonic())

    async def idle(self) -> None:
        """Return once every event submitted so far is handled and its batch committed.

        Then the messages of those events are acknowledged and their replies and tickets
        handed to the outbox. For tests, and whoever needs to know the commits caught up: it
        waits on the commits themselves, never on time.

        Raises:
            RuntimeError: the service is not running (nothing would ever commit).
        """
        if not self.running:
            raise RuntimeError("orders: idle() while not running")
        while self._pending or self._open or self._committing:
            self._idle.clear()
            await self._idle.wait()

    def menu(self) -> Menu:
        """The menu as tablets need it."""
        return build_menu(self._cfg, self._steady.now())

    # --- the batch loop -------------------------------------------------------------------

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # No extra yield to gather more first: what was read in the meantime joins this
            # batch through the next _fill, until the committer takes it. At 200 orders/s it
            # cost ~0.15 ms of each order's latency (0.57 -> 0.43 ms from read to handled).
            self._fill()

    def _fill(self) -> None:
        """Handle pending events into the open batch, up to ``batch_max`` events in it."""
        room = self._cfg.state.batch_max - len(self._open.tokens)
        if room <= 0 or not self._pending:
            return
        events, self._pending = self._pending[:room], self._pending[room:]
        self._look_up_replies(events)
        opened = self._open
        for ev in events:
            # Each event on its own: one that a bug makes fail must not take the others of
            # its batch with it, nor hold its flow-control slot (``_handler_failed``).
            try:
                self._handle(ev, opened.batch, opened.outs, opened.tokens)
            except GatewayError:
                # A StoreError (or any error the gateway raises on purpose) means durable state
                # is in doubt: stop the service, ack nothing more; a restart resumes from disk.
                raise
            except Exception as err:  # noqa: BLE001 - a bug in one handler, contained per event
                self._handler_failed(ev, err)
        self._commit_wanted.set()

    def _handler_failed(self, ev: InboundEvent, err: Exception) -> None:
        """Count and report an event whose handling raised; the adapter retries or dead-letters.

        Nothing is undone. What a half-applied event can leave behind: an order taken into the
        kitchen (saved by the next commit, its tickets maybe not sent until a restart resends
        them) without its reply stored, so the retry finds no reply and accepts it again: a
        second record under a new ``seq`` replaces the first in memory, while the first's
        snapshot, once a commit saved it, stays open on disk and comes back at a restart; both
        have the same ticket ids, so screens drop the versions they already showed; a
        command whose kitchen change was made without its reply, so its retry applies it again
        (a second void or fire changes nothing, a modify sets the same values and makes one
        more ticket version); a screen's event applied without its message acknowledged, so
        the retry applies it again (a second bump or recall changes nothing). Tickets made by
        the failed call and not yet in the open batch are not sent until a resend (after a
        restart at the latest). Whatever the event already put in the open batch (a reply, a
        ticket) is committed and sent with it.
        """
        self.stats.handler_failures += 1
        key = f"handler:{type(ev).__name__}:{type(err).__name__}"
        if key in self._logged:
            log.debug("handling %s failed again: %r", type(ev).__name__, err)
        else:
            self._logged.add(key)
            log.error(
                "handling %s failed (a bug; further ones are counted, not logged)",
                type(ev).__name__,
                exc_info=err,
            )
        if not isinstance(ev, HeartbeatIn):  # a heartbeat has no message to retry
            self._outbox.fail(ev.token, err)

    async def _committer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            while self._open:
                opened, self._open = self._open, _Open()
                if self._pending:
                    self._wake.set()  # events that waited for room go into the next batch
                batch = opened.batch
                changes = self.kitchen.take_dirty()
                batch.snapshots, batch.closed = changes.snapshots, changes.closed
                batch.acks, batch.tickets = changes.acks, changes.tickets
                # The commit's wall time: the store keeps it to purge by age and to find the
                # replies of the last seconds after a restart (a new process shares no
                # monotonic clock with the old one).
                batch.at = self._clock.now().timestamp()
                self._committing = True
                try:
                    # Raises StoreError: nothing acked, nothing sent; the supervisor restarts
                    # us from disk.
                    await loop.run_in_executor(self._writer, self._store.commit, batch)
                finally:
                    self._committing = False
                self._after_commit(opened)
            self._idle.set()

    def _after_commit(self, done: _Open) -> None:
        self.stats.batches += 1
        for token in done.tokens:
            self._outbox.ack(token)
        now = self._link.monotonic()
        for out in latest_status_only(done.outs):
            if isinstance(out, TicketOut):
                self._unacked.track(out, now + self._cfg.delivery.resend_after_s)
                self.stats.tickets_sent += 1
            self._outbox.send(out)

    def _handle(
        self, ev: InboundEvent, batch: Batch, outs: list[OutboundEvent], tokens: list[object]
    ) -> None:
        if isinstance(ev, OrderIn):
            self._on_order(ev, batch, outs)
        elif isinstance(ev, CommandIn):
            self._on_command(ev, batch, outs)
        elif isinstance(ev, KdsEventIn):
            if not self._on_kds(ev, outs):
                # Acknowledged now, not after a commit: see _on_kds.
                self._outbox.ack(ev.token)
                return
        else:  # pragma: no cover - heartbeats never reach the queue
            return
        tokens.append(ev.token)

    # --- orders ---------------------------------------------------------------------------

    def _on_order(self, ev: OrderIn, batch: Batch, outs: list[OutboundEvent]) -> None:
        req = ev.request
        order_id = _order_id(req)
        if order_id is not None:
            previous = self._reply_for(order_id)
            if previous is not None:
                self.stats.orders_duplicate += 1
                outs.append(ReplyOut(ev.route, previous))
                return
        if isinstance(req, DecodeFailure):
            self._reject(ev.route, order_id, list(req.errors), req.reason, batch, outs)
            return
        if self._disk_low:
            err = FieldError(path="", message="the gateway's disk is full; call the manager")
            self._reject(ev.route, order_id, [err], "disk_full", batch, outs)
            return
        result = self._validator.validate(req)
        if isinstance(result, list):
            self._reject(ev.route, order_id, result, "invalid", batch, outs)
            return
        effects = self.kitchen.accept(result, ev.route.device, self._steady.now())
        assert order_id is not None
        body = accepted_reply(order_id, result.total)
        self._remember(order_id, body)
        batch.replies.append((order_id, ev.route.device, body))
        self.stats.orders_accepted += 1
        outs.append(ReplyOut(ev.route, body))
        outs.extend(outbound(effects))

    def _reject(  # noqa: PLR0917 - private helper, called with the batch it writes into
        self,
        route: ReplyRoute,
        order_id: UUID | None,
        errors: list[FieldError],
        reason: str,
        batch: Batch,
        outs: list[OutboundEvent],
    ) -> None:
        body = encode(OrderReply(order_id=order_id, status=ReplyStatus.REJECTED, errors=errors))
        if order_id is not None and reason != "disk_full":
            # A rejection is final too: the same order_id always gets the same answer.
            self._remember(order_id, body)
            batch.replies.append((order_id, route.device, body))
        self.stats.orders_rejected += 1
        self.stats.rejected_by_reason[reason] += 1
        self._log_once(
            reason,
            f"rejected an order from {route.device} ({reason}): "
            + "; ".join(f"{e.path}: {e.message}" for e in errors[:3]),
        )
        outs.append(ReplyOut(route, body))

    def _look_up_replies(self, events: list[InboundEvent]) -> None:
        """Find the stored replies of every order in ``events`` in one read, before handling.

        Only ids the cache does not hold. The cache keeps every reply not yet committed, so
        for these ids the store has all there is; and whatever this service answers while
        handling the events goes into the cache first, so the read stays true meanwhile.
        """
        replies = self._replies
        ids = {
            oid
            for ev in events
            if isinstance(ev, OrderIn)
            and (oid := _order_id(ev.request)) is not None
            and oid not in replies
        }
        self._looked_up = ids
        self._stored_replies = self._store.replies_for(ids) if ids else {}

    def _reply_for(self, order_id: UUID) -> bytes | None:
        cached = self._replies.get(order_id)
        if cached is not None:
            return cached
        if order_id in self._looked_up:
            return self._stored_replies.get(order_id)
        return self._store.reply_for(order_id)

    def _remember(self, order_id: UUID | None, body: bytes) -> None:
        if order_id is None:
            return
        self._replies[order_id] = body
        if len(self._replies) > self._reply_cap:
            self._replies.popitem(last=False)

    # --- commands -------------------------------------------------------------------------

    def _on_command(self, ev: CommandIn, batch: Batch, outs: list[OutboundEvent]) -> None:
        cmd = ev.command
        self.stats.commands += 1
        cid = cmd.id if isinstance(cmd, DecodeFailure) else cmd.command_id
        if cid is not None:
            # The cache covers a redelivery inside the batch that is not committed yet.
            previous = self._command_replies.get(cid) or self._store.command_reply(cid)
            if previous is not None:
                outs.append(ReplyOut(ev.route, previous, command=True))
                return
        errors: list[FieldError] = []
        effects: list[Effect] = []
        if isinstance(cmd, DecodeFailure):
            errors = list(cmd.errors)
        else:
            try:
                effects = apply_command(self.kitchen, self._validator, cmd, self._steady.now())
            except KitchenError as err:
                errors = [FieldError(path=err.path, message=err.message)]
            except InvalidLine as err:
                errors = err.errors
        status = ReplyStatus.REJECTED if errors else ReplyStatus.ACCEPTED
        body = encode(CommandReply(command_id=cid, status=status, errors=errors))
        if cid is not None:
            batch.commands.append((cid, body))
            self._command_replies[cid] = body
            if len(self._command_replies) > self._reply_cap:
                self._command_replies.popitem(last=False)
        outs.append(ReplyOut(ev.route, body, command=True))
        outs.extend(outbound(effects))

    # --- screens --------------------------------------------------------------------------

    def _on_kds(self, ev: KdsEventIn, outs: list[OutboundEvent]) -> bool:
        """Handle a screen's event; whether its message must wait for the batch's commit.

        A screen's ack of a ticket version does not: losing it in a crash only costs a resend
        of that version, which the screen drops as already shown and acks again (the contract
        asks screens to ack every copy). Its row rides the next commit, or the ticker's within
        ``_TICK_S``. Acks are half of all screen events, and at low rates each one waited for a
        commit of its own, in front of the next order's. Bumps and item_done are kept until
        committed: nobody would send them again.
        """
        self._screens.heard(ev.station, self._link.monotonic())
        e = ev.event
        if isinstance(e, DecodeFailure):
            self.stats.bad_kds_messages += 1
            self._log_once("kds", f"unreadable message from screen {ev.station}: {e.reason}")
            return False
        self.stats.kds_events += 1
        effects = self.kitchen.on_kds(
            e.ticket_id, e.version, e.action, e.line_id, self._steady.now()
        )
        if e.action is KdsAction.ACK:
            self._unacked.acked(e.ticket_id, e.version)
            return False
        outs.extend(outbound(effects))
        return True

    # --- timers ---------------------------------------------------------------------------

    async def _ticker(self) -> None:
        clock = self._link
        start = clock.monotonic()
        # The disk was checked and old rows purged at start.
        next_disk, next_purge = start + _DISK_CHECK_S, start + _PURGE_EVERY_S
        while True:
            await clock.sleep(_TICK_S)
            mono = clock.monotonic()
            if mono >= next_disk:
                next_disk = mono + _DISK_CHECK_S
                self._check_disk()
            if mono >= next_purge:
                next_purge = mono + _PURGE_EVERY_S
                await self._purge()
            self._check_step()
            outs = outbound(self.kitchen.release_due(self._steady.now()))
            outs += self._screens.check(mono)
            if outs or self.kitchen.unsaved():
                # Acks acknowledged before their commit (_on_kds) are saved here at the latest.
                self._open.outs.extend(outs)
                self._open.save = True
                self._commit_wanted.set()
            self._unacked.resend_due(mono)

    async def _purge(self) -> None:
        # On the writer thread, between commits. Retention is by wall age: the stamps it
        # compares are the commits' wall times.
        now = self._clock.now().timestamp()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._store.purge, _RETENTION_S, now)

    def _check_disk(self) -> None:
        low = self._store.free_bytes() < self._cfg.state.min_free_mb * 1024 * 1024
        if low != self._disk_low:
            self._disk_low = low
            msg = (
                "the gateway's disk is nearly full: new orders are refused until space is freed"
                if low
                else "disk space is back: orders are accepted again"
            )
            (log.error if low else log.info)(msg)
            level = "critical" if low else "clear"
            self._outbox.send(alert(level, "disk_full", "gateway", msg))

    def _check_step(self) -> None:
        step = self._steps.observe(self._clock.now(), self._clock.monotonic())
        self.stats.clock_offset_s = offset = self._steady.wall_offset()
        if step is None:
            return
        self.stats.clock_steps += 1
        where = "behind" if offset > 0 else "ahead of"
        # The step itself is logged and alerted once for the whole gateway (ClockWatch); what
        # it means for the orders is said here, as information.
        log.info(
            "the kitchen keeps counting real seconds across the clock's step of %+.0f s; the "
            "order path's records are stamped %.0f s %s the clock until the gateway restarts",
            step.size_s, abs(offset), where,
        )  # fmt: skip

    def _log_once(self, key: str, message: str) -> None:
        if key in self._logged:
            log.debug(message)
            return
        self._logged.add(key)
        log.warning("%s (further ones are counted, not logged)", message)


def _order_id(req: OrderRequest | DecodeFailure) -> UUID | None:
    """The order's id, also read from a message that failed to decode, if it had one."""
    return req.id if isinstance(req, DecodeFailure) else req.order_id
