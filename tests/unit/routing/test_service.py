"""The order service on a real SQLite file, with an in-process outbox that records what it is given.

Every scenario runs in ``asyncio.run`` and leaves the service with ``async with``; each checks
that no task outlived it. Time is a ``ManualClock``: the ticker runs only when a test moves the
clock (``await clock.run(s)``), and no test sleeps to let time pass. Commits run on the real
writer thread against a real file; tests wait for them with ``OrderService.idle``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
import threading
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import pytest

from gateway.clock import ManualClock
from gateway.codec import (
    DecodeFailure,
    decode_command,
    decode_kds_event,
    decode_order,
    encode,
)
from gateway.contract import (
    CommandReply,
    FireCourse,
    Heartbeat,
    KdsAction,
    KdsEvent,
    ModifyLine,
    OrderLine,
    OrderReply,
    OrderRequest,
    OrderState,
    ReplyStatus,
    Ticket,
    VoidLine,
)
from gateway.errors import ServiceFailed, StoreError
from gateway.events import (
    AlertOut,
    CommandIn,
    HeartbeatIn,
    KdsEventIn,
    MenuOut,
    OrderIn,
    OutboundEvent,
    ReplyOut,
    ReplyRoute,
    StatusOut,
    TicketOut,
)
from gateway.routing import service as service_module
from gateway.routing.screens import ScreenWatch
from gateway.routing.service import OrderService, OrderStats
from gateway.site_file import parse_site
from gateway.store.sqlite import Store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.config import SiteConfig
    from gateway.store.batch import Batch

DEMO_PATH = Path(__file__).resolve().parents[3] / "examples" / "demo-site.toml"
DEMO_DATA = tomllib.loads(DEMO_PATH.read_text(encoding="utf-8"))
T0 = datetime(2026, 1, 1, 18, 0, tzinfo=UTC)
ROUTE = ReplyRoute("tab-1")
MAX = 65_536


def site(tmp_path: Path, min_free_mb: int = 0, **delivery: float) -> SiteConfig:
    data = copy.deepcopy(DEMO_DATA)
    data["state"] = {"dir": str(tmp_path), "min_free_mb": min_free_mb}
    data["delivery"] = {"resend_after_s": 3.0, **delivery}
    # Nothing sends heartbeats here: without this, every screen would fall silent (and its
    # tickets move to its backup) in the tests that let kitchen time run for minutes.
    data["kds"] = {**data["kds"], "silence_timeout_s": 3600}
    return parse_site(data)


# --- the recording outbox ------------------------------------------------------------------


class RecordingOutbox:
    """An Outbox that keeps what it is given, and looks at the file when it is given it.

    Tokens are ``(kind, id, n)`` tuples. The outbox reads the database through its own connection,
    so it sees only what was committed, never the service's open transaction.
    """

    def __init__(self, path: Path) -> None:
        self.events: list[OutboundEvent] = []
        self.acks: list[object] = []
        self.failed: list[tuple[object, Exception]] = []
        self.durable_at_ack: dict[object, bool] = {}
        self.snapshot_at_send: list[bool] = []
        self._db = sqlite3.connect(path)

    def close(self) -> None:
        self._db.close()

    def send(self, event: OutboundEvent) -> None:
        if isinstance(event, TicketOut):
            self.snapshot_at_send.append(self._has_order(event.ticket.order_id))
        self.events.append(event)

    def ack(self, token: object) -> None:
        self.acks.append(token)
        self.durable_at_ack[token] = self._durable(token)

    def fail(self, token: object, error: Exception) -> None:
        self.failed.append((token, error))

    def _durable(self, token: object) -> bool:
        assert isinstance(token, tuple)
        kind, ident = token[0], token[1]
        if kind == "order":
            sql = "SELECT 1 FROM replies WHERE order_id = ?"
        elif kind == "command":
            sql = "SELECT 1 FROM commands WHERE command_id = ?"
        else:
            return True
        key = ident.bytes if isinstance(ident, UUID) else ident
        return self._db.execute(sql, (key,)).fetchone() is not None

    def _has_order(self, order_id: UUID) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM orders WHERE json_extract(CAST(snapshot AS TEXT), '$.order_id') = ?",
            (str(order_id),),
        )
        return row.fetchone() is not None

    # --- views ---

    def tickets(self, since: int = 0) -> list[Ticket]:
        return [e.ticket for e in self.events[since:] if isinstance(e, TicketOut)]

    def versions(self, since: int = 0) -> set[tuple[UUID, int]]:
        return {(t.ticket_id, t.version) for t in self.tickets(since)}

    def replies(self, *, command: bool = False, since: int = 0) -> list[ReplyOut]:
        return [e for e in self.events[since:] if isinstance(e, ReplyOut) and e.command is command]

    def states(self) -> list[tuple[UUID, OrderState]]:
        return [
            (e.update.order_id, e.update.state) for e in self.events if isinstance(e, StatusOut)
        ]


# --- running the service -------------------------------------------------------------------


class Harness:
    """One service on one store file, with helpers to submit and wait."""

    def __init__(self, cfg: SiteConfig, path: Path, start: datetime = T0) -> None:
        self.cfg = cfg
        self.path = path
        self.clock = ManualClock(start)
        self.store = Store(path, cfg.state.durability)
        self.outbox = RecordingOutbox(path)
        self.svc = OrderService(cfg, self.store, self.clock, self.outbox)
        self._n = 0

    def close(self) -> None:
        self.outbox.close()
        self.store.close()

    async def settle(self, token: object) -> None:
        await self.svc.idle()
        assert token in self.outbox.acks

    async def order(self, req: OrderRequest | DecodeFailure, route: ReplyRoute = ROUTE) -> ReplyOut:
        oid = req.id if isinstance(req, DecodeFailure) else req.order_id
        self._n += 1
        token = ("order", oid, self._n)
        mark = len(self.outbox.events)
        self.svc.submit(OrderIn(req, route, token))
        await self.settle(token)
        (reply,) = self.outbox.replies(since=mark)
        return reply

    async def command(self, cmd: FireCourse | VoidLine | ModifyLine | DecodeFailure) -> ReplyOut:
        cid = cmd.id if isinstance(cmd, DecodeFailure) else cmd.command_id
        self._n += 1
        token = ("command", cid, self._n)
        mark = len(self.outbox.events)
        self.svc.submit(CommandIn(cmd, ROUTE, token))
        await self.settle(token)
        (reply,) = self.outbox.replies(command=True, since=mark)
        return reply

    async def kds(self, t: Ticket, action: KdsAction, version: int | None = None) -> None:
        self._n += 1
        token = ("kds", self._n)
        event = KdsEvent(ticket_id=t.ticket_id, version=version or t.version, action=action)
        self.svc.submit(KdsEventIn(t.station, event, token))
        await self.settle(token)


async def turns(clock: ManualClock) -> None:
    """Let woken tasks run (the flusher handling what was submitted) without moving time."""
    await clock.run(0)


def run(
    cfg: SiteConfig,
    path: Path,
    scenario: Callable[[Harness], Awaitable[None]],
    start: datetime = T0,
) -> Harness:
    """Run ``scenario`` inside the service, stop it, and check nothing was left running.

    ``start`` is the wall time the service starts at (a restart later than the first life).
    """

    async def main() -> None:
        h = Harness(cfg, path, start)
        try:
            async with h.svc:
                await scenario(h)
            leftover = asyncio.all_tasks() - {asyncio.current_task()}
            assert not leftover, leftover
        finally:
            h.close()
        harnesses.append(h)

    harnesses: list[Harness] = []
    asyncio.run(main())
    return harnesses[0]


# --- building messages ---------------------------------------------------------------------


def order_request(*items: str, order_id: UUID | None = None, table: str = "T1") -> OrderRequest:
    return OrderRequest(
        order_id=order_id or uuid4(),
        table=table,
        items=[OrderLine(line_id=f"L{n}", item=i, qty=1) for n, i in enumerate(items)],
        placed_at=T0,
    )


def payload(**overrides: Any) -> bytes:
    body: dict[str, Any] = {
        "order_id": str(uuid4()),
        "table": "T1",
        "placed_at": "2026-01-01T18:00:00Z",
        "items": [{"line_id": "L0", "item": "bruschetta", "qty": 1}],
    }
    body.update(overrides)
    return json.dumps(body).encode()


def reply_of(out: ReplyOut) -> OrderReply:
    return OrderReply.model_validate_json(out.body)


def command_reply_of(out: ReplyOut) -> CommandReply:
    return CommandReply.model_validate_json(out.body)


def latest(tickets: list[Ticket]) -> dict[UUID, Ticket]:
    out: dict[UUID, Ticket] = {}
    for t in tickets:
        if t.ticket_id not in out or t.version > out[t.ticket_id].version:
            out[t.ticket_id] = t
    return out


def at_station(tickets: list[Ticket], station: str, order_id: UUID | None = None) -> Ticket:
    found = [
        t
        for t in latest(tickets).values()
        if t.station == station and (order_id is None or t.order_id == order_id)
    ]
    assert len(found) == 1, found
    return found[0]


# --- orders ------------------------------------------------------------------------------


class GatedStore(Store):
    """The real store, whose commits wait while ``gate`` is closed (a disk that hangs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.batch_sizes: list[int] = []

    def commit(self, batch: Batch) -> None:
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        self.batch_sizes.append(len(batch.replies))
        super().commit(batch)

    async def commit_started(self) -> None:
        """Return once a commit is on the writer thread (waited for off the loop)."""
        assert await asyncio.to_thread(self.entered.wait, 10), "no commit started"


def test_orders_arriving_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    """Group commit: a slow disk makes batches bigger, not the service slower per order."""
    cfg = site(tmp_path)
    reqs = [order_request("bruschetta") for _ in range(40)]

    async def main() -> tuple[GatedStore, RecordingOutbox, OrderStats]:
        store = GatedStore(tmp_path / "g.db")
        outbox = RecordingOutbox(tmp_path / "g.db")
        clock = ManualClock(T0)
        svc = OrderService(cfg, store, clock, outbox)
        try:
            async with svc:
                store.gate.clear()
                svc.submit(OrderIn(reqs[0], ROUTE, ("order", reqs[0].order_id, 0)))
                await store.commit_started()  # the first commit is held on the writer thread
                for n, req in enumerate(reqs[1:], 1):
                    svc.submit(OrderIn(req, ROUTE, ("order", req.order_id, n)))
                    await turns(clock)
                # The loop was not blocked by the commit in progress: every order is handled,
                # none acknowledged.
                assert svc.stats.orders_accepted == len(reqs)
                assert outbox.acks == []
                store.gate.set()
                await svc.idle()
        finally:
            store.gate.set()
            outbox.close()
            store.close()
        return store, outbox, svc.stats

    store, outbox, stats = asyncio.run(main())
    assert store.batch_sizes == [1, 39]
    assert stats.batches == 2
    # Every ack still came after its order was on disk.
    assert len(outbox.acks) == len(reqs)
    assert all(outbox.durable_at_ack.values())
    assert len(outbox.replies()) == len(reqs)


def test_a_resend_while_its_order_waits_for_a_commit_is_not_a_second_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uncommitted replies stay in memory however small the cache: the reader can't see them."""
    monkeypatch.setattr(service_module, "_REPLY_CACHE", 2)
    cfg = site(tmp_path)
    reqs = [order_request("bruschetta") for _ in range(10)]

    async def main() -> tuple[GatedStore, RecordingOutbox, OrderStats]:
        store = GatedStore(tmp_path / "g.db")
        outbox = RecordingOutbox(tmp_path / "g.db")
        clock = ManualClock(T0)
        svc = OrderService(cfg, store, clock, outbox)
        try:
            async with svc:
                store.gate.clear()
                svc.submit(OrderIn(reqs[0], ROUTE, ("order", reqs[0].order_id, 0)))
                await store.commit_started()  # the first commit is held on the writer thread
                for n, req in enumerate(reqs[1:], 1):
                    svc.submit(OrderIn(req, ROUTE, ("order", req.order_id, n)))
                await turns(clock)  # handled into the next batch, not committed
                # The tablets resend every order before any reply came back.
                for n, req in enumerate(reqs, 100):
                    svc.submit(OrderIn(req, ROUTE, ("order", req.order_id, n)))
                await turns(clock)
                assert outbox.acks == []
                store.gate.set()
                await svc.idle()
        finally:
            store.gate.set()
            outbox.close()
            store.close()
        return store, outbox, svc.stats

    store, outbox, stats = asyncio.run(main())
    assert len(outbox.acks) == 2 * len(reqs)
    # The first order alone, then its resend with the other nine and their resends.
    assert store.batch_sizes == [1, 9]
    assert stats.orders_accepted == len(reqs)
    assert stats.orders_duplicate == len(reqs)
    first = {r.order_id: r for r in reqs}
    assert len({t.order_id for t in outbox.tickets()} & set(first)) == len(reqs)
    assert len(outbox.tickets()) == len({(t.ticket_id, t.version) for t in outbox.tickets()})


class FailingStore(Store):
    """The real store, whose commits fail as a broken disk's would."""

    def commit(self, batch: Batch) -> None:
        raise StoreError("disk I/O error")


def test_a_failed_commit_stops_the_service_with_nothing_acknowledged(tmp_path: Path) -> None:
    """The service is a lifecycle Service: its loops are named, and a failing one leaves it."""
    cfg = site(tmp_path)
    req = order_request("bruschetta")

    async def main() -> tuple[RecordingOutbox, list[str]]:
        store = FailingStore(tmp_path / "g.db")
        outbox = RecordingOutbox(tmp_path / "g.db")
        svc = OrderService(cfg, store, ManualClock(T0), outbox)
        names: list[str] = []

        async def use() -> None:
            async with svc:
                assert svc.running
                names.extend(t.get_name() for t in asyncio.all_tasks())
                svc.submit(OrderIn(req, ROUTE, ("order", req.order_id, 0)))
                await svc.idle()  # the failing loop cancels this wait

        try:
            with pytest.raises(ServiceFailed) as info:
                await use()
            assert info.value.service == "orders"
            assert isinstance(info.value.cause, StoreError)
            assert not svc.running
        finally:
            outbox.close()
            store.close()
        return outbox, names

    outbox, names = asyncio.run(main())
    assert {"orders:flusher", "orders:committer", "orders:ticker"} <= set(names)
    assert outbox.acks == []
    assert outbox.replies() == []
    assert outbox.tickets() == []


def test_a_handler_that_raises_fails_its_message_and_holds_no_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in handling one event: counted, logged once, handed back to the adapter.

    The other events of its batch are committed and acknowledged as usual, and the service
    keeps running.
    """
    cfg = site(tmp_path)
    good, bad, worse = (order_request(i) for i in ("bruschetta", "burger", "fries"))
    tokens = [("order", r.order_id, n) for n, r in enumerate((good, bad, worse))]

    async def scenario(h: Harness) -> None:
        accept = h.svc.kitchen.accept

        def flaky(order: Any, device: str, now: datetime) -> Any:
            if order.order_id != good.order_id:
                raise RuntimeError("a bug in the kitchen")
            return accept(order, device, now)

        monkeypatch.setattr(h.svc.kitchen, "accept", flaky)
        for req, token in zip((good, bad, worse), tokens, strict=True):
            h.svc.submit(OrderIn(req, ROUTE, token))
        await h.svc.idle()
        assert h.outbox.acks == [tokens[0]]
        assert [t for t, _ in h.outbox.failed] == tokens[1:]
        assert all(isinstance(e, RuntimeError) for _, e in h.outbox.failed)
        assert h.svc.stats.handler_failures == 2
        assert h.svc.stats.orders_accepted == 1
        assert [reply_of(r).order_id for r in h.outbox.replies()] == [good.order_id]
        # Still running: the adapter's retry of a failed message is handled like any other.
        monkeypatch.setattr(h.svc.kitchen, "accept", accept)
        assert reply_of(await h.order(bad)).status is ReplyStatus.ACCEPTED

    with caplog.at_level("DEBUG", logger="gateway.routing.service"):
        run(cfg, tmp_path / "g.db", scenario)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1  # the second failure of the same kind is only counted
    assert errors[0].exc_info is not None
    assert "OrderIn" in errors[0].getMessage()


def test_a_heartbeat_whose_handling_raises_is_only_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heartbeat has no message to retry or dead-letter: the failure is counted, no more."""
    cfg = site(tmp_path)

    def broken(self: ScreenWatch, station: str, mono: float) -> None:
        raise RuntimeError("a bug in the screen watch")

    async def scenario(h: Harness) -> None:
        monkeypatch.setattr(ScreenWatch, "heard", broken)
        h.svc.submit(HeartbeatIn("grill", Heartbeat(device="grill", sent_at=T0)))
        assert h.svc.stats.handler_failures == 1
        assert h.outbox.failed == []

    run(cfg, tmp_path / "g.db", scenario)


def test_a_store_error_while_handling_stops_the_service(tmp_path: Path) -> None:
    """Not a bug in one handler: durable state is in doubt, so nothing more is acknowledged."""
    cfg = site(tmp_path)
    req = order_request("bruschetta", "tiramisu")

    class LostStore(Store):
        def command_reply(self, command_id: UUID) -> bytes | None:
            raise StoreError("database disk image is malformed")

    async def main() -> tuple[RecordingOutbox, OrderService]:
        store = LostStore(tmp_path / "g.db")
        outbox = RecordingOutbox(tmp_path / "g.db")
        svc = OrderService(cfg, store, ManualClock(T0), outbox)

        async def use() -> None:
            async with svc:
                svc.submit(OrderIn(req, ROUTE, ("order", req.order_id, 0)))
                await svc.idle()
                svc.submit(CommandIn(_fire(req.order_id), ROUTE, ("command", "c", 1)))
                await svc.idle()

        try:
            with pytest.raises(ServiceFailed) as info:
                await use()
            assert isinstance(info.value.cause, StoreError)
        finally:
            outbox.close()
            store.close()
        return outbox, svc

    outbox, svc = asyncio.run(main())
    assert outbox.acks == [("order", req.order_id, 0)]
    assert outbox.failed == []
    assert svc.stats.handler_failures == 0


def test_an_order_is_accepted_once_and_acked_only_after_the_commit(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    req = order_request("bruschetta", "arancini")  # cold and fry, both course 1

    async def scenario(h: Harness) -> None:
        reply = await h.order(req)
        assert reply.route == ROUTE
        assert not reply.command
        body = reply_of(reply)
        assert (body.order_id, body.status, body.errors) == (req.order_id, "accepted", [])
        assert body.total is not None
        assert (body.total.amount, body.total.currency) == (650 + 750, "EUR")
        # The reply was on disk (committed, seen from another connection) when acked...
        assert h.outbox.durable_at_ack == {("order", req.order_id, 1): True}
        # ...and so was the order's snapshot whenever one of its tickets was handed out.
        assert h.outbox.snapshot_at_send
        assert all(h.outbox.snapshot_at_send)
        assert h.store.reply_for(req.order_id) == reply.body
        assert h.svc.stats.orders_accepted == 1
        assert h.svc.stats.batches >= 1

    h = run(cfg, tmp_path / "g.db", scenario)
    assert len(h.outbox.replies()) == 1
    first = latest(h.outbox.tickets())
    # arancini (360 s) fires at once, bruschetta (240 s) 120 s later: fry and expo now.
    assert sorted((t.station, t.version) for t in first.values()) == [("expo", 1), ("fry", 1)]
    assert all(t.order_id == req.order_id for t in first.values())
    # "accepted" is superseded within the batch by "in_kitchen" (tickets fired at once): the
    # order's status topic gets only the current state.
    assert h.outbox.states() == [(req.order_id, OrderState.IN_KITCHEN)]
    assert isinstance(h.outbox.events[0], MenuOut)


def test_a_resent_order_gets_the_same_reply_bytes_and_no_new_tickets(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    req = order_request("burger", "fries")

    async def scenario(h: Harness) -> None:
        first = await h.order(req)
        versions = h.outbox.versions()
        mark = len(h.outbox.events)
        again = await h.order(req)
        assert again.body == first.body
        assert h.outbox.tickets(mark) == []
        assert h.outbox.versions() == versions
        assert h.svc.stats.orders_accepted == 1
        assert h.svc.stats.orders_duplicate == 1
        # Another tablet cannot reuse the id to make a second order either.
        other = await h.order(order_request("ribeye", order_id=req.order_id), ReplyRoute("tab-2"))
        assert other.body == first.body
        assert other.route == ReplyRoute("tab-2")
        assert h.outbox.versions() == versions

    run(cfg, tmp_path / "g.db", scenario)


def test_an_unreadable_order_is_rejected_naming_the_problem(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    bad = decode_order(payload(items=[{"line_id": "L0", "item": "bruschetta", "qty": "two"}]), MAX)
    assert isinstance(bad, DecodeFailure)
    assert bad.id is not None

    async def scenario(h: Harness) -> None:
        reply = await h.order(bad)
        body = reply_of(reply)
        assert body.status is ReplyStatus.REJECTED
        assert body.order_id == bad.id
        assert [e.path for e in body.errors] == ["items[0].qty"]
        assert h.svc.stats.orders_rejected == 1
        assert h.svc.stats.rejected_by_reason == {"schema": 1}
        # A rejection is final: the same order id gets the same answer.
        assert (await h.order(bad)).body == reply.body
        assert h.store.reply_for(bad.id) == reply.body

    h = run(cfg, tmp_path / "g.db", scenario)
    assert h.outbox.tickets() == []


def test_a_payload_that_is_not_json_is_rejected_and_counted(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    bad = decode_order(b"{not json", MAX)
    assert isinstance(bad, DecodeFailure)

    async def scenario(h: Harness) -> None:
        body = reply_of(await h.order(bad))
        assert body.status is ReplyStatus.REJECTED
        assert body.order_id is None
        assert body.errors
        assert "JSON" in body.errors[0].message
        assert h.svc.stats.rejected_by_reason == {"not_json": 1}
        assert h.store.count("replies") == 0  # nothing to key it by

    run(cfg, tmp_path / "g.db", scenario)


def test_a_price_from_the_tablet_is_rejected_at_its_path(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    item = {"line_id": "L0", "item": "bruschetta", "qty": 1, "price": 1}
    bad = decode_order(payload(items=[item]), MAX)
    assert isinstance(bad, DecodeFailure)

    async def scenario(h: Harness) -> None:
        body = reply_of(await h.order(bad))
        assert body.status is ReplyStatus.REJECTED
        (err,) = body.errors
        assert err.path == "items[0].price"
        assert "price" in err.message
        assert h.svc.stats.orders_accepted == 0

    h = run(cfg, tmp_path / "g.db", scenario)
    assert h.outbox.tickets() == []


def test_an_order_the_menu_does_not_allow_is_rejected_with_every_problem(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    req = OrderRequest(
        order_id=uuid4(),
        table="T99",
        items=[
            OrderLine(line_id="L0", item="pizza", qty=1),
            OrderLine(line_id="L1", item="water", qty=1, modifiers=["rare"]),
        ],
        placed_at=T0,
    )

    async def scenario(h: Harness) -> None:
        body = reply_of(await h.order(req))
        assert body.status is ReplyStatus.REJECTED
        assert [e.path for e in body.errors] == ["table", "items[0].item", "items[1].modifiers[0]"]
        assert h.svc.stats.rejected_by_reason == {"invalid": 1}

    h = run(cfg, tmp_path / "g.db", scenario)
    assert h.outbox.tickets() == []


def _disk_alerts(h: Harness) -> list[AlertOut]:
    return [e for e in h.outbox.events if isinstance(e, AlertOut) and e.alert.kind == "disk_full"]


def test_orders_are_refused_while_the_disk_is_low_and_the_refusal_is_not_final(
    tmp_path: Path,
) -> None:
    cfg = site(tmp_path, min_free_mb=10**12)  # no disk has this much free: always "low"
    req = order_request("bruschetta")

    async def scenario(h: Harness) -> None:
        assert _disk_alerts(h)  # the disk is checked at start, before any order
        body = reply_of(await h.order(req))
        assert body.status is ReplyStatus.REJECTED
        assert "disk" in body.errors[0].message
        assert h.svc.stats.rejected_by_reason == {"disk_full": 1}
        # Not stored: once space is freed, the tablet's resend of this order is accepted.
        assert h.store.reply_for(req.order_id) is None

    h = run(cfg, tmp_path / "g.db", scenario)
    assert h.outbox.tickets() == []
    assert _disk_alerts(h)[0].alert.level == "critical"


def test_a_disk_full_refusal_names_the_order(tmp_path: Path) -> None:
    cfg = site(tmp_path, min_free_mb=10**12)
    req = order_request("bruschetta")

    async def scenario(h: Harness) -> None:
        assert _disk_alerts(h)
        assert reply_of(await h.order(req)).order_id == req.order_id

    run(cfg, tmp_path / "g.db", scenario)


# --- restarts and resends --------------------------------------------------------------------


def ticket_bodies(events: list[OutboundEvent]) -> dict[tuple[UUID, int], bytes]:
    """The bytes each ticket version was handed to the adapter as (checked to be its model's)."""
    bodies = {}
    for e in events:
        if isinstance(e, TicketOut):
            assert e.body == encode(e.ticket)
            bodies[e.ticket.ticket_id, e.ticket.version] = e.body
    return bodies


def stored_tickets(path: Path, keys: set[tuple[UUID, int]]) -> dict[tuple[UUID, int], bytes]:
    """The sent-ticket rows of the store for these (ticket id, version)."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT ticket_id, version, payload FROM tickets").fetchall()
    finally:
        db.close()
    found = {(UUID(bytes=t), v): bytes(p) for t, v, p in rows}
    return {k: found[k] for k in keys if k in found}


def test_a_restart_resends_exactly_the_unacked_versions_with_the_same_content(
    tmp_path: Path,
) -> None:
    cfg = site(tmp_path)
    path = tmp_path / "g.db"
    a = order_request("bruschetta", "arancini")
    b = order_request("burger")
    expected: dict[tuple[UUID, int], bytes] = {}
    acked: set[tuple[UUID, int]] = set()

    async def first_life(h: Harness) -> None:
        await h.order(a)
        await h.order(b)
        tickets = h.outbox.tickets()
        a_expo, a_fry = at_station(tickets, "expo", a.order_id), at_station(tickets, "fry")
        b_grill = at_station(tickets, "grill", b.order_id)
        for t in (a_expo, a_fry, b_grill):
            await h.kds(t, KdsAction.ACK)
            acked.add((t.ticket_id, t.version))
        # A change after the acks: new versions of the fry and expo tickets of order a.
        reply = await h.command(
            ModifyLine(
                command="modify_line", command_id=uuid4(), order_id=a.order_id,
                line_id="L1", qty=2,
            )
        )  # fmt: skip
        assert command_reply_of(reply).status is ReplyStatus.ACCEPTED
        for t in latest(h.outbox.tickets()).values():
            if (t.ticket_id, t.version) not in acked:
                expected[t.ticket_id, t.version] = encode(t)
        sent_bodies.update(ticket_bodies(h.outbox.events))

    sent_bodies: dict[tuple[UUID, int], bytes] = {}
    run(cfg, path, first_life)
    assert len(expected) == 3  # a's expo v2 and fry v2, b's expo v1
    # The store holds each unacked version as exactly the bytes that were published.
    assert stored_tickets(path, set(expected)) == {k: sent_bodies[k] for k in expected}

    async def second_life(h: Harness) -> None:
        assert len(h.svc.kitchen) == 2
        await h.clock.run(0.2)  # the first tick resends them
        assert h.outbox.versions() >= set(expected)
        # Resends go on until acked; let one more tick pass to see nothing else turns up.
        await h.clock.run(0.2)
        await h.svc.idle()

    h = run(cfg, path, second_life)
    resent = h.outbox.tickets()
    assert {(t.ticket_id, t.version) for t in resent} == set(expected)
    for t in resent:
        assert encode(t) == expected[t.ticket_id, t.version]
    # Resent as the very bytes of the first life.
    assert ticket_bodies(h.outbox.events).items() <= sent_bodies.items()
    assert h.svc.stats.tickets_resent >= 3


def test_a_resent_order_or_command_after_a_restart_gets_the_same_reply(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    path = tmp_path / "g.db"
    req = order_request("bruschetta", "tiramisu")
    fire = FireCourse(command="fire_course", command_id=uuid4(), order_id=req.order_id, course=3)
    replies: list[bytes] = []
    versions: set[tuple[UUID, int]] = set()

    async def first_life(h: Harness) -> None:
        replies.append((await h.order(req)).body)
        replies.append((await h.command(fire)).body)
        versions.update(h.outbox.versions())

    run(cfg, path, first_life)

    async def second_life(h: Harness) -> None:
        assert (await h.order(req)).body == replies[0]
        assert (await h.command(fire)).body == replies[1]
        await h.clock.run(0.3)  # the first tick resends what the screens never acked
        # Only resends: no new order, no course fired a second time.
        assert h.outbox.versions() <= versions
        assert h.svc.stats.orders_accepted == 0
        assert h.svc.stats.orders_duplicate == 1

    run(cfg, path, second_life)


def test_one_batch_of_old_resends_and_new_orders_after_a_restart(tmp_path: Path) -> None:
    """The stored replies are looked up for the whole batch at once; each order still once."""
    cfg = site(tmp_path)
    path = tmp_path / "g.db"
    old = [order_request("bruschetta") for _ in range(30)]
    new = [order_request("arancini") for _ in range(30)]
    replies: dict[UUID, bytes] = {}

    async def first_life(h: Harness) -> None:
        for req in old:
            replies[req.order_id] = (await h.order(req)).body

    run(cfg, path, first_life)

    async def second_life(h: Harness) -> None:
        # Committed just before this start: sent again at once, before any resend came.
        assert h.svc.stats.replies_resent == len(old)
        mark = len(h.outbox.events)
        # Interleaved, each new order twice, all submitted before the service runs a batch.
        mixed = [r for pair in zip(old, new, new, strict=True) for r in pair]
        tokens = [("order", r.order_id, n) for n, r in enumerate(mixed)]
        for req, token in zip(mixed, tokens, strict=True):
            h.svc.submit(OrderIn(req, ROUTE, token))
        await h.svc.idle()
        assert all(t in h.outbox.acks for t in tokens)
        assert h.svc.stats.batches == 1
        got = [reply_of(r) for r in h.outbox.replies(since=mark)]
        assert [r.order_id for r in got] == [r.order_id for r in mixed]
        by_id = {reply_of(r).order_id: r.body for r in h.outbox.replies(since=mark)}
        assert all(by_id[o.order_id] == replies[o.order_id] for o in old)
        assert all(r.status == "accepted" for r in got)
        assert h.svc.stats.orders_accepted == len(new)
        assert h.svc.stats.orders_duplicate == len(old) + len(new)

    run(cfg, path, second_life)


def test_the_replies_committed_just_before_a_restart_are_sent_again(tmp_path: Path) -> None:
    """A crash between a commit and its publish: the tablet gets its reply without retrying."""
    cfg = site(tmp_path)
    path = tmp_path / "g.db"
    old = order_request("bruschetta")
    recent = order_request("burger", table="T2")
    rejected = order_request("pizza")  # not on the menu: a rejection is a final reply too
    replies: dict[UUID, bytes] = {}

    async def first_life(h: Harness) -> None:
        replies[old.order_id] = (await h.order(old)).body
        h.clock.advance(45)  # the wall time of the next commits: T0 + 45 s
        replies[recent.order_id] = (await h.order(recent, ReplyRoute("tab-2"))).body
        replies[rejected.order_id] = (await h.order(rejected)).body

    run(cfg, path, first_life)

    async def second_life(h: Harness) -> None:
        # Sent while starting, before any tablet sent anything again.
        assert h.svc.stats.replies_resent == 2
        assert h.outbox.acks == []

    # Started 60 s after the first: only what was committed within the last 30 s comes again.
    h = run(cfg, path, second_life, start=T0 + timedelta(seconds=60))
    again = h.outbox.replies()
    assert {(r.route, r.body) for r in again} == {
        (ReplyRoute("tab-2"), replies[recent.order_id]),
        (ROUTE, replies[rejected.order_id]),
    }
    assert h.outbox.replies(command=True) == []
    assert h.svc.stats.orders_accepted == 0


@pytest.mark.parametrize(
    "later", [timedelta(hours=2), timedelta(hours=-2)], ids=["after a long reboot", "clock behind"]
)
def test_the_last_replies_come_again_whatever_the_clock_says_at_the_restart(
    tmp_path: Path, later: timedelta
) -> None:
    cfg = site(tmp_path)
    path = tmp_path / "g.db"
    old, recent = order_request("bruschetta"), order_request("burger", table="T2")

    async def first_life(h: Harness) -> None:
        await h.order(old)
        h.clock.advance(45)
        await h.order(recent, ReplyRoute("tab-2"))

    run(cfg, path, first_life)

    async def second_life(h: Harness) -> None:
        assert h.svc.stats.replies_resent == 1

    # The last 30 s of commits, measured from the newest commit: not "nothing" after a reboot
    # that took two hours, not "everything since" on a clock that came up two hours behind.
    h = run(cfg, path, second_life, start=T0 + timedelta(seconds=45) + later)
    assert [r.route for r in h.outbox.replies()] == [ReplyRoute("tab-2")]


def test_an_ack_from_the_screen_stops_resends_of_that_version(tmp_path: Path) -> None:
    cfg = site(tmp_path, resend_after_s=0.05, resend_max_interval_s=0.2)
    req = order_request("arancini", "calamari", "water")  # fry now, bar later; course 1

    async def scenario(h: Harness) -> None:
        await h.order(req)
        h.clock.advance(400)  # the ticker wakes once, 400 s on, and releases the bar's line
        await turns(h.clock)
        await h.svc.idle()
        tickets = h.outbox.tickets()
        fry, bar = at_station(tickets, "fry"), at_station(tickets, "bar")
        await h.kds(fry, KdsAction.ACK)
        mark = len(h.outbox.events)
        # The bar never acks: it is resent (after 0.05, 0.1 and 0.2 s: on three ticks of the
        # next second, then every 0.2 s) while the fry ticket is not.
        await h.clock.run(1.0)
        assert sum(t.ticket_id == bar.ticket_id for t in h.outbox.tickets(mark)) >= 2
        assert all(t.ticket_id != fry.ticket_id for t in h.outbox.tickets(mark))
        assert h.svc.stats.tickets_resent >= 2

        # A change makes fry v2; an ack of v1 (late, from before) does not stop its resends.
        await h.command(
            ModifyLine(
                command="modify_line", command_id=uuid4(), order_id=req.order_id,
                line_id="L0", qty=2,
            )
        )  # fmt: skip
        fry2 = at_station(h.outbox.tickets(), "fry")
        assert (fry2.ticket_id, fry2.version) == (fry.ticket_id, 2)
        await h.kds(fry, KdsAction.ACK, version=1)
        mark = len(h.outbox.events)
        await h.clock.run(1.0)
        assert fry2 in h.outbox.tickets(mark)
        await h.kds(fry2, KdsAction.ACK)
        await h.kds(bar, KdsAction.ACK)
        mark = len(h.outbox.events)
        await h.clock.run(1.0)
        resent = {t.ticket_id for t in h.outbox.tickets(mark)}
        assert fry.ticket_id not in resent
        assert bar.ticket_id not in resent

    run(cfg, tmp_path / "g.db", scenario)


def test_a_screens_ack_is_acknowledged_without_waiting_for_a_commit(tmp_path: Path) -> None:
    """Losing an ack costs only a resend, so it does not queue behind the disk; a bump does."""
    cfg = site(tmp_path)
    path = tmp_path / "g.db"
    req = order_request("arancini", "water")  # fry now, the bar later

    async def main() -> None:
        store = GatedStore(path, cfg.state.durability)
        outbox = RecordingOutbox(path)
        clock = ManualClock(T0)
        svc = OrderService(cfg, store, clock, outbox)
        try:
            async with svc:
                svc.submit(OrderIn(req, ROUTE, ("order", req.order_id, 0)))
                await svc.idle()
                assert len(outbox.acks) == 1
                fry = at_station(outbox.tickets(), "fry")
                store.gate.clear()
                bump = KdsEvent(ticket_id=fry.ticket_id, version=1, action=KdsAction.BUMP)
                ack = bump.model_copy(update={"action": KdsAction.ACK})
                svc.submit(KdsEventIn("fry", ack, ("kds", "ack")))
                svc.submit(KdsEventIn("fry", bump, ("kds", "bump")))
                await turns(clock)
                assert ("kds", "ack") in outbox.acks
                await clock.run(0.3)  # a tick: its commit waits at the gate too
                assert ("kds", "bump") not in outbox.acks
                store.gate.set()
                await svc.idle()
                assert ("kds", "bump") in outbox.acks
        finally:
            store.gate.set()
            outbox.close()
            store.close()

    asyncio.run(main())


def test_an_ack_alone_is_saved_by_the_next_tick(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    path = tmp_path / "g.db"
    req = order_request("arancini", "calamari")  # fry and expo, nothing scheduled
    fry_id: list[UUID] = []

    async def first_life(h: Harness) -> None:
        await h.order(req)
        fry = at_station(h.outbox.tickets(), "fry")
        fry_id.append(fry.ticket_id)
        commits = h.store.commits
        await h.kds(fry, KdsAction.ACK)
        # Nothing else happens; the ticker commits the ack's row by itself.
        await h.clock.run(0.2)
        await h.svc.idle()
        assert h.store.commits > commits
        assert h.store.acks() == {fry.ticket_id: 1}

    run(cfg, path, first_life)

    async def second_life(h: Harness) -> None:
        await h.clock.run(0.4)  # two ticks: every unacked ticket is resent on the first

    h = run(cfg, path, second_life)
    # Only the expo ticket, never acked, comes again.
    assert {t.station for t in h.outbox.tickets()} == {"expo"}
    assert fry_id[0] not in {t.ticket_id for t in h.outbox.tickets()}


def test_a_bump_by_every_station_and_the_expo_closes_the_order(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    path = tmp_path / "g.db"
    req = order_request("arancini", "water")

    async def scenario(h: Harness) -> None:
        await h.order(req)
        h.clock.advance(400)  # the water waits for the arancini; the ticker releases it
        await turns(h.clock)
        await h.svc.idle()
        assert any(t.station == "bar" for t in h.outbox.tickets())
        assert all(h.outbox.snapshot_at_send)
        tickets = h.outbox.tickets()
        for station in ("fry", "bar"):
            await h.kds(at_station(tickets, station), KdsAction.BUMP)
        assert (req.order_id, OrderState.READY) in h.outbox.states()
        await h.kds(at_station(h.outbox.tickets(), "expo"), KdsAction.BUMP)
        assert (req.order_id, OrderState.CLOSED) in h.outbox.states()
        assert req.order_id not in h.svc.kitchen
        assert list(h.store.open_orders()) == []

    run(cfg, path, scenario)


def test_an_unreadable_screen_message_is_counted_and_acked(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    bad = decode_kds_event(b'{"ticket_id": "nope", "version": 0, "action": "eat"}', MAX)
    assert isinstance(bad, DecodeFailure)

    async def scenario(h: Harness) -> None:
        token = ("kds", "bad")
        h.svc.submit(KdsEventIn("grill", bad, token))
        await h.settle(token)
        assert h.svc.stats.bad_kds_messages == 1
        assert h.svc.stats.kds_events == 0

    run(cfg, tmp_path / "g.db", scenario)


# --- commands ------------------------------------------------------------------------------


def _fire(order_id: UUID) -> FireCourse:
    return FireCourse(command="fire_course", command_id=uuid4(), order_id=order_id, course=3)


def _void(order_id: UUID) -> VoidLine:
    return VoidLine(command="void_line", command_id=uuid4(), order_id=order_id, line_id="L1")


def _modify(order_id: UUID) -> ModifyLine:
    return ModifyLine(
        command="modify_line", command_id=uuid4(), order_id=order_id, line_id="L0", qty=3
    )


@pytest.mark.parametrize(
    ("make", "changed"),
    [
        (_fire, {("pastry", 1), ("expo", 2)}),  # the held dessert goes out; the expo updates
        (_void, {("cold", 2), ("expo", 2)}),
        (_modify, {("cold", 2), ("expo", 2)}),
    ],
    ids=["fire_course", "void_line", "modify_line"],
)
def test_a_command_applies_once_and_a_resend_gets_the_same_reply(
    tmp_path: Path,
    make: Callable[[UUID], FireCourse | VoidLine | ModifyLine],
    changed: set[tuple[str, int]],
) -> None:
    cfg = site(tmp_path)
    req = order_request("bruschetta", "burrata", "tiramisu")  # cold now; pastry held

    async def scenario(h: Harness) -> None:
        await h.order(req)
        cmd = make(req.order_id)
        mark = len(h.outbox.events)
        first = await h.command(cmd)
        body = command_reply_of(first)
        assert (body.command_id, body.status, body.errors) == (
            cmd.command_id,
            ReplyStatus.ACCEPTED,
            [],
        )
        assert first.command
        assert h.outbox.durable_at_ack[("command", cmd.command_id, 2)]
        new = {(t.station, t.version) for t in h.outbox.tickets(mark)}
        assert new == changed
        versions = h.outbox.versions()

        mark = len(h.outbox.events)
        again = await h.command(cmd)
        assert again.body == first.body
        assert h.outbox.tickets(mark) == []
        assert h.outbox.versions() == versions
        assert h.svc.stats.commands == 2

    run(cfg, tmp_path / "g.db", scenario)


def test_the_change_a_command_makes_reaches_the_ticket(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    req = order_request("bruschetta", "burrata", "tiramisu")

    async def scenario(h: Harness) -> None:
        await h.order(req)
        await h.command(_modify(req.order_id))
        await h.command(_void(req.order_id))
        cold = at_station(h.outbox.tickets(), "cold")
        assert cold.version == 3
        assert {i.line_id: (i.qty, i.voided) for i in cold.items} == {
            "L0": (3, False),
            "L1": (1, True),
        }

    run(cfg, tmp_path / "g.db", scenario)


@pytest.mark.parametrize(
    ("cmd", "path"),
    [
        (lambda oid: FireCourse(command="fire_course", command_id=uuid4(), order_id=uuid4(),
                                course=1), "order_id"),
        (lambda oid: FireCourse(command="fire_course", command_id=uuid4(), order_id=oid,
                                course=2), "course"),
        (lambda oid: VoidLine(command="void_line", command_id=uuid4(), order_id=oid,
                              line_id="L9"), "line_id"),
        (lambda oid: ModifyLine(command="modify_line", command_id=uuid4(), order_id=oid,
                                line_id="L0", qty=0), "qty"),
        (lambda oid: ModifyLine(command="modify_line", command_id=uuid4(), order_id=oid,
                                line_id="L0", modifiers=["rare"]), "modifiers[0]"),
    ],
    ids=["unknown-order", "no-such-course", "no-such-line", "zero-qty", "bad-modifier"],
)  # fmt: skip
def test_a_command_that_cannot_apply_is_rejected_at_its_path(
    tmp_path: Path, cmd: Callable[[UUID], FireCourse | VoidLine | ModifyLine], path: str
) -> None:
    cfg = site(tmp_path)
    req = order_request("bruschetta", "tiramisu")

    async def scenario(h: Harness) -> None:
        await h.order(req)
        command = cmd(req.order_id)
        mark = len(h.outbox.events)
        first = await h.command(command)
        body = command_reply_of(first)
        assert body.status is ReplyStatus.REJECTED
        assert [e.path for e in body.errors] == [path]
        assert h.outbox.tickets(mark) == []
        assert (await h.command(command)).body == first.body  # final, like an order's

    run(cfg, tmp_path / "g.db", scenario)


def test_an_unreadable_command_is_rejected_naming_the_problem(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    raw = json.dumps({"command": "fire_course", "command_id": str(uuid4()), "course": 1})
    bad = decode_command(raw.encode(), MAX)
    assert isinstance(bad, DecodeFailure)

    async def scenario(h: Harness) -> None:
        body = command_reply_of(await h.command(bad))
        assert body.status is ReplyStatus.REJECTED
        assert body.command_id == bad.id
        assert [e.path for e in body.errors] == ["order_id"]

    run(cfg, tmp_path / "g.db", scenario)


def test_a_command_delivered_twice_in_one_batch_applies_once(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    req = order_request("bruschetta", "burrata")

    async def scenario(h: Harness) -> None:
        await h.order(req)
        cmd = _modify(req.order_id)
        mark = len(h.outbox.events)
        # A QoS 1 redelivery arriving before the first copy was committed.
        h.svc.submit(CommandIn(cmd, ROUTE, ("command", cmd.command_id, "a")))
        h.svc.submit(CommandIn(cmd, ROUTE, ("command", cmd.command_id, "b")))
        await h.settle(("command", cmd.command_id, "b"))
        first, second = h.outbox.replies(command=True, since=mark)
        assert first.body == second.body
        assert {(t.station, t.version) for t in h.outbox.tickets(mark)} == {
            ("cold", 2),
            ("expo", 2),
        }

    run(cfg, tmp_path / "g.db", scenario)


def test_the_voided_versions_of_a_voided_order_survive_a_restart(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    path = tmp_path / "g.db"
    req = order_request("bruschetta")
    pending: set[tuple[UUID, int]] = set()

    async def first_life(h: Harness) -> None:
        await h.order(req)
        for t in latest(h.outbox.tickets()).values():
            await h.kds(t, KdsAction.ACK)  # the screens have v1
        mark = len(h.outbox.events)
        cmd = VoidLine(command="void_line", command_id=uuid4(), order_id=req.order_id, line_id="L0")
        await h.command(cmd)
        pending.update(h.outbox.versions(mark))  # sent, not acked: then the power goes

    run(cfg, path, first_life)
    assert len(pending) == 2  # cold v2 and expo v2, both voided

    async def second_life(h: Harness) -> None:
        await h.clock.run(0.4)  # two ticks: every unacked ticket is resent on the first

    h = run(cfg, path, second_life)
    assert h.outbox.versions() == pending


# --- wall-clock steps ------------------------------------------------------------------------

H = 3600.0


@pytest.mark.parametrize(
    "steps",
    [{60.0: 2 * H}, {60.0: -2 * H}, {60.0: 2 * H, 500.0: -2 * H}],
    ids=["forward-2h", "back-2h", "forward-then-back"],
)
def test_a_wall_clock_step_mid_service_fires_nothing_early_or_late(
    tmp_path: Path, steps: dict[float, float], caplog: pytest.LogCaptureFixture
) -> None:
    """Held courses and delayed lines wait real seconds, whatever the wall clock does.

    On the wall clock, +2 h at 60 s would fire the cold line, the mains and their fries at
    once; -2 h would hold them for two hours.
    """
    cfg = site(tmp_path)
    # The bruschetta (cold, 240 s) waits 120 s for the arancini (fry, 360 s). The mains fire
    # 900 s after the starters: the burger (grill, 600 s) at once, the fries (fry, 240 s)
    # 360 s later. The tiramisu (pastry, course 3) is held until a server fires it.
    req = order_request("bruschetta", "arancini", "burger", "fries", "tiramisu")
    due = {("fry", 1): 0.0, ("expo", None): 0.0, ("cold", 1): 120.0, ("grill", 2): 900.0}
    due["fry", 2] = 1260.0

    async def scenario(h: Harness) -> None:
        t0 = h.clock.monotonic()

        async def to(t: float) -> None:
            """Move to ``t`` s after the order: ticks only over the last half second."""
            gap = t0 + t - h.clock.monotonic()
            if gap > 0.5:
                h.clock.advance(gap - 0.5)  # the ticker wakes once, at the end
                await turns(h.clock)
            await h.clock.run(t0 + t - h.clock.monotonic())
            await h.svc.idle()

        def shown() -> set[tuple[str, int | None]]:
            return {(t.station, t.course) for t in h.outbox.tickets()}

        await h.order(req)
        checks = sorted({*steps, *(t - 0.3 for t in due.values() if t), *due.values()})
        for t in checks:
            await to(t)
            if t in steps:
                h.clock.step_wall(steps[t])
                await to(t + 0.4)  # the next tick sees it
            assert shown() == {k for k, at in due.items() if at <= t}, t
        assert ("pastry", 3) not in shown()

        # Each step seen once and counted; alerting it is ClockWatch's, once per gateway.
        assert h.svc.stats.clock_steps == len(steps)
        alerts = [e.alert for e in h.outbox.events if isinstance(e, AlertOut)]
        assert [a for a in alerts if a.kind == "clock_step"] == []
        assert h.svc.stats.clock_offset_s == pytest.approx(sum(steps.values()))

    with caplog.at_level("INFO", logger="gateway.routing.service"):
        h = run(cfg, tmp_path / "g.db", scenario)
    stepped = [r for r in caplog.records if "across the clock's step of" in r.getMessage()]
    assert [r.getMessage().split("step of ")[1].split(" s")[0] for r in stepped] == [
        f"{s:+.0f}" for s in steps.values()
    ]
    # Records keep steady time: each ticket's first version is stamped the kitchen seconds
    # after the order at which it fired, in the order they were sent.
    firsts: dict[UUID, Ticket] = {}
    for t in h.outbox.tickets():
        firsts.setdefault(t.ticket_id, t)
    stamps = [(t.sent_at - T0).total_seconds() for t in firsts.values()]
    assert stamps == sorted(stamps)
    for t in firsts.values():
        assert (t.sent_at - T0).total_seconds() == pytest.approx(due[t.station, t.course], abs=0.3)
