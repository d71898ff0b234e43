"""The gateway's one exception tree.

Every error the gateway raises on purpose is a ``GatewayError``. Library exceptions (paho-mqtt,
sqlite3, pydantic, pymodbus) are translated into these at exactly one boundary: the adapter or
store that calls the library.

::

    GatewayError
    ├── ConfigError              the site file is wrong; carries every problem found
    ├── CommandRejected          a tablet's command cannot apply; the sender is told why
    │   ├── KitchenError         (routing.records) unknown order or line, a voided line...
    │   │                        (carries path and message)
    │   └── InvalidLine          (routing.commands) a modified line no longer validates
    │                            (carries errors)
    ├── TransportError           the MQTT broker could not be reached or used
    │   ├── BrokerUnavailable    connect failed or timed out (carries url and reason)
    │   └── ConnectRefused       (transport.connect) CONNACK with a failure code (carries
    │                            code, reason, transient); transport.link makes it
    │                            BrokerUnavailable
    ├── StoreError               durable state could not be read or written
    │   ├── StoreFull            the disk is full (ENOSPC); nothing new may be accepted
    │   └── AlertStateCorrupt    (telemetry.alerts_store) the alert state file cannot be
    │                            read (carries path, reason)
    ├── BrokerStartError         the demo could not start any broker
    ├── TsdbStartError           a local VictoriaMetrics (tests, benchmark, demo) is missing
    │                            or did not start
    ├── AuditError               the audit log cannot be written: appliance writes are refused
    ├── SinkError                a telemetry sink could not write a batch (carries sink, kind,
    │                            status, message, retry_after_s); telemetry.influx makes it
    ├── ServiceFailed            a service failed to start or run (carries service, cause)
    ├── RouteConflict            two adapters claim overlapping MQTT topic filters (a wiring bug)
    ├── CodecError               (devices.codec) a value does not fit a point's registers
    │                            (carries point); also a ValueError
    ├── TraceError               (telemetry.trace) a backtest's CSV trace has bad rows
    │                            (carries problems, one per row); also a ValueError
    └── DeviceError              a Modbus device could not be read or written (carries device)
        ├── DeviceTimeout        no answer within the request timeout (carries timeout_s,
        │                        late_s)
        ├── DeviceUnavailable    no connection to the device (carries reason)
        └── DeviceRefused        a Modbus exception response (carries code, function, and
                                 the code's name and meaning)

Classes drawn with a module in parentheses are defined there, next to the code that raises them
(their callers import them from there); the others are defined here.

pymodbus exceptions become ``DeviceError`` in ``gateway.devices.connection`` only.

A rejected order is not an exception: it is an ordinary result (``Rejection``) sent back to the
tablet. Exceptions are for conditions an operator has to act on, with one deliberate departure:
``CommandRejected``, raised from deep inside the kitchen's handling of a command and always
caught by the routing service, which sends its reason back in the ``CommandReply``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

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


class CommandRejected(GatewayError):
    """A tablet's command (fire a course, void or modify a line) cannot apply.

    Never meant to reach an operator: :mod:`gateway.routing.service` catches it and sends the
    reason back to the sender as a rejected ``CommandReply``. The subclasses say what is wrong
    and carry it as attributes.
    """


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


class SinkError(GatewayError):
    """A telemetry sink did not take a batch (``gateway.telemetry.influx`` raises it).

    Attributes:
        sink: the sink's name (``influx``).
        kind: ``unavailable`` (may pass: retry after a backoff), ``refused`` (a person must fix
            the token, org or bucket), ``too_large`` (split the batch), ``rejected`` (the data
            was refused: find the lines at fault).
        status: the HTTP status, None when there was no answer.
        message: what happened and what to do, for the log.
        retry_after_s: how long the database asked to wait, when it did.
    """

    def __init__(
        self,
        sink: str,
        kind: Literal["unavailable", "refused", "too_large", "rejected"],
        status: int | None,
        message: str,
        *,
        retry_after_s: float | None = None,
    ) -> None:
        """Keep what happened."""
        super().__init__(message)
        self.sink, self.kind, self.status = sink, kind, status
        self.message, self.retry_after_s = message, retry_after_s


class TsdbStartError(GatewayError):
    """A local VictoriaMetrics (tests, benchmark, demo) could not be found or started."""


#: What each Modbus exception code means for whoever reads the log or the audit.
MODBUS_MEANINGS = {
    1: "the device does not support this function or table",
    2: "the device does not define this address",
    3: "the device refused the value (or the count) as out of its range",
    4: "the device reports an internal failure: it needs service",
    5: "the device accepted the request and is still working on it",
    6: "the device is busy: ask again later",
    8: "the device reports a memory parity error: it needs service",
    10: "the Modbus gateway has no path to this unit",
    11: "the unit behind the Modbus gateway did not answer it",
}

#: Modbus exception codes, as the specification names them.
MODBUS_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class DeviceError(GatewayError):
    """A Modbus device could not be read or written.

    Raised as itself when the device answered something unusable (a malformed or mismatched
    response); the subclasses say more.

    Attributes:
        device: the device id from the site file (or ``host:port`` when no device is known).
        detail: what went wrong, in words.
    """

    def __init__(self, device: str, detail: str) -> None:
        """Keep the device and the detail."""
        self.device = device
        self.detail = detail
        super().__init__(f"{device}: {detail}")


class DeviceTimeout(DeviceError):
    """The device did not answer within the request timeout.

    Attributes:
        timeout_s: the timeout that expired.
        late_s: when the device answered an earlier request after its timeout (a slow device,
            not a dead one), how long that answer took; None when no late answer was seen.
    """

    def __init__(self, device: str, timeout_s: float, late_s: float | None = None) -> None:
        """Keep the device, the timeout and the last late answer's time."""
        self.timeout_s = timeout_s
        self.late_s = late_s
        late = "" if late_s is None else f" (it answered an earlier request after {late_s:.2f} s)"
        super().__init__(device, f"no answer within {timeout_s:g} s{late}")


class DeviceUnavailable(DeviceError):
    """There is no connection to the device (refused, closed, or waiting to retry).

    Attributes:
        reason: why, in words.
    """

    def __init__(self, device: str, reason: str) -> None:
        """Keep the device and the reason."""
        self.reason = reason
        super().__init__(device, f"not connected: {reason}")


class DeviceRefused(DeviceError):
    """The device answered with a Modbus exception response.

    Attributes:
        code: the Modbus exception code (2: illegal data address, 11: a TCP gateway's target
            did not respond, ...).
        function: the function code of the refused request.
        name: the code's name in the specification.
        meaning: what it means, in words (``MODBUS_MEANINGS``).
    """

    def __init__(self, device: str, code: int, function: int) -> None:
        """Keep the device, exception code and function code."""
        self.code = code
        self.function = function
        self.name = MODBUS_EXCEPTIONS.get(code, "unknown exception")
        self.meaning = MODBUS_MEANINGS.get(code, "")
        why = f": {self.meaning}" if self.meaning else ""
        super().__init__(
            device, f"refused function {function} with exception {code} ({self.name}{why})"
        )


class AuditError(GatewayError):
    """The audit log could not be written (disk full, permissions): no write may be sent.

    Attributes:
        path: the audit file.
        reason: what the operating system said.
    """

    def __init__(self, path: Path, reason: str) -> None:
        """Keep the path and the reason."""
        self.path = path
        self.reason = reason
        super().__init__(
            f"cannot write the audit log {path}: {reason}; appliance writes are refused until "
            "it can be written (free disk space or fix the permissions of the state directory)"
        )


class ServiceFailed(GatewayError):
    """A service of the gateway could not start, or one of its loops failed.

    Whichever service it was, this is what leaves the supervisor (``gateway.lifecycle``): one
    exception type, one line for the operator, exit code 1.

    Attributes:
        service: the service's name (``store``, ``mqtt``, ``orders``, ...).
        cause: what it raised.
    """

    def __init__(self, service: str, cause: BaseException) -> None:
        """Keep the service and the cause."""
        self.service = service
        self.cause = cause
        detail = str(cause) or type(cause).__name__
        if not isinstance(cause, GatewayError):
            detail = f"{type(cause).__name__}: {detail} (a bug: please report it with the log)"
        super().__init__(f"{service} stopped: {detail}")


class RouteConflict(GatewayError):
    """Two adapters claim MQTT topic filters that can match the same topic (a wiring bug).

    Attributes:
        topic_filter: the filter being claimed.
        owner: who claimed it.
        other_filter: the filter already claimed that overlaps it.
        other_owner: who claimed that one.
    """

    def __init__(self, topic_filter: str, owner: str, other_filter: str, other_owner: str) -> None:
        """Keep both claims."""
        self.topic_filter = topic_filter
        self.owner = owner
        self.other_filter = other_filter
        self.other_owner = other_owner
        super().__init__(
            f"{owner} claims MQTT topic filter {topic_filter!r}, which overlaps "
            f"{other_filter!r} of {other_owner}: each topic must have exactly one handler"
        )
