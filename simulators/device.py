"""An MQTT client that behaves like a real device: retained presence and a last will.

Every simulated device publishes ``online`` (retained) on ``rst/{site}/device/{device}/status`` on
each connect, and leaves ``offline`` as its last will so the broker announces it if the process
dies; a clean shutdown publishes ``offline`` itself, since a graceful DISCONNECT drops the will.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from gateway.contract import DeviceState, DeviceStatus, Topics
from gateway.errors import TransportError
from gateway.transport.mqtt import MqttClient, Will

__all__ = [
    "DRAIN_TIMEOUT_S",
    "ClientOptions",
    "Role",
    "device_client",
    "drain",
    "say_offline",
    "subscribed",
]

Role = Literal["tablet", "kds"]

#: How long a clean shutdown waits for the last publishes (acks, "offline") to be acknowledged.
DRAIN_TIMEOUT_S = 1.0

if TYPE_CHECKING:
    from gateway.clock import Clock


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How simulated devices reach the broker.

    Attributes:
        client_prefix: client ids are ``{client_prefix}-{site}-{device}``.
        protocol: 5, or 4 for MQTT 3.1.1 brokers.
        username: broker user name, if any.
        password: broker password, if any.
    """

    client_prefix: str = "sim"
    protocol: Literal[4, 5] = 5
    username: str | None = None
    password: str | None = None


def _status(device: str, state: DeviceState, role: Role, clock: Clock | None) -> bytes:
    at = clock.now() if clock is not None else datetime.now(UTC)
    return DeviceStatus(device=device, state=state, role=role, at=at).model_dump_json().encode()


def device_client(
    url: str,
    topics: Topics,
    device: str,
    role: Role,
    *,
    opts: ClientOptions,
    clock: Clock | None = None,
) -> MqttClient:
    """Make (not connect) a device's client, with its last will and ``online`` on every connect.

    The client id is ``{client_prefix}-{site}-{device}``; the session starts clean, so replies
    left over from an earlier run are not delivered, but survives reconnects of this run.
    """
    status_topic = topics.device_status(device)
    client = MqttClient(
        url,
        f"{opts.client_prefix}-{topics.site}-{device}",
        username=opts.username,
        password=opts.password,
        protocol=opts.protocol,
        clean_start=True,
        session_expiry_s=600,
        will=Will(status_topic, _status(device, DeviceState.OFFLINE, role, clock)),
    )

    def announce(up: bool) -> None:
        if up:
            payload = _status(device, DeviceState.ONLINE, role, clock)
            client.publish(status_topic, payload, qos=1, retain=True)

    client.on_connection_change(announce)
    return client


async def subscribed(
    client: MqttClient, status_topic: str, echo: asyncio.Event, timeout_s: float = 10.0
) -> None:
    """Return once the broker has processed every SUBSCRIBE ``client`` sent so far.

    The client subscribes to its own retained status last; the broker handles one connection's
    packets in order, so when that status comes back the earlier subscriptions are in place.
    The caller's handler must set ``echo`` when a message arrives on ``status_topic``.

    Raises:
        TransportError: nothing came back within ``timeout_s``.
    """
    client.subscribe(status_topic, qos=1)
    try:
        async with asyncio.timeout(timeout_s):
            await echo.wait()
    except TimeoutError:
        raise TransportError(f"no retained status on {status_topic} within {timeout_s} s") from None


async def drain(client: MqttClient, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Wait (bounded) until the broker acknowledged everything ``client`` published."""
    if not client.connected:
        return
    try:
        async with asyncio.timeout(timeout_s):
            # Shutdown only, bounded: MqttClient offers no "all acknowledged" event to wait on.
            while client.stats.pending_publishes:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    except TimeoutError:
        pass


async def say_offline(
    client: MqttClient, topics: Topics, device: str, role: Role, clock: Clock | None = None
) -> None:
    """Publish ``offline`` (retained) and wait for it to reach the broker before disconnecting."""
    if client.connected:
        payload = _status(device, DeviceState.OFFLINE, role, clock)
        client.publish(topics.device_status(device), payload, qos=1, retain=True)
        await drain(client)
