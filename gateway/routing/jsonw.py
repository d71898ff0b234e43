"""JSON values written as pydantic writes them, for the messages and snapshots written by hand.

The kitchen's hot messages (tickets, statuses, replies) and its order snapshots are written
with f-strings instead of building and dumping a model: that cost ~18 us per ticket. Each
writer is held by a property test to the bytes its pydantic model gives; these are the pieces.
"""

from __future__ import annotations

import functools
import json.encoder
from datetime import datetime, timedelta

from pydantic import TypeAdapter

__all__ = ["BOOL", "NULL", "opt_int", "opt_str", "opt_time", "string", "time"]

#: A JSON string with the escapes pydantic's serializer uses (quote, backslash, control
#: characters; everything else as UTF-8). C-implemented.
string = json.encoder.encode_basestring
NULL = "null"
BOOL = {False: "false", True: "true"}

_ZERO = timedelta(0)
_DATETIME = TypeAdapter(datetime)


def time(at: datetime) -> str:
    """A datetime as pydantic writes it: ISO 8601, ``Z`` for UTC."""
    # The offset is part of the key: the same instant in another zone is written differently.
    return _time_in(at, at.utcoffset())


def opt_time(at: datetime | None) -> str:
    """``time``, or ``null``."""
    return NULL if at is None else _time_in(at, at.utcoffset())


def opt_str(s: str | None) -> str:
    """``string``, or ``null``."""
    return NULL if s is None else string(s)


def opt_int(n: int | None) -> str:
    """An integer, or ``null``."""
    return NULL if n is None else str(int(n))


# A batch writes the same few instants many times (a version's sent_at is its lines' fire_at,
# the order's statuses share it); formatting one cost ~2-3 us.
@functools.lru_cache(maxsize=512)
def _time_in(at: datetime, offset: timedelta | None) -> str:
    if offset == _ZERO:
        return f'"{at.replace(tzinfo=None).isoformat()}Z"'
    # Not the kitchen's clock (always UTC): let pydantic write it.
    return _DATETIME.dump_json(at).decode()
