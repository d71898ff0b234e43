"""The order service: orders to tickets, exactly once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.routing.service import OrderService

if TYPE_CHECKING:
    from gateway.wiring import Wiring


async def plug(w: Wiring) -> None:
    """The order service: orders to tickets, exactly once (loads open orders when entered)."""
    w.orders = OrderService(w.cfg, w.store, w.clock, w.outbox, link_clock=w.real_clock)
    w.bridge.attach(w.orders.submit, w.dispatcher)
    await w.supervisor.enter(w.orders, "orders")
    if w.actions is not None:
        # Restored tickets were sent (and acted on) by an earlier run: their resends must not
        # start a fryer's timer again. Told now, before the order service's first tick resends.
        w.actions.already_sent(r.ticket_id for r in w.orders.kitchen.resends())
