"""What the order service needs from durable state: the methods it calls, as a Protocol.

The service is typed against this, not against the SQLite store, so the routing package does not
import a storage engine (issue 9, "Layers") and tests can hand it any store that keeps these
promises. :class:`gateway.store.sqlite.Store` is the one the gateway passes.

Threads: ``commit`` and ``purge`` run on the service's single writer thread, one at a time; the
reads run on the event loop's thread meanwhile and must see only committed data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable
    from uuid import UUID

    from gateway.store.batch import Batch

__all__ = ["OrderStore"]


class OrderStore(Protocol):
    """Durable state of the order path (read at start-up and per batch, written per batch)."""

    def open_orders(self) -> Iterable[bytes]:
        """Snapshots of every open order."""
        ...

    def acks(self) -> dict[UUID, int]:
        """The newest acknowledged version per ticket of the open orders."""
        ...

    def tickets(self) -> dict[UUID, bytes]:
        """The latest sent version of every ticket of the open orders, as sent."""
        ...

    def max_seq(self) -> int:
        """The highest kitchen order number ever stored (0 if none)."""
        ...

    def reply_for(self, order_id: UUID) -> bytes | None:
        """The reply already given to ``order_id``, if any."""
        ...

    def replies_for(self, order_ids: Collection[UUID]) -> dict[UUID, bytes]:
        """The replies already given to any of ``order_ids``."""
        ...

    def recent_replies(self, window_s: float) -> list[tuple[str, bytes]]:
        """``(device, reply)`` of the order replies of the last ``window_s`` of commits."""
        ...

    def command_reply(self, command_id: UUID) -> bytes | None:
        """The reply already given to a command, if any."""
        ...

    def commit(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction, or nothing (raises ``StoreError``)."""
        ...

    def purge(self, older_than_s: float, now: float) -> int:
        """Forget closed orders and replies older than ``older_than_s`` at wall time ``now``."""
        ...

    def free_bytes(self) -> int:
        """Free space on the disk holding the state."""
        ...
