"""The null router: the transport's limit on this machine, on the same client library.

It receives the same orders and screen events as the gateway and publishes the same number of
messages per order (one reply, an accepted and an in-kitchen status, an expo and two prep
tickets; per bump one message, like the gateway's ready/expo/closed updates) with no validation,
routing or storage. The gateway's rate divided by this one's is our own overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import uuid

import uvloop

from gateway.transport.mqtt import InboundMessage, MqttClient

SITE = "bench"


async def run(url: str) -> None:
    client = MqttClient(url, "bench-null-router", clean_start=True, session_expiry_s=0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def on_message(msg: InboundMessage) -> None:
        parts = msg.topic.split("/")
        if parts[-1] == "orders":
            device = parts[3]
            oid = msg.payload.split(b'"order_id": "', 1)[1][:36].decode()
            client.ack(msg)
            client.publish(f"rst/{SITE}/tablet/{device}/replies",
                           json.dumps({"order_id": oid, "status": "accepted"}).encode())
            client.publish(f"rst/{SITE}/orders/{oid}/status", b'{"state":"accepted"}')
            for station in ("expo", "fry", "cold"):
                t = {"ticket_id": str(uuid.uuid4()), "version": 1, "order_id": oid,
                     "station": station, "status": "fired", "items": []}
                client.publish(f"rst/{SITE}/kds/{station}/tickets", json.dumps(t).encode())
            client.publish(f"rst/{SITE}/orders/{oid}/status", b'{"state":"in_kitchen"}')
        else:
            client.ack(msg)
            if b'"bump"' in msg.payload:
                client.publish(f"rst/{SITE}/orders/x/status", b'{"state":"ready"}')

    async with client:
        client.set_handler(on_message)
        client.subscribe(f"rst/{SITE}/tablet/+/orders")
        client.subscribe(f"rst/{SITE}/kds/+/events")
        print("ready", flush=True)
        await stop.wait()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    uvloop.run(run(p.parse_args().url))


if __name__ == "__main__":
    main()
