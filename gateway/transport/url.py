"""Broker URLs: ``mqtt://host[:port]`` and ``mqtts://host[:port]``, optionally ``?protocol=4|5``.

Pure parsing, no I/O, so it is tested exhaustively in ``tests/unit/transport/test_url.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from gateway.errors import TransportError

__all__ = ["BrokerAddress", "parse_broker_url"]

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_PROTOCOLS: dict[str, Literal[5, 4]] = {"5": 5, "4": 4}


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker is and how to talk to it.

    Attributes:
        host: host name or IP address (IPv6 without brackets).
        port: TCP port.
        tls: whether the connection is wrapped in TLS (``mqtts``).
        protocol: MQTT protocol level the URL asks for (5 or 4 for 3.1.1), None if unspecified.
    """

    host: str
    port: int
    tls: bool
    protocol: Literal[5, 4] | None = None


def _bad(url: str, why: str) -> TransportError:
    shown = re.sub(r"//([^/@]*):[^/@]*@", r"//\1:***@", url)  # never echo a password
    return TransportError(f"invalid MQTT broker URL {shown!r}: {why}")


def _parse_query(url: str, query: str) -> Literal[5, 4]:
    try:
        options = parse_qs(query, strict_parsing=True, max_num_fields=4)
    except ValueError as exc:
        raise _bad(url, f"bad query: {exc}") from None
    unknown = set(options) - {"protocol"}
    if unknown:
        raise _bad(url, f"unknown option(s) {sorted(unknown)}; only protocol=4|5 is known")
    # "?=" parses to no fields at all: that is a missing protocol, not a crash.
    values = options.get("protocol", [])
    if len(values) != 1 or values[0] not in _PROTOCOLS:
        raise _bad(url, "protocol must be 5 (MQTT 5) or 4 (MQTT 3.1.1)")
    return _PROTOCOLS[values[0]]


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse a broker URL.

    The protocol level is a query option rather than a scheme because the scheme already names
    the transport (TCP or TLS); ``?protocol=4`` is what ``EmbeddedBroker`` hands out, since amqtt
    speaks only MQTT 3.1.1.

    Args:
        url: e.g. ``mqtt://127.0.0.1:1883``, ``mqtts://broker.local``, ``mqtt://[::1]:1883``.

    Returns:
        The parsed address.

    Raises:
        TransportError: the scheme is not ``mqtt``/``mqtts``, the host or port is missing or
            invalid, the URL carries credentials (pass them separately so they are not logged),
            a path, a fragment, or an unknown query option.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # urllib's words for a bad port or bracket are good enough
        raise _bad(url, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise _bad(url, f"unsupported scheme {parts.scheme!r}; use mqtt:// or mqtts://")
    if parts.username is not None or parts.password is not None:
        raise _bad(url, "credentials in the URL would end up in logs; pass username/password")
    host = parts.hostname
    if not host:
        raise _bad(url, "no host")
    if port == 0:
        raise _bad(url, "port 0")
    if parts.path not in ("", "/"):
        raise _bad(url, f"unexpected path {parts.path!r}")
    if parts.fragment:
        raise _bad(url, f"unexpected fragment {parts.fragment!r}")
    protocol = _parse_query(url, parts.query) if parts.query else None
    return BrokerAddress(
        host=host,
        port=port if port is not None else _DEFAULT_PORTS[scheme],
        tls=scheme == "mqtts",
        protocol=protocol,
    )
