"""MqttClient against a real Mosquitto on loopback: delivery, acks, reconnects, will, limits."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, TypeVar

import psutil
import pytest
import uvloop

from gateway.errors import BrokerUnavailable, TransportError
from gateway.transport.broker import MosquittoProcess, free_port
from gateway.transport.mqtt import InboundMessage, MqttClient, Will
from gateway.transport.paths import PATHS_ENV

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

pytestmark = pytest.mark.integration

FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.5, "connect_timeout_s": 5.0}


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def wait_until(pred: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)
    assert pred(), what


class Inbox:
    """Collects messages; optionally acks each one as it arrives."""

    def __init__(self, client: MqttClient, *, ack: bool = True) -> None:
        self.messages: list[InboundMessage] = []
        self._client = client
        self._ack = ack
        client.set_handler(self)

    def __call__(self, msg: InboundMessage) -> None:
        self.messages.append(msg)
        if self._ack:
            self._client.ack(msg)

    @property
    def payloads(self) -> list[bytes]:
        return [m.payload for m in self.messages]


def kill_socket(client: MqttClient) -> None:
    """Drop the client's TCP connection under it, as a pulled cable or crash would."""
    sock = client._paho.socket()
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)


def test_round_trip_and_entering_means_ready(broker: MosquittoProcess) -> None:
    async def main() -> None:
        async with MqttClient(broker.url, "sub") as sub, MqttClient(broker.url, "pub") as pub:
            assert sub.connected
            assert pub.connected
            inbox = Inbox(sub)
            sub.subscribe("orders/+/new", qos=1)
            await asyncio.sleep(0.1)  # SUBACK
            before = time.monotonic()
            assert pub.publish("orders/t1/new", b'{"id": 1}')
            assert pub.publish("orders/t1/new", b"q0", qos=0)
            await wait_until(lambda: len(inbox.messages) == 2)
            first = inbox.messages[0]
            assert (first.topic, first.payload, first.qos, first.retain) == (
                "orders/t1/new", b'{"id": 1}', 1, False,
            )  # fmt: skip
            assert first.received_at >= before
            assert first.response_topic is None
            assert first.correlation_data is None
            assert inbox.messages[1].qos == 0
            await wait_until(lambda: pub.stats.pending_publishes == 0)
            assert pub.stats.published == 2
            assert sub.stats.received == 2

    run(main())


@pytest.mark.parametrize(("topic_filter", "qos"), [("", 1), ("a/#/b", 1), ("a/b+", 1), ("a", 3)])
def test_invalid_subscription_is_refused_up_front(topic_filter: str, qos: int) -> None:
    client = MqttClient("mqtt://127.0.0.1:1", "c")
    with pytest.raises(TransportError, match="invalid subscription"):
        client.subscribe(topic_filter, qos)


def test_invalid_publish_topic_is_a_transport_error(broker: MosquittoProcess) -> None:
    async def main() -> None:
        async with MqttClient(broker.url, "c") as client:
            with pytest.raises(TransportError, match="cannot publish"):
                client.publish("orders/+", b"x")

    run(main())


def test_body_exception_propagates_unwrapped(broker: MosquittoProcess) -> None:
    async def main() -> None:
        async with MqttClient(broker.url, "c"):
            raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        run(main())


def test_tcp_nodelay_is_set(broker: MosquittoProcess) -> None:
    async def main() -> None:
        async with MqttClient(broker.url, "nodelay") as client:
            sock = client._paho.socket()
            assert sock is not None
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0

    run(main())


def test_response_topic_and_correlation_data_arrive(broker: MosquittoProcess) -> None:
    async def main() -> None:
        async with MqttClient(broker.url, "rr-sub") as sub, MqttClient(broker.url, "rr-pub") as pub:
            inbox = Inbox(sub)
            sub.subscribe("req")
            await asyncio.sleep(0.1)
            pub.publish("req", b"x", response_topic="reply/tablet-7", correlation_data=b"\x00\x01")
            await wait_until(lambda: len(inbox.messages) == 1)
            assert inbox.messages[0].response_topic == "reply/tablet-7"
            assert inbox.messages[0].correlation_data == b"\x00\x01"

    run(main())


# ---- manual acknowledgement ------------------------------------------------------------------

_CRASHING_CONSUMER = """
import asyncio, sys
from gateway.transport.mqtt import MqttClient

async def main(url):
    async with MqttClient(url, "kitchen-1") as client:
        acked = []
        def handle(msg):
            if msg.payload == b"ack-me":
                client.ack(msg)
                acked.append(msg)
            print(msg.payload.decode(), flush=True)
        client.set_handler(handle)
        client.subscribe("orders/#")
        await asyncio.sleep(0.2)
        print("ready", flush=True)
        while True:
            await asyncio.sleep(0.01)
            if acked and not client._paho.want_write():  # the PUBACK is in the kernel's hands
                print("acked", flush=True)
                acked.clear()

asyncio.run(main(sys.argv[1]))
"""


class Lines:
    """Reads a child's stdout line by line with a timeout (select, then os.read: no buffering
    layer that could hide a line select cannot see)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._buf = b""

    def next(self, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self._fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    pytest.fail(f"the child said nothing more (so far: {self._buf!r})")
                chunk = os.read(self._fd, 4096)
                if not chunk:
                    pytest.fail(f"the child exited (so far: {self._buf!r})")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()


def test_unacked_message_is_redelivered_after_consumer_kill_9(broker: MosquittoProcess) -> None:
    argv = [sys.executable, "-c", _CRASHING_CONSUMER, broker.url]
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as consumer:
        try:
            lines = Lines(consumer)
            assert lines.next() == "ready"

            async def publish() -> None:
                async with MqttClient(broker.url, "pos") as pub:
                    pub.publish("orders/1", b"keep-me")
                    pub.publish("orders/2", b"ack-me")
                    await wait_until(lambda: pub.stats.pending_publishes == 0)

            run(publish())
            assert [lines.next() for _ in range(3)] == ["keep-me", "ack-me", "acked"]
        finally:
            consumer.kill()  # SIGKILL: no DISCONNECT, no cleanup

    async def restart_consumer() -> list[bytes]:
        async with MqttClient(broker.url, "kitchen-1") as client:
            inbox = Inbox(client)
            client.subscribe("orders/#")
            await wait_until(lambda: len(inbox.messages) >= 1)
            await asyncio.sleep(0.3)  # nothing else may follow
            return inbox.payloads

    assert run(restart_consumer()) == [b"keep-me"]


def test_ack_from_a_lost_connection_is_a_no_op(broker: MosquittoProcess) -> None:
    async def main() -> None:
        async with (
            MqttClient(broker.url, "kds-2", **FAST) as sub,
            MqttClient(broker.url, "p") as pub,
        ):
            inbox = Inbox(sub, ack=False)
            sub.subscribe("tickets/#")
            await asyncio.sleep(0.1)
            pub.publish("tickets/1", b"t1")
            await wait_until(lambda: len(inbox.messages) == 1)
            stale = inbox.messages[0]

            kill_socket(sub)
            await wait_until(lambda: len(inbox.messages) == 2, what="redelivered after reconnect")
            assert sub.stats.reconnects == 1
            sub.ack(stale)  # its packet id belongs to the dead connection: must not be sent

            kill_socket(sub)
            await wait_until(lambda: len(inbox.messages) == 3, what="still unacked, so again")
            fresh = inbox.messages[2]
            sub.ack(fresh)
            sub.ack(fresh)  # twice is harmless
            await asyncio.sleep(0.1)

            kill_socket(sub)
            await wait_until(lambda: sub.stats.reconnects == 3)
            await asyncio.sleep(0.3)
            assert inbox.payloads == [b"t1", b"t1", b"t1"]

    run(main())


# ---- reconnects ------------------------------------------------------------------------------


def test_reconnects_with_backoff_after_broker_kill_9(broker: MosquittoProcess) -> None:
    async def main() -> None:
        async with MqttClient(broker.url, "gw", **FAST) as client:
            changes: list[bool] = []
            client.on_connection_change(changes.append)
            inbox = Inbox(client)
            client.subscribe("orders/#")
            await asyncio.sleep(0.1)

            attempts = 0
            connect_once = client._connect_once

            async def counting() -> None:
                nonlocal attempts
                attempts += 1
                await connect_once()

            client._connect_once = counting  # type: ignore[method-assign]
            broker.kill()
            await wait_until(lambda: not client.connected)
            await asyncio.sleep(1.5)
            # Delays 0.05, 0.1, 0.2, 0.4, 0.5... (each jittered down by up to half).
            assert 3 <= attempts <= 12, attempts
            await asyncio.to_thread(broker.restart)
            await wait_until(lambda: client.connected, what="reconnected by itself")
            assert changes == [False, True]
            assert client.stats.reconnects == 1

            # kill -9 lost the broker's copy of our subscription; the client re-sent it.
            async with MqttClient(broker.url, "pos") as pub:
                pub.publish("orders/9", b"after restart")
                await wait_until(lambda: inbox.payloads == [b"after restart"])

    run(main())


def test_publish_limit_while_broker_is_down(broker: MosquittoProcess) -> None:
    async def main() -> None:
        async with (
            MqttClient(broker.url, "kds-sub", **FAST) as sub,
            MqttClient(broker.url, "gw-pub", max_pending_publishes=5, **FAST) as pub,
        ):
            inbox = Inbox(sub)
            sub.subscribe("tickets/#")
            await asyncio.sleep(0.1)
            await asyncio.to_thread(broker.stop)  # clean: the sub's session is persisted
            await wait_until(lambda: not pub.connected and not sub.connected)

            assert not pub.publish("tickets/x", b"q0", qos=0)  # QoS 0 has nowhere to wait
            assert [pub.publish("tickets/x", b"%d" % i) for i in range(6)] == [True] * 5 + [False]
            assert pub.stats.publish_dropped == 1  # QoS > 0 and QoS 0 drops are counted apart
            assert pub.stats.qos0_dropped == 1
            assert pub.stats.pending_publishes == 5
            room = asyncio.ensure_future(pub.wait_publish_room())
            await asyncio.sleep(0.1)
            assert not room.done()

            await asyncio.to_thread(broker.restart)
            await asyncio.wait_for(room, 5)
            await wait_until(lambda: pub.stats.pending_publishes == 0)
            await wait_until(lambda: len(inbox.messages) == 5)
            assert sorted(inbox.payloads) == [b"0", b"1", b"2", b"3", b"4"]

    run(main())


def test_a_burst_far_past_the_in_flight_window_arrives_whole_and_in_order(
    broker: MosquittoProcess,
) -> None:
    """Most of the burst waits in the client's own queue; each PUBACK sends the next one."""

    async def main() -> None:
        async with (
            MqttClient(broker.url, "burst-sub", **FAST) as sub,
            MqttClient(broker.url, "burst-pub", **FAST) as pub,
        ):
            inbox = Inbox(sub)
            sub.subscribe("burst/#")
            await asyncio.sleep(0.1)
            n = 3000  # 30x the in-flight window
            assert all(pub.publish("burst/a", b"%d" % i) for i in range(n))
            assert pub.stats.pending_publishes == n
            await wait_until(lambda: len(inbox.messages) == n, timeout=20)
            await wait_until(lambda: pub.stats.pending_publishes == 0)
            assert inbox.payloads == [b"%d" % i for i in range(n)]
            assert pub.stats.published == n
            assert pub._paho._inflight_messages == 0

    run(main())


def test_in_flight_and_queued_publishes_survive_a_broker_kill_9_in_order(
    broker: MosquittoProcess,
) -> None:
    """paho re-marks messages after a reconnect; the lean queue must follow its order."""

    async def main() -> None:
        async with (
            MqttClient(broker.url, "kill-sub", **FAST) as sub,
            MqttClient(broker.url, "kill-pub", **FAST) as pub,
        ):
            inbox = Inbox(sub)
            sub.subscribe("k/#")
            await asyncio.sleep(0.1)
            # The publisher reconnects only once the subscriber is back and subscribed again
            # (kill -9 loses the broker's copy of the subscription).
            gate = asyncio.Event()
            connect_once = pub._connect_once

            async def gated() -> None:
                await gate.wait()
                await connect_once()

            pub._connect_once = gated  # type: ignore[method-assign]
            broker.kill()
            await wait_until(lambda: not pub.connected and not sub.connected)
            n = 1000  # 10x the in-flight window, all resent after the reconnect
            assert all(pub.publish("k/x", b"%d" % i) for i in range(n))
            await asyncio.to_thread(broker.restart)
            await wait_until(lambda: sub.connected)
            await asyncio.sleep(0.3)  # the SUBSCRIBE is on its way
            gate.set()
            await wait_until(lambda: pub.stats.pending_publishes == 0, timeout=20)
            await wait_until(lambda: len(inbox.messages) == n, timeout=20)
            assert pub.stats.published == n
            assert inbox.payloads == [b"%d" % i for i in range(n)]
            # Now a burst on the live connection, with paho's window full again.
            more = [b"m%d" % i for i in range(500)]
            for m in more:
                pub.publish("k/y", m)
            await wait_until(lambda: inbox.payloads[-len(more) :] == more, timeout=20)
            assert pub._paho._inflight_messages == 0

    run(main())


def test_receive_maximum_bounds_what_waits_for_acks_even_when_the_broker_sends_more(
    broker: MosquittoProcess,
) -> None:
    """Mosquitto 2.0.11 sends past a client's Receive Maximum once acks flow; we stop reading."""

    async def main() -> None:
        limit, n = 100, 3000
        waiting: list[InboundMessage] = []
        most = received = 0
        async with (
            MqttClient(broker.url, "rm-sub", receive_maximum=limit, **FAST) as sub,
            MqttClient(broker.url, "rm-pub", **FAST) as pub,
        ):

            def on_message(msg: InboundMessage) -> None:
                nonlocal most, received
                waiting.append(msg)
                received += 1
                most = max(most, len(waiting))

            sub.set_handler(on_message)
            sub.subscribe("rm/#")
            await asyncio.sleep(0.1)
            for i in range(n):
                pub.publish("rm/x", b"%04d" % i + b"." * 1000)
            # Ack in batches, late, as the order service does after each commit.
            async with asyncio.timeout(30):
                while received < n or waiting:
                    await asyncio.sleep(0.01)
                    batch, waiting[:] = list(waiting), []
                    for msg in batch:
                        sub.ack(msg)
            # One 64 KiB read of ~1 KiB messages may carry up to ~64 past the limit.
            assert most <= limit + 70, most
            assert sub.stats.read_pauses > 0
            assert sub.stats.received == n

    run(main())


def test_a_consumer_that_stops_acking_keeps_its_connection(broker: MosquittoProcess) -> None:
    """A read pause ends after half the keepalive, so the PINGRESP is read and the link kept."""

    async def main() -> None:
        async with (
            MqttClient(broker.url, "stuck-sub", receive_maximum=10, keepalive_s=2, **FAST) as sub,
            MqttClient(broker.url, "stuck-pub", **FAST) as pub,
        ):
            got: list[InboundMessage] = []
            sub.set_handler(got.append)  # never acks
            sub.subscribe("stuck/#")
            await asyncio.sleep(0.1)
            for i in range(100):
                pub.publish("stuck/x", b"%d" % i)
            await wait_until(lambda: sub.stats.read_pauses >= 1)
            await asyncio.sleep(6)  # three keepalive periods
            assert sub.connected
            assert sub.stats.reconnects == 0

    run(main())


def test_qos0_flood_while_the_broker_reads_nothing_stays_bounded_and_counts_drops(
    broker: MosquittoProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGSTOP the broker: its socket is not read, so the gateway's own send buffer fills."""
    caplog.set_level(logging.INFO, logger="gateway.transport.deliveries")
    proc = broker._res.proc
    assert proc is not None
    payload = b"t" * 10_000
    n = 20_000  # 200 MB offered; the kernel's socket buffers take a few MB of it

    async def main() -> int:
        async with MqttClient(broker.url, "telemetry", keepalive_s=60, **FAST) as pub:
            me = psutil.Process()
            rss_before = me.memory_info().rss
            most_unsent = most_bytes = accepted = 0
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                for i in range(n):
                    accepted += pub.publish("kitchen/fryer-1/telemetry", payload, qos=0)
                    if i % 20 == 0:  # let the loop write whatever the socket still takes
                        await asyncio.sleep(0)
                        s = pub.stats
                        most_unsent = max(most_unsent, s.qos0_unsent)
                        most_bytes = max(most_bytes, s.qos0_unsent_bytes)
                grown_mib = (me.memory_info().rss - rss_before) / 2**20
                stats = pub.stats
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            assert pub.connected
            assert most_unsent <= 1000
            assert most_bytes <= 1 << 20
            assert stats.qos0_dropped == n - accepted
            assert stats.qos0_dropped > n // 2, stats
            assert stats.publish_dropped == 0  # QoS 1's count is its own
            assert grown_mib < 30, grown_mib  # unbounded, paho would hold ~190 MiB here
            await wait_until(lambda: pub.stats.qos0_unsent == 0, timeout=20, what="drained")
            assert pub.publish("kitchen/fryer-1/telemetry", b"after", qos=0)
            assert pub.stats.published == accepted
            await wait_until(lambda: pub.stats.published == accepted + 1)
            return stats.qos0_dropped

    dropped = run(main())
    said = [r.getMessage() for r in caplog.records if "QoS 0" in r.getMessage()]
    # Once when dropping starts, once when it stops: a run per stretch of full socket (the
    # kernel may take another few hundred kB meanwhile), never a line per message.
    assert 2 <= len(said) <= 8, said
    assert all("behind a full socket" in m for m in said[::2]), said
    assert all("flow again" in m for m in said[1::2]), said
    assert sum(int(re.search(r"(\d+) were dropped", m)[1]) for m in said[1::2]) == dropped


def test_the_paths_are_the_ones_asked_for(broker: MosquittoProcess) -> None:
    """CI runs this file once per mode; each run must really be on the paths it names."""
    wanted = os.environ.get(PATHS_ENV, "auto")
    if wanted not in {"fast", "paho"}:
        wanted = "fast"  # auto: the installed paho is the pinned one (a unit test checks it)

    async def main() -> None:
        async with MqttClient(broker.url, "which-paths") as client:
            assert client.paths == wanted

    run(main())


# ---- last will -------------------------------------------------------------------------------


def test_will_is_published_when_the_socket_dies(broker: MosquittoProcess) -> None:
    async def main() -> None:
        will = Will("gw/dev-1/status", b"offline")
        async with MqttClient(broker.url, "dev-1", will=will, **FAST) as dev:
            dev.publish("gw/dev-1/status", b"online", retain=True)
            await wait_until(lambda: dev.stats.pending_publishes == 0)
            kill_socket(dev)
            await wait_until(lambda: dev.stats.reconnects == 1)

        async with MqttClient(broker.url, "late-observer", clean_start=True) as observer:
            inbox = Inbox(observer)
            observer.subscribe("gw/+/status")
            await wait_until(lambda: len(inbox.messages) == 1)
            assert inbox.messages[0].payload == b"offline"
            assert inbox.messages[0].retain

    run(main())


def test_clean_exit_sends_no_will(broker: MosquittoProcess) -> None:
    async def main() -> None:
        async with MqttClient(broker.url, "dev-2", will=Will("gw/dev-2/status", b"offline")):
            pass
        async with MqttClient(broker.url, "observer", clean_start=True) as observer:
            inbox = Inbox(observer)
            observer.subscribe("gw/dev-2/status")
            await asyncio.sleep(0.5)
            assert inbox.messages == []

    run(main())


# ---- first connect ---------------------------------------------------------------------------


def test_nothing_listening_raises_broker_unavailable() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"

    async def main() -> None:
        async with MqttClient(url, "lonely", connect_timeout_s=0.5):
            pytest.fail("connected to nothing")

    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as err:
        run(main())
    assert time.monotonic() - started < 2.0
    assert err.value.url == url
    assert "0.5 s" in err.value.reason
    assert "refused" in err.value.reason.lower() or "failed" in err.value.reason.lower()


def test_cancelled_while_waiting_for_connack_releases_everything() -> None:
    with socket.create_server(("127.0.0.1", 0)) as mute:  # accepts TCP, never answers MQTT
        port = mute.getsockname()[1]

        async def main() -> MqttClient:
            client = MqttClient(f"mqtt://127.0.0.1:{port}", "patient")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await client.__aenter__()
            return client

        client = run(main())
        assert client._paho.socket() is None
        assert not client.connected
