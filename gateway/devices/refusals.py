"""What each Modbus exception response means for the device layer. Pure.

A device that answers with an exception has answered: the connection works. What to do next
depends on the code (:func:`policy`):

====  ==========================  =============================================================
code  name                        what the gateway does
====  ==========================  =============================================================
1     illegal function            the device lacks this table's function: its points of that
                                  table are named undefined (a one-register write is sent again
                                  as function 16, which some devices have instead of 6)
2     illegal data address        the read is split at its holes or bisected and retried at once
                                  (:mod:`gateway.devices.sparse`); what is learnt is kept
3     illegal data value          a write: refused by the device, audited as ``failed`` with the
                                  reason; a read: some devices say 3 for a span they do not
                                  take, so it is split like 2
4     server device failure       the device is faulty: the poll fails (degraded, then offline,
                                  with that reason), counted and logged once
5, 6  acknowledge / busy          the device asks to be asked later: retried after a short
                                  backoff, never counted as a failure
10    gateway path unavailable    a Modbus TCP-to-RTU gateway cannot reach that unit: the unit is
11    gateway target no answer    offline at once; the connection and the gateway's other units
                                  are not touched
====  ==========================  =============================================================
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from gateway.errors import DeviceRefused

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.devices.plan import ReadBlock
    from gateway.devices.sparse import Probe

__all__ = ["Policy", "policy", "run_probe"]


class Policy(StrEnum):
    """What the poller does about a refused read."""

    SPLIT = "split"  # 2 (and 3 on a read): split the block and learn the map
    UNSUPPORTED = "unsupported"  # 1: the table's function is not there
    FAULTY = "faulty"  # 4: the device reports its own failure
    BUSY = "busy"  # 5, 6: come back later, not a failure
    UNREACHABLE = "unreachable"  # 10, 11: the unit behind a TCP gateway is not reachable
    OTHER = "other"  # anything else: the block fails, the other blocks go on


_POLICY = {
    1: Policy.UNSUPPORTED,
    2: Policy.SPLIT,
    3: Policy.SPLIT,
    4: Policy.FAULTY,
    5: Policy.BUSY,
    6: Policy.BUSY,
    10: Policy.UNREACHABLE,
    11: Policy.UNREACHABLE,
}


def policy(code: int) -> Policy:
    """The policy for a read refused with Modbus exception ``code``."""
    return _POLICY.get(code, Policy.OTHER)


async def run_probe(probe: Probe, read: Callable[[ReadBlock], Awaitable[list[int]]]) -> None:
    """Drive ``probe`` to its end with ``read``: the poller's and ``gateway device read``'s loop.

    An address refusal (exception 2 or 3) is the probe's to learn from; any other error ends
    the probe and is raised, with what was read and learnt so far kept in ``probe``.
    """
    while (part := probe.next()) is not None:
        try:
            words = await read(part)
        except DeviceRefused as err:
            if policy(err.code) is not Policy.SPLIT:
                raise
            probe.refused()
            continue
        probe.answered(words)
