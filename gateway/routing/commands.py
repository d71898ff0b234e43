"""A server's command on an open order (fire a course, void or modify a line) as kitchen calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.contract import FireCourse, ModifyLine, OrderLine
from gateway.errors import CommandRejected
from gateway.routing.records import KitchenError

if TYPE_CHECKING:
    from datetime import datetime

    from gateway.contract import FieldError, VoidLine
    from gateway.routing.kitchen import Kitchen
    from gateway.routing.orders import OrderValidator
    from gateway.routing.records import Effect

__all__ = ["InvalidLine", "apply_command"]


class InvalidLine(CommandRejected):
    """A modified line that no longer validates (the errors go back to the sender).

    Attributes:
        errors: the validator's errors, each naming the field at fault.
    """

    def __init__(self, errors: list[FieldError]) -> None:
        """Keep the validator's errors."""
        self.errors = errors
        super().__init__("invalid line")


def apply_command(
    kitchen: Kitchen,
    validator: OrderValidator,
    cmd: FireCourse | VoidLine | ModifyLine,
    now: datetime,
) -> list[Effect]:
    """Apply a decoded command to the kitchen; returns the effects to publish.

    Raises:
        KitchenError: the command cannot apply (unknown order or line, a voided line...).
        InvalidLine: a modified line that the validator rejects.
    """
    if isinstance(cmd, FireCourse):
        return kitchen.fire_course(cmd.order_id, cmd.course, now)
    if isinstance(cmd, ModifyLine):
        rec = kitchen.order(cmd.order_id)
        if rec is None:
            raise KitchenError("order_id", "no open order with this id (unknown or closed)")
        old = rec.line(cmd.line_id)
        if old is None:
            raise KitchenError("line_id", f"order has no line '{cmd.line_id}'")
        line = OrderLine(
            line_id=old.line_id,
            item=old.item,
            qty=cmd.qty if cmd.qty is not None else old.qty,
            modifiers=cmd.modifiers if cmd.modifiers is not None else list(old.modifiers),
            course=old.course,
            note=cmd.note if cmd.note is not None else old.note,
        )
        priced = validator.validate_line(line, rec.dining, "")
        if isinstance(priced, list):
            raise InvalidLine(priced)
        return kitchen.modify_line(cmd.order_id, priced, now)
    return kitchen.void_line(cmd.order_id, cmd.line_id, now)
