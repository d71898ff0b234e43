"""Opening connections without blocking the loop, and retrying them with backoff; no paho."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from gateway.errors import TransportError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.transport.backoff import Backoff

__all__ = ["ConnectRefused", "open_tcp", "retry_connect"]

log = logging.getLogger(__name__)

# MQTT 5 CONNACK refusals that may clear up by themselves: unavailable, busy, quota, rate.
_TRANSIENT_REFUSALS = frozenset({0x88, 0x89, 0x97, 0x9F})


class ConnectRefused(TransportError):
    """The broker answered CONNECT with a failure reason code.

    Raised by the MQTT client's connect attempt and handled inside ``gateway.transport``:
    :func:`retry_connect` retries the transient ones, and ``gateway.transport.link`` turns a
    lasting one into :class:`~gateway.errors.BrokerUnavailable` for everyone else.

    Attributes:
        code: the MQTT 5 reason code.
        reason: the broker's refusal in words.
        transient: whether retrying may help (server busy, say) or not (bad credentials).
    """

    def __init__(self, code: int, reason: str) -> None:
        """Keep the MQTT 5 reason code (3.1.1 codes are mapped to it by paho)."""
        self.code = code
        self.reason = reason
        self.transient = code in _TRANSIENT_REFUSALS
        super().__init__(f"broker refused the connection: {reason}")


async def open_tcp(host: str, port: int) -> socket.socket:
    """Connect a non-blocking TCP socket, resolving ``host`` without blocking the loop.

    Raises:
        OSError: resolution failed or no address accepted the connection (the last error).
    """
    loop = asyncio.get_running_loop()
    last = OSError(f"no address found for {host}")
    for family, kind, proto, _, addr in await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)  # noqa: FBT003 -- stdlib signature
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:  # cancelled or timed out: never leak the descriptor
            sock.close()
            raise
        return sock
    raise last


async def retry_connect(
    attempt: Callable[[], Awaitable[None]],
    backoff: Backoff,
    *,
    attempt_timeout_s: float,
    failures: list[str],
    first: bool,
) -> None:
    """Call ``attempt`` until it succeeds, sleeping ``backoff.next()`` between failures.

    Args:
        attempt: one connect attempt; raises ``OSError`` or ``ConnectRefused`` on failure.
        backoff: the delays to sleep.
        attempt_timeout_s: a hung attempt is abandoned (as a ``TimeoutError``) after this.
        failures: each failure's text is appended, for the caller's error message.
        first: the first connect: a lasting refusal is raised rather than retried. Later
            reconnects keep trying (an operator may fix the broker) and log each new refusal
            once; other failures only at debug level, the loss itself having been logged.

    Raises:
        ConnectRefused: ``first`` and the broker refused for a reason retrying cannot fix.
    """
    reported = ""
    while True:
        try:
            async with asyncio.timeout(attempt_timeout_s):
                await attempt()
        except ConnectRefused as exc:
            if first and not exc.transient:
                raise
            failures.append(str(exc))
            if not first and str(exc) != reported:
                reported = str(exc)
                log.error("%s (retrying)", reported)  # noqa: TRY400 -- expected, no traceback
        except OSError as exc:  # includes the TimeoutError of this attempt
            failures.append(str(exc) or type(exc).__name__)
            log.debug("MQTT connect attempt failed: %s", failures[-1])
        else:
            return
        del failures[:-1]  # only the last one is ever reported
        await asyncio.sleep(backoff.next())
