"""The gateway's one exception tree.

Every error the gateway raises on purpose is a ``GatewayError``. Library exceptions (paho-mqtt,
sqlite3, pydantic, pymodbus) are translated into these at exactly one boundary: the adapter or
store that calls the library.

::

    GatewayError
    ├── ConfigError              the site file is wrong; carries every problem found
    ├── TransportError           the MQTT broker could not be reached or used
    │   └── BrokerUnavailable    connect failed or timed out (carries url and reason)
    ├── StoreError               durable state could not be read or written
    │   └── StoreFull            the disk is full (ENOSPC); nothing new may be accepted
    └── BrokerStartError         the demo could not start any broker

A rejected order is not an exception: it is an ordinary result (``Rejection``) sent back to the
tablet. Exceptions are for conditions an operator has to act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in a site file.

    Attributes:
        key: dotted path of the offending key, e.g. ``items[3].group``.
        message: what is wrong.
        fix: what the operator should do about it.
    """

    key: str
    message: str
    fix: str

    def __str__(self) -> str:
        """Render as one line an operator can act on."""
        return f"{self.key}: {self.message} (fix: {self.fix})"


class ConfigError(GatewayError):
    """The site configuration cannot be used.

    Attributes:
        path: the file that was read, if any.
        problems: every problem found, so they can be fixed in one go.
    """

    def __init__(self, path: Path | None, problems: list[ConfigProblem]) -> None:
        """Keep the file and its problems."""
        self.path = path
        self.problems = problems
        where = str(path) if path is not None else "configuration"
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{where}: {len(problems)} problem(s)\n{lines}")


class TransportError(GatewayError):
    """The MQTT broker could not be reached or used."""


class BrokerUnavailable(TransportError):
    """Connecting to the broker failed or timed out.

    Attributes:
        url: the broker URL tried.
        reason: what went wrong, in words.
    """

    def __init__(self, url: str, reason: str) -> None:
        """Keep the url and reason."""
        self.url = url
        self.reason = reason
        super().__init__(
            f"cannot reach the MQTT broker at {url}: {reason}. "
            "Check that Mosquitto is running (systemctl status mosquitto) or pass --mqtt-url."
        )


class StoreError(GatewayError):
    """Durable state could not be read or written."""


class StoreFull(StoreError):
    """The disk holding the state directory is full.

    Attributes:
        path: the database file.
    """

    def __init__(self, path: Path) -> None:
        """Keep the path."""
        self.path = path
        super().__init__(
            f"the disk holding {path} is full: new orders are refused until space is freed "
            "(delete old logs or move --state-dir to a larger disk)"
        )


class BrokerStartError(GatewayError):
    """The demo could not find or start any MQTT broker."""
