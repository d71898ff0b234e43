"""Inbound MQTT messages to the one adapter that claimed their topic (STYLE.md 17).

Each adapter registers the topic filters it handles with :meth:`Dispatcher.route`; the
dispatcher subscribes to them and hands every message to the handler of the filter it matches,
and to that handler only. Rules:

* **One owner per topic.** Two filters that can match the same topic (``a/+/c`` and ``a/b/#``,
  or the same filter twice) are refused with :class:`~gateway.errors.RouteConflict` when the
  second is registered, that is at start-up: a message never reaches two services, or depends
  on which was wired first.
* **Nothing dropped silently.** A message that matches no filter (a subscription left on the
  broker by an older version, a stray retained message) is acknowledged, counted in
  ``stats.unclaimed`` and logged once per filter-less topic shape.
* **A failing handler does not hold a flow-control slot for good.** A handler that raises, or a
  service that reports through :meth:`Dispatcher.failed` that it could not handle the message,
  gets it again after a short pause, up to ``max_attempts`` times in all; then the message is a
  dead letter: handed to ``on_dead_letter`` (the gateway writes it to disk and alerts),
  counted, and acknowledged. QoS 0 messages are not retried: nobody waits for them.
* **Ready before anything flows.** Messages that arrive before :meth:`Dispatcher.open` (a
  persistent session's queue comes right after CONNACK) wait in the MQTT client, so no message
  reaches a service that is not started yet.

The delivery and acknowledgement rules are the MQTT client's and the services': a handler gets
the :class:`InboundMessage` and acknowledges it (through the client) when its effects are
durable. Dispatching costs one dictionary look-up per message once a topic has been seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.errors import GatewayError, RouteConflict, TransportError

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.transport.messages import InboundMessage, MessageHandler
    from gateway.transport.mqtt import MqttClient

__all__ = ["DeadLetter", "DispatchStats", "Dispatcher", "filters_overlap", "matches"]

log = logging.getLogger(__name__)

_CACHE_MAX = 8192  # topics remembered with their route; tablet and screen ids repeat
_RETRY_S = 0.2  # first pause before a failed message is handed over again (doubles)


def matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` by MQTT's rules (``+`` one level, ``#`` the rest).

    A filter starting with a wildcard does not match topics starting with ``$`` (``$SYS``).
    """
    f, t = topic_filter.split("/"), topic.split("/")
    if t[0].startswith("$") and f[0] in ("+", "#"):
        return False
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level not in ("+", t[i])):
            return False
    return len(f) == len(t)


def filters_overlap(a: str, b: str) -> bool:
    """Whether some topic matches both filters."""
    x, y = a.split("/"), b.split("/")
    for i in range(min(len(x), len(y))):
        if "#" in (x[i], y[i]):
            return True
        if x[i] != y[i] and "+" not in (x[i], y[i]):
            return False
    if len(x) == len(y):
        return True
    longer = x if len(x) > len(y) else y
    # "a/b" and "a/b/#": '#' also matches the parent level itself.
    return longer[min(len(x), len(y))] == "#"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message no handler could take after every attempt.

    Attributes:
        topic: where it was published.
        payload: its bytes.
        owner: the adapter whose filter it matched.
        attempts: how many times it was handed over.
        error: the last error, as ``Type: message``.
    """

    topic: str
    payload: bytes
    owner: str
    attempts: int
    error: str


@dataclass(slots=True)
class DispatchStats:
    """Counters of the dispatcher, exposed as data.

    Attributes:
        routed: messages handed over, by owner.
        unclaimed: messages that matched no filter (acknowledged and dropped).
        handler_errors: failed attempts (a handler raised, or its service reported failure).
        retries: messages handed over again after a failure.
        dead_letters: messages given up on (recorded, alerted, acknowledged).
    """

    routed: Counter[str] = field(default_factory=Counter)
    unclaimed: int = 0
    handler_errors: int = 0
    retries: int = 0
    dead_letters: int = 0


@dataclass(frozen=True, slots=True)
class _Route:
    topic_filter: str
    handler: MessageHandler
    owner: str


class Dispatcher:
    """Routes each inbound MQTT message to the one handler whose filter it matches."""

    def __init__(
        self,
        client: MqttClient,
        *,
        max_attempts: int = 3,
        on_dead_letter: Callable[[DeadLetter], None] | None = None,
    ) -> None:
        """Route ``client``'s messages once :meth:`open` is called.

        Args:
            client: the MQTT client (connected or not yet).
            max_attempts: how many times a message is handed over before it is a dead letter.
            on_dead_letter: told about each dead letter, before its acknowledgement.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client
        self._max_attempts = max_attempts
        self.on_dead_letter = on_dead_letter
        self._exact: dict[str, _Route] = {}
        self._wild: list[_Route] = []
        self._cache: dict[str, _Route | None] = {}
        self._attempts: dict[InboundMessage, int] = {}
        self._logged: set[str] = set()
        self._retries: set[asyncio.TimerHandle] = set()
        self._open = False
        self.stats = DispatchStats()

    @property
    def filters(self) -> dict[str, str]:
        """Every registered filter and its owner."""
        return {r.topic_filter: r.owner for r in [*self._exact.values(), *self._wild]}

    def route(self, topic_filter: str, handler: MessageHandler, *, qos: int, owner: str) -> None:
        """Claim ``topic_filter`` for ``handler`` and subscribe to it.

        Args:
            topic_filter: an MQTT filter (``+`` and ``#`` allowed).
            handler: called in the loop with each matching message; must not block.
            qos: the subscription's QoS.
            owner: who claims it, for errors, counters and logs (``orders``, ``devices``).

        Raises:
            RouteConflict: an overlapping filter is claimed already.
            TransportError: the filter or QoS is invalid.
        """
        for other in (*self._exact.values(), *self._wild):
            if filters_overlap(topic_filter, other.topic_filter):
                raise RouteConflict(topic_filter, owner, other.topic_filter, other.owner)
        self._client.subscribe(topic_filter, qos=qos)  # validates the filter
        entry = _Route(topic_filter, handler, owner)
        if "+" in topic_filter or "#" in topic_filter:
            self._wild.append(entry)
        else:
            self._exact[topic_filter] = entry
        self._cache.clear()

    def open(self) -> None:
        """Start handing messages over (those that waited in the client come first, in order).

        Call it once every route is registered and every service behind them is ready.
        """
        if self._open:
            raise TransportError("the dispatcher is open already")
        self._open = True
        self._client.set_handler(self._deliver)

    def failed(self, msg: InboundMessage, error: Exception) -> None:
        """The service behind a handler could not handle ``msg`` (it raised ``error``).

        ``msg`` is handed over again later, or becomes a dead letter after ``max_attempts``.
        """
        route = self._lookup(msg.topic)
        # The service logged the traceback already; only the attempts are said here.
        self._attempt_failed(msg, route.owner if route else "?", error, traceback=False)

    def close(self) -> None:
        """Stop handing messages over again (at shutdown); the broker redelivers them later."""
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        self._attempts.clear()

    # --- inside -----------------------------------------------------------------------------

    def _lookup(self, topic: str) -> _Route | None:
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found = self._exact.get(topic)
        if found is None:
            found = next((r for r in self._wild if matches(r.topic_filter, topic)), None)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()  # a flood of distinct topics costs look-ups, not memory
        self._cache[topic] = found
        return found

    def _deliver(self, msg: InboundMessage) -> None:
        route = self._lookup(msg.topic)
        if route is None:
            self._unclaimed(msg)
            return
        self.stats.routed[route.owner] += 1
        try:
            route.handler(msg)
        except Exception as err:  # noqa: BLE001 - one message's failure must not stop the rest
            self._attempt_failed(msg, route.owner, err)

    def _unclaimed(self, msg: InboundMessage) -> None:
        self.stats.unclaimed += 1
        shape = "/".join(msg.topic.split("/")[:3])
        if shape not in self._logged:
            self._logged.add(shape)
            log.warning(
                "MQTT message on %r matches no handler: acknowledged and dropped (counted in "
                "unclaimed; further ones under %s/... are not logged)",
                msg.topic, shape,
            )  # fmt: skip
        self._client.ack(msg)

    def _attempt_failed(
        self, msg: InboundMessage, owner: str, error: Exception, *, traceback: bool = True
    ) -> None:
        self.stats.handler_errors += 1
        attempts = self._attempts.get(msg, 0) + 1
        if msg.qos == 0:
            self._log_failure(owner, msg, error, attempts, final=True, traceback=traceback)
            return  # nobody waits for it, and it holds no slot
        if attempts < self._max_attempts:
            self._attempts[msg] = attempts
            self._log_failure(owner, msg, error, attempts, final=False, traceback=traceback)
            self.stats.retries += 1
            delay = _RETRY_S * 2 ** (attempts - 1)
            handle: asyncio.TimerHandle | None = None

            def again() -> None:
                assert handle is not None
                self._retry(handle, msg)

            handle = asyncio.get_running_loop().call_later(delay, again)
            self._retries.add(handle)
            return
        self._attempts.pop(msg, None)
        self._log_failure(owner, msg, error, attempts, final=True, traceback=traceback)
        self.stats.dead_letters += 1
        error_text = f"{type(error).__name__}: {error}"
        letter = DeadLetter(msg.topic, msg.payload, owner, attempts, error_text)
        if self.on_dead_letter is not None:
            try:
                self.on_dead_letter(letter)
            except GatewayError as err:
                # Not kept, so not acknowledged either: the broker redelivers it after a
                # restart rather than the message being lost without a trace.
                log.error("could not keep the dead letter from %r: %s", msg.topic, err)  # noqa: TRY400 - the error says it all
                return
        self._client.ack(msg)

    def _retry(self, handle: asyncio.TimerHandle, msg: InboundMessage) -> None:
        self._retries.discard(handle)
        self._deliver(msg)

    def _log_failure(
        self,
        owner: str,
        msg: InboundMessage,
        error: Exception,
        attempts: int,
        *,
        final: bool,
        traceback: bool,
    ) -> None:
        what = "given up (dead letter)" if final else "will be handed over again"
        # The traceback once per owner: the same bug on every message would flood the log.
        first = traceback and owner not in self._logged
        if traceback:
            self._logged.add(owner)
        log.error(
            "%s could not handle the message on %r (attempt %d of %d): %s: %s; %s",
            owner, msg.topic, attempts, self._max_attempts, type(error).__name__, error, what,
            exc_info=error if first else None,
        )  # fmt: skip
