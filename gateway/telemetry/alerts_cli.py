"""``gateway alerts list`` and ``gateway alerts ack``: the alerts from a shell.

``list`` reads the alert store directly (``alerts.json`` and the history's events after it),
read-only, so it works beside a running gateway (which replaces ``alerts.json`` whole, never in
place). ``--all`` adds the alerts that are over, from the history, newest first.

``ack`` publishes an :class:`~gateway.contract.AlertAck` on the site's broker and waits for the
gateway's :class:`~gateway.contract.AlertAckReply`: with MQTT 5 on a response topic of its own
(below ``alerts/ack_replies/``, matched by correlation data), else on ``alerts/ack_replies``
(matched by ``alert_id``). It prints the reply.

Exit codes: ``list``: 0, or 1 when the store cannot be read. ``ack``: 0 the alert is
acknowledged (by this ack, or by an earlier one); 3 it is not: the gateway does not know the
alert, it was over already, or it refused the ack; 1 no broker, or no reply within the timeout;
2 an ack that would be refused as it is (checked before sending).
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, TextIO
from uuid import uuid4

from pydantic import ValidationError

from gateway.codec import encode, error_path
from gateway.contract import AckStatus, AlertAck, AlertAckReply, Topics
from gateway.errors import GatewayError
from gateway.runner import run_async
from gateway.telemetry.alerts import AlertBook, Timing
from gateway.telemetry.alerts_store import AlertStore
from gateway.transport.mqtt import MqttClient
from gateway.transport.url import parse_broker_url

if TYPE_CHECKING:
    from datetime import datetime

    from gateway.config import SiteConfig
    from gateway.telemetry.alerts import AlertRecord
    from gateway.transport.mqtt import InboundMessage

__all__ = ["EXIT_NOT_ACKED", "ack", "list_alerts"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_ACKED = 3


def _say(text: str, out: TextIO | None = None) -> None:
    (out or sys.stdout).write(text + "\n")


def _when(t: datetime | None) -> str:
    # Local time, as the kitchen reads its clocks, with the offset so nothing is ambiguous.
    return "?" if t is None else t.astimezone().isoformat(sep=" ", timespec="seconds")


def _state(a: AlertRecord) -> str:
    if a.acked_by is None:
        return "unacknowledged"
    return f"acknowledged by {a.acked_by} at {_when(a.acked_at)} ({a.note})"


def _line(a: AlertRecord, width: int, what: str) -> str:
    return f"{a.priority.value:<8}  {a.alert_id:<{width}}  {what}  {a.message}"


def list_alerts(cfg: SiteConfig, *, show_all: bool = False, out: TextIO | None = None) -> int:
    """Print the active alerts (and, with ``show_all``, those that are over); the exit code."""
    store = AlertStore(cfg.state.dir, fsync=False)
    try:
        loaded = store.load()
        if show_all:
            history, _ = store.history()
    except GatewayError as err:
        _say(f"gateway alerts list: {err}", sys.stderr)
        return EXIT_ERROR
    snap = loaded.snapshot
    book = AlertBook(
        Timing.from_config(cfg.alerts),
        active=() if snap is None else snap.active,
        cleared=() if snap is None else snap.cleared,
        seq=0 if snap is None else snap.seq,
    )
    book.replay(loaded.tail, 0.0)
    if loaded.dropped:
        _say(f"({loaded.dropped} unreadable line(s) of {store.history_path} skipped)", sys.stderr)
    active = book.active
    over = [e.alert for e in reversed(history) if e.event == "cleared"] if show_all else []
    width = max((len(a.alert_id) for a in [*active, *over]), default=0)
    if not active:
        _say(f"no active alerts ({store.path})", out)
    else:
        _say(f"{len(active)} active alert(s) ({store.path}):", out)
        for a in active:
            _say(_line(a, width, f"since {_when(a.started_at)}  {_state(a)}"), out)
    if show_all:
        _say(f"{len(over)} alert(s) over ({store.history_path}, newest first):", out)
        for a in over:
            acked = "" if a.acked_by is None else f"  {_state(a)}"
            what = f"{_when(a.started_at)} to {_when(a.cleared_at)}{acked}"
            _say(_line(a, width, what), out)
    return EXIT_OK


def ack(
    cfg: SiteConfig,
    alert_id: str,
    *,
    by: str,
    note: str,
    timeout_s: float = 10.0,
    out: TextIO | None = None,
) -> int:
    """Acknowledge ``alert_id`` through the gateway and print its reply; the exit code."""
    try:
        request = AlertAck(alert_id=alert_id, by=by, note=note)
    except ValidationError as err:
        for d in err.errors(include_url=False, include_input=False):
            _say(f"gateway alerts ack: {error_path(tuple(d['loc']))}: {d['msg']}", sys.stderr)
        return EXIT_USAGE
    got: list[AlertAckReply] = []
    try:
        run_async(_send(cfg, request, timeout_s, got))
    except TimeoutError:
        _say(f"gateway alerts ack: no reply from the gateway within {timeout_s:g} s (is it "
             f"running, and connected to {cfg.mqtt.url}?)", sys.stderr)  # fmt: skip
        return EXIT_ERROR
    except GatewayError as err:
        _say(f"gateway alerts ack: {err}", sys.stderr)
        return EXIT_ERROR
    (reply,) = got
    _say(f"{reply.status.value}: {reply.message}", out)
    if reply.note and reply.status in (AckStatus.ACKNOWLEDGED, AckStatus.ALREADY_ACKNOWLEDGED):
        _say(f"note: {reply.note}", out)
    for e in reply.errors:
        _say(f"  {e.path or '(message)'}: {e.message}", out)
    ok = reply.status in (AckStatus.ACKNOWLEDGED, AckStatus.ALREADY_ACKNOWLEDGED)
    return EXIT_OK if ok else EXIT_NOT_ACKED


async def _send(cfg: SiteConfig, request: AlertAck, timeout_s: float,
                got: list[AlertAckReply]) -> None:  # fmt: skip
    topics = Topics(cfg.site.id)
    client_id = f"gateway-alerts-ack-{uuid4().hex[:12]}"
    v5 = (parse_broker_url(cfg.mqtt.url).protocol or 5) == 5
    mine = f"{topics.alerts_ack_replies}/{client_id}"
    correlation = uuid4().bytes
    answered: asyncio.Future[AlertAckReply] = asyncio.get_running_loop().create_future()
    client = MqttClient(
        cfg.mqtt.url, client_id, username=cfg.mqtt.username, password=cfg.mqtt.password(),
        clean_start=True, session_expiry_s=0, connect_timeout_s=timeout_s,
    )  # fmt: skip

    def on_message(msg: InboundMessage) -> None:
        client.ack(msg)
        try:
            reply = AlertAckReply.model_validate_json(msg.payload)
        except ValidationError:
            return
        # On the shared topic (MQTT 3.1.1, or a gateway that could not see our response topic)
        # a reply about our alert is the answer: it says how the alert stands either way.
        ours = msg.correlation_data == correlation if msg.topic == mine else (
            reply.alert_id == request.alert_id
        )  # fmt: skip
        if ours and not answered.done():
            answered.set_result(reply)

    async with client:
        client.set_handler(on_message)
        client.subscribe(topics.alerts_ack_replies, qos=1)
        if v5:
            client.subscribe(mine, qos=1)
        client.publish(
            topics.alerts_ack, encode(request), qos=1,
            response_topic=mine if v5 else None, correlation_data=correlation if v5 else None,
        )  # fmt: skip
        async with asyncio.timeout(timeout_s):
            got.append(await answered)
