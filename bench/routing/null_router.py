"""The null router: the transport's limit on this machine, on the same client library.

It receives the same orders and screen events as the gateway and publishes the same messages per
order as the gateway does in this bench (counted with a subscriber on ``#``): one reply, an
in-kitchen status and three tickets (expo, fry, cold) for the order; the expo's "ready" version
when the fry ticket is bumped, the "ready" status when the cold one is, and the "closed" status
when the expo is. They have the gateway's shapes and sizes, and the load generator acks and bumps
the expo's "ready" version as it does the gateway's, with no validation, routing or storage. The
gateway's rate divided by this one's is our own overhead.

It keeps no state: which bump is the order's last is known from the station (the gateway sends
its updates when both prep stations have bumped; the load generator bumps them together), and
every ticket's id is its order's id, so a bump names the order.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop

from gateway.transport.mqtt import InboundMessage, MqttClient

SITE = "bench"

# Messages of the gateway's own shapes and sizes (a reply ~130 B, a status ~180 B, a ticket
# ~500-800 B), filled in with the order's id: the bytes are the transport's cost (Mosquitto and
# the screens parse them too), so the null router carries the same volume, without building it.
_AT = b"2026-11-25T12:59:11.001090Z"
REPLY = b'{"v":1,"order_id":"%s","status":"accepted","errors":[],"total":{"amount":3600,"currency":"EUR"}}'
STATUS = (
    b'{"v":1,"order_id":"%s","table":"T75","state":"%s","stations_done":[],'
    b'"stations_open":["cold","fry"],"at":"' + _AT + b'"}'
)
TICKET = (
    b'{"v":1,"ticket_id":"%s","version":%s,"order_id":"%s","table":"T75","station":"%s",'
    b'"course":1,"dining":"dine_in","items":[%s],"fire_at":"' + _AT + b'","status":"%s",'
    b'"redirected_from":null,"sent_at":"' + _AT + b'"}'
)
FRY_ITEM = (
    b'{"line_id":"1","item":"calamari","name":"Calamari","qty":1,"modifiers":[],"note":null,'
    b'"course":1,"station":"fry","fire_at":"' + _AT + b'","voided":false,"done":false}'
)
COLD_ITEM = (
    b'{"line_id":"2","item":"carpaccio","name":"Carpaccio","qty":2,"modifiers":[],"note":null,'
    b'"course":1,"station":"cold","fire_at":"' + _AT + b'","voided":false,"done":false}'
)


async def run(url: str) -> None:
    client = MqttClient(url, "bench-null-router", clean_start=True, session_expiry_s=0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def on_message(msg: InboundMessage) -> None:
        parts = msg.topic.split("/")
        client.ack(msg)
        if parts[-1] == "orders":
            device = parts[3]
            oid = msg.payload.split(b'"order_id": "', 1)[1][:36]
            client.publish(f"rst/{SITE}/tablet/{device}/replies", REPLY % oid)
            # Every ticket of the order carries the order's id as its ticket id, so a bump
            # names the order without the null router keeping any state.
            for station, items in (
                (b"expo", FRY_ITEM + b"," + COLD_ITEM), (b"fry", FRY_ITEM), (b"cold", COLD_ITEM)
            ):
                body = TICKET % (oid, b"1", oid, station, items, b"fired")
                client.publish(f"rst/{SITE}/kds/{station.decode()}/tickets", body)
            client.publish(f"rst/{SITE}/orders/{oid.decode()}/status", STATUS % (oid, b"in_kitchen"))
        elif b'"bump"' in msg.payload:
            oid = msg.payload.split(b'"ticket_id": "', 1)[1][:36]
            station = parts[3]
            if station == "fry":
                body = TICKET % (oid, b"2", oid, b"expo", FRY_ITEM + b"," + COLD_ITEM, b"ready")
                client.publish(f"rst/{SITE}/kds/expo/tickets", body)
            else:
                state = b"ready" if station == "cold" else b"closed"
                client.publish(f"rst/{SITE}/orders/{oid.decode()}/status", STATUS % (oid, state))

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
