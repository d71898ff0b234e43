"""The sensor-node firmware (CPython build: paho behind mqtt_compat) against a real Mosquitto.

Everything runs in the test's thread: the node blocks until each PUBACK as it would on a board,
and the subscriber is a paho client pumped by hand, so the order of events is the test's.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_stubs.fridge_probe import FridgeProbeNode
from firmware_stubs.scale_node import ScaleNode
from firmware_stubs.sim_hal import SimHal
from gateway.contract import Telemetry
from gateway.devices.bridge import check_telemetry
from gateway.devices.profile import load_profiles

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from gateway.transport.broker import MosquittoProcess

pytestmark = pytest.mark.integration

SITE = "fw"
PROFILES = load_profiles()


class Subscriber:
    """A paho subscriber pumped by hand; reconnect() after the broker comes back."""

    def __init__(self, port: int, *filters: str) -> None:
        self.port = port
        self.filters = filters
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self.client: paho.Client | None = None

    def connect(self) -> None:
        c = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311, clean_session=True)
        subscribed: list[int] = []
        c.on_message = lambda _c, _u, m: self.messages.append(
            (m.topic, json.loads(m.payload), bool(m.retain))
        )
        c.on_subscribe = lambda _c, _u, mid, _rc, _p: subscribed.append(mid)
        c.connect("127.0.0.1", self.port, 30)
        self.client = c
        c.subscribe([(f, 1) for f in self.filters])
        self.pump_until(lambda: bool(subscribed))

    def pump_until(self, done: Callable[[], bool], timeout_s: float = 5.0) -> None:
        assert self.client is not None
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, f"timed out; got {self.messages}"
            self.client.loop(0.02)

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop(0.05)
            sock = self.client.socket()
            if sock is not None:
                sock.close()
            self.client = None

    def seqs(self) -> list[int]:
        return [p["seq"] for t, p, _ in self.messages if t.endswith("/telemetry")]


@pytest.fixture
def subscriber(broker: MosquittoProcess) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port, f"rst/{SITE}/device/+/telemetry", f"rst/{SITE}/device/+/status")
    sub.connect()
    try:
        yield sub
    finally:
        sub.close()


def test_readings_are_buffered_while_the_broker_is_down_and_resent_in_order(
    broker: MosquittoProcess, subscriber: Subscriber
) -> None:
    hal = SimHal(load_cell_g=5_000.0)
    node = ScaleNode(
        hal, "scale-1", SITE, "127.0.0.1", port=broker.port, timeout_s=2.0,
        backoff_ms=(200, 1_000), buffer_size=50,
    )  # fmt: skip
    for _ in range(5):
        node.step()
        hal.sleep_ms(1_000)
    subscriber.pump_until(lambda: len(subscriber.seqs()) == 5)

    broker.kill()
    subscriber.close()
    for _ in range(7):
        hal.load_cell_g_value -= 150.0  # type: ignore[operator]  # dishes keep being cooked
        node.step()
        hal.sleep_ms(1_000)
    assert node.client is None
    assert len(node.ring) == 7

    broker.restart()
    subscriber.connect()  # subscribed again before the node comes back
    hal.sleep_ms(2_000)  # past the node's reconnect backoff (at most 1 s + jitter)
    node.step()
    subscriber.pump_until(lambda: len(subscriber.seqs()) >= 13)
    assert subscriber.seqs() == list(range(1, 14))  # in order, no gaps, no duplicates
    assert node.ring.dropped == 0
    assert node.connects == 2
    telemetry = [p for t, p, _ in subscriber.messages if t.endswith("/telemetry")]
    weights = [p["values"]["weight_g"] for p in telemetry]
    assert weights[5:12] == [5_000.0 - 150.0 * n for n in range(1, 8)]
    fields = PROFILES["scale-node"].fields
    for p in telemetry:
        assert isinstance(check_telemetry(json.dumps(p).encode(), "scale-1", fields), Telemetry)
    node.stop()


def test_last_will_says_offline_when_the_node_dies(
    broker: MosquittoProcess, subscriber: Subscriber
) -> None:
    hal = SimHal(temperature_c=3.5, door_open=False)
    node = FridgeProbeNode(hal, "probe-1", SITE, "127.0.0.1", port=broker.port)
    node.step()
    status_topic = f"rst/{SITE}/device/probe-1/status"

    def states() -> list[str]:
        return [p["state"] for t, p, _ in subscriber.messages if t == status_topic]

    subscriber.pump_until(lambda: states() == ["online"])
    assert node.client is not None
    node.client.abort()  # a power cut: no DISCONNECT
    subscriber.pump_until(lambda: states() == ["online", "offline"])
    will = next(p for t, p, _ in reversed(subscriber.messages) if t == status_topic)
    assert will == {"v": 1, "device": "probe-1", "state": "offline", "role": "sensor"}

    late = Subscriber(broker.port, status_topic)  # a newcomer sees the retained will
    late.connect()
    try:
        late.pump_until(lambda: bool(late.messages))
        assert late.messages == [(status_topic, will, True)]
    finally:
        late.close()
    node.client = None  # the node would reboot here


def test_a_clean_stop_is_announced_and_the_will_is_not_sent(
    broker: MosquittoProcess, subscriber: Subscriber
) -> None:
    hal = SimHal(temperature_c=3.5)
    node = FridgeProbeNode(hal, "probe-2", SITE, "127.0.0.1", port=broker.port)
    node.step()
    node.stop()
    status_topic = f"rst/{SITE}/device/probe-2/status"
    subscriber.pump_until(
        lambda: (
            [p["state"] for t, p, _ in subscriber.messages if t == status_topic]
            == ["online", "offline"]
        )
    )
    subscriber.client.loop(0.2)  # type: ignore[union-attr]
    assert len([t for t, _, _ in subscriber.messages if t == status_topic]) == 2
