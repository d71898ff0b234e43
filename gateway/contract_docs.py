"""Export the wire contract for tablet and screen makers: JSON Schema files and an AsyncAPI 3 doc.

Everything here is generated from :mod:`gateway.contract`, so the documents cannot drift from the
models the gateway actually validates with. ``gateway contract export`` writes them under
``docs/``; ``gateway contract check`` (and a unit test) fails when the committed files are stale.

The AsyncAPI document is written as YAML by a small emitter below rather than a YAML library: the
data is plain JSON (strings, numbers, booleans, lists and mappings), so a few dozen lines produce
stable, readable output without a new dependency.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from gateway import contract
from gateway.contract import CONTRACT_VERSION

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "CHANNELS",
    "OPERATIONS",
    "WIRE_MODELS",
    "build_asyncapi",
    "build_schemas",
    "render_docs",
    "stale_docs",
    "to_yaml",
    "write_docs",
]

JsonDict = dict[str, Any]

#: Every message on the wire, by the name used for its schema file and AsyncAPI component.
WIRE_MODELS: dict[str, TypeAdapter[Any]] = {
    "Menu": TypeAdapter(contract.Menu),
    "OrderRequest": TypeAdapter(contract.OrderRequest),
    "OrderReply": TypeAdapter(contract.OrderReply),
    "TabletCommand": TypeAdapter(contract.TabletCommand),
    "CommandReply": TypeAdapter(contract.CommandReply),
    "Ticket": TypeAdapter(contract.Ticket),
    "KdsEvent": TypeAdapter(contract.KdsEvent),
    "Heartbeat": TypeAdapter(contract.Heartbeat),
    "OrderStatusUpdate": TypeAdapter(contract.OrderStatusUpdate),
    "DeviceStatus": TypeAdapter(contract.DeviceStatus),
    "Telemetry": TypeAdapter(contract.Telemetry),
    "Alert": TypeAdapter(contract.Alert),
    "AlertsActive": TypeAdapter(contract.AlertsActive),
    "AlertAck": TypeAdapter(contract.AlertAck),
    "AlertAckReply": TypeAdapter(contract.AlertAckReply),
}

_COMMAND_DESCRIPTION = (
    "A tablet's command, one of FireCourse, VoidLine or ModifyLine, told apart by `command`."
)
_JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_MQTT_BINDING = "0.2.0"


@dataclass(frozen=True, slots=True)
class ChannelDoc:
    """One topic of the contract, as the AsyncAPI document describes it.

    Attributes:
        key: the AsyncAPI channel id.
        address: the MQTT topic with ``{parameters}``.
        model: name of the payload's model in :data:`WIRE_MODELS`.
        qos: MQTT QoS every publisher on this topic uses.
        retain: whether publishers set the retain flag.
    """

    key: str
    address: str
    model: str
    qos: int = 1
    retain: bool = False

    @property
    def description(self) -> str:
        """What a tablet or screen maker needs to know about this topic (CommonMark)."""
        return _CHANNEL_TEXT[self.key]


CHANNELS: tuple[ChannelDoc, ...] = (
    ChannelDoc("menu", "rst/{site}/menu", "Menu", retain=True),
    ChannelDoc("tabletOrders", "rst/{site}/tablet/{device}/orders", "OrderRequest"),
    ChannelDoc("tabletReplies", "rst/{site}/tablet/{device}/replies", "OrderReply"),
    ChannelDoc("tabletCommands", "rst/{site}/tablet/{device}/commands", "TabletCommand"),
    ChannelDoc(
        "tabletCommandReplies", "rst/{site}/tablet/{device}/command_replies", "CommandReply"
    ),
    ChannelDoc("kdsTickets", "rst/{site}/kds/{station}/tickets", "Ticket"),
    ChannelDoc("kdsEvents", "rst/{site}/kds/{station}/events", "KdsEvent"),
    ChannelDoc("kdsHeartbeat", "rst/{site}/kds/{station}/heartbeat", "Heartbeat", qos=0),
    ChannelDoc("orderStatus", "rst/{site}/orders/{order_id}/status", "OrderStatusUpdate"),
    ChannelDoc("deviceStatus", "rst/{site}/device/{device}/status", "DeviceStatus", retain=True),
    ChannelDoc("deviceTelemetry", "rst/{site}/device/{device}/telemetry", "Telemetry", qos=0),
    ChannelDoc("alerts", "rst/{site}/alerts", "Alert"),
    ChannelDoc("alertsActive", "rst/{site}/alerts/active", "AlertsActive", retain=True),
    ChannelDoc("alertsAck", "rst/{site}/alerts/ack", "AlertAck"),
    ChannelDoc("alertsAckReplies", "rst/{site}/alerts/ack_replies", "AlertAckReply"),
)

_CHANNEL_TEXT = {
    "menu": "The whole menu with prices and availability, retained: a tablet that subscribes gets "
    "it at once. A newer menu replaces it whenever the site file or availability changes.",
    "tabletOrders": "Orders from one tablet. `order_id` is made once, when the server taps "
    "*send*, and reused on every retry: it is the idempotency key, so resending never makes a "
    "second order. There are no prices in an order (unknown keys such as `items[0].price` are "
    "rejected); the gateway prices every line from its own menu.",
    "tabletReplies": "Exactly one final reply per `order_id`: `accepted` (with the total) or "
    "`rejected` (with every error and its path, e.g. `items[2].qty`). Resending an order returns "
    "the same reply again, and a gateway that restarts sends the replies of its last 30 seconds "
    "once more unasked: match replies by `order_id`. `order_id` is null only when the request "
    "could not be read at all.",
    "tabletCommands": "Fire a held course, void or modify a line. `command_id` is the idempotency "
    "key, exactly as `order_id` is for orders.",
    "tabletCommandReplies": "Exactly one final reply per `command_id`; resending the command "
    "returns it again.",
    "kdsTickets": "Tickets for one station's screen. A version is resent until the screen acks "
    "it, so a screen may see the same `(ticket_id, version)` more than once: show it once, ack "
    "every copy. A later version replaces the earlier one on the screen (highlight what "
    "changed); it is never a second ticket. An older version arriving after a newer one is acked "
    "and ignored. `status: voided` takes the ticket off the screen.",
    "kdsEvents": "What a screen reports about a ticket version: `ack` as soon as it is on the "
    "screen (this stops the resends), then `bump`, `recall` or `item_done`.",
    "kdsHeartbeat": "A screen saying it is alive; every 10 s is a good pace. A station silent for "
    "longer than `kds.silence_timeout_s` (40 s by default) has its tickets sent to its backup "
    "station, marked with `redirected_from`.",
    "orderStatus": "Published by the gateway on every state change of an order, for tablets and "
    "the expo: which stations are done and which are still cooking.",
    "deviceStatus": "Retained presence of every client (gateway, tablet, screen). Each client "
    "sets its MQTT last will to a retained `DeviceStatus` with `state: offline` on its own topic "
    "(QoS 1) and publishes a retained `online` right after connecting.",
    "deviceTelemetry": "Readings of an appliance or sensor: the gateway publishes what it polls "
    "from Modbus devices, and MQTT sensor nodes publish the same shape themselves (validated "
    "against their device profile). `seq` grows by one per message; a restart of the publisher "
    "starts again at 1 with a later `at`.",
    "alerts": "Every event of every alert (`v: 2`): `opened`, `escalated` (nobody acknowledged "
    "it in time: one priority level up), `renotified` (critical and still unacknowledged), "
    "`acknowledged`, `cleared`. `alert_id` is stable (`{subject}:{rule}`, e.g. "
    "`fridge-1:cold_holding`, `grill:kds_silent`): an alert is opened once and said again only "
    "by its own events. Order events by `seq`. Priorities: `critical`, `high`, `medium`, `low`.",
    "alertsActive": "Every active alert, most urgent first, retained: a screen that subscribes "
    "gets the whole set at once. Replaced after every change and after every reconnect of the "
    "gateway; a set with a lower `seq` than one already shown is older.",
    "alertsAck": "Someone takes an alert on: `alert_id`, `by` (a name) and a `note` (what was "
    "or will be done). It stops the alert escalating; an alert that nothing else ends (a dead "
    "letter, a clock step) is over once acknowledged. Idempotent: an alert is acknowledged "
    "once, and the same ack again is answered `already_acknowledged`.",
    "alertsAckReplies": "Exactly one reply per ack: `acknowledged`, `already_acknowledged` "
    "(with who and when), `cleared` (the alert was over before anyone acknowledged it), "
    "`unknown`, or `rejected` (with every error). With MQTT 5, name a response topic below "
    "`rst/{site}/alerts/ack_replies/` (any other is ignored) and the reply goes there with your "
    "correlation data; otherwise match replies here by `alert_id`.",
}

#: (operation id, action, channel, reply channel, summary), from the gateway's point of view:
#: ``send`` means the gateway publishes, ``receive`` that it subscribes.
OPERATIONS: tuple[tuple[str, str, str, str | None, str], ...] = (
    ("sendMenu", "send", "menu", None, "Publish the menu (retained)."),
    ("receiveOrder", "receive", "tabletOrders", "tabletReplies", "Take an order from a tablet."),
    ("sendOrderReply", "send", "tabletReplies", None, "Answer an order, once per order_id."),
    ("receiveCommand", "receive", "tabletCommands", "tabletCommandReplies", "Take a command."),
    ("sendCommandReply", "send", "tabletCommandReplies", None, "Answer a command, once per id."),
    ("sendTicket", "send", "kdsTickets", None, "Send a ticket version until the screen acks it."),
    ("receiveKdsEvent", "receive", "kdsEvents", None, "Take a screen's ack, bump or recall."),
    ("receiveHeartbeat", "receive", "kdsHeartbeat", None, "Watch that screens are alive."),
    ("sendOrderStatus", "send", "orderStatus", None, "Publish an order's new state."),
    (
        "sendDeviceStatus",
        "send",
        "deviceStatus",
        None,
        "Publish the gateway's presence; its will says offline.",
    ),
    ("sendTelemetry", "send", "deviceTelemetry", None, "Publish an appliance's readings."),
    ("receiveTelemetry", "receive", "deviceTelemetry", None, "Take a sensor node's readings."),
    ("sendAlert", "send", "alerts", None, "Tell people about an alert's event."),
    ("sendAlertsActive", "send", "alertsActive", None, "Publish the active alerts (retained)."),
    ("receiveAlertAck", "receive", "alertsAck", "alertsAckReplies", "Take an acknowledgement."),
    ("sendAlertAckReply", "send", "alertsAckReplies", None, "Answer an acknowledgement."),
)

_INFO_DESCRIPTION = """\
MQTT messages between the kitchen gateway, the table-side tablets and the kitchen display screens
(KDS). Every payload is a UTF-8 JSON object carrying `v`, the contract version; reject a major
version you do not know. The gateway rejects unknown keys in what it receives and ignores unknown
keys in what it sends you, so ignore keys you do not know.

Delivery rules:

- **Idempotency by id.** A tablet makes `order_id` (or `command_id`) once and reuses it on every
  retry; the gateway never makes a second order from a resend.
- **Exactly one final reply** per `order_id` / `command_id`. If no reply arrives, resend the same
  message; you get the same reply.
- **No prices from tablets.** The gateway prices every line from its own menu; a `price` key in an
  order is rejected.
- **Tickets are resent until acked.** Screens show each `(ticket_id, version)` once and ack every
  copy. A later version replaces the earlier one; it is never a second ticket.
- **Presence.** Every client's last will is a retained `offline` DeviceStatus on its status topic.
- **Alerts.** Each alert has a stable `alert_id`; it is opened once, escalated while nobody
  acknowledges it, and cleared when it is over. The active set is retained on `alerts/active`.
  An acknowledgement is idempotent and gets exactly one reply.
- **MQTT 5.** When a request carries `response_topic`, the reply is published there with the
  request's `correlation_data`; otherwise it goes to the `replies` / `command_replies` topic.
- **Size.** Payloads over 64 KiB (`delivery.max_payload_bytes`) are refused.

The JSON Schema (draft 2020-12) of every message is also in `docs/schemas/`."""

_PARAMETERS: JsonDict = {
    "site": {"description": "The site id (`site.id` in the site file).", "examples": ["trattoria"]},
    "device": {
        "description": "The client's own id: 1-64 of letters, digits, `_`, `.`, `-`, starting "
        "with a letter or digit, stable across restarts.",
        "examples": ["tablet-07", "kds-grill"],
    },
    "station": {"description": "A station id from the site file.", "examples": ["grill", "expo"]},
    "order_id": {
        "description": "The order's UUID, as the tablet made it.",
        "examples": ["0b6f4a52-7a53-4c1e-9d55-2f0c1d1e8a11"],
    },
}

_REQUEST_BINDING: JsonDict = {
    "mqtt": {
        "responseTopic": {
            "type": "string",
            "description": "Optional (MQTT 5): the reply is published here instead.",
        },
        "correlationData": {
            "type": "string",
            "description": "Optional (MQTT 5): copied into the reply unchanged.",
        },
        "bindingVersion": _MQTT_BINDING,
    }
}

_REPLY_BINDING: JsonDict = {
    "mqtt": {
        "correlationData": {
            "type": "string",
            "description": "The request's correlation data, when it carried any (MQTT 5).",
        },
        "bindingVersion": _MQTT_BINDING,
    }
}


def build_schemas() -> dict[str, JsonDict]:
    """Return the standalone JSON Schema (draft 2020-12) of every wire model, by name."""
    schemas: dict[str, JsonDict] = {}
    for name, adapter in WIRE_MODELS.items():
        schema = {"$schema": _JSON_SCHEMA_DIALECT, **adapter.json_schema()}
        if name == "TabletCommand":
            schema = {**schema, "title": name, "description": _COMMAND_DESCRIPTION}
        schemas[name] = schema
    return schemas


def _component_schemas() -> JsonDict:
    keys, defs = TypeAdapter.json_schemas(
        [(name, "validation", adapter) for name, adapter in WIRE_MODELS.items()],
        ref_template="#/components/schemas/{model}",
    )
    out: JsonDict = dict(defs.get("$defs", {}))
    union = keys[("TabletCommand", "validation")]
    # AsyncAPI's schema object wants the discriminator as a bare property name.
    out["TabletCommand"] = {
        "title": "TabletCommand",
        "description": _COMMAND_DESCRIPTION,
        "oneOf": union["oneOf"],
        "discriminator": union["discriminator"]["propertyName"],
    }
    return dict(sorted(out.items()))


def _params(address: str) -> JsonDict:
    names = re.findall(r"\{(\w+)\}", address)
    return {n: {"$ref": f"#/components/parameters/{n}"} for n in names}


def _message(name: str) -> JsonDict:
    adapter_doc = _summary(name)
    msg: JsonDict = {
        "name": name,
        "title": name,
        "summary": adapter_doc,
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{name}"},
    }
    if name in {"OrderRequest", "TabletCommand", "AlertAck"}:
        msg["bindings"] = _REQUEST_BINDING
    elif name in {"OrderReply", "CommandReply", "AlertAckReply"}:
        msg["bindings"] = _REPLY_BINDING
    return msg


def _summary(name: str) -> str:
    if name == "TabletCommand":
        return _COMMAND_DESCRIPTION
    doc = getattr(contract, name).__doc__ or name
    # Docstrings are reStructuredText; AsyncAPI text is CommonMark.
    return doc.strip().split("\n", 1)[0].replace("``", "`")


def build_asyncapi() -> JsonDict:
    """Return the AsyncAPI 3.0.0 document of the contract, from the gateway's point of view."""
    by_key = {c.key: c for c in CHANNELS}
    channels: JsonDict = {
        c.key: {
            "address": c.address,
            "description": c.description,
            "messages": {c.model: {"$ref": f"#/components/messages/{c.model}"}},
            "parameters": _params(c.address),
        }
        for c in CHANNELS
    }
    operations: JsonDict = {}
    for op_id, action, key, reply, summary in OPERATIONS:
        ch = by_key[key]
        body: JsonDict = {
            "action": action,
            "channel": {"$ref": f"#/channels/{ch.key}"},
            "summary": summary,
            "messages": [{"$ref": f"#/channels/{ch.key}/messages/{ch.model}"}],
            "bindings": {
                "mqtt": {"qos": ch.qos, "retain": ch.retain, "bindingVersion": _MQTT_BINDING}
            },
        }
        if reply is not None:
            rep = by_key[reply]
            body["reply"] = {
                "channel": {"$ref": f"#/channels/{rep.key}"},
                "messages": [{"$ref": f"#/channels/{rep.key}/messages/{rep.model}"}],
            }
        operations[op_id] = body
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Kitchen gateway MQTT contract",
            "version": f"{CONTRACT_VERSION}.0.0",
            "description": _INFO_DESCRIPTION,
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "mosquitto": {
                "host": "{host}:1883",
                "protocol": "mqtt",
                "protocolVersion": "5",
                "description": "The site's Mosquitto broker on the kitchen network. MQTT 5 is "
                "preferred; MQTT 3.1.1 clients work but cannot use response_topic.",
                "variables": {
                    "host": {"default": "127.0.0.1", "description": "The broker's address."}
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": _component_schemas(),
            "messages": {name: _message(name) for name in WIRE_MODELS},
            "parameters": _PARAMETERS,
        },
    }


# --- YAML --------------------------------------------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$./-]*$")
# YAML 1.1 readers still turn these into booleans or null, so they are quoted.
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def _scalar(value: object) -> str:
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(text, ensure_ascii=False)


def _literal_ok(text: str) -> bool:
    lines = text.split("\n")
    return (
        len(lines) > 1
        and not text.startswith((" ", "\n"))
        and not text.endswith("\n")
        and all(line == line.rstrip() and line.isprintable() for line in lines)
    )


def _emit(value: object, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            head = f"{pad}{_scalar(key)}:"
            if isinstance(item, dict | list) and item:
                lines += [head, *_emit(item, indent + 2)]
            elif isinstance(item, str) and _literal_ok(item):
                body = [f"{pad}  {line}" if line else "" for line in item.split("\n")]
                lines += [f"{head} |-", *body]
            else:
                lines.append(f"{head} {_flow(item)}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict | list) and item:
                inner = _emit(item, indent + 2)
                lines += [f"{pad}- {inner[0].lstrip()}", *inner[1:]]
            else:
                lines.append(f"{pad}- {_flow(item)}")
        return lines
    return [pad + _scalar(value)]


def _flow(value: object) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def to_yaml(doc: JsonDict) -> str:
    """Render a JSON-like mapping as block-style YAML 1.2, deterministically."""
    return "\n".join(_emit(doc, 0)) + "\n"


# --- files -------------------------------------------------------------------------------------

_HEADER = (
    "# Generated from gateway/contract.py by `gateway contract export`: do not edit by hand.\n"
)


def _json_text(schema: JsonDict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_docs() -> dict[str, str]:
    """Return every generated file's text, by its path relative to the docs directory."""
    files = {"asyncapi.yaml": _HEADER + to_yaml(build_asyncapi())}
    for name, schema in sorted(build_schemas().items()):
        files[f"schemas/{name}.json"] = _json_text(schema)
    return files


def _extras(directory: Path, expected: dict[str, str]) -> list[Path]:
    schema_dir = directory / "schemas"
    if not schema_dir.is_dir():
        return []
    return sorted(p for p in schema_dir.glob("*.json") if f"schemas/{p.name}" not in expected)


def stale_docs(directory: Path) -> list[Path]:
    """Return the generated files under ``directory`` that are missing, differ, or are left over.

    Args:
        directory: the docs directory (``docs`` in the repository).

    Returns:
        Sorted paths; empty when the committed files match the models.
    """
    expected = render_docs()
    stale = []
    for rel, text in expected.items():
        path = directory / rel
        try:
            if path.read_text(encoding="utf-8") != text:
                stale.append(path)
        except FileNotFoundError:
            stale.append(path)
    return sorted(stale + _extras(directory, expected))


def write_docs(directory: Path) -> list[Path]:
    """Write ``asyncapi.yaml`` and ``schemas/<Name>.json`` under ``directory``.

    Schema files no model produces any more are removed, so the directory holds exactly what the
    models generate.

    Args:
        directory: the docs directory; created if missing.

    Returns:
        The files written, sorted.
    """
    expected = render_docs()
    for extra in _extras(directory, expected):
        extra.unlink()
    written = []
    for rel, text in expected.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # newline="\n": the files are compared byte for byte on every platform.
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return sorted(written)
