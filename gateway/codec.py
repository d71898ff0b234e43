"""Raw MQTT payloads to typed inbound messages, and typed outbound messages to bytes.

Every decoder takes the payload exactly as the broker delivered it and returns either the typed
message or a :class:`DecodeFailure` saying what is wrong and where (``items[2].qty``). Decoders
never raise: a tablet or screen sending garbage must cost the gateway a reply, never a crash.

The happy path is one call to pydantic's ``model_validate_json`` (Rust JSON parser and validator in
one pass). Only when that fails do we look at the payload again, to find the ``order_id`` or
``command_id`` so the rejection can name the message it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from gateway.contract import (
    FieldError,
    FireCourse,
    Heartbeat,
    KdsEvent,
    ModifyLine,
    OrderRequest,
    TabletCommand,
    VoidLine,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic_core import ErrorDetails

__all__ = [
    "DecodeFailure",
    "decode_command",
    "decode_heartbeat",
    "decode_kds_event",
    "decode_order",
    "encode",
    "error_path",
]

_T = TypeVar("_T")

#: A payload full of mistakes could produce thousands of errors; a reply listing the first ones is
#: as useful to a developer and keeps the reply itself small.
MAX_ERRORS: Final = 50

#: Keys a tablet might send that the gateway owns: rejected with a message saying who sets them.
_GATEWAY_OWNED: Final = {
    "price": "prices are set by the gateway's menu",
    "unit_price": "prices are set by the gateway's menu",
    "line_total": "prices are set by the gateway's menu",
    "total": "totals are computed by the gateway from its menu",
    "currency": "the currency is set by the gateway's menu",
    "station": "stations are chosen by the gateway's routing rules",
}

_COMMAND_TAGS: Final = ("fire_course", "void_line", "modify_line")
_TAG_LIST: Final = ", ".join(_COMMAND_TAGS)

#: pydantic's wording for a few error types, rephrased for someone writing a tablet app.
_PLAIN: Final = {
    "missing": "required; add it",
    "string_pattern_mismatch": (
        "use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit "
        "(ids appear in MQTT topics: no spaces, '#', '+' or '/')"
    ),
}


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    """A payload that is not a valid message.

    Attributes:
        id: the ``order_id`` / ``command_id`` if it could be read at all, so the reply can name it.
        errors: what is wrong, each at a path like ``items[2].qty`` (``""`` for the whole payload).
        reason: a short counter key: ``too_large``, ``not_json``, ``not_object`` or ``schema``.
    """

    id: UUID | None
    errors: tuple[FieldError, ...]
    reason: str


class _OrderIdProbe(BaseModel):
    """Reads only ``order_id`` from a payload that failed validation; everything else is ignored."""

    model_config = ConfigDict(extra="ignore")
    order_id: UUID


class _CommandIdProbe(BaseModel):
    """Reads only ``command_id`` from a command that failed validation."""

    model_config = ConfigDict(extra="ignore")
    command_id: UUID


_COMMAND: Final[TypeAdapter[FireCourse | VoidLine | ModifyLine]] = TypeAdapter(TabletCommand)


def decode_order(payload: bytes, max_bytes: int) -> OrderRequest | DecodeFailure:
    """Decode a tablet's order.

    Args:
        payload: the raw MQTT payload.
        max_bytes: larger payloads are refused before any parsing.

    Returns:
        The order, or why it is not one (with its ``order_id`` when readable).
    """
    return _decode(payload, max_bytes, OrderRequest.model_validate_json, _order_id, strip_tag=False)


def decode_command(
    payload: bytes, max_bytes: int
) -> FireCourse | VoidLine | ModifyLine | DecodeFailure:
    """Decode a tablet's command (``fire_course``, ``void_line`` or ``modify_line``).

    Args:
        payload: the raw MQTT payload.
        max_bytes: larger payloads are refused before any parsing.

    Returns:
        The command, or why it is not one (with its ``command_id`` when readable).
    """
    return _decode(payload, max_bytes, _COMMAND.validate_json, _command_id, strip_tag=True)


def decode_kds_event(payload: bytes, max_bytes: int) -> KdsEvent | DecodeFailure:
    """Decode a screen's event (ack, bump, recall, item done).

    Args:
        payload: the raw MQTT payload.
        max_bytes: larger payloads are refused before any parsing.

    Returns:
        The event, or why it is not one (``id`` is always None: events carry no id to answer).
    """
    return _decode(payload, max_bytes, KdsEvent.model_validate_json, _no_id, strip_tag=False)


def decode_heartbeat(payload: bytes, max_bytes: int) -> Heartbeat | DecodeFailure:
    """Decode a screen's heartbeat.

    Args:
        payload: the raw MQTT payload.
        max_bytes: larger payloads are refused before any parsing.

    Returns:
        The heartbeat, or why it is not one (``id`` is always None).
    """
    return _decode(payload, max_bytes, Heartbeat.model_validate_json, _no_id, strip_tag=False)


def encode(model: BaseModel) -> bytes:
    """Serialise an outbound message as compact UTF-8 JSON."""
    return model.model_dump_json().encode()


# --- internals ---------------------------------------------------------------------------------


def _decode(
    payload: bytes,
    max_bytes: int,
    validate: Callable[[bytes], _T],
    read_id: Callable[[bytes], UUID | None],
    *,
    strip_tag: bool,
) -> _T | DecodeFailure:
    if len(payload) > max_bytes:
        # Checked before parsing: a huge payload must not cost the CPU time it would take to parse.
        msg = f"payload is {len(payload)} bytes; the limit is {max_bytes}"
        return DecodeFailure(None, (FieldError(path="", message=msg),), "too_large")
    try:
        return validate(payload)
    except ValidationError as err:
        return _failure(payload, err, read_id, strip_tag=strip_tag)
    except (ValueError, RecursionError) as err:  # pragma: no cover - defensive, never seen
        # pydantic reports bad input as ValidationError; this guards the "never raises" promise
        # against a parser corner we have not met.
        return DecodeFailure(None, (FieldError(path="", message=f"unreadable: {err}"),), "not_json")


def _failure(
    payload: bytes,
    err: ValidationError,
    read_id: Callable[[bytes], UUID | None],
    *,
    strip_tag: bool,
) -> DecodeFailure:
    details = err.errors(include_url=False, include_input=False)
    if any(d["type"] == "json_invalid" for d in details):
        ctx = details[0].get("ctx") or {}
        why = ctx.get("error", "invalid JSON")
        msg = f"not valid UTF-8 JSON ({why}); send one JSON object"
        return DecodeFailure(None, (FieldError(path="", message=msg),), "not_json")
    # JSON whitespace is the only thing allowed before the opening brace of an object.
    if not payload.lstrip(b" \t\r\n").startswith(b"{"):
        msg = "expected a JSON object ({...}), got another JSON value"
        return DecodeFailure(None, (FieldError(path="", message=msg),), "not_object")
    errors = [_field_error(d, strip_tag=strip_tag) for d in details]
    if len(errors) > MAX_ERRORS:
        more = len(errors) - MAX_ERRORS
        errors = [*errors[:MAX_ERRORS], FieldError(path="", message=f"... and {more} more errors")]
    return DecodeFailure(read_id(payload), tuple(errors), "schema")


def _field_error(d: ErrorDetails, *, strip_tag: bool) -> FieldError:
    loc = tuple(d["loc"])
    if strip_tag and loc and loc[0] in _COMMAND_TAGS:
        # pydantic puts the discriminator value first in the location of a tagged union's errors;
        # on the wire the field is at the top level.
        loc = loc[1:]
    path = error_path(loc)
    kind = d["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else ""
        why = _GATEWAY_OWNED.get(key)
        if why is not None:
            return FieldError(path=path, message=f"{why}; remove '{key}'")
        return FieldError(path=path, message=f"unknown field '{key}'; remove it (see the contract)")
    if kind == "union_tag_not_found":
        return FieldError(path="command", message=f"missing 'command': use one of {_TAG_LIST}")
    if kind == "union_tag_invalid":
        tag = (d.get("ctx") or {}).get("tag", "")
        msg = f"unknown command '{tag}': use one of {_TAG_LIST}"
        return FieldError(path="command", message=msg)
    return FieldError(path=path, message=_PLAIN.get(kind, d["msg"]))


def error_path(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as the path a developer reads: ``items[2].qty``.

    Args:
        loc: pydantic's location tuple, e.g. ``("items", 2, "qty")``.

    Returns:
        The dotted path, ``""`` for the whole payload.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _probe(validate: Callable[[bytes], object], payload: bytes) -> object | None:
    try:
        return validate(payload)
    except ValidationError:
        return None


def _order_id(payload: bytes) -> UUID | None:
    found = _probe(_OrderIdProbe.model_validate_json, payload)
    return found.order_id if isinstance(found, _OrderIdProbe) else None


def _command_id(payload: bytes) -> UUID | None:
    found = _probe(_CommandIdProbe.model_validate_json, payload)
    return found.command_id if isinstance(found, _CommandIdProbe) else None


def _no_id(_payload: bytes) -> UUID | None:
    return None
