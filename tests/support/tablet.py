"""What the real-process tests need to play a tablet by hand: an order's payload, and waiting."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable


def order_payload(order_id: uuid.UUID, table: str, item: str = "burger") -> bytes:
    """A valid order of one ``item`` for ``table`` of the integration tests' site."""
    return json.dumps(
        {
            "order_id": str(order_id),
            "table": table,
            "placed_at": "2026-11-25T19:00:00+00:00",
            "items": [{"line_id": "1", "item": item, "qty": 1}],
        }
    ).encode()


async def until(cond: Callable[[], bool], timeout_s: float) -> bool:
    """Wait until ``cond()`` holds, up to ``timeout_s``; whether it does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()
