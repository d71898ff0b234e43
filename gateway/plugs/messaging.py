"""The MQTT client, its topic dispatcher and the order path's MQTT adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.bridge import MqttBridge
from gateway.contract import DeviceState
from gateway.transport.dispatch import Dispatcher
from gateway.transport.mqtt import MqttClient, Will

if TYPE_CHECKING:
    from gateway.wiring import Wiring


async def plug(w: Wiring) -> None:
    """The MQTT client (connected when this returns), its dispatcher and the order bridge."""
    cfg = w.cfg
    w.mqtt = MqttClient(
        cfg.mqtt.url,
        cfg.client_id,
        username=cfg.mqtt.username,
        password=cfg.mqtt.password(),
        keepalive_s=cfg.mqtt.keepalive_s,
        will=Will(w.status_topic, w.status(DeviceState.OFFLINE)),
    )
    w.dispatcher = Dispatcher(w.mqtt, on_dead_letter=w.dead_letter)
    w.bridge = MqttBridge(
        cfg.site.id, w.mqtt, cfg.delivery.max_payload_bytes, on_alert=w.notice
    )
    w.outbox = w.bridge
    await w.supervisor.enter(w.mqtt, "mqtt")
