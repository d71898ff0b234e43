"""Dead letters: messages the gateway gave up on, kept on disk for a person to look at.

A message becomes a dead letter when its handler failed on it every time it was handed over
(:mod:`gateway.transport.dispatch`): a bug, not bad input (bad input gets a rejection). It is
acknowledged afterwards so it no longer holds a flow-control slot, which is why it is written
here first: one JSON object per line in ``{state.dir}/dead_letters.jsonl``::

    {"time": "2026-01-01T18:00:00.000000+00:00", "topic": "rst/s/tablet/t1/orders",
     "owner": "orders", "attempts": 3, "error": "KeyError: 'x'", "payload": "{...}",
     "payload_base64": null}

The payload is kept as text when it is UTF-8, else base64, and cut at ``MAX_PAYLOAD`` bytes
(the record says how long it was). The file is created ``0600`` (orders name tables and
tablets), each record is one ``write`` of one whole line, fsynced when the site asks for full
durability, and past ``max_bytes`` the file is renamed to ``.1`` (the one before is dropped),
so a bug that fails every message cannot fill the disk.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Self

from gateway.errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import TracebackType

    from gateway.transport.dispatch import DeadLetter

__all__ = ["DeadLetterLog"]

MAX_PAYLOAD = 65_536
DEFAULT_MAX_BYTES = 5 * 1024 * 1024


class DeadLetterLog:
    """Append-only JSON-lines file of dead letters (use as a context manager)."""

    name = "dead-letters"

    def __init__(
        self,
        path: Path,
        *,
        fsync: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        time_uncertain: Callable[[], bool] = lambda: False,
    ) -> None:
        """Prepare; the file is opened by the first record.

        Args:
            path: the file, e.g. ``{state.dir}/dead_letters.jsonl``.
            fsync: wait for the disk after each record.
            max_bytes: rotate to ``path.1`` before a record would take the file past this.
            now: the wall clock for the ``time`` field.
            time_uncertain: whether that clock may be wrong now; such records say so.
        """
        self.path = path
        self._fsync = fsync
        self._max_bytes = max_bytes
        self._now = now
        self._time_uncertain = time_uncertain
        self._fd: int | None = None
        self.records = 0

    def __enter__(self) -> Self:
        """Use as a context manager that closes the file."""
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the file."""
        self.close()

    def close(self) -> None:
        """Close the file (a later record reopens it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def record(self, letter: DeadLetter) -> None:
        """Append one dead letter as one whole line.

        Raises:
            StoreError: it could not be written (the caller must then not acknowledge it).
        """
        payload = letter.payload[:MAX_PAYLOAD]
        try:
            text: str | None = payload.decode()
            b64: str | None = None
        except UnicodeDecodeError:
            text, b64 = None, base64.b64encode(payload).decode()
        entry = {
            "time": self._now().astimezone(UTC).isoformat(timespec="microseconds"),
            "topic": letter.topic,
            "owner": letter.owner,
            "attempts": letter.attempts,
            "error": letter.error,
            "payload_bytes": len(letter.payload),
            "payload": text,
            "payload_base64": b64,
        }
        if self._time_uncertain():
            entry["time_uncertain"] = True
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
        try:
            fd = self._open(len(line))
            os.write(fd, line)
            if self._fsync:
                os.fsync(fd)
        except OSError as exc:
            raise StoreError(f"cannot write the dead-letter file {self.path}: {exc}") from exc
        self.records += 1

    def _open(self, adding: int) -> int:
        if self._fd is not None and os.fstat(self._fd).st_size + adding > self._max_bytes:
            self.close()
            self.path.replace(self.path.with_name(self.path.name + ".1"))
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd
