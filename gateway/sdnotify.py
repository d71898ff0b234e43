"""Telling systemd how the gateway is doing: the sd_notify(3) protocol, without libsystemd.

Under a unit with ``Type=notify`` (``deploy/kitchen-gateway.service``) systemd names a datagram
socket in ``$NOTIFY_SOCKET`` and waits for ``READY=1`` before it calls the service started. With
``WatchdogSec=`` it also sets ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``) and kills the process if
no ``WATCHDOG=1`` arrives within that time; ``Restart=on-failure`` then starts it again. A
message is newline-separated ``KEY=value`` lines in one datagram.

Outside systemd (a terminal, the demo, the tests) ``$NOTIFY_SOCKET`` is unset and every call is a
no-op. No send raises into the caller: telling systemd is never worth stopping a kitchen for.
A failed send is logged once, when sending starts to fail, and once when it works again.

Typical use, in the process that systemd started (the main PID, as ``NotifyAccess=main``
requires). systemd watches only a running service: the watchdog starts with ``READY=1`` and
ends with the stop, so the pings need to run from ready to stopping, no longer::

    notifier = Notifier.from_env()
    async with Gateway(cfg) as gateway, asyncio.TaskGroup() as tg:  # entered: ready
        notifier.ready(f"site {cfg.site.id}")
        dog = tg.create_task(
            watchdog(SystemClock(), watchdog_interval(), notifier), name="sd-watchdog"
        )
        await stop.wait()
        notifier.stopping()
        dog.cancel()
    notifier.close()
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Notifier", "Sleeper", "watchdog", "watchdog_interval"]

log = logging.getLogger(__name__)

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC = "WATCHDOG_USEC"
ENV_WATCHDOG_PID = "WATCHDOG_PID"


class Sleeper(Protocol):
    """The part of :class:`gateway.clock.Clock` the watchdog needs."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


def _address(name: str) -> str | None:
    """The socket address for ``$NOTIFY_SOCKET``, or None when it is not a Unix socket."""
    if name.startswith("@"):
        # Linux's abstract namespace: systemd writes the leading NUL as '@'.
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    # vsock:CID:PORT (a VM's host) and anything newer are not needed on a kitchen box.
    return None


class Notifier:
    """Sends sd_notify messages to one socket; a no-op without one.

    Attributes:
        socket_name: ``$NOTIFY_SOCKET`` as given (``@`` for the abstract namespace), or None.
        sent: messages sent.
        failures: sends that failed (each one also leaves the message unsent; none is retried).
    """

    def __init__(self, socket_name: str | None) -> None:
        """Send to ``socket_name`` (a path, or ``@name`` for an abstract socket); None: no-op."""
        self.socket_name = socket_name or None
        self.sent = 0
        self.failures = 0
        self._address = _address(self.socket_name) if self.socket_name else None
        self._sock: socket.socket | None = None
        self._failing = False
        if self.socket_name and self._address is None:
            log.warning(
                "$%s=%r is not a Unix socket; systemd will not hear from the gateway",
                ENV_SOCKET,
                self.socket_name,
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` in ``env`` (``os.environ`` when None)."""
        return cls((os.environ if env is None else env).get(ENV_SOCKET))

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to send to (false outside systemd)."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """Say the service is up (``READY=1``), with an optional status line."""
        return self.send("READY=1", *([] if status is None else [f"STATUS={status}"]))

    def status(self, text: str) -> bool:
        """Set the line ``systemctl status`` shows (``STATUS=``)."""
        return self.send(f"STATUS={text}")

    def ping(self) -> bool:
        """Tell the watchdog the service is alive (``WATCHDOG=1``)."""
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Say the service is shutting down (``STOPPING=1``), with an optional status line."""
        return self.send("STOPPING=1", *([] if status is None else [f"STATUS={status}"]))

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram.

        Args:
            fields: the assignments, e.g. ``"READY=1"``; a value may not contain a newline.

        Returns:
            True when the datagram was sent; False when disabled or the send failed (logged).
        """
        if self._address is None:
            return False
        message = "\n".join(f.replace("\n", " ") for f in fields).encode()
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                # Called from the event loop: a full receive queue must cost a lost message,
                # never a blocked loop.
                sock.settimeout(0)  # non-blocking
                self._sock = sock
            self._sock.sendto(message, self._address)
        except OSError as err:
            self.failures += 1
            if not self._failing:
                self._failing = True
                log.warning("cannot notify systemd at %s: %s", self.socket_name, err)
            return False
        if self._failing:
            self._failing = False
            log.info("notifying systemd at %s works again", self.socket_name)
        self.sent += 1
        return True

    def close(self) -> None:
        """Close the socket (a later send opens a new one)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """The watchdog timeout systemd set for this process, in seconds, or None when there is none.

    Like sd_watchdog_enabled(3): ``$WATCHDOG_USEC`` must be a positive integer, and when
    ``$WATCHDOG_PID`` is set it must be this process (a child that inherited the variables is not
    the one being watched).

    Args:
        env: the environment (``os.environ`` when None).
        pid: this process's id (``os.getpid()`` when None).
    """
    env = os.environ if env is None else env
    usec = env.get(ENV_WATCHDOG_USEC, "")
    watched = env.get(ENV_WATCHDOG_PID, "")
    if not usec:
        return None
    try:
        micros = int(usec)
        if watched and int(watched) != (os.getpid() if pid is None else pid):
            return None
    except ValueError:
        log.warning("ignoring the systemd watchdog: $%s=%r", ENV_WATCHDOG_USEC, usec)
        return None
    return micros / 1e6 if micros > 0 else None


async def watchdog(
    clock: Sleeper, interval_s: float | None, notifier: Notifier | None = None
) -> None:
    """Ping systemd's watchdog every ``interval_s / 2`` seconds, until cancelled.

    Run it as a task beside the services: while the event loop runs, the pings go out; when
    the loop is stuck (a blocking call, a livelock) they stop and systemd restarts the gateway.
    Half the timeout is what sd_watchdog_enabled(3) advises, so one late wake-up is not fatal.

    Args:
        clock: where the sleeps come from; give it real time (``SystemClock``): a faster
            kitchen clock would only ping more often.
        interval_s: the watchdog timeout, from :func:`watchdog_interval`; None (no watchdog):
            return at once, so the caller needs no ``if``.
        notifier: where to send; a new one from ``$NOTIFY_SOCKET`` when None.

    Raises:
        ValueError: ``interval_s`` is not positive (a caller's mistake, raised before any ping).
    """
    if interval_s is None:
        return
    if interval_s <= 0:
        msg = f"watchdog interval must be positive, not {interval_s}"
        raise ValueError(msg)
    own = notifier is None
    notifier = Notifier.from_env() if notifier is None else notifier
    try:
        while True:
            notifier.ping()
            await clock.sleep(interval_s / 2)
    finally:
        if own:
            notifier.close()
