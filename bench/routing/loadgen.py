"""Load generator: tablets and screens in one process, measuring what the router does.

Sends orders at a fixed rate (or as fast as a window of unanswered orders allows), acks every
ticket like a screen, bumps prep tickets after ``bump_after_s`` and the expo when it turns ready,
and prints one JSON line of results. Used for both the gateway and the null router.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime

import uvloop

from gateway.transport.mqtt import InboundMessage, MqttClient

SITE = "bench"


def pct(values: list[float], q: float) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


async def run(url: str, rate: float, duration: float, window: int, bump_after: float) -> dict:
    sent: dict[str, float] = {}
    reply_lat: list[float] = []
    ticket_lat: list[float] = []
    first_ticket: set[str] = set()
    replies = tickets = 0
    pending_bumps: list[tuple[float, bytes, str]] = []
    client = MqttClient(url, f"bench-load-{uuid.uuid4().hex[:6]}", clean_start=True,
                        session_expiry_s=0)
    done = asyncio.Event()

    def on_message(msg: InboundMessage) -> None:
        nonlocal replies, tickets
        now = time.monotonic()
        body = json.loads(msg.payload)
        if msg.topic.endswith("/replies"):
            replies += 1
            t0 = sent.get(body["order_id"])
            if t0 is not None:
                reply_lat.append(now - t0)
        elif msg.topic.endswith("/tickets"):
            tickets += 1
            station = body["station"]
            oid = body["order_id"]
            t0 = sent.get(oid)
            if station != "expo" and t0 is not None and oid not in first_ticket:
                first_ticket.add(oid)
                ticket_lat.append(now - t0)
            ev = {"ticket_id": body["ticket_id"], "version": body["version"], "action": "ack"}
            client.publish(f"rst/{SITE}/kds/{station}/events", json.dumps(ev).encode())
            if station != "expo" and body["version"] == 1:
                ev["action"] = "bump"
                pending_bumps.append((now + bump_after, json.dumps(ev).encode(), station))
            elif station == "expo" and body["status"] == "ready":
                ev["action"] = "bump"
                client.publish(f"rst/{SITE}/kds/expo/events", json.dumps(ev).encode())
        client.ack(msg)

    async with client:
        client.set_handler(on_message)
        client.subscribe(f"rst/{SITE}/tablet/+/replies")
        client.subscribe(f"rst/{SITE}/kds/+/tickets")
        await asyncio.sleep(0.3)
        start = time.monotonic()
        n = 0
        tick = 0.01
        while time.monotonic() - start < duration:
            elapsed = time.monotonic() - start
            target = int(elapsed * rate) if rate > 0 else n + window
            while n < target and n - replies < window:
                oid = str(uuid.uuid4())
                order = {
                    "order_id": oid, "table": f"T{n % 100 + 1}",
                    "placed_at": datetime.now(UTC).isoformat(),
                    "items": [{"line_id": "1", "item": "calamari", "qty": 1},
                              {"line_id": "2", "item": "carpaccio", "qty": 2}],
                }
                sent[oid] = time.monotonic()
                client.publish(f"rst/{SITE}/tablet/tab-{n % 20}/orders", json.dumps(order).encode())
                n += 1
            now = time.monotonic()
            while pending_bumps and pending_bumps[0][0] <= now:
                _, payload, station = pending_bumps.pop(0)
                client.publish(f"rst/{SITE}/kds/{station}/events", payload)
            await asyncio.sleep(tick)
        sent_time = time.monotonic() - start
        deadline = time.monotonic() + 15
        while replies < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        total_time = time.monotonic() - start
        # Finish the service before leaving, as a kitchen would: every prep ticket bumped, and
        # the expo bumped once ready. Not measured; it keeps orders this run left open from
        # weighing on the next run's (a router with state, unlike the null one, keeps them).
        quiet_until = time.monotonic() + 0.5
        drain_deadline = time.monotonic() + 15
        seen = tickets
        while time.monotonic() < drain_deadline:
            now = time.monotonic()
            while pending_bumps and pending_bumps[0][0] <= now:
                _, payload, station = pending_bumps.pop(0)
                client.publish(f"rst/{SITE}/kds/{station}/events", payload)
            if tickets != seen:
                seen, quiet_until = tickets, now + 0.5
            if not pending_bumps and now >= quiet_until:
                break
            await asyncio.sleep(0.02)
        done.set()
    return {
        "rate_target": rate, "sent": n, "replies": replies, "tickets": tickets,
        "send_seconds": round(sent_time, 2), "seconds_to_last_reply": round(total_time, 2),
        "orders_per_s": round(replies / total_time, 1) if rate == 0 else round(n / sent_time, 1),
        "reply_ms_p50": _ms(pct(reply_lat, 0.5)), "reply_ms_p99": _ms(pct(reply_lat, 0.99)),
        "ticket_ms_p50": _ms(pct(ticket_lat, 0.5)), "ticket_ms_p99": _ms(pct(ticket_lat, 0.99)),
        "lost": n - len(reply_lat),
    }


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, default=200, help="orders/s; 0 = as fast as the window allows")
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--window", type=int, default=500)
    p.add_argument("--bump-after", type=float, default=0.5)
    a = p.parse_args()
    res = uvloop.run(run(a.url, a.rate, a.duration, a.window, a.bump_after))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
