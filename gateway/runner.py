"""The event loop every command runs on: uvloop where it is installed, asyncio's own elsewhere.

Its own module so that ``gateway.cli`` and the commands it loads lazily (``gateway device ...``)
share it without importing each other.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["run_async"]


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415 -- not installed on Windows, where asyncio's loop is used
    except ImportError:  # pragma: no cover
        return None
    return uvloop.new_event_loop


def run_async(main: Coroutine[object, object, None]) -> None:
    """Run ``main`` to completion on uvloop (asyncio's own loop where uvloop is missing)."""
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        runner.run(main)
