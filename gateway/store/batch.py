"""What one commit of the order path writes: a plain record, shared by the service and a store.

Neutral ground on purpose: the order service fills a :class:`Batch` and hands it to whatever
store it was given (:class:`gateway.store.sqlite.Store` in the gateway), so the routing package
does not import the SQLite module, and a store does not import the routing package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uuid import UUID

__all__ = ["Batch"]


@dataclass(slots=True)
class Batch:
    """Everything one transaction writes; orders are named by their kitchen ``seq``.

    Attributes:
        replies: ``(order_id, device, reply)``: the final reply to each order answered.
        snapshots: the new snapshot of each changed open order, by ``seq``.
        closed: the ``seq`` of orders closed (their acks and sent tickets go).
        acks: ``(ticket_id, seq, version)``: the newest version a screen acknowledged.
        tickets: ``(ticket_id, seq, version, payload)``: a ticket version as sent.
        commands: ``(command_id, reply)``: the final reply to each command.
        at: the commit's wall time (epoch seconds), stamped on its rows; None: the store
            reads its system's at the commit. The order service passes its clock's.
    """

    replies: list[tuple[UUID, str, bytes]] = field(default_factory=list)
    snapshots: dict[int, bytes] = field(default_factory=dict)
    closed: set[int] = field(default_factory=set)
    acks: list[tuple[UUID, int, int]] = field(default_factory=list)
    tickets: list[tuple[UUID, int, int, bytes]] = field(default_factory=list)
    commands: list[tuple[UUID, bytes]] = field(default_factory=list)
    at: float | None = None

    def __bool__(self) -> bool:
        """Whether there is anything to write."""
        return bool(
            self.replies
            or self.snapshots
            or self.closed
            or self.acks
            or self.tickets
            or self.commands
        )
