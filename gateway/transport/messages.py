"""Plain data the MQTT client hands out and takes in (no paho types cross this line)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["InboundMessage", "MessageHandler", "MqttStats", "Will"]


@dataclass(frozen=True, slots=True)
class Will:
    """Last will: the broker publishes it if the client vanishes without a DISCONNECT.

    Attributes:
        topic: where the broker publishes it.
        payload: what it publishes.
        qos: its QoS.
        retain: whether it is retained (so a late subscriber still sees "offline").
    """

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message from the broker. Pass this same object to ``MqttClient.ack`` once committed.

    Attributes:
        topic: the topic it was published on.
        payload: its bytes.
        qos: the QoS it was delivered with.
        retain: whether it is a retained message.
        mid: packet id on the connection it came on (0 for QoS 0).
        response_topic: MQTT 5 Response Topic, None if absent.
        correlation_data: MQTT 5 Correlation Data, None if absent.
        received_at: ``time.monotonic()`` when it was read from the socket.
    """

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    response_topic: str | None
    correlation_data: bytes | None
    received_at: float


MessageHandler = Callable[[InboundMessage], None]
"""Called synchronously in the event loop for each message; must not block."""


@dataclass(frozen=True, slots=True)
class MqttStats:
    """Counters since the client was created.

    Attributes:
        received: messages delivered to us.
        published: publishes the broker acknowledged (QoS 0: written to the socket).
        publish_dropped: QoS > 0 publishes refused by ``publish()`` (pending limit reached)
            or by the broker (failure reason code in its PUBACK).
        reconnects: successful reconnects after a lost connection.
        pending_publishes: QoS > 0 publishes not yet acknowledged by the broker.
        read_pauses: times reading stopped because ``receive_maximum`` messages awaited the
            caller's ack (the backlog then waits in the broker).
        qos0_dropped: QoS 0 publishes refused by ``publish()`` (disconnected, or the unsent
            bound reached) or accepted and then lost unsent with the connection.
        qos0_unsent: QoS 0 publishes accepted and not yet written to the socket.
        qos0_unsent_bytes: their payload and topic bytes.
    """

    received: int
    published: int
    publish_dropped: int
    reconnects: int
    pending_publishes: int
    read_pauses: int = 0
    qos0_dropped: int = 0
    qos0_unsent: int = 0
    qos0_unsent_bytes: int = 0
