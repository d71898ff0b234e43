"""Which code paths through paho the MQTT client takes: the gateway's fast ones, or paho's own.

``FastIO`` (``fastio``) and ``LeanPaths`` (``lean``) override about 25 private paho methods to
roughly halve the gateway's CPU per message (bench/RESULTS.md). They were written against one
paho-mqtt release, the one ``pyproject.toml`` pins exactly (``PINNED_PAHO``). Private methods
change without notice between releases, so each time an ``MqttClient`` is made the installed
paho's version is compared with the pinned one:

- the same version: the fast paths;
- any other version: paho's own paths (``PahoClient``: paho's public ``loop_read``,
  ``loop_write``, ``publish`` and ``ack``), with one WARNING per process naming the version
  found, the one expected and what it costs.

The environment variable ``GATEWAY_MQTT_PATHS`` overrides the choice (for tests, benchmarks, or
to rule the fast paths out while chasing an MQTT problem):

- ``auto`` (or unset): as above;
- ``paho``: paho's own paths, whatever the version (logged once at INFO);
- ``fast``: the fast paths even on another paho version (logged once as a WARNING: nothing has
  checked them against that version; use it only to test a new paho before pinning it).

Any other value is reported once as a WARNING and treated as ``auto``.

Both modes keep the same delivery rules (manual QoS 1 acks after the caller's commit, the
Receive Maximum enforced by pausing reads, the pending-publish bounds, TCP_NODELAY, the
in-flight window) and CI runs the integration tests in each. paho's own paths still need four
private names, none on the per-message path and all present in paho since 1.6; ``PahoClient``
checks them when it is made, so a paho without them fails at start-up with a message naming
the fix, not mid-service:

- ``_create_socket_connection``: returns the socket the event loop connected, since paho's own
  connect blocks the loop for up to its timeout while the broker is down;
- ``_sock_close``: closes without a DISCONNECT packet (paho has no public way);
- ``_sock_recv``: says "would block" while reads are paused, since one ``loop_read`` reads as
  many packets as there are pending publishes and would run past the Receive Maximum;
- ``_max_inflight_messages``: lowered to the broker's Receive Maximum after CONNACK (paho 2.2
  ignores it, and its public setter refuses on a live connection).
"""

from __future__ import annotations

import logging
import os
import ssl
from typing import TYPE_CHECKING, Any, Literal

import paho.mqtt.client as paho
from paho.mqtt import __version__ as _installed_paho

from gateway.errors import TransportError
from gateway.transport.fastio import FastIO
from gateway.transport.lean import LeanPaths

if TYPE_CHECKING:
    import socket

__all__ = ["PATHS_ENV", "PINNED_PAHO", "FastPahoClient", "PahoClient", "Paths", "choose_paths"]

log = logging.getLogger(__name__)

PINNED_PAHO = "2.2.0"
"""The paho-mqtt version the fast paths were written and tested against (pyproject.toml pins it)."""

PATHS_ENV = "GATEWAY_MQTT_PATHS"
"""Environment variable that forces the paths: ``fast``, ``paho`` or ``auto`` (the default)."""

Paths = Literal["fast", "paho"]

# Measured with bench/routing (RESULTS.md, 2026-12-03): what paho's own paths cost the gateway.
COST = (
    "up to 2.4x the CPU per order and about 40 % fewer orders/s under load "
    "(1.25x the CPU at 200 orders/s; bench/RESULTS.md, 2026-12-03)"
)

_HOOKS = ("_create_socket_connection", "_sock_close", "_sock_recv")
_said: set[str] = set()  # what was already logged: each of these is said once per process


def _once(key: str, level: int, msg: str, *args: object) -> None:
    if key not in _said:
        _said.add(key)
        log.log(level, msg, *args)


def choose_paths(installed: str | None = None) -> Paths:
    """Pick the paths for a new client, from ``GATEWAY_MQTT_PATHS`` and paho's version.

    Args:
        installed: the paho-mqtt version to judge (default: the one imported).

    Returns:
        ``"fast"`` or ``"paho"``; the reasons are logged once per process.
    """
    version = _installed_paho if installed is None else installed
    wanted = os.environ.get(PATHS_ENV, "").strip().lower() or "auto"
    if wanted not in {"auto", "fast", "paho"}:
        _once(
            f"bad:{wanted}", logging.WARNING,
            "%s=%r is not one of fast, paho, auto: using auto", PATHS_ENV, wanted,
        )  # fmt: skip
        wanted = "auto"
    if wanted == "paho":
        _once(
            "forced:paho", logging.INFO,
            "MQTT: paho's own code paths, as %s=paho asks (costs %s)", PATHS_ENV, COST,
        )  # fmt: skip
        return "paho"
    if version == PINNED_PAHO:
        return "fast"
    if wanted == "fast":
        _once(
            "forced:fast", logging.WARNING,
            "MQTT: the fast paths on paho-mqtt %s, as %s=fast asks; they override private "
            "paho methods and were only checked against paho-mqtt %s",
            version, PATHS_ENV, PINNED_PAHO,
        )  # fmt: skip
        return "fast"
    _once(
        "fallback", logging.WARNING,
        "MQTT: paho-mqtt %s is installed but the gateway was tested with %s: using paho's own "
        "code paths, which is safe but costs %s; install paho-mqtt==%s to get the fast ones "
        "(%s=fast forces them, untested)",
        version, PINNED_PAHO, COST, PINNED_PAHO, PATHS_ENV,
    )  # fmt: skip
    return "paho"


class PahoClient(paho.Client):
    """paho's client on its own code paths, plus the few hooks the adapter needs (see above).

    paho's own connect resolves the name and connects a blocking socket, which would stall the
    event loop for up to its timeout on every retry while the broker's host is down. We connect
    with ``loop.sock_connect`` instead and hand paho the connected socket here.
    """

    next_socket: socket.socket | None = None
    # While set, paho's reads see "would block": the owner's flow control (Receive Maximum).
    hold_reads = False
    _max_inflight_messages: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Make paho's client (same arguments); check the private names the adapter uses.

        Raises:
            TransportError: this paho lacks one of them; the message names the version to install.
        """
        super().__init__(*args, **kwargs)
        missing = [h for h in _HOOKS if not callable(getattr(paho.Client, h, None))]
        if not isinstance(getattr(self, "_max_inflight_messages", None), int):
            missing.append("_max_inflight_messages")
        if missing:
            raise TransportError(
                f"paho-mqtt {_installed_paho} lacks {', '.join(missing)}, which the "
                f"gateway needs even on paho's own paths: install paho-mqtt=={PINNED_PAHO}"
            )

    def _create_socket_connection(self) -> socket.socket:
        sock, self.next_socket = self.next_socket, None
        if sock is None:
            raise ConnectionError("no connected socket was prepared")
        return sock

    def _sock_recv(self, bufsize: int) -> bytes:
        if self.hold_reads:
            raise BlockingIOError
        data: bytes = super()._sock_recv(bufsize)
        return data

    def abort(self) -> None:
        """Close the socket without a DISCONNECT packet (paho has no public way)."""
        self._sock_close()

    def limit_inflight(self, window: int) -> None:
        """Lower the in-flight window on a live connection (the public setter refuses)."""
        self._max_inflight_messages = min(self._max_inflight_messages, window)

    def inflight_window(self) -> int:
        """QoS > 0 publishes put on the wire before waiting for PUBACKs."""
        return self._max_inflight_messages

    def buffered(self) -> bool:
        """Whether bytes already read from the socket wait to be parsed.

        paho reads a few bytes at a time; over TLS the rest of a record then waits decrypted
        in the SSL object, where the event loop cannot see it, so it is read now.
        """
        sock = self.socket()
        return not self.hold_reads and isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def reset_buffer(self) -> None:
        """Forget buffered bytes: paho's own reads keep none of their own."""


class FastPahoClient(FastIO, LeanPaths, PahoClient):
    """paho's client on the gateway's fast paths (``fastio``, ``lean``): the pinned paho only.

    ``FastIO`` comes first: its buffered reads replace ``PahoClient``'s ``buffered`` and
    ``reset_buffer``, and it keeps ``hold_reads`` itself (buffered bytes are still parsed).
    """
