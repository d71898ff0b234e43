"""MosquittoProcess and EmbeddedBroker: start, kill, restart on the same port, persistence."""

from __future__ import annotations

import asyncio
import shutil
import socket
from typing import TYPE_CHECKING

import pytest
import uvloop

from gateway.errors import BrokerStartError, BrokerUnavailable
from gateway.transport.broker import EmbeddedBroker, MosquittoProcess
from gateway.transport.mqtt import InboundMessage, MqttClient

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

pytestmark = pytest.mark.integration


def run(coro: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def retained(url: str, topic: str) -> list[bytes]:
    got: list[bytes] = []

    async def main() -> None:
        async with MqttClient(url, "reader", clean_start=True, session_expiry_s=0) as client:
            client.set_handler(lambda m: got.append(m.payload))
            client.subscribe(topic)
            await asyncio.sleep(0.3)

    run(main())
    return got


def publish_retained(url: str, topic: str, payload: bytes) -> None:
    async def main() -> None:
        async with MqttClient(url, "writer") as client:
            client.publish(topic, payload, retain=True)
            async with asyncio.timeout(5):
                while client.stats.pending_publishes:
                    await asyncio.sleep(0.01)

    run(main())


def test_start_kill_restart_on_the_same_port(broker: MosquittoProcess) -> None:
    assert broker.running
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    assert accepts(broker.port)
    config = broker.config_path.read_text()
    for line in ("set_tcp_nodelay true", "max_queued_messages 100000", "allow_anonymous true"):
        assert line in config

    broker.kill()
    assert not broker.running
    assert not accepts(broker.port)

    broker.restart()
    assert broker.running
    assert accepts(broker.port)
    # Our fix for Mosquitto dropping root privileges: it could write its log.
    assert "running" in broker.log_path.read_text()


def test_persistence_survives_a_clean_stop(broker: MosquittoProcess) -> None:
    publish_retained(broker.url, "menu/version", b"42")
    broker.stop()
    assert broker.persistence_path.stat().st_size > 0
    broker.restart()
    assert retained(broker.url, "menu/version") == [b"42"]


def test_kill_9_loses_what_was_not_saved(broker: MosquittoProcess) -> None:
    # Documents RELIABILITY.md: Mosquitto saves only on clean shutdown or autosave.
    publish_retained(broker.url, "menu/version", b"43")
    broker.kill()
    broker.restart()
    assert retained(broker.url, "menu/version") == []


def test_context_manager_leaves_nothing_behind() -> None:
    with MosquittoProcess() as broker:
        directory, port = broker.dir, broker.port
        assert accepts(port)
    assert not broker.running
    assert not accepts(port)
    assert not directory.exists()


def test_port_taken_by_another_listener_is_an_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        broker = MosquittoProcess(squatter.getsockname()[1])
        try:
            with pytest.raises(BrokerStartError, match="already in use"):
                broker.start()
            assert not broker.running
        finally:
            broker.close()


def test_start_failure_shows_the_log_tail() -> None:
    broker = MosquittoProcess()
    try:
        with broker.config_path.open("a") as config:
            config.write("no_such_option 1\n")
        with pytest.raises(BrokerStartError, match=r"(?s)exited with code.*no_such_option"):
            broker.start()
        assert not broker.running
    finally:
        broker.close()


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *_a, **_k: None)
    with pytest.raises(BrokerStartError, match="apt-get install mosquitto"):
        MosquittoProcess()


def test_embedded_broker_serves_mqtt_311_only() -> None:
    async def main() -> None:
        async with EmbeddedBroker() as broker:
            assert broker.url.endswith("?protocol=4")
            got: list[InboundMessage] = []
            async with (
                MqttClient(broker.url, "demo-sub") as sub,
                MqttClient(broker.url, "demo-pub") as pub,
            ):

                def handle(msg: InboundMessage) -> None:
                    got.append(msg)
                    sub.ack(msg)

                sub.set_handler(handle)
                sub.subscribe("demo/#")
                await asyncio.sleep(0.2)
                assert pub.publish("demo/1", b"hello", response_topic="ignored/on/3.1.1")
                async with asyncio.timeout(5):
                    while not got:
                        await asyncio.sleep(0.01)
            assert got[0].payload == b"hello"
            assert got[0].response_topic is None

            # Without the URL's hint amqtt never answers our MQTT 5 CONNECT; the error says why.
            plain = broker.url.removesuffix("?protocol=4")
            with pytest.raises(BrokerUnavailable, match=r"CONNACK.*\?protocol=4"):
                async with MqttClient(plain, "mqtt5", protocol=5, connect_timeout_s=0.5):
                    pass

    run(main())
